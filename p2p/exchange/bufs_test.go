package exchange

import (
	"testing"

	"github.com/archy-node/archy/p2p/dag"
)

func TestBufPool(t *testing.T) {
	var p bufPool
	for _, tc := range []struct{ size, want int }{
		{0, minBuf},
		{1, minBuf},
		{minBuf, minBuf},
		{minBuf + 1, 2 * minBuf},
		{dag.AvgChunk, dag.AvgChunk},
		{dag.AvgChunk + 1, 2 * dag.AvgChunk},
		{dag.MaxChunk, dag.MaxChunk},
		{dag.MaxChunk + 1, dag.MaxChunk + 1}, // no class: its own buffer
	} {
		b := p.get(tc.size)
		if len(*b) != tc.want {
			t.Errorf("get(%d): %d bytes, want %d", tc.size, len(*b), tc.want)
		}
		p.put(b)
	}
}
