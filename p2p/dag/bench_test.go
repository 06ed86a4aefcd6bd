package dag

import (
	"bytes"
	"context"
	"testing"

	cid "github.com/ipfs/go-cid"
)

type discard struct{}

func (discard) PutLeaf(_ cid.Cid, _ uint64, _ []byte) error { return nil }
func (discard) PutNode(_ cid.Cid, _ []byte) error           { return nil }

// BenchmarkBuild chunks and hashes 64 MiB in memory: the parallel
// pipeline Build uses against the serial chunker it is held to.
func BenchmarkBuild(b *testing.B) {
	data := randBytes(64 << 20)
	for _, bc := range []struct {
		name string
		fn   func(context.Context, *bytes.Reader, Sink) error
	}{
		{"parallel", func(ctx context.Context, r *bytes.Reader, s Sink) error {
			_, _, err := buildParallel(ctx, r, s)
			return err
		}},
		{"serial", func(ctx context.Context, r *bytes.Reader, s Sink) error {
			_, _, err := buildSerial(ctx, r, s)
			return err
		}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			for range b.N {
				if err := bc.fn(context.Background(), bytes.NewReader(data), discard{}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
