// Package blockstore owns archy's on-disk block store: the blocks of files
// in packs (one file each, laid out as the file: see PackWriter), other
// blocks in a file each named by the block's BLAKE3 digest; it holds only
// blocks whose bytes hash to a 32-byte BLAKE3 CIDv1. It also keeps the pin set and garbage-collects
// unpinned blocks without blocking reads. It implements boxo's
// blockstore.Blockstore so bitswap can serve from it.
package blockstore

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/archy-node/archy/cas"
	"github.com/archy-node/archy/internal/dirlock"
	bstore "github.com/ipfs/boxo/blockstore"
	blocks "github.com/ipfs/go-block-format"
	cid "github.com/ipfs/go-cid"
	ipld "github.com/ipfs/go-ipld-format"
	mh "github.com/multiformats/go-multihash"
	"golang.org/x/sys/unix"
)

// MaxBlockSize is the largest block the store accepts (2 MiB, bitswap's limit).
const MaxBlockSize = 2 << 20

// ErrTooLarge is returned when a block exceeds MaxBlockSize.
var ErrTooLarge = errors.New("block larger than the maximum block size")

// ErrNotFound is returned when a block is not held. It is boxo's
// ipld.ErrNotFound so bitswap and other boxo code recognise it.
var ErrNotFound = ipld.ErrNotFound{}

// Store is a persistent block store under one directory.
//
// Layout: DIR/packs/ (see PackWriter), DIR/blocks/XX/<64 hex digest> (XX:
// the digest's first byte), DIR/pins/<cid>, DIR/tmp/ for writes in
// progress. Block files are written to tmp and renamed into place, so a
// block file is either absent or complete.
type Store struct {
	dir    string
	log    *slog.Logger
	unlock func() // releases the folder's lock; Close calls it
	packIndex

	// VerifyOnRead makes Get re-hash each block it reads from disk (default
	// true): a block damaged on disk is deleted and reported as missing.
	verifyOnRead bool

	mu       sync.Mutex
	gc       bool                              // a collection is running
	fresh    map[[cas.DigestSize]byte]struct{} // blocks written while gc runs
	holds    map[cid.Cid]int                   // roots protected from gc while in use
	pinsMu   sync.Mutex
	sessions map[int]time.Time // writers whose root is not known yet
	nextSess int
}

var _ bstore.Blockstore = (*Store)(nil)

// Open opens (creating if needed) the store in dir.
func Open(dir string) (*Store, error) {
	for _, d := range []string{"blocks", "packs", "pins", "tmp"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o700); err != nil {
			return nil, fmt.Errorf("open block store: %w", err)
		}
	}
	// One process per store: a second would wipe the first's writes in
	// tmp/ below, and both would append to the same packs.
	unlock, err := dirlock.Lock(dir, "block store")
	if err != nil {
		return nil, err
	}
	// Leftovers of writes interrupted by a crash.
	if ents, err := os.ReadDir(filepath.Join(dir, "tmp")); err == nil {
		for _, e := range ents {
			_ = os.Remove(filepath.Join(dir, "tmp", e.Name()))
		}
	}
	s := &Store{dir: dir, log: slog.New(slog.DiscardHandler), verifyOnRead: true, holds: map[cid.Cid]int{}, sessions: map[int]time.Time{}, unlock: unlock}
	if err := s.loadPacks(); err != nil {
		unlock()
		return nil, err
	}
	return s, nil
}

// Close closes the store's open packs.
func (s *Store) Close() error {
	s.pmu.Lock()
	defer s.pmu.Unlock()
	var errs []error
	for _, p := range s.packs {
		errs = append(errs, p.f.Close())
	}
	s.packs = map[string]*pack{}
	s.index = map[[cas.DigestSize]byte][]loc{}
	s.byRoot = map[cid.Cid]*pack{}
	if s.unlock != nil {
		s.unlock()
		s.unlock = nil
	}
	return errors.Join(errs...)
}

// SetVerifyOnRead turns re-hashing on read on or off.
func (s *Store) SetVerifyOnRead(v bool) { s.verifyOnRead = v }

// SetLogger sets where the store logs (nowhere by default).
func (s *Store) SetLogger(l *slog.Logger) { s.log = l }

// Dir returns the store's directory.
func (s *Store) Dir() string { return s.dir }

func digestOf(c cid.Cid) ([cas.DigestSize]byte, error) {
	var d [cas.DigestSize]byte
	if err := cas.Check(c); err != nil {
		return d, err
	}
	dec, err := mh.Decode(c.Hash())
	if err != nil {
		return d, fmt.Errorf("%w: %v", cas.ErrNotBLAKE3, err)
	}
	copy(d[:], dec.Digest)
	return d, nil
}

func (s *Store) path(d [cas.DigestSize]byte) string {
	h := hex.EncodeToString(d[:])
	return filepath.Join(s.dir, "blocks", h[:2], h)
}

// Has reports whether the block is held.
func (s *Store) Has(_ context.Context, c cid.Cid) (bool, error) {
	d, err := digestOf(c)
	if err != nil {
		return false, nil
	}
	if len(s.lookup(d)) > 0 {
		return true, nil
	}
	_, err = os.Stat(s.path(d))
	if err == nil {
		return true, nil
	}
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	return false, fmt.Errorf("stat block %s: %w", c, err)
}

// Get reads a block, verifying it against its CID unless verify-on-read is off.
func (s *Store) Get(ctx context.Context, c cid.Cid) (blocks.Block, error) {
	data, err := s.GetRaw(ctx, c)
	if err != nil {
		return nil, err
	}
	return blocks.NewBlockWithCid(data, c)
}

// GetRaw returns a block's bytes, verified like Get.
func (s *Store) GetRaw(_ context.Context, c cid.Cid) ([]byte, error) {
	return s.get(c, s.verifyOnRead)
}

// GetToSend returns a block's bytes for a peer without re-hashing them:
// the peer verifies every block it receives anyway, so hashing here would
// only spend the sender's CPU on every upload.
func (s *Store) GetToSend(_ context.Context, c cid.Cid) ([]byte, error) {
	return s.get(c, false)
}

// ReadToSend is GetToSend reading into buf when the block fits (and is in
// a pack), so a node serving many pieces does not allocate one per piece.
func (s *Store) ReadToSend(_ context.Context, c cid.Cid, buf []byte) ([]byte, error) {
	d, err := digestOf(c)
	if err != nil {
		return nil, ipld.ErrNotFound{Cid: c}
	}
	gen := s.punches.Load()
	for _, l := range s.lookup(d) {
		if int(l.size) > cap(buf) {
			break
		}
		data := buf[:l.size]
		if _, err := l.p.f.ReadAt(data, l.off); err != nil {
			s.dropLoc(d, l)
			continue
		}
		if s.untrusted(l.p, gen) && cas.Digest(data) != d {
			s.dropLoc(d, l)
			continue
		}
		return data, nil
	}
	return s.get(c, false)
}

// SectionToSend returns block c's bytes in its pack, to be streamed to a
// peer without a buffer the size of the block, when a pack holds c and
// its bytes need no check before they are sent (the pack is synced, or
// its writer is still open: ReadToSend's rule). ok is false otherwise;
// use ReadToSend then. A read may fail if the pack is deleted meanwhile,
// or read a hole if GC punches it: ask Intact, with gen, before the last
// bytes go out.
func (s *Store) SectionToSend(c cid.Cid) (r *io.SectionReader, gen uint64, ok bool) {
	d, err := digestOf(c)
	if err != nil {
		return nil, 0, false
	}
	gen = s.punches.Load()
	for _, l := range s.lookup(d) {
		if !l.p.unsynced.Load() {
			return io.NewSectionReader(l.p.f, l.off, int64(l.size)), gen, true
		}
	}
	return nil, 0, false
}

// Intact reports whether the bytes of sec (what SectionToSend gave for c
// with gen) are c's: at once when GC punched no hole since gen, else by
// reading sec again and hashing it. A sender asks before its last bytes
// go out, so a block punched under it ends in a broken stream, never in
// a bad block that gets the sender struck.
func (s *Store) Intact(c cid.Cid, sec *io.SectionReader, gen uint64) bool {
	if s.punches.Load() == gen {
		return true
	}
	h := cas.NewHasher()
	if _, err := io.Copy(h, io.NewSectionReader(sec, 0, sec.Size())); err != nil {
		return false
	}
	d, err := digestOf(c)
	return err == nil && h.Digest() == d
}

func (s *Store) get(c cid.Cid, verify bool) ([]byte, error) {
	d, err := digestOf(c)
	if err != nil {
		return nil, ipld.ErrNotFound{Cid: c}
	}
	if data, ok := s.readPacked(d, verify); ok {
		return data, nil
	}
	p := s.path(d)
	data, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, ipld.ErrNotFound{Cid: c}
	}
	if err != nil {
		return nil, fmt.Errorf("read block %s: %w", c, err)
	}
	if verify && cas.Digest(data) != d {
		_ = os.Remove(p)
		return nil, ipld.ErrNotFound{Cid: c}
	}
	return data, nil
}

// GetSize returns the size of a held block.
func (s *Store) GetSize(_ context.Context, c cid.Cid) (int, error) {
	d, err := digestOf(c)
	if err != nil {
		return -1, ipld.ErrNotFound{Cid: c}
	}
	if ls := s.lookup(d); len(ls) > 0 {
		return int(ls[0].size), nil
	}
	fi, err := os.Stat(s.path(d))
	if errors.Is(err, fs.ErrNotExist) {
		return -1, ipld.ErrNotFound{Cid: c}
	}
	if err != nil {
		return -1, fmt.Errorf("stat block %s: %w", c, err)
	}
	return int(fi.Size()), nil
}

// Put verifies a block against its CID and stores it.
func (s *Store) Put(_ context.Context, b blocks.Block) error {
	c := b.Cid()
	if err := cas.Verify(c, b.RawData()); err != nil {
		return fmt.Errorf("put block %s: %w", c, err)
	}
	d, _ := digestOf(c)
	return s.write(d, b.RawData())
}

// PutVerified stores data under c, which the caller has just computed from
// data (the import path, which hashes once).
func (s *Store) PutVerified(c cid.Cid, data []byte) error {
	d, err := digestOf(c)
	if err != nil {
		return fmt.Errorf("put block %s: %w", c, err)
	}
	return s.write(d, data)
}

// PutMany puts each block.
func (s *Store) PutMany(ctx context.Context, bs []blocks.Block) error {
	for _, b := range bs {
		if err := s.Put(ctx, b); err != nil {
			return err
		}
	}
	return nil
}

func (s *Store) write(d [cas.DigestSize]byte, data []byte) error {
	if len(data) > MaxBlockSize {
		return ErrTooLarge
	}
	s.mu.Lock()
	if s.gc {
		s.fresh[d] = struct{}{}
	}
	s.mu.Unlock()
	if len(s.lookup(d)) > 0 {
		return nil
	}
	p := s.path(d)
	if _, err := os.Stat(p); err == nil {
		// Already held: refresh its time so a collection that started
		// before a write session does not take it (see Session).
		now := time.Now()
		_ = os.Chtimes(p, now, now)
		return nil
	}
	f, err := os.CreateTemp(filepath.Join(s.dir, "tmp"), "blk-")
	if err != nil {
		return fmt.Errorf("write block: %w", err)
	}
	tmp := f.Name()
	_, werr := f.Write(data)
	cerr := f.Close()
	if err := errors.Join(werr, cerr); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("write block: %w", err)
	}
	if err := os.Rename(tmp, p); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			if err = os.MkdirAll(filepath.Dir(p), 0o700); err == nil {
				err = os.Rename(tmp, p)
			}
		}
		if err != nil {
			_ = os.Remove(tmp)
			return fmt.Errorf("write block: %w", err)
		}
	}
	return nil
}

// Sync flushes everything written so far to disk (one syncfs for the file
// system holding the store, instead of an fsync per block).
func (s *Store) Sync() error {
	f, err := os.Open(s.dir)
	if err != nil {
		return fmt.Errorf("sync block store: %w", err)
	}
	defer f.Close()
	if err := unix.Syncfs(int(f.Fd())); err != nil {
		return fmt.Errorf("sync block store: %w", err)
	}
	return nil
}

// DeleteBlock removes a block; removing a missing block is not an error.
// A block in a pack is forgotten (its bytes go when the pack does).
func (s *Store) DeleteBlock(_ context.Context, c cid.Cid) error {
	d, err := digestOf(c)
	if err != nil {
		return nil
	}
	for _, l := range s.lookup(d) {
		s.dropLoc(d, l)
	}
	if err := os.Remove(s.path(d)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("delete block %s: %w", c, err)
	}
	return nil
}

// AllKeysChan lists every held block as a raw-codec CID (the store keys by
// digest and does not keep codecs).
func (s *Store) AllKeysChan(ctx context.Context) (<-chan cid.Cid, error) {
	ch := make(chan cid.Cid, 64)
	go func() {
		defer close(ch)
		s.pmu.RLock()
		packed := make([][cas.DigestSize]byte, 0, len(s.index))
		for d := range s.index {
			packed = append(packed, d)
		}
		s.pmu.RUnlock()
		for _, d := range packed {
			select {
			case ch <- cas.FromDigest(cas.Raw, d):
			case <-ctx.Done():
				return
			}
		}
		_ = s.walkDigests(func(d [cas.DigestSize]byte) error {
			select {
			case ch <- cas.FromDigest(cas.Raw, d):
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		})
	}()
	return ch, nil
}

func (s *Store) walkDigests(fn func([cas.DigestSize]byte) error) error {
	root := filepath.Join(s.dir, "blocks")
	shards, err := os.ReadDir(root)
	if err != nil {
		return fmt.Errorf("list blocks: %w", err)
	}
	for _, sh := range shards {
		ents, err := os.ReadDir(filepath.Join(root, sh.Name()))
		if err != nil {
			return fmt.Errorf("list blocks: %w", err)
		}
		for _, e := range ents {
			var d [cas.DigestSize]byte
			if n, err := hex.Decode(d[:], []byte(e.Name())); err != nil || n != cas.DigestSize {
				continue
			}
			if err := fn(d); err != nil {
				return err
			}
		}
	}
	return nil
}

// ReadTo copies a held block to w, verifying it like Get.
func (s *Store) ReadTo(ctx context.Context, c cid.Cid, w io.Writer) (int, error) {
	data, err := s.GetRaw(ctx, c)
	if err != nil {
		return 0, err
	}
	return w.Write(data)
}

func pinName(c cid.Cid) string { return strings.ReplaceAll(c.String(), "/", "_") }
