package relay

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the relay's Prometheus metrics, registered on
// Config.Metrics when it is set.
type metrics struct {
	events      *prometheus.CounterVec // by result
	connections prometheus.Gauge
	refused     *prometheus.CounterVec // websocket upgrades, by reason
	dropped     prometheus.Counter
}

// Results of an EVENT, the values of archy_relay_events_total's label.
const (
	resultAccepted    = "accepted"
	resultEphemeral   = "ephemeral"
	resultDuplicate   = "duplicate"
	resultSuperseded  = "superseded"
	resultDeleted     = "deleted"
	resultFull        = "full"
	resultInvalid     = "invalid"
	resultRateLimited = "rate_limited"
	resultError       = "error"
)

// Reasons a websocket upgrade is refused, the label of
// archy_relay_connections_refused_total.
const (
	refusedOrigin      = "origin"
	refusedIP          = "ip"
	refusedOriginLimit = "origin_limit"
	refusedFull        = "full"
)

func newMetrics(reg prometheus.Registerer, st *store) (*metrics, error) {
	m := &metrics{
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "archy_relay_events_total",
			Help: "EVENT messages received, by result: accepted, ephemeral, duplicate, superseded, deleted, full, invalid, rate_limited, error.",
		}, []string{"result"}),
		connections: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "archy_relay_connections",
			Help: "Websocket clients connected.",
		}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "archy_relay_connections_refused_total",
			Help: "Websocket upgrades refused, by reason: origin (browser origin not allowed), ip (too many from one address), origin_limit (too many from one origin), full (MaxConnections, or shutting down).",
		}, []string{"reason"}),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "archy_relay_slow_clients_dropped_total",
			Help: "Clients disconnected because they did not read fast enough.",
		}),
	}
	if reg == nil {
		return m, nil
	}
	stored := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "archy_relay_stored_events",
		Help: "Events stored.",
	}, func() float64 { return float64(st.len()) })
	for _, c := range []prometheus.Collector{m.events, m.connections, m.refused, m.dropped, stored} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register relay metrics: %w", err)
		}
	}
	return m, nil
}
