package paths

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
)

func TestDataDir(t *testing.T) {
	tests := []struct {
		name, xdg, home string
		homeErr         error
		want, wantErr   string
	}{
		{"XDG_DATA_HOME", "/xdg/data", "/home/u", nil, "/xdg/data/archy", ""},
		{"home", "", "/home/u", nil, "/home/u/.local/share/archy", ""},
		{"relative XDG_DATA_HOME is ignored", "rel/data", "/home/u", nil, "/home/u/.local/share/archy", ""},
		{"no home", "", "", errors.New("$HOME is not defined"), "", "$HOME is not defined"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := dataDir(
				func(k string) string {
					if k == "XDG_DATA_HOME" {
						return tt.xdg
					}
					return ""
				},
				func() (string, error) { return tt.home, tt.homeErr })
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("dataDir = %q, %v; want an error saying %q", got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("dataDir = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
	t.Run("no home is ErrNoDataDir", func(t *testing.T) {
		_, err := dataDir(func(string) string { return "" }, func() (string, error) { return "", nil })
		if !errors.Is(err, ErrNoDataDir) {
			t.Fatalf("err = %v, want ErrNoDataDir", err)
		}
	})
	t.Run("environment", func(t *testing.T) {
		t.Setenv("XDG_DATA_HOME", "/tmp/xdg-test")
		if got, err := DataDir(); err != nil || got != "/tmp/xdg-test/archy" {
			t.Fatalf("DataDir = %q, %v", got, err)
		}
	})
}

func TestResolve(t *testing.T) {
	env := map[string]string{}
	getenv := func(k string) string { return env[k] }
	home := func() (string, error) { return "/home/u", nil }
	if got, err := resolve("/given", getenv, home); err != nil || got != "/given" {
		t.Fatalf("given folder: %q, %v", got, err)
	}
	if got, err := resolve("", getenv, home); err != nil || got != "/home/u/.local/share/archy" {
		t.Fatalf("default: %q, %v", got, err)
	}
	env[Env] = "/from/env"
	if got, err := resolve("", getenv, home); err != nil || got != "/from/env" {
		t.Fatalf("%s: %q, %v", Env, got, err)
	}
	if got, err := resolve("/given", getenv, home); err != nil || got != "/given" {
		t.Fatalf("the flag wins over %s: %q, %v", Env, got, err)
	}
	env[Env] = "rel"
	if got, err := resolve("", getenv, home); err != nil || !filepath.IsAbs(got) || filepath.Base(got) != "rel" {
		t.Fatalf("relative %s: %q, %v; want it made absolute", Env, got, err)
	}
}
