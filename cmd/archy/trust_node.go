package main

import (
	"errors"
	"fmt"
	"io"
	"math"
	"net/url"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/archy-node/archy/node"
	"github.com/archy-node/archy/node/client"
	"github.com/archy-node/archy/trust"
)

// withNodeTrust makes `archy trust score` and `archy trust explain` ask the
// running node (GET /api/v1/trust/...) when one runs on the data folder
// or --api names one: the node knows what the graph file does not (its
// pins, the bindings discovery verified, the followed catalogs, its
// policy). With --local, a policy flag changed (a what-if), or no node
// answering, they read the graph file as before.
func withNodeTrust(c *cobra.Command) *cobra.Command {
	for _, sub := range c.Commands() {
		var print func(cmd *cobra.Command, nc *client.Client, args []string) error
		switch sub.Name() {
		case "score":
			print = nodeTrustScore
		case "explain":
			print = nodeTrustExplain
		default:
			continue
		}
		// Flags trust.go may come to define itself are not defined twice.
		if sub.Flags().Lookup("api") == nil {
			sub.Flags().String("api", "", "the node's API URL (default: read from the data folder; without a running node, the graph file is read)")
		}
		if sub.Flags().Lookup("local") == nil {
			sub.Flags().Bool("local", false, "read the graph file in the data folder even when a node runs")
		}
		fromFile := sub.RunE
		sub.RunE = func(cmd *cobra.Command, args []string) error {
			api := cmd.Flags().Lookup("api").Value.String()
			if cmd.Flags().Lookup("local").Value.String() == "true" {
				return fromFile(cmd, args)
			}
			for _, f := range []string{"owner", "margin", "floor", "allow", "deny"} {
				if cmd.Flags().Changed(f) {
					return fromFile(cmd, args) // the node scores with its own policy
				}
			}
			nc, err := openNode(cmd.Flags().Lookup("data").Value.String(), api, "")
			if err != nil {
				return fromFile(cmd, args)
			}
			if err := print(cmd, nc, args); err != nil {
				var ans *client.APIError
				if api != "" || errors.As(err, &ans) {
					return err // the node answered: its answer stands
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "no node answers at %s (%v): reading the graph file\n", nc.Base, err)
				return fromFile(cmd, args)
			}
			return nil
		}
	}
	return c
}

// trustAskTimeout bounds a trust question: a crawl under way delays
// the node's answers.
const trustAskTimeout = 30 * time.Second

func jsonFlag(cmd *cobra.Command) bool {
	f := cmd.Flags().Lookup("json")
	return f != nil && f.Value.String() == "true"
}

// withMargin restores a decoded decision's Margin (null in JSON: +Inf).
func withMargin(d trust.Decision) trust.Decision {
	d.Margin = math.Inf(1)
	if d.MarginJSON != nil {
		d.Margin = *d.MarginJSON
	}
	return d
}

func nodeTrustScore(cmd *cobra.Command, nc *client.Client, _ []string) error {
	var sc node.TrustScore
	if err := nc.GetJSONWithin(cmd.Context(), "/api/v1/trust/score", &sc, trustAskTimeout); err != nil {
		return err
	}
	if f := cmd.Flags().Lookup("top"); f != nil {
		var top int
		if _, err := fmt.Sscan(f.Value.String(), &top); err == nil {
			sc.Publishers = sc.Publishers[:min(len(sc.Publishers), max(top, 0))]
		}
	}
	if jsonFlag(cmd) {
		return writeJSON(cmd, sc)
	}
	out := cmd.OutOrStdout()
	if sc.Note != "" {
		fmt.Fprintln(out, sc.Note)
	}
	if len(sc.Publishers) == 0 && len(sc.Apps) == 0 {
		fmt.Fprintln(out, "no publisher seen yet: the node scores those its discovery and catalogs bring")
	}
	for _, r := range sc.Publishers {
		fmt.Fprintf(out, "%-60s %.3g\n", r.DID, r.Score)
	}
	for _, d := range sc.Apps {
		printDecision(out, withMargin(d))
	}
	return nil
}

func nodeTrustExplain(cmd *cobra.Command, nc *client.Client, args []string) error {
	var ex node.TrustExplanation
	if err := nc.GetJSONWithin(cmd.Context(), "/api/v1/trust/explain/"+url.PathEscape(args[0]), &ex, trustAskTimeout); err != nil {
		return err
	}
	if jsonFlag(cmd) {
		return writeJSON(cmd, ex)
	}
	out := cmd.OutOrStdout()
	if ex.Note != "" {
		fmt.Fprintln(out, ex.Note)
	}
	if ex.Decision != nil {
		printDecision(out, withMargin(*ex.Decision))
	}
	for _, e := range ex.Explanations {
		printExplanation(out, e, nil)
	}
	return nil
}

// printExplanation prints e; score, when not nil, gives each reporter's
// score too.
func printExplanation(out io.Writer, e trust.Explanation, score func(string) float64) {
	fmt.Fprintf(out, "%s: score %.3g\n", e.Name, e.Score)
	if len(e.Keys) > 0 {
		fmt.Fprintf(out, "  bound keys: %s\n", strings.Join(e.Keys, " "))
	}
	for _, p := range e.Paths {
		fmt.Fprintf(out, "  path (flow %.3g): %s\n", p.Flow, strings.Join(p.Nodes, " → "))
	}
	for _, a := range e.Endorsers {
		fmt.Fprintf(out, "  endorsed by %s (score %.3g)\n", a.Author, a.Score)
	}
	for _, a := range e.Followers {
		fmt.Fprintf(out, "  followed by %s (score %.3g)\n", a.Author, a.Score)
	}
	for _, r := range e.Reports {
		if score != nil {
			fmt.Fprintf(out, "  reported %s by %s (score %.3g)\n", r.Type, r.Reporter, score(r.Reporter))
		} else {
			fmt.Fprintf(out, "  reported %s by %s\n", r.Type, r.Reporter)
		}
	}
}

// printTrustStatus is the trust part of `archy node status`.
func printTrustStatus(w io.Writer, t node.TrustStatus) {
	owner := t.Owner
	if owner == "" {
		owner = "none: " + t.Note
	}
	fmt.Fprintf(w, "owner:      %s\ntrust:      graph %d nodes, %d edges; auto-install %t, auto-update %t\n", owner, t.Nodes, t.Edges, t.AutoInstall, t.AutoUpdate)
	if !t.LastCrawl.IsZero() {
		fmt.Fprintf(w, "crawled:    %s\n", t.LastCrawl.Format("2006-01-02T15:04:05Z07:00"))
	}
	if t.CrawlError != "" {
		fmt.Fprintf(w, "crawl:      failed: %s\n", t.CrawlError)
	}
}
