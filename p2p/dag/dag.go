// Package dag owns how archy turns a file into BLAKE3-addressed blocks and
// back: content-defined chunks as raw leaves (bafkr4i…) under a UnixFS
// DAG-PB file node (bafyb4i…), so any IPFS tool can read what archy stores.
package dag

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"runtime"
	"sync"

	"github.com/archy-node/archy/cas"
	"github.com/ipfs/boxo/ipld/merkledag"
	"github.com/ipfs/boxo/ipld/unixfs"
	cid "github.com/ipfs/go-cid"
	ipld "github.com/ipfs/go-ipld-format"
)

// MaxLinks is the most children an interior node has; larger files get
// more levels. 2048 links keep a node near 100 KB.
const MaxLinks = 2048

// MaxNodeSize bounds any block this package reads from a peer.
const MaxNodeSize = 2 << 20

// ErrBadNode is returned when a DAG node is malformed or not a UnixFS file.
var ErrBadNode = errors.New("malformed dag node")

// PutFunc stores a block whose CID the builder has just computed. data is
// the builder's memory, valid only during the call.
type PutFunc func(c cid.Cid, data []byte) error

// Link is a child of a node: its CID and the file bytes below it.
type Link struct {
	Cid  cid.Cid
	Size uint64
}

// Build chunks r, stores every leaf and interior node through put, and
// returns the root CID and the file size. Hashing and storing run on
// GOMAXPROCS workers while the chunker reads ahead. When r holds a tar
// archive (an OCI image), chunks end at the edges of its large members
// (see TarCuts).
func Build(ctx context.Context, r io.Reader, put PutFunc) (cid.Cid, uint64, error) {
	return BuildTo(ctx, r, funcSink(put))
}

// Sink receives the blocks Build makes. The data passed to its methods is
// the builder's memory (reused by later builds), valid only during the call.
type Sink interface {
	// PutLeaf stores a raw leaf that starts at offset off of the file.
	PutLeaf(c cid.Cid, off uint64, data []byte) error
	// PutNode stores an interior node.
	PutNode(c cid.Cid, data []byte) error
}

// SpanSink is a Sink that stores the input's bytes itself, in large spans
// at their offsets (a pack laid out as the file); Build then passes each
// leaf to PutLeaf only to say where it lies.
type SpanSink interface {
	Sink
	PutSpan(off uint64, data []byte) error
}

type funcSink PutFunc

func (f funcSink) PutLeaf(c cid.Cid, _ uint64, data []byte) error { return f(c, data) }
func (f funcSink) PutNode(c cid.Cid, data []byte) error           { return f(c, data) }

// BuildTo is Build storing into a Sink, which learns each leaf's offset.
func BuildTo(ctx context.Context, r io.Reader, sink Sink) (cid.Cid, uint64, error) {
	return buildParallel(ctx, r, sink)
}

// buildSerial is Build with the boundaries found by one goroutine (the
// Chunker), the reference the parallel pipeline is held to.
func buildSerial(ctx context.Context, r io.Reader, sink Sink) (cid.Cid, uint64, error) {
	type job struct {
		seq   int
		off   uint64
		chunk Chunk
	}
	// The chunker is serial and has a core of its own; the rest hash and store.
	workers := max(1, runtime.GOMAXPROCS(0)-1)
	jobs := make(chan job, workers*2)

	var (
		mu     sync.Mutex
		leaves []Link
		werr   error
		wg     sync.WaitGroup
	)
	setErr := func(err error) {
		mu.Lock()
		if werr == nil {
			werr = err
		}
		mu.Unlock()
	}
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				data := j.chunk.Data
				c := cas.Sum(data)
				if err := sink.PutLeaf(c, j.off, data); err != nil {
					setErr(fmt.Errorf("store chunk %d: %w", j.seq, err))
				}
				mu.Lock()
				leaves[j.seq] = Link{Cid: c, Size: uint64(len(data))}
				mu.Unlock()
				j.chunk.Release()
			}
		}()
	}

	ch := NewChunker(r)
	var total uint64
	var rerr error
	for seq := 0; ; seq++ {
		if err := ctx.Err(); err != nil {
			rerr = err
			break
		}
		mu.Lock()
		failed := werr != nil
		mu.Unlock()
		if failed {
			break
		}
		chunk, err := ch.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			rerr = err
			break
		}
		off := total
		total += uint64(len(chunk.Data))
		mu.Lock()
		leaves = append(leaves, Link{})
		mu.Unlock()
		jobs <- job{seq: seq, off: off, chunk: chunk}
	}
	close(jobs)
	wg.Wait()
	if err := errors.Join(rerr, werr); err != nil {
		return cid.Undef, 0, err
	}
	root, err := BuildTree(leaves, sink.PutNode)
	if err != nil {
		return cid.Undef, 0, err
	}
	return root, total, nil
}

// BuildTree stores interior nodes above leaves and returns the root. The
// root is always a DAG-PB node, even for an empty or one-chunk file.
func BuildTree(leaves []Link, put PutFunc) (cid.Cid, error) {
	level := leaves
	for {
		var next []Link
		for i := 0; i < len(level) || (i == 0 && len(level) == 0); i += MaxLinks {
			kids := level[i:min(i+MaxLinks, len(level))]
			c, size, data, err := EncodeNode(kids)
			if err != nil {
				return cid.Undef, err
			}
			if err := put(c, data); err != nil {
				return cid.Undef, fmt.Errorf("store node: %w", err)
			}
			next = append(next, Link{Cid: c, Size: size})
		}
		if len(next) == 1 {
			return next[0].Cid, nil
		}
		level = next
	}
}

// EncodeNode encodes a UnixFS file node over kids and returns its CID, the
// file bytes below it and its bytes.
func EncodeNode(kids []Link) (cid.Cid, uint64, []byte, error) {
	nd := new(merkledag.ProtoNode)
	fsn := unixfs.NewFSNode(unixfs.TFile)
	var size uint64
	for _, k := range kids {
		if err := nd.AddRawLink("", &ipld.Link{Cid: k.Cid, Size: k.Size}); err != nil {
			return cid.Undef, 0, nil, fmt.Errorf("encode node: %w", err)
		}
		fsn.AddBlockSize(k.Size)
		size += k.Size
	}
	data, err := fsn.GetBytes()
	if err != nil {
		return cid.Undef, 0, nil, fmt.Errorf("encode node: %w", err)
	}
	nd.SetData(data)
	raw, err := nd.EncodeProtobuf(true)
	if err != nil {
		return cid.Undef, 0, nil, fmt.Errorf("encode node: %w", err)
	}
	return cas.SumCodec(cas.DagPB, raw), size, raw, nil
}

// Decode returns the children of a block: nil for a raw leaf, the links
// with their file sizes for a UnixFS file node. It checks that every child
// is an archy CID and that the sizes add up.
func Decode(c cid.Cid, data []byte) ([]Link, error) {
	switch c.Type() {
	case cas.Raw:
		return nil, nil
	case cas.DagPB:
	default:
		return nil, fmt.Errorf("%w: codec %#x", ErrBadNode, c.Type())
	}
	nd, err := merkledag.DecodeProtobuf(data)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadNode, err)
	}
	fsn, err := unixfs.FSNodeFromBytes(nd.Data())
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadNode, err)
	}
	if fsn.Type() != unixfs.TFile && fsn.Type() != unixfs.TRaw {
		return nil, fmt.Errorf("%w: not a file", ErrBadNode)
	}
	if len(fsn.Data()) != 0 {
		return nil, fmt.Errorf("%w: inline data not supported", ErrBadNode)
	}
	lks := nd.Links()
	if len(lks) != fsn.NumChildren() || len(lks) > MaxLinks {
		return nil, fmt.Errorf("%w: %d links, %d sizes", ErrBadNode, len(lks), fsn.NumChildren())
	}
	out := make([]Link, len(lks))
	for i, l := range lks {
		if err := cas.Check(l.Cid); err != nil {
			return nil, fmt.Errorf("%w: child %d: %v", ErrBadNode, i, err)
		}
		if l.Cid.Type() == cas.Raw && fsn.BlockSize(i) > MaxChunk || fsn.BlockSize(i) > maxBlockSize {
			return nil, fmt.Errorf("%w: child %d too large", ErrBadNode, i)
		}
		out[i] = Link{Cid: l.Cid, Size: fsn.BlockSize(i)}
	}
	return out, nil
}

// Links is Decode without the sizes, for garbage collection.
func Links(c cid.Cid, data []byte) ([]cid.Cid, error) {
	lks, err := Decode(c, data)
	if err != nil {
		return nil, err
	}
	out := make([]cid.Cid, len(lks))
	for i, l := range lks {
		out[i] = l.Cid
	}
	return out, nil
}

// GetFunc returns a block's verified bytes, fetching it if needed.
type GetFunc func(ctx context.Context, c cid.Cid) ([]byte, error)

// MaxDepth bounds how deep a DAG from a peer may go.
const MaxDepth = 8

// maxBlockSize bounds the size a link may declare (1 PiB), so that the
// sizes of a node's links add up without overflow.
const maxBlockSize = 1 << 50

// ErrSize is returned when a DAG declares another size than the one it
// must have, or more than it may.
var ErrSize = errors.New("dag size not as pinned")

// Limit bounds a walk over a DAG that may come from a peer.
type Limit struct {
	// Size is the size the file must have, as a signed manifest pins
	// it; -1 when nothing pins it.
	Size int64
	// Max caps the size the root may declare when Size is -1; 0 for no
	// cap (content already held and checked).
	Max uint64
}

// NoLimit walks what the store already holds (no size pinned, and no
// bound on leaves for the size).
var NoLimit = Limit{Size: -1}

// MaxLeaves is the most leaves Build makes for a file of size bytes. A
// chunk shorter than MinChunk ends a segment: the file's end, or the
// edge of a tar member of at least MinChunk bytes (at most two edges
// each). So a file has at most size/MinChunk long chunks and
// 2*size/MinChunk+1 short ones.
func MaxLeaves(size uint64) uint64 { return 3*(size/MinChunk) + 1 }

// maxInterior bounds the bytes of the interior nodes of a file of size
// bytes: about 50 bytes a link are needed; a peer's padded nodes are not
// walked past this.
func maxInterior(size uint64) uint64 { return 1<<20 + size/16 }

// Walk calls fn with root's leaves in file order, fetching interior nodes
// through get, and returns the file size. It holds only the path from the
// root to the current leaf, and refuses a DAG as soon as it is not what a
// Build under lim makes: a root declaring another size than lim.Size (or
// more than lim.Max), a node whose links do not add up to what its parent
// says, an empty link, more leaves than MaxLeaves, interior nodes larger
// than the file warrants, or more than MaxDepth levels. A DAG bomb (a few
// blocks that name millions of leaves and terabytes) so costs one block.
func Walk(ctx context.Context, root cid.Cid, lim Limit, get GetFunc, fn func(Link) error) (uint64, error) {
	if err := cas.Check(root); err != nil {
		return 0, err
	}
	checkSize := func(declared uint64) error {
		if lim.Size >= 0 && declared != uint64(lim.Size) {
			return fmt.Errorf("%w: root %s declares %d bytes, pinned %d", ErrSize, root, declared, lim.Size)
		}
		if lim.Size < 0 && lim.Max > 0 && declared > lim.Max {
			return fmt.Errorf("%w: root %s declares %d bytes, more than the %d allowed", ErrSize, root, declared, lim.Max)
		}
		return nil
	}
	data, err := get(ctx, root)
	if err != nil {
		return 0, err
	}
	if root.Type() == cas.Raw {
		if err := checkSize(uint64(len(data))); err != nil {
			return 0, err
		}
		return uint64(len(data)), fn(Link{Cid: root, Size: uint64(len(data))})
	}
	kids, err := Decode(root, data)
	if err != nil {
		return 0, fmt.Errorf("decode %s: %w", root, err)
	}
	var declared uint64
	for _, k := range kids {
		declared += k.Size
	}
	if err := checkSize(declared); err != nil {
		return 0, err
	}
	// What the store holds was walked within a limit when it came.
	maxLeaves, budget := MaxLeaves(declared), maxInterior(declared)
	if lim == NoLimit {
		maxLeaves, budget = math.MaxUint64, math.MaxUint64
	}
	interior := uint64(len(data))
	var leaves, total uint64
	// stack holds the links of each node on the path to the current leaf
	// and, per node, the next one to visit.
	type frame struct {
		kids []Link
		next int
	}
	stack := []frame{{kids: kids}}
	for len(stack) > 0 {
		top := &stack[len(stack)-1]
		if top.next == len(top.kids) {
			stack = stack[:len(stack)-1]
			continue
		}
		k := top.kids[top.next]
		top.next++
		if k.Size == 0 {
			return 0, fmt.Errorf("%w: empty link to %s", ErrBadNode, k.Cid)
		}
		if k.Cid.Type() == cas.Raw {
			if leaves++; leaves > maxLeaves {
				return 0, fmt.Errorf("%w: more than %d leaves for %d bytes", ErrSize, maxLeaves, declared)
			}
			total += k.Size
			if err := fn(k); err != nil {
				return 0, err
			}
			continue
		}
		if len(stack) > MaxDepth {
			return 0, fmt.Errorf("%w: deeper than %d", ErrBadNode, MaxDepth)
		}
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		data, err := get(ctx, k.Cid)
		if err != nil {
			return 0, err
		}
		if interior += uint64(len(data)); interior > budget {
			return 0, fmt.Errorf("%w: interior nodes over %d bytes for %d bytes of file", ErrSize, budget, declared)
		}
		sub, err := Decode(k.Cid, data)
		if err != nil {
			return 0, fmt.Errorf("decode %s: %w", k.Cid, err)
		}
		var sum uint64
		for _, c := range sub {
			sum += c.Size
		}
		if len(sub) == 0 || sum != k.Size {
			return 0, fmt.Errorf("%w: %s holds %d bytes in %d links, its parent says %d", ErrBadNode, k.Cid, sum, len(sub), k.Size)
		}
		stack = append(stack, frame{kids: sub})
	}
	if total != declared {
		return 0, fmt.Errorf("%w: leaves hold %d bytes, root declares %d", ErrBadNode, total, declared)
	}
	return total, nil
}

// Leaves resolves root to its ordered leaves, fetching interior nodes
// through get. A root that is itself a raw block is its own only leaf. It
// is for DAGs held locally: one from a peer is walked within a Limit
// (LeavesWithin).
func Leaves(ctx context.Context, root cid.Cid, get GetFunc) ([]Link, uint64, error) {
	return LeavesWithin(ctx, root, NoLimit, get)
}

// LeavesWithin is Leaves under lim (see Walk). The list is as long as the
// file warrants: at most MaxLeaves of the size lim allows.
func LeavesWithin(ctx context.Context, root cid.Cid, lim Limit, get GetFunc) ([]Link, uint64, error) {
	var out []Link
	total, err := Walk(ctx, root, lim, get, func(l Link) error {
		out = append(out, l)
		return nil
	})
	if err != nil {
		return nil, 0, err
	}
	return out, total, nil
}
