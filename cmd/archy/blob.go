package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/archy-node/archy/cas"
	"github.com/archy-node/archy/internal/atomicfile"
	"github.com/archy-node/archy/node"
	"github.com/archy-node/archy/node/client"
)

// blobFlags are the flags shared by the blob and image subcommands: they
// ask the running node of the data folder, which owns the block store
// and the swarm.
type blobFlags struct {
	dataDir string
	api     string
	timeout time.Duration
	json    bool
}

func (f *blobFlags) register(cmd *cobra.Command) {
	cmd.PersistentFlags().StringVar(&f.dataDir, "data", "", "the node's data folder (default $ARCHY_DATA, else $XDG_DATA_HOME/archy or ~/.local/share/archy)")
	// The old name, kept for scripts.
	cmd.PersistentFlags().StringVar(&f.dataDir, "data-dir", "", "")
	_ = cmd.PersistentFlags().MarkHidden("data-dir")
	cmd.PersistentFlags().StringVar(&f.api, "api", "", "the node's API URL (default: read from the data folder)")
	cmd.PersistentFlags().DurationVar(&f.timeout, "timeout", 30*time.Minute, "give up after this long (a fetch goes on in the node)")
	cmd.PersistentFlags().BoolVar(&f.json, "json", false, "print progress and the result as JSON lines (the result last)")
}

// node is the client of the running node these flags name.
func (f *blobFlags) node(cmd *cobra.Command) (*client.Client, error) {
	warnDeprecated(cmd, "data-dir", "data")
	return openNode(f.dataDir, f.api, "")
}

// printResult prints a command's result: one JSON line with --json.
func (f *blobFlags) printResult(cmd *cobra.Command, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(cmd.OutOrStdout(), "%s\n", b)
	return err
}

// newBlobCmd is `archy blob`: files in the node's block store, fetched
// from peers by CID.
func newBlobCmd() *cobra.Command {
	var fl blobFlags
	cmd := &cobra.Command{
		Use:   "blob",
		Short: "Hand files to the running node as BLAKE3 blocks and fetch them from peers by CID",
		Long: `Hand files to the running node (archy node run) and fetch files from the
swarm through it: the node keeps them in its block store, pinned, and
serves them to peers.`,
		SilenceUsage: true,
	}
	fl.register(cmd)
	cmd.AddCommand(newBlobAddCmd(&fl), newBlobGetCmd(&fl))
	return cmd
}

// blobResult is what blob add and get print with --json.
type blobResult struct {
	CID  string `json:"cid"`
	Sum  string `json:"sum,omitempty"`
	Size int64  `json:"size,omitempty"`
	Path string `json:"path,omitempty"`
}

func newBlobAddCmd(fl *blobFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "add FILE",
		Short: "Hand FILE to the running node and print its CID",
		Long: "Hand FILE to the running node, which keeps it pinned, announces it in the\n" +
			"DHT and serves it to peers; print its CID (bafyb4i…). With --json the\n" +
			"result names the file's root (cid) and the BLAKE3 of its bytes (sum).",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			nc, err := fl.node(cmd)
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), fl.timeout)
			defer cancel()
			cmd.SetContext(ctx)
			res, err := uploadFile(cmd, nc, args[0], "upload", fl.json, nc.AddBlob)
			if err != nil {
				return fmt.Errorf("add %s: %w", args[0], err)
			}
			if fl.json {
				return fl.printResult(cmd, blobResult{CID: res.CID, Sum: res.Sum})
			}
			fmt.Fprintln(cmd.OutOrStdout(), res.CID)
			return nil
		},
	}
	return cmd
}

func newBlobGetCmd(fl *blobFlags) *cobra.Command {
	var out string
	var size int64
	cmd := &cobra.Command{
		Use:   "get CID -o FILE",
		Short: "Fetch a file by CID through the running node, verifying every block",
		Long: "Ask the running node to fetch a file by CID from its peers (every block\n" +
			"verified against its BLAKE3 address; the node keeps it pinned), then\n" +
			"write it to FILE, which appears only when complete. CID is the file's\n" +
			"root (bafyb4i…, what blob add prints) or the BLAKE3 of its bytes\n" +
			"(bafkr4i…): peers then name the root, and the file is kept only if its\n" +
			"bytes hash to the CID. Interrupted, the fetch goes on in the node.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if out == "" {
				return errors.New("--out (-o) is required: where to write the file")
			}
			c, err := cas.Parse(args[0])
			if err != nil {
				return fmt.Errorf("%w (archy CIDs are BLAKE3 CIDv1, e.g. bafyb4i…)", err)
			}
			nc, err := fl.node(cmd)
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), fl.timeout)
			defer cancel()
			p := newProgress(cmd, fl.json)
			got, err := nc.FetchBlob(ctx, node.FetchRequest{CID: c.String(), Size: size}, p.event)
			p.finish()
			if err != nil {
				return fmt.Errorf("get %s: %w", c, nodeFailed(err))
			}
			if err := download(ctx, cmd, nc, got, out, fl.json); err != nil {
				return err
			}
			if fl.json {
				return fl.printResult(cmd, blobResult{CID: got.CID, Sum: got.Sum, Size: got.Size, Path: out})
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&out, "out", "o", "", "write the file here (required)")
	cmd.Flags().Int64Var(&size, "size", 0, "the file's size in bytes when known (a fetch never goes past it); default: at most the size an unpinned file may have")
	return cmd
}

// download reads a file the node fetched into out, whole or not at all:
// through a temp file, checked against the file's size and (when the
// node knows it) its BLAKE3 sum.
func download(ctx context.Context, cmd *cobra.Command, nc *client.Client, f node.Fetched, out string, asJSON bool) error {
	p := newProgress(cmd, asJSON)
	defer p.finish()
	err := atomicfile.WriteWith(out, 0o644, func(file *os.File) error {
		h := cas.NewHasher()
		n, err := nc.Download(ctx, f.CID, io.MultiWriter(file, h), func(done, total int64) {
			if total < 0 {
				total = f.Size
			}
			p.bytes("download", done, total)
		})
		if err != nil {
			return err
		}
		if n != f.Size {
			return fmt.Errorf("the node sent %d bytes, the file has %d", n, f.Size)
		}
		if f.Sum != "" && h.CID().String() != f.Sum {
			return fmt.Errorf("the node sent bytes hashing to %s, not %s", h.CID(), f.Sum)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("write %s: %w", out, err)
	}
	return nil
}
