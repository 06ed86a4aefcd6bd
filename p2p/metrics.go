package p2p

import (
	"github.com/archy-node/archy/p2p/exchange"
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the node's counters, registered on the injected registry.
type metrics struct {
	blocksIn    prometheus.Counter
	bytesIn     prometheus.Counter
	bytesOut    prometheus.Counter
	badBlocks   prometheus.Counter
	peersBanned prometheus.Counter
	peersSlow   prometheus.Counter
	piecesBusy  prometheus.Counter
	refusals    prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	c := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Namespace: "archy", Subsystem: "p2p", Name: name, Help: help})
	}
	m := &metrics{
		blocksIn:    c("blocks_received_total", "Verified blocks received from peers."),
		bytesIn:     c("block_bytes_received_total", "Bytes of verified blocks received from peers."),
		bytesOut:    c("block_bytes_sent_total", "Bytes of blocks sent to peers by the piece exchange."),
		badBlocks:   c("bad_blocks_total", "Blocks dropped because their bytes did not match their CID."),
		peersBanned: c("peers_banned_total", "Peers disconnected for sending bad blocks."),
		peersSlow:   c("peers_abandoned_total", "Peers abandoned for sending too slowly."),
		piecesBusy:  c("pieces_busy_total", "Pieces asked for while every upload slot was taken (answered busy)."),
		refusals:    c("super_seed_refusals_total", "Pieces refused by super-seeding (askers pointed at peers that have them)."),
	}
	if reg != nil {
		for _, col := range []prometheus.Collector{m.blocksIn, m.bytesIn, m.bytesOut, m.badBlocks, m.peersBanned, m.peersSlow, m.piecesBusy, m.refusals} {
			_ = reg.Register(col)
		}
	}
	return m
}

// exchange returns the counters the piece exchange adds to.
func (m *metrics) exchange() exchange.Metrics {
	return exchange.Metrics{BlocksIn: m.blocksIn, BytesIn: m.bytesIn, BytesOut: m.bytesOut, BadBlocks: m.badBlocks, PeersSlow: m.peersSlow,
		Busy: m.piecesBusy, Refusals: m.refusals}
}
