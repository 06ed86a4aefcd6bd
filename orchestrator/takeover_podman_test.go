package orchestrator_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/archy-node/archy/did"
	"github.com/archy-node/archy/internal/podmantest"
	"github.com/archy-node/archy/orchestrator"
	"github.com/archy-node/archy/orchestrator/podman"
	"github.com/archy-node/archy/registry"
)

// busyboxRelease signs, with key, a vault-like app on real busybox: one
// container with two generated secrets and a data folder, that writes to
// its data folder as it starts and serves /www.
func busyboxRelease(t *testing.T, key *did.Key, id, version, script string) (*registry.Verified, map[string]string) {
	t.Helper()
	ref := "localhost/archytest/" + id + "-web:" + version
	archive := podmantest.BusyboxImage(t, ref, "vault "+version+" by "+key.DID())
	sum, err := registry.ReadOCIArchive(archive)
	if err != nil {
		t.Fatal(err)
	}
	m := &registry.Manifest{Schema: registry.Schema, ID: id, Name: id, Version: version, Publisher: key.DID(),
		Containers: []registry.Container{{
			Name:    "web",
			Image:   registry.Image{Ref: ref, CID: sum.CID.String(), Digest: sum.Digest},
			Command: []string{"/bin/sh", "-c", script},
			Env:     []registry.EnvVar{{Name: "ADMIN_PASSWORD", Secret: "admin_password"}, {Name: "SESSION_KEY", Secret: "session_key"}},
			Volumes: []registry.Volume{{Path: "vault", Mount: "/data"}},
			Health:  &registry.Health{Exec: []string{"/bin/sh", "-c", "test -s /data/started"}, Interval: "1s", Timeout: "5s", Retries: 30},
		}},
		GeneratedSecrets: []registry.Secret{{Name: "admin_password", Length: 20, Display: true}, {Name: "session_key", Length: 64, Charset: "hex"}},
	}
	env, _, err := registry.Sign(m, key)
	if err != nil {
		t.Fatal(err)
	}
	v, err := registry.VerifyParsed(env)
	if err != nil {
		t.Fatal(err)
	}
	return v, map[string]string{"web": archive}
}

// TestTakeoverRefusedOnPodman is the attack of issue 10 on real Podman:
// the owner installs a vault from DID A, which generates its secrets and
// writes its data; a stranger's DID B signs a release of the same id at a
// higher version that copies the data and the secrets out. The update is
// refused, and the owner's containers, data and secrets are untouched.
func TestTakeoverRefusedOnPodman(t *testing.T) {
	sock := podmantest.Socket(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	rt, err := podman.New(ctx, podman.Config{Socket: sock})
	if err != nil {
		t.Fatal(err)
	}
	owner, err := did.Generate()
	if err != nil {
		t.Fatal(err)
	}
	stranger, err := did.Generate()
	if err != nil {
		t.Fatal(err)
	}
	suffix := make([]byte, 4)
	_, _ = rand.Read(suffix)
	id := "takeover-" + hex.EncodeToString(suffix)
	logs := &logBuf{}
	o, err := orchestrator.New(orchestrator.Config{Runtime: rt, Dir: t.TempDir(), IDMapper: &orchestrator.PodmanUnshare{},
		Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})), HealthTimeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cctx, ccancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer ccancel()
		if err := o.Uninstall(cctx, id, true); err != nil && !errors.Is(err, orchestrator.ErrNotInstalled) {
			t.Errorf("clean up %s: %v", id, err)
		}
		if t.Failed() {
			t.Logf("orchestrator log:\n%s", logs.String())
		}
	})

	mine, mineArch := busyboxRelease(t, owner, id, "2.0.0",
		`date +%s%N > /data/started; echo "owner's records" > /data/records; exec httpd -f -p 8080 -h /www`)
	if err := o.Install(ctx, mine, mineArch); err != nil {
		t.Fatalf("install the owner's vault: %v", err)
	}
	theirs, theirArch := busyboxRelease(t, stranger, id, "3.0.0",
		`cp -r /data /www/loot; echo "$ADMIN_PASSWORD $SESSION_KEY" > /www/loot/secrets; echo pwned > /data/records; date > /data/started; exec httpd -f -p 8080 -h /www`)

	snap := func() appSnapshot {
		return snapshotApp(t, o, id, func(name string) string {
			c, err := rt.Inspect(ctx, name)
			if err != nil {
				return "missing: " + err.Error()
			}
			return c.ID + " " + c.Image + " " + string(c.State) + " " + c.StartedAt.String() + " " + c.Labels[orchestrator.LabelVersion]
		})
	}
	before := snap()
	if len(before.files) < 4 { // two secrets, the data written, the state
		t.Fatalf("the owner's vault has only %d files: %v", len(before.files), before.files)
	}

	err = o.Update(ctx, theirs, theirArch)
	if err == nil {
		t.Fatal("the stranger's release replaced the owner's vault (Update returned nil)")
	}
	if !errors.Is(err, orchestrator.ErrPublisherMismatch) {
		t.Errorf("update to the stranger's release: %v, want ErrPublisherMismatch", err)
	}
	t.Logf("refused: %v", err)
	if err := o.Install(ctx, theirs, theirArch); err == nil {
		t.Error("the stranger's release was installed over the owner's vault")
	}
	o.Pass(ctx)
	snap().same(t, before)
	s, err := o.Status(id)
	if err != nil || s.Version != "2.0.0" || !s.Healthy {
		t.Fatalf("the owner's vault after the attempt: %+v %v", s, err)
	}
	// Nothing of the stranger's reached the engine.
	if ok, err := rt.ImageExists(ctx, theirs.Manifest.Containers[0].Image.Ref); err != nil || ok {
		t.Errorf("the stranger's image was loaded (%v)", err)
	}
	if b, err := os.ReadFile(filepath.Join(o.DataDir(id), "vault", "records")); err != nil || string(b) != "owner's records\n" {
		t.Errorf("the owner's data: %q %v", b, err)
	}
}
