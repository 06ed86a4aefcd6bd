package paths

import (
	"errors"
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
		{"no home", "", "", errors.New("$HOME is not defined"), "", "--data DIR"},
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
	t.Run("environment", func(t *testing.T) {
		t.Setenv("XDG_DATA_HOME", "/tmp/xdg-test")
		if got, err := DataDir(); err != nil || got != "/tmp/xdg-test/archy" {
			t.Fatalf("DataDir = %q, %v", got, err)
		}
	})
}
