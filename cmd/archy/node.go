package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/debug"
	"sort"
	"strings"
	"time"

	units "github.com/docker/go-units"
	"github.com/spf13/cobra"

	"github.com/archy-node/archy/node"
	"github.com/archy-node/archy/node/client"
	"github.com/archy-node/archy/registry"
)

func newNodeCmd() *cobra.Command {
	c := &cobra.Command{Use: "node", Short: "Run an archy node and ask a running one about itself"}
	c.AddCommand(newNodeRunCmd(), newNodeConfigCmd(), newNodeStatusCmd(), newNodePeersCmd(), newNodePageCmd())
	return c
}

func newNodeRunCmd() *cobra.Command {
	var (
		cfg        node.Config
		dataDir    string
		noRelay    bool
		listen     []string
		bootstrap  []string
		follow     []string
		verbose    bool
		upload     byteRate
		configFile string
	)
	c := &cobra.Command{
		Use:   "run",
		Short: "Run a node on embedded defaults: its own data folder, the embedded Nostr relay, the API on 127.0.0.1",
		Long: `Run an archy node until interrupted. With no flags it keeps everything in
its data folder, runs its own Nostr relay on 127.0.0.1:7447, joins archy's
own DHT, and serves the HTTP API on 127.0.0.1:7780 (changes need the token
in <data>/api.token). An API listening beyond loopback serves other
machines reads only, unless --api-remote-changes; a browser may reach it
only under localhost, an IP address, or a name given with --api-host.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if _, err := applySettings(cmd.Flags(), configFile); err != nil {
				return err
			}
			// An idle node's live heap is a few MiB, and the default
			// GC percent (100) lets the heap double past it: at 50 an
			// idle node with six apps holds about 6 MiB less (idlefig:
			// idle-rss-mib 43-46 at 100, 37 at 50). $GOGC still decides.
			if os.Getenv("GOGC") == "" {
				debug.SetGCPercent(50)
			}
			var err error
			if cfg.DataDir, err = resolveDataDir(dataDir); err != nil {
				return err
			}
			cfg.NoEmbeddedRelay = noRelay
			if cfg.Podman.Socket == "off" {
				cfg.Podman.Socket, cfg.Podman.Off = "", true
			}
			for _, f := range follow {
				name, file, ok := strings.Cut(f, "=")
				if !ok || name == "" || file == "" {
					return fmt.Errorf("--follow %q: want NAME=ROOTFILE (the registry's pinned root.json)", f)
				}
				cfg.Follow = append(cfg.Follow, node.Follow{Name: name, RootFile: file})
			}
			cfg.P2P.UploadRate = int64(upload)
			cfg.P2P.ListenAddrs = listen
			cfg.P2P.BootstrapPeers = bootstrap
			level := slog.LevelInfo
			if verbose {
				level = slog.LevelDebug
			}
			log := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: level}))
			ctx := cmd.Context()
			startCtx, cancel := context.WithTimeout(ctx, time.Minute)
			n, err := node.New(startCtx, cfg, log)
			cancel()
			if err != nil {
				return err
			}
			if errors.Is(n.AppsOff(), node.ErrNoPodmanSocket) {
				fmt.Fprintln(cmd.ErrOrStderr(), "apps are off: no Podman socket; start `podman system service` for this user, or pass --podman-socket")
			}
			fmt.Fprintf(cmd.OutOrStdout(), "archy node %s\napi:    %s\npage:   %s/ (archy node page prints it signed in)\nrelays: %s\ndata:   %s\n",
				n.P2P().ID(), n.APIURL(), n.APIURL(), strings.Join(n.RelayURLs(), " "), cfg.DataDir)
			if err := n.Run(ctx); err != nil && ctx.Err() == nil {
				return err
			}
			return nil
		},
	}
	dataDirFlag(c, &dataDir)
	c.Flags().StringVar(&configFile, "config", "", "config file: YAML, keys are these flags' names (default $ARCHY_CONFIG, else <data>/config.yaml when it exists)")
	c.Flags().StringVar(&cfg.APIListen, "api", "127.0.0.1:7780", "HTTP API address")
	c.Flags().StringSliceVar(&cfg.API.AllowedHosts, "api-host", nil, "a host name, beside localhost and IP addresses, that requests to the API may name in their Host header (repeatable)")
	c.Flags().BoolVar(&cfg.API.RemoteChanges, "api-remote-changes", false, "let clients on other machines change the node through the API (with the token); by default only local clients may")
	c.Flags().StringVar(&cfg.RelayListen, "relay-listen", "127.0.0.1:7447", "embedded Nostr relay address")
	c.Flags().BoolVar(&noRelay, "no-relay", false, "do not run the embedded relay (then --relay is required)")
	c.Flags().StringSliceVar(&cfg.Relays, "relay", nil, "other Nostr relays to discover apps on (ws:// or wss://)")
	c.Flags().StringSliceVar(&listen, "listen", nil, "libp2p listen multiaddrs (default TCP and QUIC on all interfaces, port 4001)")
	c.Flags().StringSliceVar(&bootstrap, "bootstrap", nil, "bootstrap peers (multiaddr with /p2p/ID)")
	c.Flags().StringVar(&cfg.Podman.Socket, "podman-socket", "", `rootless Podman API socket (default $ARCHY_PODMAN_SOCKET or $XDG_RUNTIME_DIR/podman/podman.sock; "off" runs without apps)`)
	c.Flags().Var(&upload, "upload-rate", "cap on the bytes per second the node sends to peers, such as 4MiB (default: no cap)")
	c.Flags().StringVar(&cfg.BrowseListen, "browse-listen", "", "also serve the marketplace page read-only on this address, for other machines (every change refused there)")
	c.Flags().BoolVar(&cfg.NoPeering, "no-peering", false, "do not announce this node's addresses on its relays nor dial the peers announced there")
	c.Flags().BoolVar(&cfg.P2P.NoSuperSeed, "no-super-seed", false, "serve every piece asked for, instead of pointing askers at peers that already got it")
	c.Flags().BoolVar(&cfg.P2P.Bitswap, "bitswap", false, "also serve this node's blocks to IPFS clients over bitswap (off: its 100 ms ticker keeps an idle node busy)")
	c.Flags().BoolVar(&cfg.P2P.MDNS, "mdns", false, "find peers on the LAN with mDNS")
	c.Flags().BoolVar(&cfg.P2P.PublicDHT, "public-dht", false, "join the public IPFS (Amino) DHT instead of archy's own")
	c.Flags().StringSliceVar(&follow, "follow", nil, "follow a curated registry: NAME=ROOTFILE (its pinned root.json); catalogs arrive by gossip")
	c.Flags().BoolVarP(&verbose, "verbose", "v", false, "debug logs")
	c.Flags().StringVar(&cfg.Trust.Owner, "owner", "", "the owner's Nostr public key (npub or hex): the trust graph is crawled and scored from it; without it only pinned publishers, --trust-allow and followed catalogs' publishers are trusted")
	c.Flags().BoolVar(&cfg.Trust.AutoInstall, "auto-install", false, "install apps whose publisher the trust decision selects, on the node's own")
	c.Flags().BoolVar(&cfg.Trust.AutoUpdate, "auto-update", false, "update installed apps to higher versions from their pinned publisher (health-gated, rolled back on failure)")
	c.Flags().Float64Var(&cfg.Trust.Floor, "trust-floor", 1e-5, "the least score (fraction of the owner's trust) a publisher needs to be selected")
	c.Flags().Float64Var(&cfg.Trust.Margin, "trust-margin", 3, "how many times the runner-up's score the selected publisher needs")
	c.Flags().StringSliceVar(&cfg.Trust.Allow, "trust-allow", nil, "a publisher DID the owner trusts (repeatable)")
	c.Flags().StringSliceVar(&cfg.Trust.Deny, "trust-deny", nil, "a publisher DID the owner refuses (repeatable)")
	c.Flags().DurationVar(&cfg.Trust.Refresh, "trust-refresh", 30*time.Minute, "how often the trust graph is crawled again from the owner's key")
	return c
}

func newNodeStatusCmd() *cobra.Command {
	var api, dataDir string
	var asJSON bool
	c := &cobra.Command{
		Use:   "status",
		Short: "Show a running node's identity, addresses, peers and relays",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			nc, err := openNode(dataDir, api, "")
			if err != nil {
				return err
			}
			st, err := nc.Status(cmd.Context())
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(cmd, st)
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "peer:       %s\npeers:      %d\nrelays:     %s\ndiscovered: %d\nstarted:    %s\ndata:       %s\n",
				st.PeerID, st.Peers, strings.Join(st.Relays, " "), st.Discovered, st.Started.Format(time.RFC3339), st.DataDir)
			for _, a := range st.Addrs {
				fmt.Fprintf(w, "addr:       %s\n", a)
			}
			printTrustStatus(w, st.Trust)
			return nil
		},
	}
	dataDirFlag(c, &dataDir)
	c.Flags().StringVar(&api, "api", "", "the node's API URL (default: read from the data folder)")
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}

func newNodePeersCmd() *cobra.Command {
	var api, dataDir string
	var asJSON bool
	c := &cobra.Command{
		Use:   "peers",
		Short: "List the peers a running node is connected to",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			nc, err := openNode(dataDir, api, "")
			if err != nil {
				return err
			}
			peers, err := nc.Peers(cmd.Context())
			if err != nil {
				return err
			}
			if asJSON {
				if peers == nil {
					peers = []node.Peer{}
				}
				return writeJSON(cmd, peers)
			}
			for _, p := range peers {
				fmt.Fprintf(cmd.OutOrStdout(), "%s %s\n", p.ID, strings.Join(p.Addrs, " "))
			}
			return nil
		},
	}
	dataDirFlag(c, &dataDir)
	c.Flags().StringVar(&api, "api", "", "the node's API URL (default: read from the data folder)")
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}

// handToNode uploads an app's image archives and signed manifest to a
// running node (POST /api/v1/blobs, /api/v1/manifests) with its token.
func handToNode(cmd *cobra.Command, nodeURL, dataDir, tokenFile string, l *registry.Loaded, envJSON []byte) error {
	api := nodeURL
	if nodeURL == "local" {
		api = ""
	}
	nc, err := openNode(dataDir, api, tokenFile)
	if err != nil {
		return err
	}
	names := make([]string, 0, len(l.Archives))
	for name := range l.Archives {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		res, err := uploadFile(cmd, nc, l.Archives[name], "hand image of "+name, false, nc.AddBlob)
		if err != nil {
			return fmt.Errorf("hand image of %s to the node: %w", name, err)
		}
		// The node hashed what it received; it must be what the manifest pins.
		for _, c := range l.Manifest.Containers {
			if c.Name == name && c.Image.CID != res.Sum {
				return fmt.Errorf("hand image of %s to the node: the node received an archive with sum %s, the manifest pins %s", name, res.Sum, c.Image.CID)
			}
		}
		fmt.Fprintf(cmd.ErrOrStderr(), "node keeps image %s (%s) as %s\n", name, res.Sum, res.CID)
	}
	res, err := nc.AddManifest(cmd.Context(), envJSON)
	if err != nil {
		return fmt.Errorf("hand the manifest to the node: %w", err)
	}
	fmt.Fprintf(cmd.ErrOrStderr(), "node keeps manifest %s\n", res.CID)
	return nil
}

// uploadFile sends the file at path to the node with send, showing its
// progress as what.
func uploadFile[T any](cmd *cobra.Command, nc *client.Client, path, what string, asJSON bool, send func(context.Context, io.Reader) (T, error)) (T, error) {
	var zero T
	f, err := os.Open(path)
	if err != nil {
		return zero, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return zero, err
	}
	p := newProgress(cmd, asJSON)
	defer p.finish()
	return send(cmd.Context(), client.CountReader(f, fi.Size(), func(done, total int64) { p.bytes(what, done, total) }))
}

// byteRate is a flag of bytes per second written with a unit (4MiB, 500KiB);
// 0 is no cap.
type byteRate int64

func (b *byteRate) String() string {
	if *b == 0 {
		return ""
	}
	return units.BytesSize(float64(*b))
}

func (b *byteRate) Set(s string) error {
	n, err := units.RAMInBytes(s)
	if err != nil || n < 0 {
		return fmt.Errorf("want bytes per second, such as 4MiB or 500KiB")
	}
	*b = byteRate(n)
	return nil
}

func (b *byteRate) Type() string { return "rate" }

// newNodePageCmd prints the address of the running node's page with the
// API token in the fragment: a browser keeps a fragment to itself (it is
// never sent to the node nor logged), and the page takes the token from
// it for that tab.
func newNodePageCmd() *cobra.Command {
	var dataDir string
	c := &cobra.Command{
		Use:   "page",
		Short: "Print the address of the node's marketplace page, signed in (the token rides in the URL fragment)",
		Long: `Print the address of the running node's page with its API token in the
URL's fragment (#token=...), which the browser never sends: open it to
browse, install and manage apps. Treat the printed address as the secret
it carries. Without it the page browses read-only until given the token.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			nc, err := openNode(dataDir, "", "")
			if err != nil {
				return err
			}
			if err := nc.NeedToken(); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s/#token=%s\n", nc.Base, nc.Token)
			return nil
		},
	}
	dataDirFlag(c, &dataDir)
	return c
}
