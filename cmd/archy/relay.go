package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/archy-node/archy/relay"
)

func newRelayCmd() *cobra.Command {
	c := &cobra.Command{Use: "relay", Short: "Run archy's embedded Nostr relay"}
	c.AddCommand(newRelayRunCmd())
	return c
}

func newRelayRunCmd() *cobra.Command {
	cfg := relay.DefaultConfig()
	var logLevel slog.Level
	c := &cobra.Command{
		Use:   "run",
		Short: "Serve a Nostr relay (NIP-01, NIP-09, NIP-11) until interrupted",
		Long: `Serve a Nostr relay on --listen until SIGINT or SIGTERM.

The relay verifies every event, stores what it accepts in an append-only log
in --data (it survives restarts), and limits what each client may cost it.
It prints its websocket URL on stdout once it listens.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if cfg.DataDir == "" {
				dir, err := defaultRelayDataDir()
				if err != nil {
					return err
				}
				cfg.DataDir = dir
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			log := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: logLevel}))
			return runRelay(ctx, cfg, log, func(url string) {
				fmt.Fprintln(cmd.OutOrStdout(), url)
			})
		},
	}
	f := c.Flags()
	f.StringVar(&cfg.Listen, "listen", cfg.Listen, "host:port to listen on (use 0.0.0.0:PORT to accept other machines)")
	f.StringVar(&cfg.DataDir, "data", "", "folder for the event log (default <data>/relay: $ARCHY_DATA/relay, else $XDG_DATA_HOME/archy/relay or ~/.local/share/archy/relay)")
	f.StringVar(&cfg.Name, "name", cfg.Name, "relay name in the NIP-11 document")
	f.StringVar(&cfg.Description, "description", cfg.Description, "relay description in the NIP-11 document")
	f.StringVar(&cfg.PubKey, "pubkey", "", "operator's Nostr public key (hex) in the NIP-11 document")
	f.StringVar(&cfg.Contact, "contact", "", "operator's contact in the NIP-11 document")
	f.Int64Var(&cfg.MaxMessageSize, "max-message-size", cfg.MaxMessageSize, "largest message a client may send, in bytes")
	f.IntVar(&cfg.MaxSubscriptions, "max-subscriptions", cfg.MaxSubscriptions, "open subscriptions per connection")
	f.IntVar(&cfg.MaxFilters, "max-filters", cfg.MaxFilters, "filters per REQ")
	f.IntVar(&cfg.MaxLimit, "max-limit", cfg.MaxLimit, "stored events returned per filter")
	f.IntVar(&cfg.MaxEventTags, "max-event-tags", cfg.MaxEventTags, "tags per event")
	f.IntVar(&cfg.MaxConnections, "max-connections", cfg.MaxConnections, "websocket connections at once")
	f.IntVar(&cfg.MaxConnectionsPerIP, "max-connections-per-ip", cfg.MaxConnectionsPerIP, "websocket connections at once from one IPv4 address or IPv6 /64")
	f.StringSliceVar(&cfg.AllowedOrigins, "allowed-origin", nil, `browser page origins allowed to connect (repeatable; "*" for any); by default only pages of the relay's own loopback address`)
	f.IntVar(&cfg.MaxConnectionsPerOrigin, "max-connections-per-origin", cfg.MaxConnectionsPerOrigin, "websocket connections at once from pages of one allowed origin")
	f.IntVar(&cfg.MaxEvents, "max-events", cfg.MaxEvents, "events stored; past it new events are refused")
	f.IntVar(&cfg.MaxStoredBytes, "max-stored-bytes", cfg.MaxStoredBytes, "bytes of events stored (all held in memory); past it new events are refused")
	f.Float64Var(&cfg.EventRate, "event-rate", cfg.EventRate, "EVENTs per second per connection (token bucket rate)")
	f.IntVar(&cfg.EventBurst, "event-burst", cfg.EventBurst, "EVENTs a connection may send at once (token bucket size)")
	f.Float64Var(&cfg.ReqRate, "req-rate", cfg.ReqRate, "REQs per second per connection (token bucket rate)")
	f.IntVar(&cfg.ReqBurst, "req-burst", cfg.ReqBurst, "REQs a connection may send at once (token bucket size)")
	f.IntVar(&cfg.SendBuffer, "send-buffer", cfg.SendBuffer, "bytes queued for one client before a slow client is dropped")
	f.DurationVar(&cfg.WriteTimeout, "write-timeout", cfg.WriteTimeout, "deadline of each write to a client")
	f.TextVar(&logLevel, "log-level", slog.LevelInfo, "log level: debug, info, warn or error")
	return c
}

// relayFlags names the flag of each relay.Config field, for errors.
var relayFlags = map[string]string{
	"Listen": "listen", "DataDir": "data", "Name": "name", "Description": "description",
	"PubKey": "pubkey", "Contact": "contact", "MaxMessageSize": "max-message-size",
	"MaxSubscriptions": "max-subscriptions", "MaxFilters": "max-filters", "MaxLimit": "max-limit",
	"MaxEventTags": "max-event-tags", "MaxConnections": "max-connections", "MaxEvents": "max-events", "MaxStoredBytes": "max-stored-bytes",
	"MaxConnectionsPerIP": "max-connections-per-ip", "AllowedOrigins": "allowed-origin", "MaxConnectionsPerOrigin": "max-connections-per-origin",
	"EventRate": "event-rate", "EventBurst": "event-burst", "ReqRate": "req-rate", "ReqBurst": "req-burst",
	"SendBuffer": "send-buffer", "WriteTimeout": "write-timeout",
}

// runRelay serves a relay built from cfg until ctx ends; listening calls
// it with the relay's URL once it listens.
func runRelay(ctx context.Context, cfg relay.Config, log *slog.Logger, listening func(url string)) error {
	r, err := relay.New(cfg, log)
	if err != nil {
		var cerr *relay.ConfigError
		if errors.As(err, &cerr) {
			field, _, _ := strings.Cut(cerr.Field, "[") // AllowedOrigins[1]: the flag's second value
			if flag := relayFlags[field]; flag != "" {
				return fmt.Errorf("--%s %s", flag, cerr.Reason)
			}
		}
		return err
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", cfg.Listen)
	if err != nil {
		r.Close()
		return fmt.Errorf("relay: listen on %s: %w", cfg.Listen, err)
	}
	listening("ws://" + ln.Addr().String())
	if err := r.Serve(ctx, ln); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

// defaultRelayDataDir is the relay folder of the data folder every
// command defaults to ($ARCHY_DATA, else the XDG default).
func defaultRelayDataDir() (string, error) {
	d, err := resolveDataDir("")
	if err != nil {
		return "", err
	}
	return filepath.Join(d, "relay"), nil
}
