package relay

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

func TestMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	s := start(t, Config{Metrics: reg})
	rl := connectWire(t, s)
	k := newKey(t)
	ev := k.sign(t, 1, time.Now().Unix(), nil, "counted")
	mustPublish(t, rl, ev)
	refusedWith(t, publish(t, rl, ev), "duplicate:")
	bad := ev
	bad.Content = "changed"
	refusedWith(t, publish(t, rl, bad), "invalid:")

	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			name := f.GetName()
			for _, l := range m.GetLabel() {
				name += "/" + l.GetValue()
			}
			switch {
			case m.Counter != nil:
				got[name] = m.Counter.GetValue()
			case m.Gauge != nil:
				got[name] = m.Gauge.GetValue()
			}
		}
	}
	for name, want := range map[string]float64{
		"archy_relay_events_total/accepted":  1,
		"archy_relay_events_total/duplicate": 1,
		"archy_relay_events_total/invalid":   1,
		"archy_relay_connections":            1,
		"archy_relay_stored_events":          1,
	} {
		if got[name] != want {
			t.Errorf("%s = %v, want %v (all: %v)", name, got[name], want, got)
		}
	}
	// One registry cannot take two relays' metrics.
	if _, err := New(Config{Metrics: reg}, nil); err == nil {
		t.Error("second relay registered on the same registry")
	}
}
