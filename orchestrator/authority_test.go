package orchestrator_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/archy-node/archy/did"
	"github.com/archy-node/archy/orchestrator"
	"github.com/archy-node/archy/orchestrator/memruntime"
	"github.com/archy-node/archy/registry"
)

// vaultCtrs is a vault-like app: a generated secret and a data folder.
var vaultCtrs = []ctr{{name: "web", health: []string{"true"}, secretEnv: "db_password", volume: "d"}}

// appSnapshot is what a takeover must not change: the app's status, its
// container, its secrets and its data, byte for byte.
type appSnapshot struct {
	version, cid, container string
	files                   map[string]string
}

func snapshotApp(t *testing.T, o *orchestrator.Orchestrator, id string, inspect func(name string) string) appSnapshot {
	t.Helper()
	s, err := o.Status(id)
	if err != nil {
		t.Fatal(err)
	}
	snap := appSnapshot{version: s.Version, cid: s.CID, files: map[string]string{}}
	if len(s.Containers) > 0 {
		snap.container = inspect(s.Containers[0].Engine)
	}
	for _, root := range []string{o.SecretsDir(id), o.DataDir(id), o.StateFile(id)} {
		err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			b, err := os.ReadFile(p)
			snap.files[p] = string(b)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return snap
}

func (a appSnapshot) same(t *testing.T, b appSnapshot) {
	t.Helper()
	if a.version != b.version || a.cid != b.cid || a.container != b.container {
		t.Errorf("app changed: %s %s %s → %s %s %s", a.version, a.cid, a.container, b.version, b.cid, b.container)
	}
	if len(a.files) != len(b.files) {
		t.Errorf("files: %d before, %d after", len(a.files), len(b.files))
	}
	for p, v := range a.files {
		if b.files[p] != v {
			t.Errorf("%s changed", p)
		}
	}
}

func twinInspect(e *env) func(string) string {
	return func(name string) string {
		c, err := e.rt.Inspect(context.Background(), name)
		if err != nil {
			return "missing: " + err.Error()
		}
		return c.ID + " " + c.Labels[orchestrator.LabelVersion] + " " + string(c.State)
	}
}

// rotation makes a rotation statement of app from key to the DID to.
func rotation(t *testing.T, app string, key *did.Key, to string, at time.Time) []byte {
	t.Helper()
	env, err := registry.SignRotation(app, key, to, at)
	if err != nil {
		t.Fatal(err)
	}
	b, err := env.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestTakeoverByAnotherPublisherRefused(t *testing.T) {
	e := newEnv(t, memruntime.Config{})
	owner, stranger := newFixture(t), newFixture(t)
	ctx := context.Background()
	v2, a2 := owner.app("vault", "2.0.0", vaultCtrs, withSecrets)
	o := e.orch()
	if err := o.Install(ctx, v2, a2); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(o.DataDir("vault"), "d", "notes"), []byte("the owner's notes"), 0o600); err != nil {
		t.Fatal(err)
	}
	before := snapshotApp(t, o, "vault", twinInspect(e))
	for _, version := range []string{"0.0.1", "3.0.0"} {
		sv, sa := stranger.app("vault", version, vaultCtrs, withSecrets)
		err := o.Update(ctx, sv, sa)
		if !errors.Is(err, orchestrator.ErrPublisherMismatch) {
			t.Fatalf("update to the stranger's %s: %v, want ErrPublisherMismatch", version, err)
		}
		if !strings.Contains(err.Error(), stranger.key.DID()) || !strings.Contains(err.Error(), owner.key.DID()) {
			t.Errorf("the refusal does not name both DIDs: %v", err)
		}
		// Even forced, a downgrade flag does not make it an update.
		if err := o.Update(ctx, sv, sa, orchestrator.AllowDowngrade()); !errors.Is(err, orchestrator.ErrPublisherMismatch) {
			t.Fatalf("forced update to the stranger's %s: %v", version, err)
		}
		if err := o.Install(ctx, sv, sa); !errors.Is(err, orchestrator.ErrPublisherMismatch) {
			t.Fatalf("install of the stranger's %s over the installed app: %v", version, err)
		}
	}
	snapshotApp(t, o, "vault", twinInspect(e)).same(t, before)
	if s, _ := o.Status("vault"); s.Error != "" || !s.Healthy || s.Publisher != owner.key.DID() {
		t.Errorf("the refused takeover shows on the app: %+v", s)
	}
	// A node restart keeps the pin.
	o2 := e.orch()
	sv, sa := stranger.app("vault", "4.0.0", vaultCtrs, withSecrets)
	if err := o2.Update(ctx, sv, sa); !errors.Is(err, orchestrator.ErrPublisherMismatch) {
		t.Fatalf("update after a restart: %v", err)
	}
}

func TestKeptDataStaysWithItsPublisher(t *testing.T) {
	e := newEnv(t, memruntime.Config{})
	owner, stranger := newFixture(t), newFixture(t)
	ctx := context.Background()
	v, a := owner.app("vault", "2.0.0", vaultCtrs, withSecrets)
	o := e.orch()
	if err := o.Install(ctx, v, a); err != nil {
		t.Fatal(err)
	}
	secret, err := os.ReadFile(filepath.Join(o.SecretsDir("vault"), "db_password"))
	if err != nil {
		t.Fatal(err)
	}
	if err := o.Uninstall(ctx, "vault", false); err != nil {
		t.Fatal(err)
	}
	sv, sa := stranger.app("vault", "3.0.0", vaultCtrs, withSecrets)
	if err := o.Install(ctx, sv, sa); !errors.Is(err, orchestrator.ErrPublisherMismatch) {
		t.Fatalf("install of another publisher's app over kept data: %v", err)
	}
	if len(o.Apps()) != 0 {
		t.Fatalf("a refused install is listed: %+v", o.Apps())
	}
	// The owner's reinstall gets its data back.
	if err := o.Install(ctx, v, a); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(o.SecretsDir("vault"), "db_password")); err != nil || string(b) != string(secret) {
		t.Fatalf("secret after the owner's reinstall: %v", err)
	}
	// After a purge the id is free: nothing is left to take over.
	if err := o.Uninstall(ctx, "vault", true); err != nil {
		t.Fatal(err)
	}
	if err := o.Install(ctx, sv, sa); err != nil {
		t.Fatalf("install after a purge: %v", err)
	}
	if b, err := os.ReadFile(filepath.Join(o.SecretsDir("vault"), "db_password")); err != nil || string(b) == string(secret) {
		t.Fatalf("the new publisher's app got the old secret (%v)", err)
	}
}

func TestVersionsOnlyGoUp(t *testing.T) {
	e := newEnv(t, memruntime.Config{})
	f := newFixture(t)
	ctx := context.Background()
	v1, a1 := f.app("mono", "1.1.0", vaultCtrs, withSecrets)
	o := e.orch()
	if err := o.Install(ctx, v1, a1); err != nil {
		t.Fatal(err)
	}
	down, ad := f.app("mono", "1.0.9", vaultCtrs, withSecrets)
	err := o.Update(ctx, down, ad)
	if !errors.Is(err, orchestrator.ErrDowngrade) || !strings.Contains(err.Error(), "--allow-downgrade") {
		t.Fatalf("downgrade: %v, want ErrDowngrade saying how to force it", err)
	}
	// The same version with other bytes is not an update either.
	same, as := f.app("mono", "1.1.0", vaultCtrs, func(m *registry.Manifest) { withSecrets(m); m.Description = "changed" })
	if err := o.Update(ctx, same, as); !errors.Is(err, orchestrator.ErrDowngrade) {
		t.Fatalf("same version, other bytes: %v", err)
	}
	pre, ap := f.app("mono", "1.1.0-rc.1", vaultCtrs, withSecrets)
	if err := o.Update(ctx, pre, ap); !errors.Is(err, orchestrator.ErrDowngrade) {
		t.Fatalf("a pre-release of the installed version: %v", err)
	}
	if s, _ := o.Status("mono"); s.Version != "1.1.0" {
		t.Fatalf("after refusals: %+v", s)
	}
	if err := o.Update(ctx, down, ad, orchestrator.AllowDowngrade()); err != nil {
		t.Fatalf("forced downgrade: %v", err)
	}
	if s, _ := o.Status("mono"); s.Version != "1.0.9" || !s.Healthy {
		t.Fatalf("after the forced downgrade: %+v", s)
	}
	up, au := f.app("mono", "1.10.0", vaultCtrs, withSecrets)
	if err := o.Update(ctx, up, au); err != nil {
		t.Fatalf("update 1.0.9 → 1.10.0 (SemVer, not string order): %v", err)
	}
}

func TestRotationMovesThePin(t *testing.T) {
	e := newEnv(t, memruntime.Config{})
	oldPub, newPub, stranger := newFixture(t), newFixture(t), newFixture(t)
	ctx := context.Background()
	now := time.Now()
	v1, a1 := oldPub.app("vault", "1.0.0", vaultCtrs, withSecrets)
	o := e.orch()
	if err := o.Install(ctx, v1, a1); err != nil {
		t.Fatal(err)
	}
	secret, err := os.ReadFile(filepath.Join(o.SecretsDir("vault"), "db_password"))
	if err != nil {
		t.Fatal(err)
	}
	nv, na := newPub.app("vault", "1.1.0", vaultCtrs, withSecrets)
	// Without the statement, the new DID is a stranger.
	if err := o.Update(ctx, nv, na); !errors.Is(err, orchestrator.ErrPublisherMismatch) {
		t.Fatalf("update from the new DID without a rotation: %v", err)
	}
	// A statement for another app does not move this one.
	if err := o.Update(ctx, nv, na, orchestrator.WithRotations(rotation(t, "other", oldPub.key, newPub.key.DID(), now))); !errors.Is(err, orchestrator.ErrPublisherMismatch) || !errors.Is(err, registry.ErrInvalidRotation) {
		t.Fatalf("rotation of another app: %v", err)
	}
	rot := rotation(t, "vault", oldPub.key, newPub.key.DID(), now.Add(-time.Hour))
	if err := o.Update(ctx, nv, na, orchestrator.WithRotations(rot)); err != nil {
		t.Fatalf("update with the rotation statement: %v", err)
	}
	if s, _ := o.Status("vault"); s.Version != "1.1.0" || !s.Healthy || s.Publisher != newPub.key.DID() {
		t.Fatalf("after the rotation: %+v", s)
	}
	if b, _ := os.ReadFile(filepath.Join(o.SecretsDir("vault"), "db_password")); string(b) != string(secret) {
		t.Fatal("the rotated app lost its secret")
	}
	// The pin moved and is persisted: the old DID is now the stranger,
	// also after a restart, and the same statement cannot move it back
	// or be replayed.
	o2 := e.orch()
	ov, oa := oldPub.app("vault", "1.2.0", vaultCtrs, withSecrets)
	if err := o2.Update(ctx, ov, oa); !errors.Is(err, orchestrator.ErrPublisherMismatch) {
		t.Fatalf("update from the old DID after the rotation: %v", err)
	}
	back := rotation(t, "vault", newPub.key, oldPub.key.DID(), now.Add(-2*time.Hour))
	if err := o2.Update(ctx, ov, oa, orchestrator.WithRotations(back)); !errors.Is(err, registry.ErrInvalidRotation) {
		t.Fatalf("a rotation issued before the one applied: %v", err)
	}
	st, err := os.ReadFile(o2.StateFile("vault"))
	if err != nil || !strings.Contains(string(st), newPub.key.DID()) {
		t.Fatalf("state file does not pin the new DID: %v", err)
	}
	nv2, na2 := newPub.app("vault", "1.3.0", vaultCtrs, withSecrets)
	if err := o2.Update(ctx, nv2, na2); err != nil {
		t.Fatalf("update from the new DID: %v", err)
	}
	// A chain of two statements, oldest first, moves it twice.
	third := newFixture(t)
	chain := orchestrator.WithRotations(
		rotation(t, "vault", newPub.key, stranger.key.DID(), now.Add(-time.Minute)),
		rotation(t, "vault", stranger.key, third.key.DID(), now))
	tv, ta := third.app("vault", "2.0.0", vaultCtrs, withSecrets)
	if err := o2.Update(ctx, tv, ta, chain); err != nil {
		t.Fatalf("update through a chain of rotations: %v", err)
	}
}

func TestForgedRotationRefused(t *testing.T) {
	e := newEnv(t, memruntime.Config{})
	owner, stranger := newFixture(t), newFixture(t)
	ctx := context.Background()
	v, a := owner.app("vault", "2.0.0", vaultCtrs, withSecrets)
	o := e.orch()
	if err := o.Install(ctx, v, a); err != nil {
		t.Fatal(err)
	}
	before := snapshotApp(t, o, "vault", twinInspect(e))
	// The stranger writes "the owner hands vault to me" and signs it
	// itself, under the owner's keyid too.
	payload := []byte(`{"app":"vault","from":"` + owner.key.DID() + `","issued":"` + time.Now().UTC().Format(registry.ExpiresLayout) +
		`","schema":"archy.rotation/v1","to":"` + stranger.key.DID() + `"}`)
	forged, err := did.SignEnvelope(registry.RotationPayloadType, payload, stranger.key)
	if err != nil {
		t.Fatal(err)
	}
	forged.Signatures = append(forged.Signatures, did.Signature{KeyID: owner.key.DID(), Sig: forged.Signatures[0].Sig})
	fb, err := forged.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	// And a real statement by the owner to a third DID, presented for
	// the stranger's release.
	other := rotation(t, "vault", owner.key, newFixture(t).key.DID(), time.Now())
	// And one from the stranger's own DID.
	self := rotation(t, "vault", stranger.key, owner.key.DID(), time.Now())
	sv, sa := stranger.app("vault", "3.0.0", vaultCtrs, withSecrets)
	for name, rot := range map[string][]byte{"forged": fb, "to a third DID": other, "by the stranger": self} {
		err := o.Update(ctx, sv, sa, orchestrator.WithRotations(rot))
		if !errors.Is(err, orchestrator.ErrPublisherMismatch) {
			t.Fatalf("%s rotation: %v, want ErrPublisherMismatch", name, err)
		}
		if name != "to a third DID" && !errors.Is(err, registry.ErrInvalidRotation) {
			t.Errorf("%s rotation: %v, want it to say the statement is invalid", name, err)
		}
	}
	snapshotApp(t, o, "vault", twinInspect(e)).same(t, before)
}

// A state written before pins existed is pinned to its current release's
// publisher when the node reads it.
func TestStateWithoutPinIsPinnedToItsPublisher(t *testing.T) {
	e := newEnv(t, memruntime.Config{})
	owner, stranger := newFixture(t), newFixture(t)
	ctx := context.Background()
	v, a := owner.app("legacy", "1.0.0", vaultCtrs, withSecrets)
	o := e.orch()
	if err := o.Install(ctx, v, a); err != nil {
		t.Fatal(err)
	}
	var st map[string]any
	b, err := os.ReadFile(o.StateFile("legacy"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &st); err != nil || st["pin"] == nil {
		t.Fatalf("state has no pin: %s (%v)", b, err)
	}
	delete(st, "pin")
	b, _ = json.Marshal(st)
	if err := os.WriteFile(o.StateFile("legacy"), b, 0o600); err != nil {
		t.Fatal(err)
	}
	o2 := e.orch()
	if s, _ := o2.Status("legacy"); s.Publisher != owner.key.DID() {
		t.Fatalf("legacy state pinned to %q, want %s", s.Publisher, owner.key.DID())
	}
	sv, sa := stranger.app("legacy", "2.0.0", vaultCtrs, withSecrets)
	if err := o2.Update(ctx, sv, sa); !errors.Is(err, orchestrator.ErrPublisherMismatch) {
		t.Fatalf("update of a legacy state by a stranger: %v", err)
	}
}
