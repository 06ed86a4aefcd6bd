package p2p

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// kuboTransfer times kubo's two-node transfer of the file in (the same
// bytes archy moved): two `ipfs daemon`s on loopback (the test profile:
// TCP on 127.0.0.1, no bootstrap, no mDNS), the file added on one with
// kubo's defaults, the other connected to it, then `ipfs cat` into a file
// that is fsynced, as the HTTP baseline writes. ipfs is the kubo binary
// (ARCHY_KUBO; `.ci/build-kubo.sh` builds one from the Go module proxy).
func kuboTransfer(b *testing.B, ipfs, in string, data []byte) time.Duration {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	run := func(repo string, args ...string) []byte {
		b.Helper()
		cmd := exec.CommandContext(ctx, ipfs, args...)
		cmd.Env = append(os.Environ(), "IPFS_PATH="+repo)
		out, err := cmd.Output()
		if err != nil {
			var stderr []byte
			if ee, ok := err.(*exec.ExitError); ok {
				stderr = ee.Stderr
			}
			b.Fatalf("ipfs %s: %v: %s", strings.Join(args, " "), err, stderr)
		}
		return out
	}
	daemon := func(repo string) {
		b.Helper()
		run(repo, "init", "--profile", "test")
		cmd := exec.CommandContext(ctx, ipfs, "daemon", "--enable-gc=false")
		cmd.Env = append(os.Environ(), "IPFS_PATH="+repo)
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			b.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() {
			_ = cmd.Process.Signal(os.Interrupt)
			done := make(chan struct{})
			go func() { _ = cmd.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(20 * time.Second):
				_ = cmd.Process.Kill()
				<-done
			}
		})
		ready := make(chan bool, 1)
		go func() {
			sc := bufio.NewScanner(stdout)
			ok := false
			for sc.Scan() {
				if !ok && strings.Contains(sc.Text(), "Daemon is ready") {
					ok = true
					ready <- true
				}
			}
			if !ok {
				ready <- false
			}
		}()
		select {
		case ok := <-ready:
			if !ok {
				b.Fatalf("kubo daemon in %s exited before it was ready", repo)
			}
		case <-time.After(time.Minute):
			b.Fatalf("kubo daemon in %s not ready in a minute", repo)
		}
	}
	src, dst := filepath.Join(b.TempDir(), "a"), filepath.Join(b.TempDir(), "b")
	daemon(src)
	daemon(dst)
	c := strings.TrimSpace(string(run(src, "add", "-Q", in)))
	var id struct{ Addresses []string }
	if err := json.Unmarshal(run(src, "id"), &id); err != nil || len(id.Addresses) == 0 {
		b.Fatalf("ipfs id: %v %+v", err, id)
	}
	run(dst, "swarm", "connect", id.Addresses[0])

	out := filepath.Join(b.TempDir(), "kubo.bin")
	f, err := os.Create(out)
	if err != nil {
		b.Fatal(err)
	}
	t0 := time.Now()
	cmd := exec.CommandContext(ctx, ipfs, "cat", c)
	cmd.Env = append(os.Environ(), "IPFS_PATH="+dst)
	cmd.Stdout = f
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		b.Fatalf("ipfs cat %s: %v: %s", c, err, stderr.String())
	}
	if err := f.Sync(); err != nil {
		b.Fatal(err)
	}
	d := time.Since(t0)
	_ = f.Close()
	got, err := os.ReadFile(out)
	if err != nil || !bytes.Equal(got, data) {
		b.Fatalf("kubo moved %d bytes, want the %d bytes added (%v)", len(got), len(data), err)
	}
	b.Logf("kubo %s: %.0f MiB/s", c, float64(len(data))/d.Seconds()/(1<<20))
	return d
}

// kuboFigure reports transfer-vs-kubo: kubo's time over archy's for the
// same file, when ARCHY_KUBO names a kubo binary.
func kuboFigure(b *testing.B, in string, data []byte, archy time.Duration) {
	ipfs := os.Getenv("ARCHY_KUBO")
	if ipfs == "" {
		b.Log("ARCHY_KUBO not set: transfer-vs-kubo skipped (.ci/build-kubo.sh builds kubo)")
		return
	}
	if _, err := os.Stat(ipfs); err != nil {
		b.Fatalf("ARCHY_KUBO: %v", err)
	}
	var kubo time.Duration
	for range b.N {
		kubo += kuboTransfer(b, ipfs, in, data)
	}
	b.Logf("transfer-vs-kubo: kubo %v, archy %v for %d MiB", kubo/time.Duration(b.N), archy/time.Duration(b.N), len(data)>>20)
	figure(b, "transfer-vs-kubo", kubo.Seconds()/archy.Seconds())
}
