package trust

import (
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// TestEngineConcurrent: events and bindings arrive while decisions are
// made (run with -race); the result is what a fresh scorer says.
func TestEngineConcurrent(t *testing.T) {
	st, err := Open(filepath.Join(t.TempDir(), "g.json"))
	if err != nil {
		t.Fatal(err)
	}
	owner, a := newSigner(t), newSigner(t)
	st.Owner = owner.pk
	e := NewEngine(st, Params{})
	now := time.Now()
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		if _, err := e.Ingest(owner.sign(t, follow(now.Unix(), a)), now); err != nil {
			t.Error(err)
		}
		end, _ := Endorsement("did:key:zH", "", false, now)
		if _, err := e.Ingest(a.sign(t, end), now); err != nil {
			t.Error(err)
		}
		e.Bind("vault", "did:key:zS", newSigner(t).pk, now)
	}()
	go func() {
		defer wg.Done()
		for range 20 {
			e.Decide(Policy{}, "vault", []Candidate{{DID: "did:key:zH"}, {DID: "did:key:zS"}})
		}
	}()
	wg.Wait()
	d := e.Decide(Policy{}, "vault", []Candidate{{DID: "did:key:zH"}, {DID: "did:key:zS"}})
	if d.Selected != "did:key:zH" {
		t.Fatalf("selected %q: %v", d.Selected, d.Reasons)
	}
	if got, want := e.Score("did:key:zH"), NewScorer(st.Graph, owner.pk, Params{}).Score("did:key:zH"); got != want {
		t.Errorf("engine score %g, fresh %g", got, want)
	}
	if err := e.Save(); err != nil {
		t.Fatal(err)
	}
}
