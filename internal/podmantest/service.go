package podmantest

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Service is a private `podman system service` for tests that must freeze
// or watch the engine (hung-engine tests): its own storage and socket, run
// as the current user, in its own process group so that a signal reaches
// the child rootless Podman re-executes into.
type Service struct {
	URL string // unix:// URL of its socket
	cmd *exec.Cmd
	log *serviceLog
}

// PrivateService starts a Service logging at logLevel ("debug" shows each
// request) and waits until it listens; the test's cleanup stops it and
// removes its storage.
func PrivateService(t testing.TB, logLevel string) *Service {
	t.Helper()
	if _, err := exec.LookPath("podman"); err != nil {
		Require(t, "podman is not installed")
	}
	dir, err := os.MkdirTemp("", "archy-podman-")
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "podman.sock")
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, "podman",
		"--root", filepath.Join(dir, "root"), "--runroot", filepath.Join(dir, "runroot"),
		"--log-level", logLevel, "system", "service", "--time=0", "unix://"+sock)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGCONT)
		return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("start podman system service: %v", err)
	}
	s, copied := follow(stderr, dir)
	s.URL, s.cmd = "unix://"+sock, cmd
	t.Cleanup(func() {
		cancel()
		<-copied
		cmd.Wait()
		s.log.close()
		// The service's storage holds files owned by subordinate IDs:
		// remove them from inside the user namespace.
		exec.Command("podman", "unshare", "rm", "-rf", dir).Run()
		os.RemoveAll(dir)
	})
	s.WaitLogged(t, "API service listening")
	return s
}

// serviceLog is the service's stderr, copied to a file in its folder as
// it comes, and a cursor: what WaitLogged and Drain have consumed. Nothing
// is dropped however much Podman writes before a test waits, and memory
// stays at one line (the file grows on disk for the test's lifetime).
type serviceLog struct {
	f *os.File

	mu      sync.Mutex
	size    int64         // bytes written to f
	ended   bool          // the stream ended (the service exited)
	changed chan struct{} // closed, and replaced, when size or ended change
	read    int64         // bytes of f consumed by WaitLogged and Drain
}

// follow copies the service's log from r to a file in dir until r ends
// (copied is closed then).
func follow(r io.Reader, dir string) (s *Service, copied <-chan struct{}) {
	l := &serviceLog{changed: make(chan struct{})}
	s = &Service{log: l}
	done := make(chan struct{})
	f, err := os.Create(filepath.Join(dir, "service.log"))
	if err != nil {
		// WaitLogged reports it; the service must still not block on a
		// full pipe.
		go func() { defer close(done); io.Copy(io.Discard, r) }()
		return s, done
	}
	l.f = f
	go func() {
		defer close(done)
		buf := make([]byte, 32<<10)
		for {
			n, err := r.Read(buf)
			if n > 0 {
				var werr error
				if n, werr = f.Write(buf[:n]); werr != nil {
					err = fmt.Errorf("keep the podman service log: %w", werr)
				}
			}
			l.mu.Lock()
			l.size += int64(n)
			l.ended = err != nil
			close(l.changed)
			l.changed = make(chan struct{})
			l.mu.Unlock()
			if err != nil {
				// Past a write error, keep reading so the service never
				// blocks on a full pipe.
				io.Copy(io.Discard, r)
				return
			}
		}
	}()
	return s, done
}

func (l *serviceLog) close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f != nil {
		l.f.Close()
		l.f = nil
	}
}

// WaitLogged waits (up to a minute) for a log line, written after the
// last line it found or the last Drain, that contains substr.
func (s *Service) WaitLogged(t testing.TB, substr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := s.waitLogged(ctx, substr); err != nil {
		t.Fatal(err)
	}
}

func (s *Service) waitLogged(ctx context.Context, substr string) error {
	l := s.log
	l.mu.Lock()
	defer l.mu.Unlock()
	for {
		if l.f == nil {
			return fmt.Errorf("podman service log: not kept (no file), cannot wait for %q", substr)
		}
		// Complete lines from the cursor; a last line without its newline
		// counts only once the stream has ended.
		br := bufio.NewReader(io.NewSectionReader(l.f, l.read, l.size-l.read))
		for {
			line, err := br.ReadString('\n')
			if err != nil && !l.ended {
				break
			}
			l.read += int64(len(line))
			if strings.Contains(line, substr) {
				return nil
			}
			if err != nil {
				return fmt.Errorf("podman service log ended without %q", substr)
			}
		}
		changed := l.changed
		l.mu.Unlock()
		select {
		case <-changed:
			l.mu.Lock()
		case <-ctx.Done():
			l.mu.Lock()
			return fmt.Errorf("podman service never logged %q: %w", substr, ctx.Err())
		}
	}
}

// Drain forgets the log lines written so far.
func (s *Service) Drain() {
	s.log.mu.Lock()
	defer s.log.mu.Unlock()
	s.log.read = s.log.size
}

// Signal sends sig to the service's process group (SIGSTOP freezes it).
func (s *Service) Signal(t testing.TB, sig syscall.Signal) {
	t.Helper()
	if err := syscall.Kill(-s.cmd.Process.Pid, sig); err != nil {
		t.Fatalf("signal %v to the podman service: %v", sig, err)
	}
}
