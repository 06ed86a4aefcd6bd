package discovery

import (
	"fmt"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/nbd-wtf/go-nostr"
)

func verified(t *testing.T, evs []nostr.Event, now time.Time) []*Release {
	t.Helper()
	var out []*Release
	for i := range evs {
		r, err := Verify(&evs[i], now)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	return out
}

func holds(s *Store) string {
	var v []string
	for _, r := range s.List() {
		v = append(v, fmt.Sprintf("%s/%v", r.Version, r.Latest))
	}
	sort.Strings(v)
	return fmt.Sprint(v)
}

// TestStoreWithdrawal checks NIP-09 withdrawal in the store: the release
// goes, the "latest" pointer goes only if it names that release, neither
// comes back from an older copy, and all of it survives a reopen.
func TestStoreWithdrawal(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "discovered.json") // the folder is made on save
	s, err := OpenStore(path)
	if err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, "1.0.0")
	t0 := time.Now().Add(-time.Minute)
	v1 := verified(t, f.events(t, t0), time.Now())
	for _, r := range v1 {
		if changed, err := s.Put(r); err != nil || !changed {
			t.Fatalf("Put: %v %v", changed, err)
		}
	}
	if got := holds(s); got != "[1.0.0/true]" {
		t.Fatalf("store holds %s", got)
	}

	del, err := Withdrawal(f.sk, "hello-web", "1.0.0", "", t0.Add(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if changed, err := s.Delete(&del); err != nil || !changed {
		t.Fatalf("Delete: %v %v", changed, err)
	}
	if got := holds(s); got != "[]" {
		t.Fatalf("after withdrawing the latest release the store holds %s", got)
	}
	// Relays may still send the old events: they stay withdrawn.
	for i, r := range v1 {
		if changed, _ := s.Put(r); changed {
			t.Fatalf("event %d came back after its withdrawal", i)
		}
	}

	// A newer release is the latest; withdrawing 1.0.0 again leaves it.
	f2 := newFixtureWithKey(t, f.key, f.sk, "1.1.0")
	for _, r := range verified(t, f2.events(t, t0.Add(2*time.Second)), time.Now()) {
		if _, err := s.Put(r); err != nil {
			t.Fatal(err)
		}
	}
	del2, _ := Withdrawal(f.sk, "hello-web", "1.0.0", "", t0.Add(3*time.Second))
	if _, err := s.Delete(&del2); err != nil {
		t.Fatal(err)
	}
	// A withdrawal by another key names its own addresses only.
	other := newFixture(t, "1.1.0")
	del3, _ := Withdrawal(other.sk, "hello-web", "1.1.0", "", t0.Add(4*time.Second))
	if _, err := s.Delete(&del3); err != nil {
		t.Fatal(err)
	}
	if got := holds(s); got != "[1.1.0/true]" {
		t.Fatalf("store holds %s", got)
	}

	back, err := OpenStore(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := holds(back); got != "[1.1.0/true]" {
		t.Fatalf("reopened store holds %s", got)
	}
	if changed, _ := back.Put(v1[1]); changed {
		t.Fatal("a withdrawn latest pointer came back after a reopen")
	}
}

func TestParseReleaseD(t *testing.T) {
	tests := []struct {
		d, id, version string
		ok             bool
	}{
		{ReleaseD("hello", "1.0.0"), "hello", "1.0.0", true},
		{ReleaseD("org.example.app", "2.0.0-rc.1+b5"), "org.example.app", "2.0.0-rc.1+b5", true},
		{LatestD("hello"), "", "", false},
		{"archy/v1/release/@1.0.0", "", "", false},
		{"archy/v1/release/hello@", "", "", false},
		{"archy/v1/release/hello", "", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.d, func(t *testing.T) {
			id, v, ok := parseReleaseD(tt.d)
			if id != tt.id || v != tt.version || ok != tt.ok {
				t.Fatalf("parseReleaseD = %q %q %v", id, v, ok)
			}
		})
	}
}
