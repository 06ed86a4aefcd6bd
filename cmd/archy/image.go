package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/archy-node/archy/cas"
	"github.com/archy-node/archy/node"
	"github.com/archy-node/archy/orchestrator/podman"
	"github.com/spf13/cobra"
)

// imageFlags are the flags of the image subcommands: the blob flags (the
// node, --timeout, --json) and the Podman socket push exports from.
type imageFlags struct {
	blobFlags
	podman string
}

// newImageCmd is `archy image`: container images through the swarm.
func newImageCmd() *cobra.Command {
	var fl imageFlags
	cmd := &cobra.Command{
		Use:   "image",
		Short: "Push container images into the swarm and pull them into Podman by CID, through the running node",
		Long: `Hand container images to the running node (archy node run), which keeps
them in its block store and serves them to peers, and pull images from the
swarm through it into its Podman.`,
		SilenceUsage: true,
	}
	fl.register(cmd)
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
	cmd := &cobra.Command{
		Use:   "push IMAGE|ARCHIVE",
		Short: "Hand an image (a Podman image, or an OCI archive file) to the running node and print its CID",
		Long: "Hand a container image to the running node, which checks every blob of\n" +
			"the archive against its sha256 digest, keeps it pinned and serves it to\n" +
			"peers; print its CID (bafyb4i…). IMAGE is the name of an image in Podman\n" +
			"(exported through --podman-socket as an OCI archive), or the path of an\n" +
			"OCI archive (podman save --format oci-archive).",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			nc, err := fl.node(cmd)
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), fl.timeout)
			defer cancel()
			cmd.SetContext(ctx)
			path := args[0]
			if fi, err := os.Stat(path); err != nil || fi.IsDir() {
				tmp, err := exportImage(ctx, fl.podman, args[0])
				if err != nil {
					return err
				}
				defer os.RemoveAll(filepath.Dir(tmp))
				path = tmp
			}
			res, err := uploadFile(cmd, nc, path, "upload", fl.json, nc.PushImage)
			if err != nil {
				return fmt.Errorf("push image %s: %w", args[0], err)
			}
			if fl.json {
				return fl.printResult(cmd, imageResult{CID: res.CID, Sum: res.Sum, Names: res.Names, Manifests: res.Manifests, Bytes: res.Bytes})
			}
			fmt.Fprintln(cmd.OutOrStdout(), res.CID)
			return nil
		},
	}
	cmd.Flags().StringVar(&fl.podman, "podman-socket", node.DefaultPodmanSocket(), "rootless Podman API socket URL to export IMAGE from (default $ARCHY_PODMAN_SOCKET or $XDG_RUNTIME_DIR/podman/podman.sock), as archy node run takes it")
	return cmd
}

func newImagePullCmd(fl *imageFlags) *cobra.Command {
	var out string
	var noLoad bool
	var size int64
	cmd := &cobra.Command{
		Use:   "pull CID",
		Short: "Fetch an image by CID through the running node, verify it and load it into the node's Podman",
		Long: "Ask the running node to fetch an image archive by CID from its peers (every\n" +
			"block verified against its BLAKE3 address, every blob against its OCI\n" +
			"digest), keep it pinned, and load it into its Podman; print the image\n" +
			"names it carried. CID is the root the image travels as (bafyb4i…, what\n" +
			"push prints) or the BLAKE3 of the archive's bytes (bafkr4i…, a manifest's\n" +
			"image.cid): peers then name the root, and the archive is kept only if it\n" +
			"hashes to the CID. With -o the verified archive is also written to FILE;\n" +
			"--no-load only fetches. Interrupted, the pull goes on in the node.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := cas.Parse(args[0])
			if err != nil {
				return fmt.Errorf("%w (archy CIDs are BLAKE3 CIDv1, e.g. bafyb4i…)", err)
			}
			if noLoad && out == "" {
				return errors.New("--no-load needs --out (-o): where to keep the archive")
			}
			nc, err := fl.node(cmd)
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), fl.timeout)
			defer cancel()
			p := newProgress(cmd, fl.json)
			got, err := nc.PullImage(ctx, node.FetchRequest{CID: c.String(), Size: size, Load: !noLoad}, p.event)
			p.finish()
			if err != nil {
				return fmt.Errorf("pull image %s: %w", c, nodeFailed(err))
			}
			if out != "" {
				if err := download(ctx, cmd, nc, got, out, fl.json); err != nil {
					return err
				}
			}
			res := imageResult{CID: got.CID, Sum: got.Sum, Path: out, Loaded: got.Loaded}
			if got.Image != nil {
				res.Names, res.Manifests, res.Bytes = got.Image.Names, got.Image.Manifests, got.Image.Bytes
			}
			if fl.json {
				return fl.printResult(cmd, res)
			}
			for _, name := range res.Loaded {
				fmt.Fprintln(cmd.OutOrStdout(), name)
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&out, "out", "o", "", "also write the verified OCI archive to FILE")
	cmd.Flags().BoolVar(&noLoad, "no-load", false, "do not load the image into Podman (needs -o)")
	cmd.Flags().Int64Var(&size, "size", 0, "the archive's size in bytes when known (a manifest's image.size); the fetch never goes past it")
	return cmd
}

// exportTimeout bounds an export from Podman when the command's own
// --timeout is longer.
const exportTimeout = 10 * time.Minute

// errNoPodmanSocket is returned when no socket is given or found.
var errNoPodmanSocket = fmt.Errorf("no Podman socket: start `podman system service` for this user, or pass --podman-socket (or set ARCHY_PODMAN_SOCKET)")

// exportImage saves the Podman image ref as an OCI archive in a new temp
// folder and returns the archive's path; the caller removes the folder.
func exportImage(ctx context.Context, socket, ref string) (string, error) {
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
	dir, err := os.MkdirTemp("", "archy-push-")
	if err != nil {
		return "", fmt.Errorf("push image %s: %w", ref, err)
	}
	path := filepath.Join(dir, "image.tar")
	if err := rt.SaveImage(ctx, ref, path); err != nil {
		_ = os.RemoveAll(dir)
		return "", fmt.Errorf("push image: %w", err)
	}
	return path, nil
}
