package blockstore

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/archy-node/archy/cas"
	cid "github.com/ipfs/go-cid"
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
	Removed int
	Freed   int64
	Kept    int
}

// ErrGCRunning is returned when a collection is already running.
var ErrGCRunning = errors.New("garbage collection already running")

// GC deletes every block not reachable from a pin or a hold. It does not
// block reads or writes: blocks written while it runs are kept, and the
// DAGs of holds taken while it runs are kept too.
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
	// Packs go whole, when none of their blocks is needed.
	s.pmu.RLock()
	packs := make([]*pack, 0, len(s.packs))
	for _, p := range s.packs {
		packs = append(packs, p)
	}
	s.pmu.RUnlock()
	for _, p := range packs {
		if err := ctx.Err(); err != nil {
			return res, fmt.Errorf("gc sweep: %w", err)
		}
		s.mu.Lock()
		cutoff, inSession := s.oldestSession()
		s.pmu.RLock()
		live := p.writers > 0 || (inSession && !p.created.Before(cutoff))
		for _, d := range p.blocks {
			if live {
				break
			}
			_, kept := keep[d]
			_, isFresh := s.fresh[d]
			live = kept || isFresh
		}
		s.pmu.RUnlock()
		s.mu.Unlock()
		if live {
			res.Kept += len(p.blocks)
			continue
		}
		freed, n := s.deletePack(p)
		res.Removed += n
		res.Freed += freed
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
