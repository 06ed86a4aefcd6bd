package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/archy-node/archy/cas"
	"github.com/archy-node/archy/p2p"
	cid "github.com/ipfs/go-cid"
	"github.com/spf13/cobra"
)

// blobFlags are the flags shared by the blob subcommands.
type blobFlags struct {
	dataDir string
	peers   []string
	listen  []string
	timeout time.Duration
	verbose bool
	json    bool
}

func (f *blobFlags) register(cmd *cobra.Command) {
	cmd.PersistentFlags().StringVar(&f.dataDir, "data-dir", defaultDataDir(), "node data folder (identity key, block store); env ARCHY_DATA_DIR")
	cmd.PersistentFlags().StringArrayVar(&f.peers, "peer", nil, "peer multiaddr with /p2p/ID to connect to (repeatable)")
	cmd.PersistentFlags().StringArrayVar(&f.listen, "listen", []string{"/ip4/0.0.0.0/tcp/0", "/ip4/0.0.0.0/udp/0/quic-v1"}, "multiaddr to listen on (repeatable)")
	cmd.PersistentFlags().DurationVar(&f.timeout, "timeout", 10*time.Minute, "give up after this long")
	cmd.PersistentFlags().BoolVarP(&f.verbose, "verbose", "v", false, "log progress to stderr")
	cmd.PersistentFlags().BoolVar(&f.json, "json", false, "print the result as JSON")
}

func defaultDataDir() string {
	if d := os.Getenv("ARCHY_DATA_DIR"); d != "" {
		return d
	}
	if h, err := os.UserHomeDir(); err == nil {
		return filepath.Join(h, ".archy")
	}
	return ".archy"
}

func (f *blobFlags) node(ctx context.Context) (*p2p.Node, error) {
	level := slog.LevelWarn
	if f.verbose {
		level = slog.LevelDebug
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	return p2p.New(ctx, p2p.Config{
		DataDir:        filepath.Join(f.dataDir, "p2p"),
		ListenAddrs:    f.listen,
		BootstrapPeers: f.peers,
	}, logger)
}

// newBlobCmd is `archy blob`: add files to the block store and fetch them
// from peers by CID.
func newBlobCmd() *cobra.Command {
	var fl blobFlags
	cmd := &cobra.Command{
		Use:          "blob",
		Short:        "Add files as BLAKE3 blocks and fetch them from peers by CID",
		SilenceUsage: true,
	}
	fl.register(cmd)
	cmd.AddCommand(newBlobAddCmd(&fl), newBlobGetCmd(&fl))
	return cmd
}

func newBlobAddCmd(fl *blobFlags) *cobra.Command {
	var pin, serve bool
	cmd := &cobra.Command{
		Use:   "add FILE",
		Short: "Import FILE into the block store and print its CID",
		Long: "Import FILE into the block store and print its CID (bafyb4i…).\n" +
			"With --serve the command stays up, announces the CID in the DHT and\n" +
			"serves it to peers until interrupted; it prints its addresses on stderr.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			n, err := fl.node(ctx)
			if err != nil {
				return err
			}
			defer n.Close()
			addCtx, cancel := context.WithTimeout(ctx, fl.timeout)
			defer cancel()
			f, err := os.Open(args[0])
			if err != nil {
				return fmt.Errorf("add file: %w", err)
			}
			defer f.Close()
			// Named too, so peers that know only the file's sum find it.
			c, sum, err := n.AddNamed(addCtx, f)
			if err != nil {
				return err
			}
			if pin {
				if err := n.Pin(addCtx, c); err != nil {
					return err
				}
			}
			if fl.json {
				_ = json.NewEncoder(cmd.OutOrStdout()).Encode(map[string]string{"cid": cas.String(c), "sum": cas.String(sum)})
			} else {
				fmt.Fprintln(cmd.OutOrStdout(), cas.String(c))
			}
			if !serve {
				return nil
			}
			for _, a := range n.Addrs() {
				fmt.Fprintf(cmd.ErrOrStderr(), "serving on %s\n", a)
			}
			for _, k := range []cid.Cid{c, sum} {
				if err := n.Provide(ctx, k); err != nil && len(fl.peers) > 0 {
					fmt.Fprintf(cmd.ErrOrStderr(), "warning: %v\n", err)
				}
			}
			<-ctx.Done()
			return nil
		},
	}
	cmd.Flags().BoolVar(&pin, "pin", true, "pin the file so garbage collection keeps it")
	cmd.Flags().BoolVar(&serve, "serve", false, "keep running and serve the file to peers")
	return cmd
}

func newBlobGetCmd(fl *blobFlags) *cobra.Command {
	var out string
	var pin bool
	cmd := &cobra.Command{
		Use:   "get CID -o FILE",
		Short: "Fetch a file by CID from peers, verifying every block",
		Long: "Fetch a file by CID from peers (--peer, the DHT), verify every block\n" +
			"against its BLAKE3 address and write it to FILE. FILE appears only\n" +
			"when complete; an interrupted get resumes from the blocks it holds.\n" +
			"CID is the file's root (bafyb4i…, what blob add prints) or the BLAKE3\n" +
			"of its bytes (bafkr4i…): peers then name the root, and FILE appears\n" +
			"only if its bytes hash to the CID.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if out == "" {
				return errors.New("--out (-o) is required: where to write the file")
			}
			c, err := cas.Parse(args[0])
			if err != nil {
				return fmt.Errorf("%w (archy CIDs are BLAKE3 CIDv1, e.g. bafyb4i…)", err)
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			ctx, cancel := context.WithTimeout(ctx, fl.timeout)
			defer cancel()
			n, err := fl.node(ctx)
			if err != nil {
				return err
			}
			defer n.Close()
			if c.Type() == cas.Raw {
				// A file's sum (as manifests pin image archives): peers
				// name its root; the file is kept only if it hashes to c.
				if c, err = n.GetNamed(ctx, c, -1, out, nil); err != nil { // no size pinned: at most p2p.MaxUnpinnedSize
					return err
				}
			} else if err := n.GetFile(ctx, c, out); err != nil {
				return err
			}
			if pin {
				if err := n.Pin(ctx, c); err != nil {
					return err
				}
			}
			if fl.json {
				_ = json.NewEncoder(cmd.OutOrStdout()).Encode(map[string]string{"cid": cas.String(c), "path": out})
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&out, "out", "o", "", "write the file here (required)")
	cmd.Flags().BoolVar(&pin, "pin", false, "pin the fetched file in the block store")
	return cmd
}
