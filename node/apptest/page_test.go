package apptest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"image/png"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/archy-node/archy/internal/podmantest"
	"github.com/archy-node/archy/node"
	"github.com/archy-node/archy/p2p"
)

const pagePort = port + 3

// browser starts headless Chromium (Debian's, installed by the set-up)
// for the test's lifetime.
func browser(t *testing.T) context.Context {
	t.Helper()
	exe := os.Getenv("ARCHY_CHROMIUM")
	if exe == "" {
		podmantest.Require(t, "ARCHY_CHROMIUM is unset: no browser to drive (as root: make test-env installs chromium)")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(exe),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
		// This machine has no network: keep Chromium from calling home.
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-quic", true),
	)
	if os.Geteuid() == 0 {
		opts = append(opts, chromedp.NoSandbox)
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	// The first run starts the browser, for the context's lifetime: no
	// deadline on it.
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("start chromium %s: %v", exe, err)
	}
	return ctx
}

// do runs steps with a deadline.
func do(t *testing.T, ctx context.Context, d time.Duration, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	c, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	if err := chromedp.Do(c, steps...); err != nil {
		t.Fatalf("browser: %v", err)
	}
}

// eval returns a JavaScript expression's string value.
func eval(t *testing.T, ctx context.Context, js string) string {
	t.Helper()
	c, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	s, err := chromedp.Run(c, chromedp.Evaluate[string](js))
	if err != nil {
		t.Fatalf("browser: evaluate %.60q: %v", js, err)
	}
	return s
}

// TestPageInstallsAndUninstalls drives the node's page in a real browser:
// a release announced on a publisher's relay appears in the marketplace,
// Install fetches it from the swarm with the progress bar going to 100%,
// My apps links to the app's UI, which answers, and Uninstall with purge
// leaves nothing; a screenshot is saved and checked.
func TestPageInstallsAndUninstalls(t *testing.T) {
	sock := podmantest.Socket(t)
	ctx := browser(t)
	var tag [4]byte
	_, _ = rand.Read(tag[:])
	ref := "localhost/archy-test/pageapp:" + hex.EncodeToString(tag[:])
	body := "hello from the page " + hex.EncodeToString(tag[:])
	l, envJSON, v, key := signedApp(t, "pageapp", ref, body, pagePort)

	// The developer's node keeps the image and announces the release.
	pub := startNode(t, node.Config{DataDir: t.TempDir(), APIListen: "127.0.0.1:0", RelayListen: "127.0.0.1:0",
		Podman: node.PodmanConfig{Off: true},
		P2P:    p2p.Config{ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0"}}})
	data, err := os.ReadFile(l.Archives["web"])
	if err != nil {
		t.Fatal(err)
	}
	publishRelease(t, pub, data, envJSON, v, key)

	// The owner's node reads the developer's relay, and finds the
	// developer's node there too (no bootstrap list).
	own := startNode(t, node.Config{DataDir: t.TempDir(), APIListen: "127.0.0.1:0", RelayListen: "127.0.0.1:0",
		Relays: pub.RelayURLs()[:1],
		Podman: node.PodmanConfig{Socket: sock},
		P2P:    p2p.Config{ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0"}}})
	t.Cleanup(func() { call(t, own, http.MethodDelete, "/api/v1/apps/pageapp?purge=1", nil) })

	card := `[data-app="pageapp"]`
	do(t, ctx, 30*time.Second, chromedp.Navigate(own.APIURL()+"/#token="+own.Token()))
	if h := eval(t, ctx, `location.hash`); h != "" {
		t.Errorf("the token stayed in the address bar: %q", h)
	}
	do(t, ctx, 60*time.Second, chromedp.WaitVisible(chromedp.CSS(card+` button[data-action="install"]`)))
	do(t, ctx, 10*time.Second, chromedp.Click(chromedp.CSS(card+` button[data-action="install"]`)))

	// Watch the bar: it only grows, and ends full and done.
	var seen []string
	last := -1.0
	deadline := time.Now().Add(3 * time.Minute)
	for {
		f := eval(t, ctx, `(() => { const p = document.querySelector('`+card+` .progress'); return p ? p.dataset.fraction + (p.classList.contains('done') ? ' done' : p.classList.contains('failed') ? ' failed: ' + p.textContent : '') : '' })()`)
		if f != "" && (len(seen) == 0 || seen[len(seen)-1] != f) {
			seen = append(seen, f)
			frac, _ := strconv.ParseFloat(strings.Fields(f)[0], 64)
			if frac < last {
				t.Fatalf("the bar went back: %v", seen)
			}
			last = frac
		}
		if strings.Contains(f, "failed") {
			t.Fatalf("install failed in the page: %v", seen)
		}
		if strings.HasSuffix(f, " done") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the bar did not finish in 3 min: %v", seen)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !strings.HasPrefix(seen[len(seen)-1], "1 ") {
		t.Fatalf("the bar ended at %v", seen)
	}
	t.Logf("progress seen: %v", seen)

	// A screenshot of the marketplace with the finished bar.
	sctx, scancel := context.WithTimeout(ctx, 20*time.Second)
	shot, err := chromedp.Run(sctx, chromedp.FullScreenshot(100)) // 100: PNG
	scancel()
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	dir := os.Getenv("ARCHY_SCREENSHOT_DIR")
	if dir == "" {
		dir = t.TempDir()
	}
	file := filepath.Join(dir, "page-installed.png")
	if err := os.WriteFile(file, shot, 0o644); err != nil {
		t.Fatal(err)
	}
	checkNotBlank(t, file)

	// My apps links to the app's UI, which answers with the app's page.
	do(t, ctx, 10*time.Second, chromedp.Click(chromedp.CSS(`#tab-mine`)))
	do(t, ctx, 30*time.Second, chromedp.WaitVisible(chromedp.CSS(`[data-installed="pageapp"] a.ui-link`)))
	ui := eval(t, ctx, `document.querySelector('[data-installed="pageapp"] a.ui-link').getAttribute('href')`)
	if want := fmt.Sprintf("http://127.0.0.1:%d/", pagePort); ui != want {
		t.Fatalf("UI link %q, want %q", ui, want)
	}
	resp, err := http.Get(ui)
	if err != nil {
		t.Fatalf("the app's UI does not answer: %v", err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(got), body) {
		t.Fatalf("the app's UI answered %q", got)
	}
	do(t, ctx, 30*time.Second, chromedp.Navigate(ui))
	if shown := eval(t, ctx, `document.body.innerText`); !strings.Contains(shown, body) {
		t.Fatalf("the browser shows %q at the app's UI", shown)
	}

	// Uninstall with purge, from the page: the app goes, nothing is left.
	do(t, ctx, 30*time.Second, chromedp.Navigate(own.APIURL()+"/"), chromedp.Click(chromedp.CSS(`#tab-mine`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-installed="pageapp"] button[data-action="uninstall-purge"]`)))
	// The page asks before a purge; the owner says yes.
	eval(t, ctx, `(window.confirm = () => true, 'ok')`)
	do(t, ctx, 10*time.Second, chromedp.Click(chromedp.CSS(`[data-installed="pageapp"] button[data-action="uninstall-purge"]`)))
	deadline = time.Now().Add(2 * time.Minute)
	for {
		_, out := call(t, own, http.MethodGet, "/api/v1/apps", nil)
		gone := eval(t, ctx, `document.querySelector('[data-installed="pageapp"]') ? 'no' : 'yes'`)
		if strings.TrimSpace(out) == "[]" && gone == "yes" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after uninstall: the API lists %s; gone from the page: %s", out, gone)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if _, err := os.Stat(filepath.Join(own.DataDir(), "apps", "data", "pageapp")); !os.IsNotExist(err) {
		t.Errorf("the purge left the app's data folder: %v", err)
	}
	if _, err := http.Get(ui); err == nil {
		t.Error("the app's UI still answers after the uninstall")
	}
}

// checkNotBlank fails unless file is a PNG with something drawn on it.
func checkNotBlank(t *testing.T, file string) {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("screenshot %s: %v", file, err)
	}
	colors := map[[3]uint32]bool{}
	r := img.Bounds()
	for y := r.Min.Y; y < r.Max.Y; y += 3 {
		for x := r.Min.X; x < r.Max.X; x += 3 {
			cr, cg, cb, _ := img.At(x, y).RGBA()
			colors[[3]uint32{cr >> 8, cg >> 8, cb >> 8}] = true
		}
	}
	if r.Dx() < 400 || r.Dy() < 300 || len(colors) < 16 {
		t.Fatalf("screenshot %s looks blank: %dx%d, %d colours", file, r.Dx(), r.Dy(), len(colors))
	}
	t.Logf("screenshot %s: %dx%d, %d colours", file, r.Dx(), r.Dy(), len(colors))
}
