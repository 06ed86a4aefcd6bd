package blockstore

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"time"

	"github.com/archy-node/archy/cas"
	cid "github.com/ipfs/go-cid"
	"golang.org/x/sys/unix"
)

// LinkFunc returns the children of a block (none for a leaf). The store does
// not know DAG formats; the caller supplies this for garbage collection.
type LinkFunc func(c cid.Cid, data []byte) ([]cid.Cid, error)

// Pin marks root (and everything it links to) as kept by GC. Pins persist.
func (s *Store) Pin(_ context.Context, root cid.Cid) error {
	if err := cas.Check(root); err != nil {
		return fmt.Errorf("pin %s: %w", root, err)
	}
	s.pinsMu.Lock()
	defer s.pinsMu.Unlock()
	p := filepath.Join(s.dir, "pins", pinName(root))
	f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("pin %s: %w", root, err)
	}
	if err := errors.Join(f.Sync(), f.Close()); err != nil {
		return fmt.Errorf("pin %s: %w", root, err)
	}
	return syncDir(filepath.Dir(p))
}

// Unpin removes a pin; its blocks go at the next GC unless pinned otherwise.
func (s *Store) Unpin(_ context.Context, root cid.Cid) error {
	s.pinsMu.Lock()
	defer s.pinsMu.Unlock()
	err := os.Remove(filepath.Join(s.dir, "pins", pinName(root)))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("unpin %s: %w", root, err)
	}
	return nil
}

// Pins lists the pinned roots.
func (s *Store) Pins(_ context.Context) ([]cid.Cid, error) {
	s.pinsMu.Lock()
	defer s.pinsMu.Unlock()
	ents, err := os.ReadDir(filepath.Join(s.dir, "pins"))
	if err != nil {
		return nil, fmt.Errorf("list pins: %w", err)
	}
	var out []cid.Cid
	for _, e := range ents {
		c, err := cas.Parse(e.Name())
		if err != nil {
			continue
		}
		out = append(out, c)
	}
	return out, nil
}

// Hold protects root's DAG from GC until release is called, for content in
// use but not pinned (a fetch in progress, a file being added).
func (s *Store) Hold(root cid.Cid) (release func()) {
	s.mu.Lock()
	s.holds[root]++
	s.mu.Unlock()
	return func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.holds[root]--; s.holds[root] <= 0 {
			delete(s.holds, root)
		}
	}
}

// Session protects every block written from now until end is called, for
// writers that learn their root only at the end (an import).
func (s *Store) Session() (end func()) {
	s.mu.Lock()
	id := s.nextSess
	s.nextSess++
	s.sessions[id] = time.Now().Add(-time.Second) // margin for coarse file times
	s.mu.Unlock()
	return func() {
		s.mu.Lock()
		delete(s.sessions, id)
		s.mu.Unlock()
	}
}

// GCResult says what a collection removed.
type GCResult struct {
	Removed int   // blocks no longer held
	Freed   int64 // bytes given back: files deleted, and Punched
	Kept    int
	Punched int64 // bytes given back by punching holes in packs still in use
}

// ErrGCRunning is returned when a collection is already running.
var ErrGCRunning = errors.New("garbage collection already running")

// GC deletes every block not reachable from a pin or a hold. It does not
// block reads or writes: blocks written while it runs are kept, and the
// DAGs of holds taken while it runs are kept too. Blocks in packs go with
// their pack, or by punching holes in a pack that still holds needed
// blocks (see collectPacks).
func (s *Store) GC(ctx context.Context, links LinkFunc) (GCResult, error) {
	var res GCResult
	s.mu.Lock()
	if s.gc {
		s.mu.Unlock()
		return res, ErrGCRunning
	}
	s.gc = true
	s.fresh = map[[cas.DigestSize]byte]struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.gc = false
		s.fresh = nil
		s.mu.Unlock()
	}()

	pins, err := s.Pins(ctx)
	if err != nil {
		return res, fmt.Errorf("gc: %w", err)
	}
	keep := map[[cas.DigestSize]byte]struct{}{}
	mark := func(roots []cid.Cid) error {
		stack := append([]cid.Cid(nil), roots...)
		for len(stack) > 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
			c := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			d, err := digestOf(c)
			if err != nil {
				continue
			}
			if _, ok := keep[d]; ok {
				continue
			}
			keep[d] = struct{}{}
			if c.Type() == cas.Raw {
				continue
			}
			data, err := s.GetRaw(ctx, c)
			if err != nil {
				continue // not held (yet): nothing below it to keep
			}
			kids, err := links(c, data)
			if err != nil {
				return fmt.Errorf("links of %s: %w", c, err)
			}
			stack = append(stack, kids...)
		}
		return nil
	}
	if err := mark(append(pins, s.heldRoots()...)); err != nil {
		return res, fmt.Errorf("gc mark: %w", err)
	}
	var victims [][cas.DigestSize]byte
	if err := s.walkDigests(func(d [cas.DigestSize]byte) error {
		if _, ok := keep[d]; ok {
			res.Kept++
		} else {
			victims = append(victims, d)
		}
		return ctx.Err()
	}); err != nil {
		return res, fmt.Errorf("gc sweep: %w", err)
	}
	// Holds taken during the mark protect their DAGs too.
	if err := mark(s.heldRoots()); err != nil {
		return res, fmt.Errorf("gc mark: %w", err)
	}
	for _, d := range victims {
		if err := ctx.Err(); err != nil {
			return res, fmt.Errorf("gc sweep: %w", err)
		}
		s.mu.Lock()
		_, isFresh := s.fresh[d]
		_, kept := keep[d]
		cutoff, inSession := s.oldestSession()
		s.mu.Unlock()
		if isFresh || kept {
			res.Kept++
			continue
		}
		p := s.path(d)
		fi, err := os.Stat(p)
		if err != nil {
			continue
		}
		if inSession && !fi.ModTime().Before(cutoff) {
			res.Kept++
			continue
		}
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return res, fmt.Errorf("gc remove: %w", err)
		}
		res.Removed++
		res.Freed += fi.Size()
	}
	if err := s.collectPacks(ctx, keep, &res); err != nil {
		return res, fmt.Errorf("gc sweep: %w", err)
	}
	return res, nil
}

// oldestSession returns the start of the oldest write session; s.mu held.
func (s *Store) oldestSession() (time.Time, bool) {
	var t time.Time
	for _, st := range s.sessions {
		if t.IsZero() || st.Before(t) {
			t = st
		}
	}
	return t, !t.IsZero()
}

func (s *Store) heldRoots() []cid.Cid {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]cid.Cid, 0, len(s.holds))
	for c := range s.holds {
		out = append(out, c)
	}
	return out
}

func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}

// gone is a block GC takes out of a pack.
type gone struct {
	d [cas.DigestSize]byte
	l loc
}

// collectPacks frees what packs hold for nobody. A pack whose root is live
// (pinned or held, so every block in it is needed) or that is being
// written is left alone. In any other pack a block is held for nobody
// when nothing reaches it, or when a pack with a live root and no writer
// holds a copy (GetFile copies the leaves an old version shares into the
// new version's pack, so the old pack's copies are spare); of copies only
// such other packs hold, one is kept (a leaf that Fetch did not copy, or a
// leaf repeated in a file). A pack left holding nothing needed is deleted;
// in one that still holds needed blocks, holes are punched over the others
// (see punch).
func (s *Store) collectPacks(ctx context.Context, keep map[[cas.DigestSize]byte]struct{}, res *GCResult) error {
	s.mu.Lock()
	cutoff, inSession := s.oldestSession()
	s.pmu.RLock()
	alone, safe := map[*pack]struct{}{}, map[*pack]bool{}
	for _, p := range s.packs {
		busy := p.writers > 0 || (inSession && !p.created.Before(cutoff))
		live := false
		if rd, err := digestOf(p.root); err == nil {
			_, live = keep[rd]
		}
		switch {
		case live && !busy:
			safe[p] = true // it stays whole: its copies are the ones to keep
			res.Kept += len(p.blocks)
		case live || busy || p.deleted:
			res.Kept += len(p.blocks)
		default:
			alone[p] = struct{}{}
		}
	}
	s.pmu.RUnlock()
	s.mu.Unlock()

	// One pack at a time, so the index is read-locked only briefly (a
	// waiting writer would hold up reads), and each pack sees the copies
	// the ones before it dropped.
	for p := range alone {
		if err := ctx.Err(); err != nil {
			return err
		}
		var dead []gone
		need := 0
		s.mu.Lock()
		s.pmu.RLock()
		for _, d := range uniq(p.blocks) {
			_, kept := keep[d]
			_, isFresh := s.fresh[d]
			spare := false
			var owner loc
			if kept && !isFresh {
				for _, l := range s.index[d] {
					if safe[l.p] {
						spare = true
						break
					}
					if _, ok := alone[l.p]; ok && owner.p == nil {
						owner = l
					}
				}
			}
			for _, l := range s.index[d] {
				switch {
				case l.p != p:
				case isFresh || (kept && !spare && l == owner):
					need++
				default:
					dead = append(dead, gone{d: d, l: l})
				}
			}
		}
		s.pmu.RUnlock()
		s.mu.Unlock()
		res.Kept += need
		switch {
		case need == 0:
			s.deleteIfDead(p, res)
		case len(dead) > 0:
			if err := s.punch(p, dead, res); err != nil {
				return err
			}
		}
	}
	return nil
}

// uniq returns ds without repeats.
func uniq(ds [][cas.DigestSize]byte) [][cas.DigestSize]byte {
	seen := make(map[[cas.DigestSize]byte]struct{}, len(ds))
	out := make([][cas.DigestSize]byte, 0, len(ds))
	for _, d := range ds {
		if _, ok := seen[d]; !ok {
			seen[d] = struct{}{}
			out = append(out, d)
		}
	}
	return out
}

// busyLocked reports whether p is being written or was created in a write
// session; s.mu and s.pmu held.
func (s *Store) busyLocked(p *pack) bool {
	cutoff, inSession := s.oldestSession()
	return p.deleted || p.writers > 0 || (inSession && !p.created.Before(cutoff))
}

// deleteIfDead deletes p, which collectPacks found holds nothing needed,
// unless a writer came or a block of it was written meanwhile.
func (s *Store) deleteIfDead(p *pack, res *GCResult) {
	p.gcMu.Lock()
	defer p.gcMu.Unlock()
	// s.mu stays held until p is out of the index: a block written
	// meanwhile is either marked fresh before the check or, finding p
	// gone, written anew.
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pmu.RLock()
	live := s.busyLocked(p)
	for _, d := range p.blocks {
		if live {
			break
		}
		_, live = s.fresh[d]
	}
	s.pmu.RUnlock()
	if live {
		res.Kept += len(p.blocks)
		return
	}
	freed, n := s.deletePack(p)
	res.Removed += n
	res.Freed += freed
}

// holeAlign is the file-system block size punch assumes: only whole
// blocks are freed, so a hole is cut only over whole aligned 4 KiB.
const holeAlign = 4096

// punch takes the dead blocks out of p, which still holds needed ones,
// and gives their bytes back to the file system: it drops them from the
// index (new reads miss them), appends a recGone record for each to p's
// index and fsyncs it (a restart does not index them again: punched bytes
// read as zeros), then punches holes over them. An append fits the index,
// which is append-only already, and costs one small write where a rewrite
// would race the appends of a writer that PackFor lets in after us.
//
// A read that found a block before the drop may read the hole: punches
// makes it verify what it read (a miss, never wrong bytes). A writer of p
// waits in PackFor until punch is done. A pack linked to a user's file
// (GetFile's output, Nlink > 1) is not punched: its bytes are that file;
// it goes only whole, when nothing in it is needed, and then the user's
// name keeps the bytes.
func (s *Store) punch(p *pack, dead []gone, res *GCResult) error {
	p.gcMu.Lock()
	defer p.gcMu.Unlock()
	var drop []gone
	defer func() { res.Kept += len(dead) - len(drop) }()
	if !s.holesOK() {
		return nil
	}
	before, nlink, err := diskUse(p.f)
	if err != nil || nlink > 1 {
		return nil // a stat that fails here fails the reads too: leave p as it is
	}
	var live [][2]int64
	s.mu.Lock()
	s.pmu.Lock()
	if !s.busyLocked(p) {
		for _, g := range dead {
			if _, ok := s.fresh[g.d]; ok || !slices.Contains(s.index[g.d], g.l) {
				continue
			}
			s.removeLoc(p, g.d, g.l.off)
			drop = append(drop, g)
		}
		s.reblock(p)
		for _, d := range uniq(p.blocks) {
			for _, l := range s.index[d] {
				if l.p == p {
					live = append(live, [2]int64{l.off, l.off + int64(l.size)})
				}
			}
		}
	}
	s.pmu.Unlock()
	s.mu.Unlock()
	if len(drop) == 0 {
		return nil
	}
	res.Removed += len(drop)
	if err := s.appendGone(p, drop); err != nil {
		// Forgotten in memory, not on disk: after a restart they are
		// indexed again, with their bytes, which are still there.
		return fmt.Errorf("punch pack %s: %w", p.id, err)
	}
	s.punches.Add(1)
	deadRanges := make([][2]int64, len(drop))
	for i, g := range drop {
		deadRanges[i] = [2]int64{g.l.off, g.l.off + int64(g.l.size)}
	}
	rc, err := p.f.SyscallConn()
	if err != nil {
		return fmt.Errorf("punch pack %s: %w", p.id, err)
	}
	for _, h := range holes(deadRanges, live) {
		var perr error
		if err := rc.Control(func(fd uintptr) {
			perr = unix.Fallocate(int(fd), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, h[0], h[1]-h[0])
		}); err != nil {
			return fmt.Errorf("punch pack %s: %w", p.id, err)
		}
		if errors.Is(perr, unix.EOPNOTSUPP) {
			// holesOK said yes, so not expected; the blocks stay
			// forgotten (nothing needs them) and their bytes go with p.
			s.log.Debug("gc: file system does not punch holes; packs are freed only whole", "pack", p.id)
			break
		}
		if perr != nil {
			return fmt.Errorf("punch pack %s: %w", p.id, perr)
		}
	}
	if after, _, err := diskUse(p.f); err == nil && after < before {
		res.Punched += before - after
		res.Freed += before - after
	}
	return nil
}

// appendGone records durably that p no longer holds the blocks gs.
func (s *Store) appendGone(p *pack, gs []gone) error {
	recs := make([]byte, 0, len(gs)*recSize)
	for _, g := range gs {
		var r [recSize]byte
		r[0] = recGone
		binary.LittleEndian.PutUint32(r[4:8], g.l.size)
		binary.LittleEndian.PutUint64(r[8:16], uint64(g.l.off))
		copy(r[16:], g.d[:])
		recs = append(recs, r[:]...)
	}
	f, err := os.OpenFile(filepath.Join(s.packDir(), p.id+".idx"), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("record removed blocks: %w", err)
	}
	_, err = f.Write(recs)
	if err = errors.Join(err, f.Sync(), f.Close()); err != nil {
		return fmt.Errorf("record removed blocks: %w", err)
	}
	return nil
}

// holes returns the ranges to punch: the whole holeAlign blocks inside the
// dead ranges (merged, so neighbours smaller than a block add up) and
// outside every live one.
func holes(dead, live [][2]int64) [][2]int64 {
	cmp := func(a, b [2]int64) int { return int(min(max(a[0]-b[0], -1), 1)) }
	slices.SortFunc(dead, cmp)
	slices.SortFunc(live, cmp)
	var merged [][2]int64
	for _, r := range dead {
		if n := len(merged); n > 0 && r[0] <= merged[n-1][1] {
			merged[n-1][1] = max(merged[n-1][1], r[1])
			continue
		}
		merged = append(merged, r)
	}
	var out [][2]int64
	emit := func(a, b int64) {
		a = (a + holeAlign - 1) &^ (holeAlign - 1)
		b &^= holeAlign - 1
		if b > a {
			out = append(out, [2]int64{a, b})
		}
	}
	for _, r := range merged {
		a := r[0]
		for _, l := range live {
			if l[1] <= a || l[0] >= r[1] {
				continue
			}
			emit(a, l[0])
			a = max(a, l[1])
		}
		emit(a, r[1])
	}
	return out
}

// diskUse returns the bytes f takes on disk and its number of names.
func diskUse(f *os.File) (int64, uint64, error) {
	fi, err := f.Stat()
	if err != nil {
		return 0, 0, err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, 0, errors.New("no stat_t")
	}
	return st.Blocks * 512, uint64(st.Nlink), nil
}

// holesOK reports whether the store's file system punches holes, trying
// it once on a scratch file.
func (s *Store) holesOK() bool {
	switch s.holes.Load() {
	case 1:
		return true
	case 2:
		return false
	}
	ok := func() bool {
		f, err := os.CreateTemp(filepath.Join(s.dir, "tmp"), "holes-")
		if err != nil {
			return false
		}
		defer os.Remove(f.Name())
		defer f.Close()
		if _, err := f.Write(make([]byte, 2*holeAlign)); err != nil {
			return false
		}
		return unix.Fallocate(int(f.Fd()), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, 0, holeAlign) == nil
	}()
	if ok {
		s.holes.Store(1)
	} else {
		s.holes.Store(2)
		s.log.Debug("gc: file system does not punch holes; packs are freed only whole", "dir", s.dir)
	}
	return ok
}
