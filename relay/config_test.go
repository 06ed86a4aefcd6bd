package relay

import (
	"errors"
	"testing"
)

func TestConfigValidate(t *testing.T) {
	if err := (Config{}).Validate(); err != nil {
		t.Fatalf("zero Config: %v", err)
	}
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatalf("DefaultConfig: %v", err)
	}
	cases := []struct {
		field string
		cfg   Config
	}{
		{"Listen", Config{Listen: "7447"}},
		{"PubKey", Config{PubKey: "npub1xyz"}},
		{"MaxMessageSize", Config{MaxMessageSize: 100}},
		{"MaxSubscriptions", Config{MaxSubscriptions: -1}},
		{"MaxFilters", Config{MaxFilters: -1}},
		{"MaxLimit", Config{MaxLimit: -1}},
		{"EventRate", Config{EventRate: -1}},
		{"EventBurst", Config{EventBurst: -1}},
		{"MaxFutureSkew", Config{MaxFutureSkew: -1}},
		{"WriteTimeout", Config{WriteTimeout: -1}},
		{"SendBuffer", Config{SendBuffer: 1000}},
		{"SendBuffer", Config{MaxMessageSize: 1 << 20, SendBuffer: 1 << 20}},
	}
	for _, tc := range cases {
		err := tc.cfg.Validate()
		var cerr *ConfigError
		if !errors.As(err, &cerr) || cerr.Field != tc.field {
			t.Errorf("%+v: got %v, want an error naming %s", tc.cfg, err, tc.field)
		}
		if _, err := New(tc.cfg, nil); err == nil {
			t.Errorf("New accepted a bad %s", tc.field)
		}
	}
}
