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
	"syscall"
	"testing"
	"time"
)

// Service is a private `podman system service` for tests that must freeze
// or watch the engine (hung-engine tests): its own storage and socket, run
// as the current user, in its own process group so that a signal reaches
// the child rootless Podman re-executes into.
type Service struct {
	URL   string // unix:// URL of its socket
	cmd   *exec.Cmd
	lines chan string
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
		// The service's storage holds files owned by subordinate IDs:
		// remove them from inside the user namespace.
		exec.Command("podman", "unshare", "rm", "-rf", dir).Run()
		os.RemoveAll(dir)
	})
	s.WaitLogged(t, "API service listening")
	return s
}

// follow reads the service's log from r until it ends (copied is
// closed then); dir is the service's folder.
func follow(r io.Reader, dir string) (s *Service, copied <-chan struct{}) {
	s = &Service{lines: make(chan string, 1024)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			select {
			case s.lines <- sc.Text():
			default:
			}
		}
	}()
	return s, done
}

// WaitLogged waits (up to a minute) for a log line containing substr.
func (s *Service) WaitLogged(t testing.TB, substr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := s.waitLogged(ctx, substr); err != nil {
		t.Fatal(err)
	}
}

func (s *Service) waitLogged(ctx context.Context, substr string) error {
	for {
		select {
		case l := <-s.lines:
			if strings.Contains(l, substr) {
				return nil
			}
		case <-ctx.Done():
			return fmt.Errorf("podman service never logged %q: %w", substr, ctx.Err())
		}
	}
}

// Drain forgets the log lines read so far.
func (s *Service) Drain() {
	for {
		select {
		case <-s.lines:
		default:
			return
		}
	}
}

// Signal sends sig to the service's process group (SIGSTOP freezes it).
func (s *Service) Signal(t testing.TB, sig syscall.Signal) {
	t.Helper()
	if err := syscall.Kill(-s.cmd.Process.Pid, sig); err != nil {
		t.Fatalf("signal %v to the podman service: %v", sig, err)
	}
}
