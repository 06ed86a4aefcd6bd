package discovery

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/nbd-wtf/go-nostr"

	"github.com/archy-node/archy/internal/atomicfile"
	"github.com/archy-node/archy/registry"
)

// Store keeps the verified releases a node has discovered, one per Nostr
// address (kind:pubkey:d), replaced exactly as NIP-01 says: the newest
// created_at wins, and on a tie the lowest event id. Withdrawn addresses
// (NIP-09) are remembered so an older copy cannot come back.
type Store struct {
	path string

	mu        sync.Mutex
	releases  map[string]*Release // by address
	tombstone map[string]int64    // address → deletion created_at
}

type storeFile struct {
	Version   int              `json:"version"`
	Releases  []*Release       `json:"releases"`
	Tombstone map[string]int64 `json:"tombstones,omitempty"`
}

const storeVersion = 1

// OpenStore loads the store at path (empty if the file does not exist).
// Every stored envelope is verified again on load: the file is a cache,
// never a source of trust.
func OpenStore(path string) (*Store, error) {
	s := &Store{path: path, releases: map[string]*Release{}, tombstone: map[string]int64{}}
	data, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return s, nil
	}
	if err != nil {
		return nil, fmt.Errorf("open discovery store: %w", err)
	}
	var f storeFile
	if err := json.Unmarshal(data, &f); err != nil || f.Version != storeVersion {
		return nil, fmt.Errorf("open discovery store %s: unreadable or unknown version; remove it to rediscover from relays", path)
	}
	for _, r := range f.Releases {
		if len(r.Envelope) > 0 {
			v, err := registry.VerifyEnvelope(r.Envelope)
			if err != nil || v.CID != r.CID {
				continue
			}
			r.Manifest = v
		}
		s.releases[address(r.NostrPubKey, r.D)] = r
	}
	if f.Tombstone != nil {
		s.tombstone = f.Tombstone
	}
	return s, nil
}

// parseReleaseD splits a release `d` tag into app id and version.
func parseReleaseD(d string) (appID, version string, ok bool) {
	rest, ok := strings.CutPrefix(d, releasePrefix)
	i := strings.LastIndexByte(rest, '@')
	if !ok || i <= 0 || i == len(rest)-1 {
		return "", "", false
	}
	return rest[:i], rest[i+1:], true
}

// StorePath is where a node keeps its discovered releases inside its
// data folder.
func StorePath(dataDir string) string {
	return filepath.Join(dataDir, "discovery", "discovered.json")
}

// CursorPath is where a node keeps its per-relay cursors.
func CursorPath(dataDir string) string {
	return filepath.Join(dataDir, "discovery", "cursors.json")
}

func address(pubkey, d string) string {
	return strconv.Itoa(KindAppData) + ":" + pubkey + ":" + d
}

// Put stores r if it replaces what is held at its address; it reports
// whether the store changed.
func (s *Store) Put(r *Release) (bool, error) {
	addr := address(r.NostrPubKey, r.D)
	s.mu.Lock()
	defer s.mu.Unlock()
	if del, ok := s.tombstone[addr]; ok && r.CreatedAt.Unix() <= del {
		return false, nil
	}
	// A "latest" pointer naming a withdrawn release is withdrawn with it
	// (the publisher announces the release that is latest now again).
	if r.Latest {
		if del, ok := s.tombstone[address(r.NostrPubKey, ReleaseD(r.AppID, r.Version))]; ok && r.CreatedAt.Unix() <= del {
			return false, nil
		}
	}
	if old, ok := s.releases[addr]; ok && !newer(r, old) {
		return false, nil
	}
	s.releases[addr] = r
	return true, s.saveLocked()
}

// Complete puts c, the completed form of a CID-only release (see
// Release.Complete), in place of the release it completes, if that is
// still what the store holds at its address; it reports whether the store
// changed.
func (s *Store) Complete(c *Release) (bool, error) {
	if c.Manifest == nil || len(c.Envelope) == 0 {
		return false, errors.New("complete release: no verified envelope")
	}
	addr := address(c.NostrPubKey, c.D)
	s.mu.Lock()
	defer s.mu.Unlock()
	old, ok := s.releases[addr]
	if !ok || old.EventID != c.EventID || len(old.Envelope) > 0 {
		return false, nil
	}
	s.releases[addr] = c
	return true, s.saveLocked()
}

// newer reports whether a replaces b under NIP-01.
func newer(a, b *Release) bool {
	if !a.CreatedAt.Equal(b.CreatedAt) {
		return a.CreatedAt.After(b.CreatedAt)
	}
	return a.EventID < b.EventID
}

// Delete applies a verified NIP-09 deletion: each `a` tag naming an archy
// address of the deletion's own author removes what is held there up to
// the deletion's created_at.
func (s *Store) Delete(ev *nostr.Event) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	changed := false
	prefix := strconv.Itoa(KindAppData) + ":" + ev.PubKey + ":"
	for _, t := range ev.Tags {
		if len(t) < 2 || t[0] != "a" || !strings.HasPrefix(t[1], prefix) {
			continue
		}
		addr := t[1]
		at := int64(ev.CreatedAt)
		if old, ok := s.tombstone[addr]; !ok || at > old {
			s.tombstone[addr] = at
			changed = true
		}
		if r, ok := s.releases[addr]; ok && r.CreatedAt.Unix() <= at {
			delete(s.releases, addr)
			changed = true
		}
		// The app's "latest" pointer goes too if it names this release.
		if appID, version, ok := parseReleaseD(strings.TrimPrefix(addr, prefix)); ok {
			latest := address(ev.PubKey, LatestD(appID))
			if r, ok := s.releases[latest]; ok && r.Version == version && r.CreatedAt.Unix() <= at {
				delete(s.releases, latest)
				changed = true
			}
		}
	}
	if !changed {
		return false, nil
	}
	return true, s.saveLocked()
}

// List returns the stored releases, sorted by app id, then newest first.
func (s *Store) List() []*Release {
	s.mu.Lock()
	out := make([]*Release, 0, len(s.releases))
	for _, r := range s.releases {
		out = append(out, r)
	}
	s.mu.Unlock()
	sort.Slice(out, func(i, j int) bool {
		if out[i].AppID != out[j].AppID {
			return out[i].AppID < out[j].AppID
		}
		if out[i].Latest != out[j].Latest {
			return !out[i].Latest
		}
		return newer(out[i], out[j])
	})
	return out
}

func (s *Store) saveLocked() error {
	if s.path == "" {
		return nil
	}
	f := storeFile{Version: storeVersion, Tombstone: s.tombstone}
	for _, r := range s.releases {
		f.Releases = append(f.Releases, r)
	}
	sort.Slice(f.Releases, func(i, j int) bool { return f.Releases[i].EventID < f.Releases[j].EventID })
	data, err := json.Marshal(&f)
	if err != nil {
		return fmt.Errorf("save discovery store: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(s.path), 0o700); err != nil {
		return fmt.Errorf("save discovery store: %w", err)
	}
	if err := atomicfile.Write(s.path, data, 0o600); err != nil {
		return fmt.Errorf("save discovery store: %w", err)
	}
	return nil
}
