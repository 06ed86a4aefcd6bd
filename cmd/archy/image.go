package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/archy-node/archy/cas"
	"github.com/archy-node/archy/node"
	"github.com/archy-node/archy/orchestrator/podman"
	cid "github.com/ipfs/go-cid"
	"github.com/spf13/cobra"
)

// imageFlags are the flags of the image subcommands: the blob flags (data
// folder, peers, timeout, --json) and the Podman socket.
type imageFlags struct {
	blobFlags
	podman string
}

// newImageCmd is `archy image`: container images through the swarm.
func newImageCmd() *cobra.Command {
	var fl imageFlags
	cmd := &cobra.Command{
		Use:          "image",
		Short:        "Push container images into the swarm and pull them into Podman by CID",
		SilenceUsage: true,
	}
	fl.register(cmd)
	cmd.PersistentFlags().StringVar(&fl.podman, "podman-socket", node.DefaultPodmanSocket(), "rootless Podman API socket URL (default $ARCHY_PODMAN_SOCKET or $XDG_RUNTIME_DIR/podman/podman.sock), as archy node run takes it")
	cmd.AddCommand(newImagePushCmd(&fl), newImagePullCmd(&fl))
	return cmd
}

// imageResult is what push and pull print with --json.
type imageResult struct {
	CID       string   `json:"cid"`
	Sum       string   `json:"sum,omitempty"` // BLAKE3 of the archive, as manifests pin it
	Names     []string `json:"names,omitempty"`
	Manifests []string `json:"manifests"`
	Bytes     int64    `json:"bytes"`
	Path      string   `json:"path,omitempty"`
	Loaded    []string `json:"loaded,omitempty"`
}

func newImagePushCmd(fl *imageFlags) *cobra.Command {
	var pin, serve bool
	cmd := &cobra.Command{
		Use:   "push IMAGE|ARCHIVE",
		Short: "Import an image (a Podman image, or an OCI archive file) and print its CID",
		Long: "Import a container image into the block store and print its CID (bafyb4i…).\n" +
			"IMAGE is the name of an image in Podman (exported through --podman as an\n" +
			"OCI archive), or the path of an OCI archive (podman save --format oci-archive).\n" +
			"Every blob of the archive is checked against its sha256 digest first.\n" +
			"With --serve the command stays up and serves the image to peers.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			opCtx, cancel := context.WithTimeout(ctx, fl.timeout)
			defer cancel()
			path := args[0]
			if fi, err := os.Stat(path); err != nil || fi.IsDir() {
				tmp, err := exportImage(opCtx, fl.podman, args[0], fl.dataDir)
				if err != nil {
					return err
				}
				defer os.Remove(tmp)
				path = tmp
			}
			n, err := fl.node(ctx)
			if err != nil {
				return err
			}
			defer n.Close()
			root, img, err := n.PushImage(opCtx, path)
			if err != nil {
				return err
			}
			if pin {
				if err := n.Pin(opCtx, root); err != nil {
					return err
				}
			}
			if fl.json {
				res := imageResult{CID: cas.String(root), Names: img.Names, Manifests: img.Manifests, Bytes: img.Bytes}
				for _, s := range n.Sums(root) {
					res.Sum = s.String()
				}
				if err := writeJSON(cmd, res); err != nil {
					return err
				}
			} else {
				fmt.Fprintln(cmd.OutOrStdout(), cas.String(root))
			}
			if !serve {
				return nil
			}
			for _, a := range n.Addrs() {
				fmt.Fprintf(cmd.ErrOrStderr(), "serving on %s\n", a)
			}
			for _, c := range append([]cid.Cid{root}, n.Sums(root)...) {
				if err := n.Provide(ctx, c); err != nil && len(fl.peers) > 0 {
					fmt.Fprintf(cmd.ErrOrStderr(), "warning: %v\n", err)
				}
			}
			<-ctx.Done()
			return nil
		},
	}
	cmd.Flags().BoolVar(&pin, "pin", true, "pin the image so garbage collection keeps it")
	cmd.Flags().BoolVar(&serve, "serve", false, "keep running and serve the image to peers")
	return cmd
}

func newImagePullCmd(fl *imageFlags) *cobra.Command {
	var out string
	var noLoad, pin bool
	cmd := &cobra.Command{
		Use:   "pull CID",
		Short: "Fetch an image by CID from peers, verify it and load it into Podman",
		Long: "Fetch an image archive by CID from peers (--peer, the DHT), verify every\n" +
			"block against its BLAKE3 address and every blob against its OCI digest,\n" +
			"then load it into Podman (--podman) and print the image names it carried.\n" +
			"CID is the root the image travels as (bafyb4i…, what push prints) or the\n" +
			"BLAKE3 of the archive's bytes (bafkr4i…, a manifest's image.cid): peers\n" +
			"then name the root, and the archive is kept only if it hashes to the CID.\n" +
			"With -o the verified archive is also kept at FILE; --no-load only fetches.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := cas.Parse(args[0])
			if err != nil {
				return fmt.Errorf("%w (archy CIDs are BLAKE3 CIDv1, e.g. bafyb4i…)", err)
			}
			if noLoad && out == "" {
				return errors.New("--no-load needs --out (-o): where to keep the archive")
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			ctx, cancel := context.WithTimeout(ctx, fl.timeout)
			defer cancel()
			path := out
			if path == "" {
				if err := os.MkdirAll(fl.dataDir, 0o700); err != nil {
					return fmt.Errorf("pull image: %w", err)
				}
				f, err := os.CreateTemp(fl.dataDir, "pull-*.tar")
				if err != nil {
					return fmt.Errorf("pull image: %w", err)
				}
				path = f.Name()
				_ = f.Close()
				defer os.Remove(path)
			}
			n, err := fl.node(ctx)
			if err != nil {
				return err
			}
			defer n.Close()
			img, err := n.PullImage(ctx, c, -1, path) // no size pinned: at most p2p.MaxUnpinnedSize
			if err != nil {
				return err
			}
			if r, ok := n.Root(c); ok {
				c = r // pulled by its sum
			}
			if pin {
				if err := n.Pin(ctx, c); err != nil {
					return err
				}
			}
			res := imageResult{CID: cas.String(c), Names: img.Names, Manifests: img.Manifests, Bytes: img.Bytes, Path: out}
			if !noLoad {
				if res.Loaded, err = loadImage(ctx, fl.podman, path); err != nil {
					return err
				}
			}
			if fl.json {
				return writeJSON(cmd, res)
			}
			for _, name := range res.Loaded {
				fmt.Fprintln(cmd.OutOrStdout(), name)
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&out, "out", "o", "", "keep the verified OCI archive at FILE")
	cmd.Flags().BoolVar(&noLoad, "no-load", false, "do not load the image into Podman (needs -o)")
	cmd.Flags().BoolVar(&pin, "pin", true, "pin the image in the block store")
	return cmd
}

// loadImage loads a verified archive into Podman over socket.
func loadImage(ctx context.Context, socket, path string) ([]string, error) {
	if socket == "" {
		return nil, errNoPodmanSocket
	}
	rt, err := podman.New(ctx, podman.Config{Socket: socket})
	if err != nil {
		return nil, fmt.Errorf("load image: %w (is Podman's API service running? see --podman-socket)", err)
	}
	names, err := rt.LoadImage(ctx, path)
	if err != nil {
		return nil, fmt.Errorf("load image: %w", err)
	}
	return names, nil
}

// exportTimeout bounds an export from Podman when the command's own
// --timeout is longer.
const exportTimeout = 10 * time.Minute

// exportImage saves the Podman image ref as an OCI archive in a temp file
// under dir and returns its path.
// errNoPodmanSocket is returned when no socket is given or found.
var errNoPodmanSocket = fmt.Errorf("no Podman socket: start `podman system service` for this user, or pass --podman-socket (or set ARCHY_PODMAN_SOCKET)")

func exportImage(ctx context.Context, socket, ref, dir string) (string, error) {
	if strings.ContainsAny(ref, "/\\") && strings.HasSuffix(ref, ".tar") {
		return "", fmt.Errorf("push image: %s: no such archive", ref)
	}
	ctx, cancel := context.WithTimeout(ctx, exportTimeout)
	defer cancel()
	if socket == "" {
		return "", errNoPodmanSocket
	}
	rt, err := podman.New(ctx, podman.Config{Socket: socket, SaveTimeout: exportTimeout})
	if err != nil {
		return "", fmt.Errorf("push image %s: %w (is Podman's API service running? see --podman-socket)", ref, err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("push image %s: %w", ref, err)
	}
	var b [8]byte
	_, _ = rand.Read(b[:])
	path := filepath.Join(dir, "push-"+hex.EncodeToString(b[:])+".tar")
	if err := rt.SaveImage(ctx, ref, path); err != nil {
		return "", fmt.Errorf("push image: %w", err)
	}
	return path, nil
}
