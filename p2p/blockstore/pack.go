package blockstore

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/archy-node/archy/cas"
	cid "github.com/ipfs/go-cid"
	"golang.org/x/sys/unix"
)

// Packs hold the blocks of one file each, laid out as the file itself:
// leaf k of the file sits at its offset in the file, and the file's DAG
// nodes, if any, after its end. An import writes the file's bytes once,
// sequentially, into one pack with one fsync (instead of a create, write
// and rename per block); a fetch writes each verified piece once, at its
// offset, into the pack of its root, and the finished pack is the file, so
// GetFile hands it out with a hard link instead of writing it again.
//
// Layout: DIR/packs/<id>.pack (the bytes) and DIR/packs/<id>.idx (what is
// in it: fixed-size records, appended; a torn last record is ignored). GC
// frees the blocks of a pack that nothing needs by punching holes over
// them and appending a record that says they are gone (see Store.GC).
// Every block read from a pack is verified against its digest like any
// other (unless verify-on-read is off), so a pack damaged on disk, or
// edited through a hard link, yields missing blocks, never bad ones.

const (
	recSize   = 48
	recBlock  = 'B' // 'B' 3×0 size:u32 off:u64 digest:32
	recRoot   = 'R' // 'R' len:u8 cid[len] … size:u64 at [40:48]
	recSynced = 'S' // the blocks recorded before it were fsynced first
	recGone   = 'D' // as 'B': that block is no longer held (GC punched it)
)

// pack is one pack file.
type pack struct {
	id       string
	f        *os.File // read and write
	created  time.Time
	unsynced atomic.Bool // blocks indexed but maybe not on disk: verify every read

	// Guarded by Store.pmu.
	root    cid.Cid // the file it holds, once known
	size    int64   // the file's size, once known
	blocks  [][cas.DigestSize]byte
	writers int // open PackWriters
	deleted bool

	// gcMu is held by GC while it deletes the pack or punches holes in
	// it; PackFor waits for it, so no writer puts bytes where GC punches.
	gcMu sync.Mutex
}

// loc is where a block sits in a pack.
type loc struct {
	p    *pack
	off  int64
	size uint32
}

// packIndex is the in-memory index of every pack.
type packIndex struct {
	pmu    sync.RWMutex
	index  map[[cas.DigestSize]byte][]loc
	packs  map[string]*pack
	byRoot map[cid.Cid]*pack

	// punches counts GC's hole punches, bumped after the blocks are
	// dropped from the index and before their bytes go: a read that found
	// a block before the drop and sees the count change verifies what it
	// read, even where the store otherwise trusts its disk.
	punches atomic.Uint64
	holes   atomic.Int32 // the file system punches holes: 0 not known yet, 1 yes, 2 no
}

func (s *Store) packDir() string { return filepath.Join(s.dir, "packs") }

// loadPacks reads every pack index in the store.
func (s *Store) loadPacks() error {
	s.index = map[[cas.DigestSize]byte][]loc{}
	s.packs = map[string]*pack{}
	s.byRoot = map[cid.Cid]*pack{}
	ents, err := os.ReadDir(s.packDir())
	if err != nil {
		return fmt.Errorf("open block store: %w", err)
	}
	for _, e := range ents {
		id, ok := strings.CutSuffix(e.Name(), ".pack")
		if !ok {
			continue
		}
		if err := s.loadPack(id); err != nil {
			return fmt.Errorf("open block store: pack %s: %w", id, err)
		}
	}
	return nil
}

func (s *Store) loadPack(id string) error {
	f, err := os.OpenFile(filepath.Join(s.packDir(), id+".pack"), os.O_RDWR, 0)
	if err != nil {
		return err
	}
	recs, err := os.ReadFile(filepath.Join(s.packDir(), id+".idx"))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		f.Close()
		return err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return err
	}
	p := &pack{id: id, f: f, created: fi.ModTime()}
	dirty, gone := false, false
	for len(recs) >= recSize {
		r := recs[:recSize]
		recs = recs[recSize:]
		switch r[0] {
		case recBlock:
			var d [cas.DigestSize]byte
			copy(d[:], r[16:48])
			size := binary.LittleEndian.Uint32(r[4:8])
			off := int64(binary.LittleEndian.Uint64(r[8:16]))
			if off < 0 || off+int64(size) > fi.Size() || size > MaxBlockSize {
				continue // written after a crash lost the bytes: not held
			}
			s.addLoc(p, d, off, size)
			dirty = true
		case recGone:
			var d [cas.DigestSize]byte
			copy(d[:], r[16:48])
			s.removeLoc(p, d, int64(binary.LittleEndian.Uint64(r[8:16])))
			gone = true
		case recSynced:
			dirty = false
		case recRoot:
			n := int(r[1])
			if n > 38 {
				continue
			}
			c, err := cid.Cast(r[2 : 2+n])
			if err != nil || cas.Check(c) != nil {
				continue
			}
			p.root, p.size = c, int64(binary.LittleEndian.Uint64(r[40:48]))
			s.byRoot[c] = p
		}
	}
	if gone {
		s.reblock(p)
	}
	p.unsynced.Store(dirty)
	s.packs[id] = p
	return nil
}

// addLoc indexes a block of p; s.pmu held for writing (or not yet shared).
func (s *Store) addLoc(p *pack, d [cas.DigestSize]byte, off int64, size uint32) {
	for _, l := range s.index[d] {
		if l.p == p && l.off == off {
			return
		}
	}
	s.index[d] = append(s.index[d], loc{p: p, off: off, size: size})
	p.blocks = append(p.blocks, d)
}

// removeLoc forgets that p holds d at off, but leaves p.blocks to
// reblock; s.pmu held for writing (or not yet shared).
func (s *Store) removeLoc(p *pack, d [cas.DigestSize]byte, off int64) {
	ls := s.index[d][:0]
	found := false
	for _, l := range s.index[d] {
		if l.p == p && l.off == off {
			found = true
		} else {
			ls = append(ls, l)
		}
	}
	if !found {
		return
	}
	if len(ls) == 0 {
		delete(s.index, d)
	} else {
		s.index[d] = ls
	}
}

// reblock makes p.blocks list again what the index says p holds (once per
// location) after removeLoc; s.pmu held for writing (or not yet shared).
func (s *Store) reblock(p *pack) {
	seen := make(map[[cas.DigestSize]byte]struct{}, len(p.blocks))
	out := make([][cas.DigestSize]byte, 0, len(p.blocks))
	for _, d := range p.blocks {
		if _, ok := seen[d]; ok {
			continue
		}
		seen[d] = struct{}{}
		for _, l := range s.index[d] {
			if l.p == p {
				out = append(out, d)
			}
		}
	}
	p.blocks = out
}

// dropLoc forgets one location of d (a damaged copy).
func (s *Store) dropLoc(d [cas.DigestSize]byte, bad loc) {
	s.pmu.Lock()
	defer s.pmu.Unlock()
	ls := s.index[d]
	for i, l := range ls {
		if l == bad {
			ls = append(ls[:i:i], ls[i+1:]...)
			break
		}
	}
	if len(ls) == 0 {
		delete(s.index, d)
	} else {
		s.index[d] = ls
	}
}

// untrusted reports whether bytes just read from p must be verified even
// where the store trusts its disk: p may have lost them in a crash, or GC
// may have punched them since gen was read (before the lookup).
func (s *Store) untrusted(p *pack, gen uint64) bool {
	return p.unsynced.Load() || s.punches.Load() != gen
}

func (s *Store) lookup(d [cas.DigestSize]byte) []loc {
	s.pmu.RLock()
	defer s.pmu.RUnlock()
	return s.index[d]
}

// readPacked returns d's bytes from a pack, verified if asked; ok is false
// when no pack holds a good copy.
func (s *Store) readPacked(d [cas.DigestSize]byte, verify bool) ([]byte, bool) {
	gen := s.punches.Load()
	for _, l := range s.lookup(d) {
		data := make([]byte, l.size)
		if _, err := l.p.f.ReadAt(data, l.off); err != nil {
			s.dropLoc(d, l)
			continue
		}
		if (verify || s.untrusted(l.p, gen)) && cas.Digest(data) != d {
			s.dropLoc(d, l)
			continue
		}
		return data, true
	}
	return nil, false
}

// PackWriter writes the blocks of one file into a pack. Its methods may be
// called from several goroutines.
type PackWriter struct {
	s   *Store
	p   *pack
	idx *os.File

	direct *os.File // the pack opened with O_DIRECT, for spans; nil if unsupported

	dirSynced bool // the pack's names are durable; Sync's

	mu     sync.Mutex
	later  []pending // blocks indexed when the pack is next synced
	next   int64     // first byte after everything written
	recs   []byte    // index records not yet written
	closed bool
}

func newPackID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return time.Now().UTC().Format("20060102T150405") + "-" + hex.EncodeToString(b[:])
}

// NewPack starts a pack for a file whose root is not known yet (an
// import). Call SetRoot once it is, and Close at the end.
func (s *Store) NewPack() (*PackWriter, error) {
	w, err := s.createPack(cid.Undef, -1)
	if err != nil {
		return nil, err
	}
	// Spans go to disk without the page cache when the file system allows
	// (no copy into the kernel: the CPU is left to chunking and hashing;
	// measured 1.5–2× faster here than buffered writes and one fsync, and
	// than buffered writes with sync_file_range as they go).
	if f, err := os.OpenFile(w.p.f.Name(), os.O_WRONLY|unix.O_DIRECT, 0); err == nil {
		w.direct = f
	}
	return w, nil
}

type pending struct {
	d    [cas.DigestSize]byte
	off  int64
	size uint32
}

// directAlign is the alignment O_DIRECT needs of offsets, lengths and memory.
const directAlign = 4096

// PutSpan writes bytes of the file at off (an import writes the file in
// large spans, and indexes its leaves with IndexLeaf).
func (w *PackWriter) PutSpan(off int64, data []byte) error {
	end := off + int64(len(data))
	w.mu.Lock()
	w.next = max(w.next, end)
	w.mu.Unlock()
	if n := len(data) &^ (directAlign - 1); w.direct != nil && n > 0 && off%directAlign == 0 &&
		uintptr(unsafe.Pointer(&data[0]))%directAlign == 0 {
		if _, err := w.direct.WriteAt(data[:n], off); err != nil {
			return fmt.Errorf("write pack: %w", err)
		}
		data, off = data[n:], off+int64(n)
	}
	if len(data) > 0 {
		if _, err := w.p.f.WriteAt(data, off); err != nil {
			return fmt.Errorf("write pack: %w", err)
		}
	}
	return nil
}

// IndexLeaf records that the file's bytes at off hold block c (written by
// PutSpan). The block becomes readable when the pack is next synced, so it
// is never read before its bytes are down.
func (w *PackWriter) IndexLeaf(c cid.Cid, off int64, size int) error {
	d, err := digestOf(c)
	if err != nil {
		return fmt.Errorf("index block %s: %w", c, err)
	}
	if size > MaxBlockSize {
		return ErrTooLarge
	}
	w.mu.Lock()
	w.later = append(w.later, pending{d: d, off: off, size: uint32(size)})
	w.mu.Unlock()
	return nil
}

// PackFor opens the pack of a file being fetched, sized for it, creating
// it or, when an earlier fetch of root was interrupted, reopening it so
// the pieces it holds need not be fetched again.
func (s *Store) PackFor(root cid.Cid, size int64) (*PackWriter, error) {
	if err := cas.Check(root); err != nil {
		return nil, fmt.Errorf("open pack: %w", err)
	}
	for {
		s.pmu.Lock()
		p := s.byRoot[root]
		if p == nil || p.deleted || p.size != size {
			s.pmu.Unlock()
			return s.createPack(root, size)
		}
		p.writers++
		s.pmu.Unlock()
		// A collection that saw no writer may be deleting p or punching
		// holes in it: wait for it to finish, then use p if it is still there.
		p.gcMu.Lock()
		p.gcMu.Unlock() //nolint:staticcheck // an empty critical section: a wait
		s.pmu.RLock()
		deleted := p.deleted
		s.pmu.RUnlock()
		if deleted {
			s.releasePack(p)
			continue
		}
		idx, err := os.OpenFile(filepath.Join(s.packDir(), p.id+".idx"), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
		if err != nil {
			s.releasePack(p)
			return nil, fmt.Errorf("open pack: %w", err)
		}
		return &PackWriter{s: s, p: p, idx: idx, next: size}, nil
	}
}

func (s *Store) createPack(root cid.Cid, size int64) (*PackWriter, error) {
	id := newPackID()
	f, err := os.OpenFile(filepath.Join(s.packDir(), id+".pack"), os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("create pack: %w", err)
	}
	idx, err := os.OpenFile(filepath.Join(s.packDir(), id+".idx"), os.O_WRONLY|os.O_APPEND|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		f.Close()
		_ = os.Remove(f.Name())
		return nil, fmt.Errorf("create pack: %w", err)
	}
	p := &pack{id: id, f: f, created: time.Now(), writers: 1, size: -1}
	w := &PackWriter{s: s, p: p, idx: idx}
	if size >= 0 {
		if err := f.Truncate(size); err != nil {
			w.abort()
			return nil, fmt.Errorf("create pack: %w", err)
		}
		w.next = size
	}
	s.pmu.Lock()
	s.packs[id] = p
	s.pmu.Unlock()
	if root.Defined() {
		if err := w.SetRoot(root, size); err != nil {
			w.abort()
			return nil, err
		}
	}
	return w, nil
}

// Put writes a block at off (a leaf at its offset in the file), or, with a
// negative off, after everything written so far (a DAG node). The block is
// readable as soon as Put returns; it is durable after Sync or Close. The
// caller has checked data against c (import and fetch hash once).
func (w *PackWriter) Put(c cid.Cid, off int64, data []byte) error {
	d, err := digestOf(c)
	if err != nil {
		return fmt.Errorf("put block %s: %w", c, err)
	}
	if len(data) > MaxBlockSize {
		return ErrTooLarge
	}
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return errors.New("put block: pack closed")
	}
	if off < 0 {
		off = w.next
	}
	w.next = max(w.next, off+int64(len(data)))
	w.mu.Unlock()
	if _, err := w.p.f.WriteAt(data, off); err != nil {
		return fmt.Errorf("put block %s: %w", c, err)
	}
	w.index(d, off, uint32(len(data)))
	return nil
}

// index records a block written at off and makes it readable.
func (w *PackWriter) index(d [cas.DigestSize]byte, off int64, size uint32) {
	var r [recSize]byte
	r[0] = recBlock
	binary.LittleEndian.PutUint32(r[4:8], size)
	binary.LittleEndian.PutUint64(r[8:16], uint64(off))
	copy(r[16:], d[:])
	w.mu.Lock()
	w.recs = append(w.recs, r[:]...)
	w.mu.Unlock()
	s := w.s
	s.mu.Lock()
	if s.gc {
		s.fresh[d] = struct{}{}
	}
	s.mu.Unlock()
	s.pmu.Lock()
	s.addLoc(w.p, d, off, size)
	s.pmu.Unlock()
}

// Holds reports whether this pack holds c at off.
func (w *PackWriter) Holds(c cid.Cid, off int64) bool {
	d, err := digestOf(c)
	if err != nil {
		return false
	}
	for _, l := range w.s.lookup(d) {
		if l.p == w.p && l.off == off {
			return true
		}
	}
	return false
}

// SetRoot records which file the pack holds and its size.
func (w *PackWriter) SetRoot(root cid.Cid, size int64) error {
	b := root.Bytes()
	if len(b) > 38 {
		return fmt.Errorf("pack root %s: cid too long", root)
	}
	var r [recSize]byte
	r[0] = recRoot
	r[1] = byte(len(b))
	copy(r[2:], b)
	binary.LittleEndian.PutUint64(r[40:48], uint64(size))
	w.mu.Lock()
	w.recs = append(w.recs, r[:]...)
	w.mu.Unlock()
	s := w.s
	s.pmu.Lock()
	defer s.pmu.Unlock()
	w.p.root, w.p.size = root, size
	if old := s.byRoot[root]; old == nil || old.deleted || old == w.p {
		s.byRoot[root] = w.p
	}
	return nil
}

// Sync makes everything put so far durable: the bytes, then the index.
func (w *PackWriter) Sync() error {
	if err := w.p.f.Sync(); err != nil {
		return fmt.Errorf("sync pack: %w", err)
	}
	if err := w.flush(true); err != nil {
		return fmt.Errorf("sync pack index: %w", err)
	}
	if err := w.idx.Sync(); err != nil {
		return fmt.Errorf("sync pack index: %w", err)
	}
	if !w.dirSynced {
		if err := syncDir(w.s.packDir()); err != nil {
			return err
		}
		w.dirSynced = true
	}
	w.p.unsynced.Store(false)
	return nil
}

// flush publishes deferred blocks and appends the index records written
// since the last flush; synced says the pack's bytes were just fsynced.
func (w *PackWriter) flush(synced bool) error {
	w.mu.Lock()
	later := w.later
	w.later = nil
	w.mu.Unlock()
	if !synced && len(later) > 0 {
		w.p.unsynced.Store(true)
	}
	for _, b := range later {
		w.index(b.d, b.off, b.size)
	}
	w.mu.Lock()
	recs := w.recs
	w.recs = nil
	w.mu.Unlock()
	if !synced && len(recs) > 0 {
		w.p.unsynced.Store(true)
	}
	if synced {
		var r [recSize]byte
		r[0] = recSynced
		recs = append(recs, r[:]...)
	}
	if len(recs) > 0 {
		if _, err := w.idx.Write(recs); err != nil {
			return err
		}
	}
	return nil
}

// Close ends the writer; the pack stays readable. It does not fsync: what
// was put since the last Sync is verified on every read until a later
// Sync (a crash may have lost it), and Sync is for callers that hand the
// bytes on (an import, a file given to the user).
func (w *PackWriter) Close() error {
	w.mu.Lock()
	already := w.closed
	w.closed = true
	w.mu.Unlock()
	if already {
		return nil
	}
	err := w.flush(false)
	err = errors.Join(err, w.idx.Close())
	if w.direct != nil {
		err = errors.Join(err, w.direct.Close())
	}
	w.s.releasePack(w.p)
	if err != nil {
		return fmt.Errorf("close pack: %w", err)
	}
	return nil
}

// Discard ends the writer and deletes the pack with everything in it (a
// failed import).
func (w *PackWriter) Discard() {
	w.mu.Lock()
	w.closed = true
	w.mu.Unlock()
	w.abort()
}

func (w *PackWriter) abort() {
	_ = w.idx.Close()
	if w.direct != nil {
		_ = w.direct.Close()
	}
	w.s.releasePack(w.p)
	w.s.deletePack(w.p)
}

func (s *Store) releasePack(p *pack) {
	s.pmu.Lock()
	p.writers--
	s.pmu.Unlock()
}

// deletePack removes a pack and forgets its blocks.
func (s *Store) deletePack(p *pack) (freed int64, blocks int) {
	s.pmu.Lock()
	if p.deleted {
		s.pmu.Unlock()
		return 0, 0
	}
	p.deleted = true
	delete(s.packs, p.id)
	if s.byRoot[p.root] == p {
		delete(s.byRoot, p.root)
	}
	for _, d := range p.blocks {
		ls := s.index[d][:0]
		for _, l := range s.index[d] {
			if l.p != p {
				ls = append(ls, l)
			}
		}
		if len(ls) == 0 {
			delete(s.index, d)
		} else {
			s.index[d] = ls
		}
	}
	blocks = len(p.blocks)
	s.pmu.Unlock()
	if fi, err := p.f.Stat(); err == nil {
		freed = fi.Size()
	}
	_ = p.f.Close()
	_ = os.Remove(filepath.Join(s.packDir(), p.id+".pack"))
	_ = os.Remove(filepath.Join(s.packDir(), p.id+".idx"))
	return freed, blocks
}

// LinkFile makes path a name of the pack, which must hold the whole file
// (every leaf at its offset) and be synced: the fetched file is handed out
// without writing its bytes again. It falls back to a copy when path is on
// another file system, or when the pack already has another name (two
// outputs must not share their bytes). The file gets mode perm.
func (w *PackWriter) LinkFile(path string, perm fs.FileMode) error {
	w.s.pmu.RLock()
	size := w.p.size
	w.s.pmu.RUnlock()
	if size < 0 {
		return errors.New("link pack: size unknown")
	}
	// DAG nodes after the file's end are not part of it.
	fi, err := w.p.f.Stat()
	if err != nil {
		return fmt.Errorf("link pack: %w", err)
	}
	st, _ := fi.Sys().(*syscall.Stat_t)
	if fi.Size() == size && st != nil && st.Nlink == 1 {
		if err := w.p.f.Chmod(perm); err != nil {
			return fmt.Errorf("link pack: %w", err)
		}
		if err := os.Link(w.p.f.Name(), path); err == nil {
			return nil
		}
	}
	out, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return fmt.Errorf("copy pack: %w", err)
	}
	_, err = io.Copy(out, io.NewSectionReader(w.p.f, 0, size))
	if err = errors.Join(err, out.Sync(), out.Close()); err != nil {
		_ = os.Remove(path)
		return fmt.Errorf("copy pack: %w", err)
	}
	return nil
}

// Path is the pack's file.
func (w *PackWriter) Path() string { return w.p.f.Name() }
