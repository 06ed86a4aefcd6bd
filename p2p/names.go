package p2p

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/archy-node/archy/cas"
	"github.com/archy-node/archy/internal/atomicfile"
	"github.com/archy-node/archy/p2p/dag"
	"github.com/archy-node/archy/p2p/wire"
	cid "github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
)

// A file has two names here. Its sum is the BLAKE3 of its bytes as one raw
// CID (bafkr4i…): what a manifest pins an image archive by, independent of
// how anyone chunks it. Its root is the DAG the swarm moves it as
// (bafyb4i…), which depends on the chunker. A node that imported or
// fetched a file keeps sum → root in its name book, provides the sum in the
// DHT, and answers NameProtocol; a node that knows only the sum asks
// providers for the root, fetches the root, and accepts the file only if
// its bytes hash to the sum: a peer that names a wrong root costs at most
// one fetch of the size the manifest pins (one block if its DAG declares
// another size) and is banned, and enough bans from one address ban the
// address.

// NameProtocol resolves a file's sum to the root it travels as.
//
//	request:  cid (the sum)
//	response: status, and with nameOK the root cid and the file size
const NameProtocol protocol.ID = "/archy/name/1.0.0"

// NameProtocol's response statuses.
const (
	nameOK      = 0
	nameNotHeld = 1
)

// errNotHeld is returned when the peer asked does not hold the file.
var errNotHeld = errors.New("peer does not hold the file")

// ErrSumMismatch is returned when a fetched file does not hash to the sum
// it was asked for.
var ErrSumMismatch = errors.New("file does not hash to its sum")

// maxNameAnswers bounds how many peers are asked to resolve one sum.
const maxNameAnswers = 16

// maxWrongRoots bounds the roots one GetNamed fetches whole that turn out
// not to hash to the sum: with the pinned size, a call downloads at most
// about maxWrongRoots+1 times the file, however many addresses lie.
const maxWrongRoots = 4

// nameBook keeps sum → root on disk, one small file per sum, written
// atomically.
type nameBook struct {
	dir string
	mu  sync.Mutex
	m   map[cid.Cid]cid.Cid
}

func openNameBook(dir string) (*nameBook, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("open name book: %w", err)
	}
	b := &nameBook{dir: dir, m: map[cid.Cid]cid.Cid{}}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("open name book: %w", err)
	}
	for _, e := range ents {
		sum, err := cas.Parse(e.Name())
		if err != nil {
			continue // a temp file, or not ours
		}
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, fmt.Errorf("open name book: %w", err)
		}
		root, err := cas.Parse(strings.TrimSpace(string(data)))
		if err != nil {
			// A damaged entry only loses a shortcut: the name is
			// resolved from peers again and verified.
			continue
		}
		b.m[sum] = root
	}
	return b, nil
}

func (b *nameBook) get(sum cid.Cid) (cid.Cid, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	r, ok := b.m[sum]
	return r, ok
}

func (b *nameBook) set(sum, root cid.Cid) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.m[sum] == root {
		return nil
	}
	if err := atomicfile.Write(filepath.Join(b.dir, sum.String()), []byte(root.String()+"\n"), 0o600); err != nil {
		return fmt.Errorf("record name %s: %w", sum, err)
	}
	b.m[sum] = root
	return nil
}

func (b *nameBook) sums() []cid.Cid {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]cid.Cid, 0, len(b.m))
	for s := range b.m {
		out = append(out, s)
	}
	return out
}

// AddNamed imports r like Add and also hashes its bytes whole, returning
// the file's root and its sum; the name is recorded, so the node answers
// peers that know only the sum. The caller pins and provides both.
func (n *Node) AddNamed(ctx context.Context, r io.Reader) (root, sum cid.Cid, err error) {
	h := cas.NewHasher()
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	// The hash runs beside the import, on its own copy of the stream.
	go func() {
		_, err := io.Copy(h, pr)
		_ = pr.CloseWithError(err)
		done <- err
	}()
	root, err = n.Add(ctx, io.TeeReader(r, pw))
	_ = pw.CloseWithError(err)
	if herr := <-done; err == nil && herr != nil {
		err = fmt.Errorf("hash file: %w", herr)
	}
	if err != nil {
		return cid.Undef, cid.Undef, err
	}
	sum = h.CID()
	if err := n.names.set(sum, root); err != nil {
		return cid.Undef, cid.Undef, err
	}
	return root, sum, nil
}

// Name records that the file root hashes to sum, after checking it: the
// file is read back from the store and hashed.
func (n *Node) Name(ctx context.Context, sum, root cid.Cid) error {
	if err := n.checkSum(ctx, sum, root); err != nil {
		return err
	}
	return n.names.set(sum, root)
}

// Root returns the root recorded for sum, if any.
func (n *Node) Root(sum cid.Cid) (cid.Cid, bool) { return n.names.get(sum) }

func (n *Node) checkSum(ctx context.Context, sum, root cid.Cid) error {
	h := cas.NewHasher()
	if _, err := n.ReadFile(ctx, root, h); err != nil {
		return fmt.Errorf("hash %s: %w", root, err)
	}
	if got := h.CID(); !got.Equals(sum) {
		return fmt.Errorf("%s hashes to %s, not %s: %w", root, got, sum, ErrSumMismatch)
	}
	return nil
}

// ReadFile writes the file root, held whole in the store, to w.
func (n *Node) ReadFile(ctx context.Context, root cid.Cid, w io.Writer) (int64, error) {
	leaves, _, err := dag.Leaves(ctx, root, n.store.GetRaw)
	if err != nil {
		return 0, err
	}
	var total int64
	for _, l := range leaves {
		k, err := n.store.ReadTo(ctx, l.Cid, w)
		total += int64(k)
		if err != nil {
			return total, fmt.Errorf("read block %s: %w", l.Cid, err)
		}
	}
	return total, nil
}

// nameAnswer is a root some peers named for a sum.
type nameAnswer struct {
	root  cid.Cid
	size  uint64
	peers []peer.ID
	// from holds the addresses (addrKey) each peer answered from, addrs
	// how many there are in all; good says one of the peers has sent this
	// node a file that proved good.
	from  map[peer.ID][]string
	addrs int
	good  bool
}

// Resolve asks connected peers and the sum's providers which root the file
// sum travels as. Roots named by a peer that has sent this node a good file
// come first, then those named from more addresses, then by more peers:
// fresh peer IDs cost nothing, addresses and a good record do. The answers
// are claims: GetNamed checks them.
func (n *Node) Resolve(ctx context.Context, sum cid.Cid) ([]nameAnswer, error) {
	if err := cas.Check(sum); err != nil {
		return nil, fmt.Errorf("resolve %s: %w", sum, err)
	}
	ask := map[peer.ID]bool{}
	for _, p := range n.host.Network().Peers() {
		ask[p] = true
	}
	provs, perr := n.FindProviders(ctx, sum, maxNameAnswers)
	for _, pi := range provs {
		if !ask[pi.ID] && n.host.Network().Connectedness(pi.ID) != network.Connected {
			n.host.Peerstore().AddAddrs(pi.ID, pi.Addrs, time.Hour)
		}
		ask[pi.ID] = true
	}
	type reply struct {
		p    peer.ID
		root cid.Cid
		size uint64
		keys []string
		err  error
	}
	replies := make(chan reply)
	sem := make(chan struct{}, 8)
	asked := 0
	for p := range ask {
		if p == n.host.ID() || n.isBanned(p) {
			continue
		}
		if asked++; asked > 4*maxNameAnswers {
			break
		}
		go func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			root, size, err := n.askName(ctx, p, sum)
			replies <- reply{p, root, size, n.addrKeys(p), err}
		}()
	}
	var out []nameAnswer
	for range min(asked, 4*maxNameAnswers) {
		r := <-replies
		if r.err != nil {
			continue
		}
		i := slices.IndexFunc(out, func(a nameAnswer) bool { return a.root.Equals(r.root) && a.size == r.size })
		if i < 0 {
			out = append(out, nameAnswer{root: r.root, size: r.size, from: map[peer.ID][]string{}})
			i = len(out) - 1
		}
		a := &out[i]
		for _, k := range r.keys {
			if !slices.ContainsFunc(a.peers, func(p peer.ID) bool { return slices.Contains(a.from[p], k) }) {
				a.addrs++
			}
		}
		a.peers = append(a.peers, r.p)
		a.from[r.p] = r.keys
		a.good = a.good || n.ex.Served(r.p)
	}
	slices.SortStableFunc(out, func(a, b nameAnswer) int {
		switch {
		case a.good != b.good:
			if a.good {
				return -1
			}
			return 1
		case a.addrs != b.addrs:
			return b.addrs - a.addrs
		}
		return len(b.peers) - len(a.peers)
	})
	if len(out) == 0 {
		if perr != nil {
			return nil, fmt.Errorf("resolve %s: %w", sum, perr)
		}
		return nil, fmt.Errorf("resolve %s: %w", sum, ErrNoPeers)
	}
	return out, nil
}

// askName asks p for sum's root.
func (n *Node) askName(ctx context.Context, p peer.ID, sum cid.Cid) (cid.Cid, uint64, error) {
	ctx, cancel := context.WithTimeout(ctx, min(10*time.Second, n.cfg.RequestTimeout))
	defer cancel()
	s, err := n.host.NewStream(ctx, p, NameProtocol)
	if err != nil {
		return cid.Undef, 0, fmt.Errorf("ask %s for the name %s: %w", p, sum, err)
	}
	defer s.Close()
	dl, _ := ctx.Deadline()
	_ = s.SetDeadline(dl)
	w := bufio.NewWriter(s)
	wire.WriteBytes(w, sum.Bytes())
	if err := w.Flush(); err != nil {
		_ = s.Reset()
		return cid.Undef, 0, fmt.Errorf("ask %s for the name %s: %w", p, sum, err)
	}
	_ = s.CloseWrite()
	r := bufio.NewReader(io.LimitReader(s, 256))
	st, err := r.ReadByte()
	if err != nil {
		return cid.Undef, 0, fmt.Errorf("ask %s for the name %s: %w", p, sum, err)
	}
	if st != nameOK {
		return cid.Undef, 0, fmt.Errorf("ask %s for the name %s: %w", p, sum, errNotHeld)
	}
	root, err := wire.ReadCID(r)
	if err != nil {
		return cid.Undef, 0, fmt.Errorf("name %s from %s: %w", sum, p, err)
	}
	size, err := wire.ReadUvarint(r, 1<<50)
	if err != nil {
		return cid.Undef, 0, fmt.Errorf("name %s from %s: %w", sum, p, err)
	}
	return root, size, nil
}

// handleName answers NameProtocol for the files this node holds whole.
func (n *Node) handleName(s network.Stream) {
	defer s.Close()
	if n.isBanned(s.Conn().RemotePeer()) {
		_ = s.Reset()
		return
	}
	_ = s.SetDeadline(time.Now().Add(min(10*time.Second, n.cfg.RequestTimeout)))
	r := bufio.NewReaderSize(s, 256)
	sum, err := wire.ReadCID(r)
	if err != nil {
		_ = s.Reset()
		return
	}
	w := bufio.NewWriterSize(s, 256)
	root, ok := n.names.get(sum)
	var size uint64
	if ok {
		size, ok = n.ex.HeldWhole(n.life, root)
	}
	if !ok {
		_ = w.WriteByte(nameNotHeld)
		_ = w.Flush()
		return
	}
	_ = w.WriteByte(nameOK)
	wire.WriteBytes(w, root.Bytes())
	wire.WriteUvarint(w, size)
	_ = w.Flush()
}

// GetNamed fetches the file whose bytes hash to sum and writes it to
// outPath (temp file, fsync, rename): the root recorded here if any, else
// the roots peers name for it, best first (see Resolve). size is the
// file's size as a signed manifest pins it, or -1 when nothing pins it
// (the file may then be at most MaxUnpinnedSize). Every fetch is bounded
// by that size: an answer naming another size is passed over, and a root
// whose DAG declares another size than its peers said is refused after
// its root block (dag.Walk). A root that is refused so, or whose file does
// not hash to sum, is dropped and every peer that named it is banned; so,
// after a few such bans, is the address they came from. The file's root
// is returned; the caller pins it (and provides sum and root). progress,
// if not nil, is called with bytes held and the file's size as the fetch
// goes.
func (n *Node) GetNamed(ctx context.Context, sum cid.Cid, size int64, outPath string, progress func(done, total int64)) (cid.Cid, error) {
	if err := cas.Check(sum); err != nil {
		return cid.Undef, fmt.Errorf("get %s: %w", sum, err)
	}
	if sum.Type() != cas.Raw {
		return cid.Undef, fmt.Errorf("get %s: a file's sum is a raw BLAKE3 CID (bafkr…)", sum)
	}
	var errs []error
	wrong := 0 // roots fetched whole that did not hash to sum
	// try fetches a as the file within lim; done is true when it is in
	// place, the caller's context ended, or maxWrongRoots were fetched in
	// vain.
	try := func(a nameAnswer, lim dag.Limit) (done bool, err error) {
		err = n.getAs(ctx, sum, a.root, lim, outPath, progress)
		if err == nil {
			return true, n.names.set(sum, a.root)
		}
		if ctx.Err() != nil {
			return true, fmt.Errorf("get %s: %w", sum, err)
		}
		if errors.Is(err, ErrSumMismatch) || errors.Is(err, dag.ErrSize) || errors.Is(err, dag.ErrBadNode) {
			for _, p := range a.peers {
				n.ban(p, "named a root that is not the file of its sum")
			}
		}
		errs = append(errs, err)
		if errors.Is(err, ErrSumMismatch) {
			if wrong++; wrong >= maxWrongRoots {
				// Their peers are banned: a later call tries the rest.
				return true, fmt.Errorf("get %s: gave up after %d roots that did not hash to it: %w", sum, wrong, errors.Join(errs...))
			}
		}
		return false, nil
	}
	pinned := dag.Limit{Size: size}
	if size < 0 {
		pinned = dag.Limit{Size: -1, Max: MaxUnpinnedSize}
	}
	local, haveLocal := n.names.get(sum)
	if haveLocal {
		if done, err := try(nameAnswer{root: local}, pinned); done {
			return rootOr(local, err)
		}
	}
	cands, err := n.Resolve(ctx, sum)
	if err != nil {
		errs = append(errs, err)
	}
	for len(cands) > 0 {
		i := n.nextAnswer(cands)
		a := cands[i]
		cands = slices.Delete(cands, i, i+1)
		if haveLocal && a.root.Equals(local) {
			continue
		}
		if size >= 0 && a.size != uint64(size) {
			// The sum fixes the size: this answer is wrong, or the
			// manifest is. Either way fetching it cannot succeed.
			errs = append(errs, fmt.Errorf("get %s: %s named as %d bytes, pinned %d: %w", sum, a.root, a.size, size, dag.ErrSize))
			continue
		}
		if size < 0 && a.size > MaxUnpinnedSize {
			errs = append(errs, fmt.Errorf("get %s: %s named as %d bytes, more than %d unpinned: %w", sum, a.root, a.size, int64(MaxUnpinnedSize), dag.ErrSize))
			continue
		}
		// Peers banned since they answered (at an address banned by
		// another root's failure) are not believed.
		if !slices.ContainsFunc(a.peers, func(p peer.ID) bool { return !n.bannedAnswer(p, a.from[p]) }) {
			continue
		}
		// The DAG must declare what its peers said.
		if done, err := try(a, dag.Limit{Size: int64(a.size)}); done {
			return rootOr(a.root, err)
		}
	}
	// Last, the sum itself: a file of one block is held as it.
	if size < 0 || size <= dag.MaxChunk {
		if done, err := try(nameAnswer{root: sum}, pinned); done {
			return rootOr(sum, err)
		}
	}
	return cid.Undef, fmt.Errorf("get %s: %w", sum, errors.Join(errs...))
}

// rootOr returns root, or no root with err.
func rootOr(root cid.Cid, err error) (cid.Cid, error) {
	if err != nil {
		return cid.Undef, err
	}
	return root, nil
}

// getAs fetches root within lim into a temp file beside outPath and
// renames it to outPath only if its bytes hash to sum; only then are the
// peers that sent it credited.
func (n *Node) getAs(ctx context.Context, sum, root cid.Cid, lim dag.Limit, outPath string, progress func(done, total int64)) error {
	var b [8]byte
	_, _ = rand.Read(b[:])
	tmp := filepath.Join(filepath.Dir(outPath), "."+filepath.Base(outPath)+".unverified-"+hex.EncodeToString(b[:]))
	stop := n.watchProgress(root, progress)
	sent, err := n.getFile(ctx, root, lim, tmp)
	stop()
	if err != nil {
		return fmt.Errorf("get %s as %s: %w", sum, root, err)
	}
	f, err := os.Open(tmp)
	if err == nil {
		var got cid.Cid
		got, _, err = cas.SumReader(f)
		_ = f.Close()
		if err == nil && !got.Equals(sum) {
			err = fmt.Errorf("%s hashes to %s, not %s: %w", root, got, sum, ErrSumMismatch)
		}
	}
	if err == nil {
		if err = os.Rename(tmp, outPath); err == nil {
			err = syncDir(filepath.Dir(outPath))
		}
	}
	if err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("get %s as %s: %w", sum, root, err)
	}
	n.ex.Credit(sent)
	return nil
}

// watchProgress calls fn every 200 ms with the bytes of root held so far,
// until stop is called.
func (n *Node) watchProgress(root cid.Cid, fn func(done, total int64)) (stop func()) {
	if fn == nil {
		return func() {}
	}
	quit := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-quit:
				return
			case <-t.C:
				if done, total, ok := n.ex.Progress(root); ok {
					fn(done, total)
				}
			}
		}
	}()
	return func() { close(quit); wg.Wait() }
}

// ban refuses p for BanTime and drops its connections. The ban counts
// against each address p is connected from: at maxAddrBans, the address
// is banned too and every connection from it dropped.
func (n *Node) ban(p peer.ID, why string) {
	if n.bans.has(p) {
		return // counted once, whoever names it again
	}
	keys := n.addrKeys(p)
	n.bans.add(p)
	n.met.peersBanned.Inc()
	n.log.Warn("peer banned", "peer", p, "why", why)
	_ = n.host.Network().ClosePeer(p)
	for _, k := range keys {
		if !n.bans.strikeAddr(k) {
			continue
		}
		n.log.Warn("address banned", "addr", k, "why", "peers banned from it")
		for _, c := range n.host.Network().Conns() {
			if addrKey(c.RemoteMultiaddr()) == k {
				_ = c.Close()
			}
		}
	}
}

// nextAnswer picks the answer to try next: the first (in Resolve's order)
// named by a peer with a good record, else the first named from an
// address that has had no peer banned since (a sybil set's other roots
// wait until every fresh address had its chance), else the first.
func (n *Node) nextAnswer(cands []nameAnswer) int {
	if i := slices.IndexFunc(cands, func(a nameAnswer) bool { return a.good }); i >= 0 {
		return i
	}
	clean := func(a nameAnswer) bool {
		return slices.ContainsFunc(a.peers, func(p peer.ID) bool {
			return !slices.ContainsFunc(a.from[p], n.bans.struck)
		})
	}
	if i := slices.IndexFunc(cands, clean); i >= 0 {
		return i
	}
	return 0
}

// bannedAnswer reports whether p, which answered from the addresses keys,
// is banned now by its ID or one of them.
func (n *Node) bannedAnswer(p peer.ID, keys []string) bool {
	return n.isBanned(p) || slices.ContainsFunc(keys, n.bans.hasKey)
}

// addrKeys are the addresses (addrKey) p is connected from.
func (n *Node) addrKeys(p peer.ID) []string {
	var keys []string
	for _, c := range n.host.Network().ConnsToPeer(p) {
		if k := addrKey(c.RemoteMultiaddr()); k != "" && !slices.Contains(keys, k) {
			keys = append(keys, k)
		}
	}
	return keys
}

// Sums returns the sums recorded for root.
func (n *Node) Sums(root cid.Cid) []cid.Cid {
	var out []cid.Cid
	for _, s := range n.names.sums() {
		if r, ok := n.names.get(s); ok && r.Equals(root) {
			out = append(out, s)
		}
	}
	return out
}
