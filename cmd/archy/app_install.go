package main

import (
	"fmt"
	"os"
	"path/filepath"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/archy-node/archy/cas"
	"github.com/archy-node/archy/node"
	"github.com/archy-node/archy/orchestrator"
	"github.com/archy-node/archy/registry"
)

func newAppInstallCmd() *cobra.Command {
	var dataDir, signed string
	var asJSON bool
	var allowDowngrade bool
	var rotations []string
	c := &cobra.Command{
		Use:     "install PATH|CID [--signed FILE]",
		Aliases: []string{"update"},
		Short:   "Install (or update to) a signed app on the running node (also: archy app update)",
		Long: `Hand a signed release to the running node of --data, which verifies it,
checks each image archive against the CID and digest the manifest pins,
loads it into Podman and runs the app (health-gated; an update rolls back
if the new version is not healthy).

PATH is the app folder; the signed envelope is <PATH>/manifest.signed.json
(archy app sign) unless --signed names another file. The manifest in the
envelope must be the one in PATH, and its image archives are handed over.

CID is the manifest CID of a release the node discovered (archy app list
--discovered) or found in a followed catalog: the node fetches the images
from the swarm by the CIDs the manifest pins, each checked on arrival.

An installed app is pinned to its publisher's DID: a release from another
DID is refused as a different app unless --rotation hands a statement
signed by the installed publisher (archy app rotate) naming the new one.
A version that does not go up is refused unless --allow-downgrade.

The node runs the install as an operation: the command follows its
progress (--json: its events as JSON lines) until it ends; interrupted,
the install goes on in the node.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			req := node.InstallRequest{AllowDowngrade: allowDowngrade}
			for _, f := range rotations {
				b, err := os.ReadFile(f)
				if err != nil {
					return fmt.Errorf("--rotation: %w", err)
				}
				req.Rotations = append(req.Rotations, b)
			}
			if _, statErr := os.Stat(args[0]); statErr != nil && signed == "" {
				if c, err := cas.Parse(args[0]); err == nil {
					req.CID = c.String()
					if err := installOnNode(cmd, dataDir, asJSON, req); err != nil {
						return fmt.Errorf("install %s: %w", c, err)
					}
					if !asJSON {
						fmt.Fprintf(cmd.OutOrStdout(), "installed %s\n", c)
					}
					return nil
				}
			}
			l, err := registry.Load(args[0])
			if err != nil {
				return err
			}
			if signed == "" {
				signed = filepath.Join(l.Dir, signedFile)
			}
			env, err := os.ReadFile(signed)
			if err != nil {
				return fmt.Errorf("read the signed manifest (archy app sign makes it): %w", err)
			}
			v, err := registry.VerifyEnvelope(env)
			if err != nil {
				return fmt.Errorf("%s: %w", signed, err)
			}
			if !v.CID.Equals(l.CID) {
				return fmt.Errorf("%s signs manifest %s, but %s is %s: sign it again", signed, v.CID, l.File, l.CID)
			}
			req.Envelope, req.Archives = env, l.Archives
			if err := installOnNode(cmd, dataDir, asJSON, req); err != nil {
				return fmt.Errorf("install %s %s: %w", l.Manifest.ID, l.Manifest.Version, err)
			}
			if !asJSON {
				fmt.Fprintf(cmd.OutOrStdout(), "installed %s %s\n", l.Manifest.ID, l.Manifest.Version)
			}
			return nil
		},
	}
	dataDirFlag(c, &dataDir)
	c.Flags().BoolVar(&asJSON, "json", false, "print the operation's events as JSON lines")
	c.Flags().StringVar(&signed, "signed", "", "the signed envelope (default <PATH>/"+signedFile+")")
	c.Flags().BoolVar(&allowDowngrade, "allow-downgrade", false, "install a version that is not above the installed one")
	c.Flags().StringArrayVar(&rotations, "rotation", nil, "a rotation statement file (archy app rotate) moving the app to this release's publisher; repeat for a chain, oldest first")
	return c
}

func newAppUninstallCmd() *cobra.Command {
	var dataDir string
	var purge, asJSON bool
	c := &cobra.Command{
		Use:   "uninstall ID [--purge]",
		Short: "Remove an app's containers and state from the running node (data and secrets kept unless --purge)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			nc, err := openNode(dataDir, "", "")
			if err != nil {
				return err
			}
			p := newProgress(cmd, asJSON)
			_, err = nc.Uninstall(cmd.Context(), args[0], purge, p.event)
			p.finish()
			if err != nil {
				return fmt.Errorf("uninstall %s: %w", args[0], nodeFailed(err))
			}
			if !asJSON {
				fmt.Fprintf(cmd.OutOrStdout(), "uninstalled %s\n", args[0])
			}
			return nil
		},
	}
	dataDirFlag(c, &dataDir)
	c.Flags().BoolVar(&asJSON, "json", false, "print the operation's events as JSON lines")
	c.Flags().BoolVar(&purge, "purge", false, "also delete the app's data and secrets")
	return c
}

// installOnNode hands an install request to the running node of dataDir
// and follows the operation with a progress bar.
func installOnNode(cmd *cobra.Command, dataDir string, asJSON bool, req node.InstallRequest) error {
	nc, err := openNode(dataDir, "", "")
	if err != nil {
		return err
	}
	p := newProgress(cmd, asJSON)
	_, err = nc.Install(cmd.Context(), req, p.event)
	p.finish()
	return nodeFailed(err)
}

func listInstalled(cmd *cobra.Command, dataDir string, asJSON bool) error {
	nc, err := openNode(dataDir, "", "")
	if err != nil {
		return err
	}
	apps, err := nc.Apps(cmd.Context())
	if err != nil {
		return err
	}
	if apps == nil {
		apps = []orchestrator.AppStatus{}
	}
	if asJSON {
		return writeJSON(cmd, apps)
	}
	w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "APP\tVERSION\tPHASE\tHEALTHY\tWHY")
	for _, a := range apps {
		why := a.Reason
		if a.Error != "" {
			why = a.Error
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%v\t%s\n", a.ID, a.Version, a.Phase, a.Healthy, why)
	}
	return w.Flush()
}
