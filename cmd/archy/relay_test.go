package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestRelayRun(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "relay")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out, w := io.Pipe()
	cmd := newRelayCmd()
	cmd.SetArgs([]string{"run", "--listen", "127.0.0.1:0", "--data", dir, "--name", "cmd test", "--max-filters", "3", "--log-level", "warn"})
	cmd.SetOut(w)
	cmd.SetErr(io.Discard)
	done := make(chan error, 1)
	go func() {
		done <- cmd.ExecuteContext(ctx)
		w.Close()
	}()

	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("no URL printed: %v", err)
	}
	url := strings.TrimSpace(line)
	if !strings.HasPrefix(url, "ws://127.0.0.1:") {
		t.Fatalf("printed %q, want ws://127.0.0.1:PORT", url)
	}
	go io.Copy(io.Discard, out)

	reqCtx, reqCancel := context.WithTimeout(ctx, 10*time.Second)
	defer reqCancel()
	req, _ := http.NewRequestWithContext(reqCtx, http.MethodGet, "http://"+strings.TrimPrefix(url, "ws://"), nil)
	req.Header.Set("Accept", "application/nostr+json")
	client := &http.Client{}
	defer client.CloseIdleConnections()
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var info struct {
		Name       string `json:"name"`
		Limitation struct {
			MaxFilters int `json:"max_filters"`
		} `json:"limitation"`
	}
	err = json.NewDecoder(resp.Body).Decode(&info)
	resp.Body.Close()
	if err != nil || info.Name != "cmd test" || info.Limitation.MaxFilters != 3 {
		t.Fatalf("NIP-11: %+v, %v", info, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "events.log")); err != nil {
		t.Fatalf("no event log in --data: %v", err)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("relay run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("relay run did not stop when its context ended")
	}
}

func TestRelayRunBadFlag(t *testing.T) {
	cmd := newRelayCmd()
	cmd.SetArgs([]string{"run", "--data", t.TempDir(), "--max-subscriptions", "-1"})
	cmd.SetOut(io.Discard)
	cmd.SetErr(io.Discard)
	err := cmd.ExecuteContext(context.Background())
	if err == nil || !strings.Contains(err.Error(), "--max-subscriptions") {
		t.Fatalf("got %v, want an error naming --max-subscriptions", err)
	}
}
