package main

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/nbd-wtf/go-nostr"
	"github.com/nbd-wtf/go-nostr/nip19"
	"github.com/spf13/cobra"

	"github.com/archy-node/archy/p2p/discovery"
	"github.com/archy-node/archy/trust"
)

// The trust graph lives in <data>/trust/graph.json (filled by `archy
// trust crawl`): score and explain read it when no node answers, or with
// --local (trust_node.go asks the running node first).
func trustGraphPath(dataDir string) (string, error) {
	dir, err := resolveDataDir(dataDir)
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, "trust", "graph.json"), nil
}

func newTrustCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "trust",
		Short: "Endorse publishers, gather the trust graph, and see who the node would believe",
		Long: `Who may publish an app id is decided by a trust graph gathered from Nostr
relays: follow lists (kind 3), endorsements (NIP-32 labels, kind 1985, in the
"archy.trust" namespace), reports (NIP-56, kind 1984) and the DID↔key
bindings archy announcements carry. Scores are personalized PageRank from
the owner's key; a publisher is chosen for an app id only with a margin over
the runner-up. score and explain ask the running node, else (or with
--local) read the graph kept in the data folder.`,
	}
	c.AddCommand(newTrustAttestCmd(), newTrustCrawlCmd(), newTrustScoreCmd(), newTrustExplainCmd())
	return c
}

func newTrustAttestCmd() *cobra.Command {
	var (
		keyFile, comment string
		relays           []string
		revoke, asJSON   bool
		timeout          time.Duration
	)
	c := &cobra.Command{
		Use:   "attest DID|PUBKEY --key KEYFILE --relay URL",
		Short: "Publish an endorsement (NIP-32 label, kind 1985) of a publisher DID or a Nostr key",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if keyFile == "" {
				return errors.New("--key is required: a Nostr key file (archy nostr new --out FILE)")
			}
			if len(relays) == 0 {
				return errors.New("--relay is required: at least one relay URL (ws://... or wss://...)")
			}
			target, err := parseTarget(args[0])
			if err != nil {
				return err
			}
			k, err := discovery.LoadKey(keyFile)
			if err != nil {
				return err
			}
			ev, err := trust.Endorsement(target, comment, revoke, time.Now())
			if err != nil {
				return err
			}
			if err := ev.Sign(k.SecretHex()); err != nil {
				return fmt.Errorf("sign endorsement: %w", err)
			}
			type result struct {
				Relay string `json:"relay"`
				Error string `json:"error,omitempty"`
			}
			var res []result
			failed := 0
			for _, u := range relays {
				r := result{Relay: u}
				if err := publishOne(cmd.Context(), u, ev, timeout); err != nil {
					r.Error = err.Error()
					failed++
				}
				res = append(res, r)
			}
			if asJSON {
				if err := writeJSON(cmd, map[string]any{"event_id": ev.ID, "target": target, "revoke": revoke, "relays": res}); err != nil {
					return err
				}
			} else {
				fmt.Fprintf(cmd.OutOrStdout(), "event %s\n", ev.ID)
				for _, r := range res {
					if r.Error == "" {
						fmt.Fprintf(cmd.OutOrStdout(), "relay %s: ok\n", r.Relay)
					} else {
						fmt.Fprintf(cmd.ErrOrStderr(), "relay %s: failed: %s\n", r.Relay, r.Error)
					}
				}
			}
			if failed == len(relays) {
				return errors.New("no relay took the endorsement")
			}
			return nil
		},
	}
	c.Flags().StringVar(&keyFile, "key", "", "the Nostr key file that signs (as made by archy nostr new)")
	c.Flags().StringArrayVar(&relays, "relay", nil, "a relay's ws:// or wss:// URL (repeat for more relays)")
	c.Flags().BoolVar(&revoke, "revoke", false, "withdraw an earlier endorsement instead")
	c.Flags().StringVar(&comment, "comment", "", "a note carried in the event's content")
	c.Flags().DurationVar(&timeout, "timeout", 10*time.Second, "how long to wait for each relay")
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}

func publishOne(ctx context.Context, url string, ev nostr.Event, timeout time.Duration) error {
	if !strings.HasPrefix(url, "ws://") && !strings.HasPrefix(url, "wss://") {
		return fmt.Errorf("%q is not a ws:// or wss:// URL", url)
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	r, err := discovery.Dial(ctx, url, timeout)
	if err != nil {
		return err
	}
	defer r.Close()
	if err := r.Publish(ctx, ev); err != nil {
		return fmt.Errorf("publish: %w", err)
	}
	return nil
}

// parseTarget accepts a DID, a hex Nostr key or an npub.
func parseTarget(s string) (string, error) {
	switch {
	case strings.HasPrefix(s, "did:"):
		return s, nil
	case strings.HasPrefix(s, "npub1"):
		_, v, err := nip19.Decode(s)
		if err != nil {
			return "", fmt.Errorf("decode %q: %w", s, err)
		}
		pk, ok := v.(string)
		if !ok {
			return "", fmt.Errorf("decode %q: not a public key", s)
		}
		return pk, nil
	case nostr.IsValidPublicKey(s):
		return s, nil
	}
	return "", fmt.Errorf("%q is not a DID, an npub or a hex Nostr public key", s)
}

func newTrustCrawlCmd() *cobra.Command {
	var (
		dataDir, owner string
		relays         []string
		hops           int
		timeout        time.Duration
		asJSON         bool
	)
	c := &cobra.Command{
		Use:   "crawl --owner NPUB --relay URL",
		Short: "Gather the trust graph from relays, from the owner's key outwards, into the data folder",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			path, err := trustGraphPath(dataDir)
			if err != nil {
				return err
			}
			st, err := trust.Open(path)
			if err != nil {
				return err
			}
			if owner != "" {
				if st.Owner, err = parseTarget(owner); err != nil || strings.HasPrefix(st.Owner, "did:") {
					return fmt.Errorf("--owner %q: want an npub or a hex Nostr public key", owner)
				}
			}
			if st.Owner == "" {
				return errors.New("--owner is required the first time: the owner's Nostr public key (npub or hex)")
			}
			if len(relays) == 0 {
				return errors.New("--relay is required: at least one relay URL (ws://... or wss://...)")
			}
			if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
				return fmt.Errorf("create %s: %w", filepath.Dir(path), err)
			}
			cr := &trust.Crawler{Relays: relays, Hops: hops, Timeout: timeout}
			stats, err := cr.Crawl(cmd.Context(), st, []string{st.Owner})
			if err != nil {
				return err
			}
			if err := st.Save(); err != nil {
				return err
			}
			if asJSON {
				return writeJSON(cmd, stats)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "authors %d, events %d (%d changed the graph, %d rejected, %d capped); graph %d nodes, %d edges in %s\n",
				stats.Authors, stats.Events, stats.Changed, stats.Rejected, stats.Capped, st.Graph.Len(), st.Graph.Edges(), path)
			return nil
		},
	}
	dataDirFlag(c, &dataDir)
	c.Flags().StringVar(&owner, "owner", "", "the owner's Nostr public key (npub or hex); remembered in the graph file")
	c.Flags().StringArrayVar(&relays, "relay", nil, "a relay's ws:// or wss:// URL (repeat for more relays)")
	c.Flags().IntVar(&hops, "hops", 2, "how many follow hops from the owner to read")
	c.Flags().DurationVar(&timeout, "timeout", 10*time.Second, "how long to wait for each relay connection and query")
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}

// trustFlags are what score and explain share.
type trustFlags struct {
	dataDir, owner string
	asJSON         bool
	policy         trust.Policy
}

func (f *trustFlags) add(c *cobra.Command) {
	dataDirFlag(c, &f.dataDir)
	c.Flags().StringVar(&f.owner, "owner", "", "score from this Nostr key (default: the owner the graph was crawled for)")
	c.Flags().BoolVar(&f.asJSON, "json", false, "print JSON")
	c.Flags().Float64Var(&f.policy.Margin, "margin", 3, "how many times the runner-up's score the chosen publisher needs")
	c.Flags().Float64Var(&f.policy.Floor, "floor", 1e-5, "the least score (fraction of the owner's trust) to be chosen or heard as a reporter")
	c.Flags().StringArrayVar(&f.policy.Allow, "allow", nil, "a publisher DID the owner trusts (repeat)")
	c.Flags().StringArrayVar(&f.policy.Deny, "deny", nil, "a publisher DID the owner refuses (repeat)")
}

func (f *trustFlags) open() (*trust.Store, *trust.Scorer, error) {
	path, err := trustGraphPath(f.dataDir)
	if err != nil {
		return nil, nil, err
	}
	if _, err := os.Stat(path); err != nil {
		return nil, nil, fmt.Errorf("no trust graph at %s: run archy trust crawl --owner NPUB --relay URL first", path)
	}
	st, err := trust.Open(path)
	if err != nil {
		return nil, nil, err
	}
	owner := st.Owner
	if f.owner != "" {
		if owner, err = parseTarget(f.owner); err != nil {
			return nil, nil, fmt.Errorf("--owner: %w", err)
		}
	}
	return st, trust.NewScorer(st.Graph, owner, trust.Params{}), nil
}

func newTrustScoreCmd() *cobra.Command {
	var f trustFlags
	var top int
	c := &cobra.Command{
		Use:   "score",
		Short: "List publishers by score and the decision for every app id seen (from the graph in the data folder)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, s, err := f.open()
			if err != nil {
				return err
			}
			type row struct {
				DID   string  `json:"did"`
				Score float64 `json:"score"`
			}
			var rows []row
			for _, d := range st.Graph.DIDs() {
				rows = append(rows, row{d, s.Score(d)})
			}
			slices.SortStableFunc(rows, func(a, b row) int {
				switch {
				case a.Score > b.Score:
					return -1
				case a.Score < b.Score:
					return 1
				}
				return 0
			})
			rows = rows[:min(len(rows), top)]
			var decisions []trust.Decision
			for _, app := range st.Graph.Apps() {
				decisions = append(decisions, s.Decide(f.policy, app, candidates(st.Graph, app)))
			}
			if f.asJSON {
				return writeJSON(cmd, map[string]any{"owner": st.Owner, "publishers": rows, "apps": decisions})
			}
			out := cmd.OutOrStdout()
			if s.Root() < 0 {
				fmt.Fprintln(out, "no owner key: only pinned and allowed publishers are trusted")
			}
			for _, r := range rows {
				fmt.Fprintf(out, "%-60s %.3g\n", r.DID, r.Score)
			}
			for _, d := range decisions {
				printDecision(out, d)
			}
			return nil
		},
	}
	f.add(c)
	c.Flags().IntVar(&top, "top", 50, "how many publishers to list")
	return c
}

func candidates(g *trust.Graph, app string) []trust.Candidate {
	var cs []trust.Candidate
	for _, d := range g.Publishers(app) {
		cs = append(cs, trust.Candidate{DID: d})
	}
	return cs
}

func printDecision(out interface{ Write([]byte) (int, error) }, d trust.Decision) {
	sel := "abstain"
	if d.Selected != "" {
		sel = d.Selected
	}
	m := "∞"
	if !math.IsInf(d.Margin, 1) {
		m = fmt.Sprintf("%.2f×", d.Margin)
	}
	fmt.Fprintf(out, "app %s: %s (margin %s): %s\n", d.AppID, sel, m, strings.Join(d.Reasons, "; "))
	for _, c := range d.Candidates {
		fmt.Fprintf(out, "  %-58s score %.3g capped %.3g branches %d reports %.2f %s\n", c.DID, c.Score, c.Capped, c.Branches, c.Reports, strings.Join(c.Reasons, "; "))
	}
}

func newTrustExplainCmd() *cobra.Command {
	var f trustFlags
	c := &cobra.Command{
		Use:   "explain DID|PUBKEY|APP",
		Short: "Say why a publisher or key scores what it does, or how an app id's publisher is chosen",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			st, s, err := f.open()
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			names := []string{}
			var dec *trust.Decision
			if target, err := parseTarget(args[0]); err == nil {
				names = append(names, target)
			} else if pubs := st.Graph.Publishers(args[0]); len(pubs) > 0 {
				d := s.Decide(f.policy, args[0], candidates(st.Graph, args[0]))
				dec = &d
				names = pubs
			} else {
				return fmt.Errorf("%q is not a DID, a Nostr key or an app id the graph has seen", args[0])
			}
			var ex []trust.Explanation
			for _, n := range names {
				ex = append(ex, s.Explain(n))
			}
			if f.asJSON {
				return writeJSON(cmd, map[string]any{"decision": dec, "explanations": ex})
			}
			if dec != nil {
				printDecision(out, *dec)
			}
			for _, e := range ex {
				printExplanation(out, e, s.Score)
			}
			return nil
		},
	}
	f.add(c)
	return c
}
