package main

import (
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/archy-node/archy/internal/paths"
	"github.com/archy-node/archy/p2p/discovery"
)

// listedRelease is one row of `archy app list --discovered --json`.
type listedRelease struct {
	ID          string    `json:"id"`
	Version     string    `json:"version"`
	Channel     string    `json:"channel"`
	Latest      bool      `json:"latest"` // the publisher's "latest" pointer names this release
	Publisher   string    `json:"publisher"`
	NostrPubKey string    `json:"nostr_pubkey"`
	CID         string    `json:"cid"`
	CreatedAt   time.Time `json:"created_at"`
	EventID     string    `json:"event_id"`
	// Verified says the signed manifest came with the announcement and
	// verified; false means only its cid is known so far.
	Verified bool `json:"verified"`
}

func newAppListCmd() *cobra.Command {
	var discovered, asJSON bool
	var dataDir string
	c := &cobra.Command{
		Use:   "list [--discovered] [--data DIR]",
		Short: "List the apps a running node has installed, or (--discovered) the releases it found on relays",
		Long: `List the verified releases in the node's discovery store
(<data>/discovery/discovered.json and its journal), one row per release: app
id, version, channel, whether the publisher's "latest" pointer names it,
publisher DID, manifest CID and announcement time. The data folder defaults
to $XDG_DATA_HOME/archy, else ~/.local/share/archy. Without --discovered,
the installed apps of the running node of that data folder: id, version,
phase, health and why.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !discovered {
				return listInstalled(cmd, dataDir, asJSON)
			}
			if dataDir == "" {
				d, err := paths.DataDir()
				if err != nil {
					return err
				}
				dataDir = d
			}
			path := discovery.StorePath(dataDir)
			// Read-only: the node may be appending to the store meanwhile.
			st, err := discovery.NewStore(discovery.StoreConfig{Path: path, ReadOnly: true})
			if err != nil {
				return err
			}
			rows := []listedRelease{}
			for _, r := range st.List() {
				rows = append(rows, listedRelease{ID: r.AppID, Version: r.Version, Channel: channelOf(r.Channel), Latest: r.Latest,
					Publisher: r.Publisher, NostrPubKey: r.NostrPubKey, CID: r.CID.String(), CreatedAt: r.CreatedAt.UTC(),
					EventID: r.EventID, Verified: r.Manifest != nil})
			}
			if asJSON {
				return writeJSON(cmd, rows)
			}
			if len(rows) == 0 {
				fmt.Fprintf(cmd.ErrOrStderr(), "no discovered releases in %s\n", path)
				return nil
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "APP\tVERSION\tCHANNEL\tLATEST\tPUBLISHER\tCID\tCREATED")
			for _, r := range rows {
				latest := ""
				if r.Latest {
					latest = "latest"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.ID, r.Version, r.Channel, latest, r.Publisher, r.CID, r.CreatedAt.Format(time.RFC3339))
			}
			return tw.Flush()
		},
	}
	c.Flags().BoolVar(&discovered, "discovered", false, "list the releases discovered on Nostr relays (required for now)")
	c.Flags().StringVar(&dataDir, "data", "", "the node's data folder (default $XDG_DATA_HOME/archy or ~/.local/share/archy)")
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}
