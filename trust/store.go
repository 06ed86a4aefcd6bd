package trust

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"

	"github.com/archy-node/archy/internal/atomicfile"
)

// snapshotVersion is the on-disk format's version.
const snapshotVersion = 1

// snapshot is the on-disk form of a graph: the latest event of each kind
// per author and target, so reloading it gives the same graph.
type snapshot struct {
	Version   int                 `json:"version"`
	Owner     string              `json:"owner,omitempty"`
	Follows   []snapFollows       `json:"follows"`
	Labels    []snapLabel         `json:"labels"`
	Reports   []Report            `json:"reports"`
	Bindings  [][2]string         `json:"bindings"`
	FirstSeen map[string]int64    `json:"first_seen"`
	Crawled   map[string]int64    `json:"crawled,omitempty"`
	Apps      map[string][]string `json:"apps,omitempty"`
}

type snapFollows struct {
	Author  string   `json:"author"`
	At      int64    `json:"created_at"`
	ID      string   `json:"id"`
	Targets []string `json:"targets"`
}

type snapLabel struct {
	Author  string `json:"author"`
	Target  string `json:"target"`
	At      int64  `json:"created_at"`
	ID      string `json:"id"`
	Revoked bool   `json:"revoked,omitempty"`
}

// Store is a graph kept in a file, with the owner it was gathered for and
// when each author was last crawled.
type Store struct {
	Path    string
	Owner   string
	Graph   *Graph
	Crawled map[string]int64
}

// Open loads the store at path, or starts an empty one if there is none.
func Open(path string) (*Store, error) {
	s := &Store{Path: path, Graph: NewGraph(), Crawled: map[string]int64{}}
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read trust graph %s: %w", path, err)
	}
	var sn snapshot
	if err := json.Unmarshal(data, &sn); err != nil {
		return nil, fmt.Errorf("read trust graph %s: %w", path, err)
	}
	if sn.Version != snapshotVersion {
		return nil, fmt.Errorf("read trust graph %s: version %d, want %d", path, sn.Version, snapshotVersion)
	}
	g := s.Graph
	for _, f := range sn.Follows {
		g.SetFollows(f.Author, f.At, f.ID, f.Targets)
	}
	for _, l := range sn.Labels {
		g.SetLabel(l.Author, l.Target, l.At, l.ID, l.Revoked)
	}
	for _, r := range sn.Reports {
		g.AddReport(r)
	}
	for _, b := range sn.Bindings {
		g.Bind(b[0], b[1], sn.FirstSeen[b[0]])
	}
	for n, at := range sn.FirstSeen {
		g.Seen(n, at)
	}
	for app, ds := range sn.Apps {
		for _, d := range ds {
			g.AddRelease(app, d)
		}
	}
	s.Owner = sn.Owner
	if sn.Crawled != nil {
		s.Crawled = sn.Crawled
	}
	return s, nil
}

// Save writes the store atomically (never half-written).
func (s *Store) Save() error {
	g := s.Graph
	sn := snapshot{Version: snapshotVersion, Owner: s.Owner, FirstSeen: map[string]int64{}, Crawled: s.Crawled}
	for a, f := range g.follows {
		sn.Follows = append(sn.Follows, snapFollows{Author: g.names[a], At: f.at, ID: f.id, Targets: g.namesOf(f.targets)})
	}
	slices.SortFunc(sn.Follows, func(a, b snapFollows) int { return compareStr(a.Author, b.Author) })
	for a, m := range g.labels {
		for t, l := range m {
			sn.Labels = append(sn.Labels, snapLabel{Author: g.names[a], Target: g.names[t], At: l.at, ID: l.id, Revoked: l.revoked})
		}
	}
	slices.SortFunc(sn.Labels, func(a, b snapLabel) int {
		if c := compareStr(a.Author, b.Author); c != 0 {
			return c
		}
		return compareStr(a.Target, b.Target)
	})
	for _, m := range g.reports {
		for _, r := range m {
			sn.Reports = append(sn.Reports, *r)
		}
	}
	slices.SortFunc(sn.Reports, func(a, b Report) int { return compareStr(a.EventID+a.Target, b.EventID+b.Target) })
	for d, ks := range g.didKeys {
		for _, k := range ks {
			sn.Bindings = append(sn.Bindings, [2]string{g.names[d], g.names[k]})
		}
	}
	slices.SortFunc(sn.Bindings, func(a, b [2]string) int { return compareStr(a[0]+a[1], b[0]+b[1]) })
	for i, at := range g.firstSeen {
		sn.FirstSeen[g.names[i]] = at
	}
	sn.Apps = map[string][]string{}
	for app, ds := range g.apps {
		sn.Apps[app] = g.namesOf(ds)
	}
	data, err := json.Marshal(sn)
	if err != nil {
		return fmt.Errorf("write trust graph %s: %w", s.Path, err)
	}
	if err := atomicfile.Write(s.Path, data, 0o600); err != nil {
		return fmt.Errorf("write trust graph %s: %w", s.Path, err)
	}
	return nil
}

func compareStr(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
