package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/archy-node/archy/registry"
)

// appCheck is one path's result in `archy app validate --json`.
type appCheck struct {
	Path     string             `json:"path"`
	OK       bool               `json:"ok"`
	File     string             `json:"file,omitempty"`
	ID       string             `json:"id,omitempty"`
	Version  string             `json:"version,omitempty"`
	CID      string             `json:"cid,omitempty"`
	Problems []registry.Problem `json:"problems,omitempty"`
	Error    string             `json:"error,omitempty"`
}

func newAppValidateCmd() *cobra.Command {
	var asJSON bool
	c := &cobra.Command{
		Use:   "validate PATH...",
		Short: "Check app manifests (an app folder or a manifest file each) against every rule",
		Long: `Check app manifests against the archy.app/v1 schema and the rootless
invariants. Each PATH is an app folder (holding manifest.yaml, manifest.yml
or manifest.json) or a manifest file. Image archives named by a manifest are
read to compute their cid and digest.

Each valid path is printed with its id, version and CID on stdout; each
invalid one with all its problems, one field path per line, on stderr. The
exit status is 1 if any path fails.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var results []appCheck
			failed := 0
			for _, p := range args {
				r := checkApp(p)
				results = append(results, r)
				if !r.OK {
					failed++
				}
				if asJSON {
					continue
				}
				if r.OK {
					fmt.Fprintf(cmd.OutOrStdout(), "%s: ok %s %s %s\n", r.Path, r.ID, r.Version, r.CID)
					continue
				}
				if r.Error != "" {
					fmt.Fprintf(cmd.ErrOrStderr(), "%s: %s\n", r.Path, r.Error)
					continue
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "%s: %d problem(s) in %s\n", r.Path, len(r.Problems), r.File)
				for _, pr := range r.Problems {
					fmt.Fprintf(cmd.ErrOrStderr(), "  %s\n", pr)
				}
			}
			if asJSON {
				if err := writeJSON(cmd, results); err != nil {
					return err
				}
			}
			if failed > 0 {
				return fmt.Errorf("%d of %d manifest(s) failed validation", failed, len(args))
			}
			return nil
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print the results as JSON")
	return c
}

func checkApp(p string) appCheck {
	r := appCheck{Path: p}
	l, err := registry.Load(p)
	if err != nil {
		var ve *registry.ValidationError
		if errors.As(err, &ve) {
			r.Problems, r.File = ve.Problems, ve.File
		} else {
			r.Error = err.Error()
		}
		return r
	}
	r.OK, r.File, r.ID, r.Version, r.CID = true, l.File, l.Manifest.ID, l.Manifest.Version, l.CID.String()
	return r
}
