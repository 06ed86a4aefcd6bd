package main

import (
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
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
	var dataDir, api string
	c := &cobra.Command{
		Use:   "list [--discovered] [--data DIR]",
		Short: "List the apps a running node has installed, or (--discovered) the releases it found on relays",
		Long: `List the installed apps of the running node of the data folder: id,
version, phase, health and why. With --discovered, the verified releases
the node found on its relays, one row per release: app id, version,
channel, whether the publisher's "latest" pointer names it, publisher DID,
manifest CID and announcement time.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !discovered {
				return listInstalled(cmd, dataDir, asJSON)
			}
			nc, err := openNode(dataDir, api, "")
			if err != nil {
				return err
			}
			found, err := nc.Discovered(cmd.Context())
			if err != nil {
				return err
			}
			rows := []listedRelease{}
			for _, r := range found {
				rows = append(rows, listedRelease{ID: r.AppID, Version: r.Version, Channel: channelOf(r.Channel), Latest: r.Latest,
					Publisher: r.Publisher, NostrPubKey: r.NostrPubKey, CID: r.CID.String(), CreatedAt: r.CreatedAt.UTC(),
					EventID: r.EventID, Verified: len(r.Envelope) > 0})
			}
			if asJSON {
				return writeJSON(cmd, rows)
			}
			if len(rows) == 0 {
				fmt.Fprintf(cmd.ErrOrStderr(), "the node at %s has discovered no releases yet\n", nc.Base)
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
	c.Flags().BoolVar(&discovered, "discovered", false, "list the releases the node discovered on Nostr relays instead of the installed apps")
	dataDirFlag(c, &dataDir)
	c.Flags().StringVar(&api, "api", "", "the node's API URL (default: read from the data folder)")
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}
