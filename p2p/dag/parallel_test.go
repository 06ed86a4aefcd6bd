package dag

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"testing/iotest"

	cid "github.com/ipfs/go-cid"
)

// The parallel pipeline finds exactly the boundaries of the serial
// chunker, for any input and any segment size.
func TestParallelMatchesChunker(t *testing.T) {
	random := randBytes(5<<20 + 12345)
	zeros := make([]byte, 3<<20)
	archive := tarNamed(t, "a-very-long-name-that-needs-a-pax-header/%0120d",
		randBytes(MaxChunk+3), randBytes(100), randBytes(2*MaxChunk), randBytes(MinChunk), randBytes(3<<20))
	for _, seg := range []int{512 << 10, 1<<20 + 7, 8 << 20} {
		for _, tc := range []struct {
			name string
			data []byte
		}{
			{"empty", nil}, {"short", random[:MinChunk-1]}, {"one chunk", random[:MinChunk+100]},
			{"random", random}, {"zeros", zeros}, {"tar", archive},
		} {
			t.Run(fmt.Sprintf("%s/segment %d", tc.name, seg), func(t *testing.T) {
				a, b := &memStore{m: map[cid.Cid][]byte{}}, &memStore{m: map[cid.Cid][]byte{}}
				want, wn, err := buildSerial(context.Background(), bytes.NewReader(tc.data), funcSink(a.put))
				if err != nil {
					t.Fatal(err)
				}
				got, gn, err := pipeline{segment: seg}.build(context.Background(), iotest.HalfReader(bytes.NewReader(tc.data)), funcSink(b.put))
				if err != nil {
					t.Fatal(err)
				}
				if got != want || gn != wn {
					wl, _, _ := Leaves(context.Background(), want, a.get)
					gl, _, _ := Leaves(context.Background(), got, b.get)
					t.Fatalf("parallel root %s (%d bytes, %d leaves), serial %s (%d bytes, %d leaves)", got, gn, len(gl), want, wn, len(wl))
				}
			})
		}
	}
}

func TestParallelStopsOnError(t *testing.T) {
	r := iotest.TimeoutReader(bytes.NewReader(randBytes(20 << 20)))
	if _, _, err := buildParallel(context.Background(), r, funcSink((&memStore{m: map[cid.Cid][]byte{}}).put)); err == nil {
		t.Fatal("a failing reader built a file")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := buildParallel(ctx, bytes.NewReader(randBytes(20<<20)), funcSink((&memStore{m: map[cid.Cid][]byte{}}).put)); err == nil {
		t.Fatal("a cancelled build succeeded")
	}
}

// Builds running at once, and one after another, share the pooled buffers
// without seeing each other's bytes.
func TestParallelBuildsShareBuffers(t *testing.T) {
	inputs := [][]byte{randBytes(9<<20 + 1), randBytes(3 << 20), randBytes(13<<20 + 4097)}
	want := make([]cid.Cid, len(inputs))
	for i, in := range inputs {
		c, _, err := buildSerial(context.Background(), bytes.NewReader(in), funcSink((&memStore{m: map[cid.Cid][]byte{}}).put))
		if err != nil {
			t.Fatal(err)
		}
		want[i] = c
	}
	for round := range 2 {
		errs := make(chan error, len(inputs))
		for i, in := range inputs {
			go func() {
				got, _, err := buildParallel(context.Background(), bytes.NewReader(in), funcSink((&memStore{m: map[cid.Cid][]byte{}}).put))
				if err == nil && got != want[i] {
					err = fmt.Errorf("round %d, input %d: root %s, serial %s", round, i, got, want[i])
				}
				errs <- err
			}()
		}
		for range inputs {
			if err := <-errs; err != nil {
				t.Fatal(err)
			}
		}
	}
}
