package main

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/nbd-wtf/go-nostr"
	"github.com/spf13/cobra"

	"github.com/archy-node/archy/cas"
	"github.com/archy-node/archy/did"
	"github.com/archy-node/archy/p2p/discovery"
	"github.com/archy-node/archy/registry"
)

// announceFlags are the flags publish and withdraw share.
type announceFlags struct {
	nostrKey string
	relays   []string
	timeout  time.Duration
	asJSON   bool
}

func (f *announceFlags) add(c *cobra.Command) {
	c.Flags().StringVar(&f.nostrKey, "nostr-key", "", "the publisher's Nostr key file (archy nostr new --out FILE; mode 0600)")
	c.Flags().StringArrayVar(&f.relays, "relay", nil, "a relay's ws:// or wss:// URL (repeat for more relays)")
	c.Flags().DurationVar(&f.timeout, "timeout", 10*time.Second, "how long to wait for each relay (connect and acknowledge)")
	c.Flags().BoolVar(&f.asJSON, "json", false, "print the result as JSON")
}

// check names the first missing or bad flag, then loads the Nostr key.
func (f *announceFlags) check() (*discovery.Key, error) {
	if f.nostrKey == "" {
		return nil, errors.New("--nostr-key is required: the Nostr key file that signs announcements (archy nostr new --out FILE)")
	}
	if len(f.relays) == 0 {
		return nil, errors.New("--relay is required: at least one relay URL (ws://... or wss://...)")
	}
	for _, r := range f.relays {
		if !nostr.IsValidRelayURL(r) {
			return nil, fmt.Errorf("--relay %q: not a ws:// or wss:// URL", r)
		}
	}
	if f.timeout <= 0 {
		return nil, fmt.Errorf("--timeout %v: must be positive", f.timeout)
	}
	return discovery.LoadKey(f.nostrKey)
}

// printRelays prints one line per relay: those that took the events on
// stdout, those that did not (and why) on stderr.
func printRelays(stdout, stderr io.Writer, results []discovery.PublishResult) {
	for _, r := range results {
		if r.Err == "" {
			fmt.Fprintf(stdout, "relay %s: ok\n", r.Relay)
		} else {
			fmt.Fprintf(stderr, "relay %s: failed: %s\n", r.Relay, r.Err)
		}
	}
}

// publishResult is what `archy app publish --json` prints.
type publishResult struct {
	ID          string                    `json:"id"`
	Version     string                    `json:"version"`
	Channel     string                    `json:"channel"`
	CID         string                    `json:"cid"`
	Publisher   string                    `json:"publisher"`
	NostrPubKey string                    `json:"nostr_pubkey"`
	Envelope    string                    `json:"envelope"`
	Inline      bool                      `json:"inline"` // the envelope travels in the events
	Events      []string                  `json:"events"`
	Relays      []discovery.PublishResult `json:"relays"`
}

func newAppPublishCmd() *cobra.Command {
	var rf announceFlags
	var keyFile, channel, out, nodeURL, nodeToken, nodeData string
	c := &cobra.Command{
		Use:   "publish PATH --key KEYFILE --nostr-key NOSTRKEY --relay URL... [--channel NAME]",
		Short: "Validate, sign and announce an app release on Nostr relays (NIP-78)",
		Long: `Validate an app manifest, sign it with the publisher's DID key (writing the
envelope to manifest.signed.json in the app folder, as archy app sign does),
and announce the release on every relay given: a NIP-78 event for the release
and a "latest" pointer for the app, both signed by the Nostr key and carrying
a DID-signed statement that binds that Nostr key to the publisher's DID.
Prints one line per relay; exits non-zero if no relay took the announcement.

--channel sets the manifest's release channel when the manifest names none
(the channel is part of what is signed).

With --node (a node's API URL, or "local" for the node of --data), the image
archives and the signed manifest are first handed to that node, which keeps
them pinned in its block store and provides them to the swarm; the node's
API token is read from <data>/api.token (or --node-token FILE).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if keyFile == "" {
				return errors.New("--key is required: the publisher's DID key file (archy did new --out KEYFILE)")
			}
			nk, err := rf.check()
			if err != nil {
				return err
			}
			l, err := registry.Load(args[0])
			if err != nil {
				return err
			}
			if err := setChannel(l, channel); err != nil {
				return err
			}
			key, err := did.LoadKey(keyFile)
			if err != nil {
				return err
			}
			envJSON, c, err := signLoaded(l, key)
			if err != nil {
				return err
			}
			if out, err = writeSigned(l, out, envJSON); err != nil {
				return err
			}
			v, err := registry.VerifyEnvelope(envJSON)
			if err != nil {
				return fmt.Errorf("publish %s: the envelope just signed does not verify: %w", l.File, err)
			}
			if nodeURL != "" {
				if err := handToNode(cmd, nodeURL, nodeData, nodeToken, l, envJSON); err != nil {
					return err
				}
			}
			binding, err := discovery.Binding(key, nk.PublicKey())
			if err != nil {
				return err
			}
			a := &discovery.Announcement{Manifest: v, Envelope: envJSON[:len(envJSON)-1], Binding: binding, CreatedAt: time.Now()}
			evs, err := a.Events(nk.SecretHex())
			if err != nil {
				return err
			}
			inline := evs[0].Content != ""
			if !inline {
				fmt.Fprintf(cmd.ErrOrStderr(), "archy: warning: the signed manifest (%d bytes) is over the %d bytes put in an event: the announcement carries only its cid, and nodes cannot fetch it until a node serves it\n",
					len(a.Envelope), discovery.DefaultMaxContent)
			}
			results, perr := discovery.Publish(cmd.Context(), rf.relays, rf.timeout, evs...)
			m := v.Manifest
			res := publishResult{ID: m.ID, Version: m.Version, Channel: channelOf(m.Channel), CID: c.String(),
				Publisher: m.Publisher, NostrPubKey: nk.PublicKey(), Envelope: out, Inline: inline, Relays: results}
			for _, ev := range evs {
				res.Events = append(res.Events, ev.ID)
			}
			if rf.asJSON {
				if err := writeJSON(cmd, res); err != nil {
					return err
				}
			} else {
				w := cmd.OutOrStdout()
				fmt.Fprintf(w, "published %s %s (channel %s)\ncid: %s\npublisher: %s\nnostr: %s\nenvelope: %s\nevents: %s\n",
					res.ID, res.Version, res.Channel, res.CID, res.Publisher, nk.Npub(), out, strings.Join(res.Events, " "))
				printRelays(w, cmd.ErrOrStderr(), results)
			}
			if perr != nil {
				return fmt.Errorf("publish %s %s: no relay took the announcement; check the relay URLs and try again (the envelope is saved in %s)", m.ID, m.Version, out)
			}
			return nil
		},
	}
	rf.add(c)
	c.Flags().StringVar(&keyFile, "key", "", "the publisher's DID key file (mode 0600)")
	c.Flags().StringVar(&channel, "channel", "", "release channel (stable, beta, edge...) when the manifest names none")
	c.Flags().StringVar(&out, "out", "", "where to write the signed envelope (default: <app folder>/"+signedFile+")")
	c.Flags().StringVar(&nodeURL, "node", "", `a running node to hand the image and manifest to: its API URL, or "local"`)
	c.Flags().StringVar(&nodeToken, "node-token", "", "the node's API token file (default <data>/api.token)")
	dataDirFlag(c, &nodeData)
	return c
}

func channelOf(c string) string {
	if c == "" {
		return registry.DefaultChannel
	}
	return c
}

// setChannel puts --channel into a manifest that names no channel (and
// recomputes what is signed); a manifest that names another one is left
// alone and refused, since its channel is the publisher's signed word.
func setChannel(l *registry.Loaded, channel string) error {
	m := l.Manifest
	if channel == "" || channel == channelOf(m.Channel) {
		return nil
	}
	if m.Channel != "" {
		return fmt.Errorf("--channel %s: %s names channel %s; change it there", channel, l.File, m.Channel)
	}
	m.Channel = channel
	if err := m.Validate(); err != nil {
		return fmt.Errorf("--channel %q: %w", channel, err)
	}
	payload, err := registry.Canonical(m)
	if err != nil {
		return fmt.Errorf("--channel %q: %w", channel, err)
	}
	l.Payload, l.CID = payload, cas.Sum(payload)
	return nil
}

// withdrawResult is what `archy app withdraw --json` prints.
type withdrawResult struct {
	ID          string                    `json:"id"`
	Version     string                    `json:"version"`
	NostrPubKey string                    `json:"nostr_pubkey"`
	Event       string                    `json:"event"`
	Relays      []discovery.PublishResult `json:"relays"`
}

func newAppWithdrawCmd() *cobra.Command {
	var rf announceFlags
	var reason string
	c := &cobra.Command{
		Use:   "withdraw ID@VERSION --nostr-key NOSTRKEY --relay URL...",
		Short: "Withdraw an announced release (a NIP-09 deletion) from relays and from the nodes that follow them",
		Long: `Send a NIP-09 deletion, signed by the Nostr key that announced the release,
naming the release's address (an "a" tag). Relays drop the release; nodes
drop it, and the app's "latest" pointer if it names this release (announce
the release that is latest now again to restore it). Prints one line per
relay; exits non-zero if no relay took the deletion.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			i := strings.LastIndexByte(args[0], '@')
			if i <= 0 || i == len(args[0])-1 {
				return fmt.Errorf("withdraw %q: want ID@VERSION, as in hello@1.0.0", args[0])
			}
			id, version := args[0][:i], args[0][i+1:]
			nk, err := rf.check()
			if err != nil {
				return err
			}
			ev, err := discovery.Withdrawal(nk.SecretHex(), id, version, reason, time.Now())
			if err != nil {
				return err
			}
			results, perr := discovery.Publish(cmd.Context(), rf.relays, rf.timeout, ev)
			if rf.asJSON {
				if err := writeJSON(cmd, withdrawResult{ID: id, Version: version, NostrPubKey: nk.PublicKey(), Event: ev.ID, Relays: results}); err != nil {
					return err
				}
			} else {
				w := cmd.OutOrStdout()
				fmt.Fprintf(w, "withdrew %s %s\nnostr: %s\nevent: %s\n", id, version, nk.Npub(), ev.ID)
				printRelays(w, cmd.ErrOrStderr(), results)
			}
			if perr != nil {
				return fmt.Errorf("withdraw %s %s: no relay took the deletion; check the relay URLs and try again", id, version)
			}
			return nil
		},
	}
	rf.add(c)
	c.Flags().StringVar(&reason, "reason", "", "why the release is withdrawn (public: it goes in the deletion event)")
	return c
}
