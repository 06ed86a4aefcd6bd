package dag

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/archy-node/archy/cas"
	cid "github.com/ipfs/go-cid"
)

var casSum = cas.SumCodec

type memStore struct {
	mu sync.Mutex
	m  map[cid.Cid][]byte
}

func (s *memStore) put(c cid.Cid, d []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[c] = append([]byte(nil), d...)
	return nil
}

func (s *memStore) get(_ context.Context, c cid.Cid) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d, ok := s.m[c]
	if !ok {
		return nil, errors.New("missing")
	}
	return d, nil
}

func build(t *testing.T, data []byte) (*memStore, cid.Cid, []Link) {
	t.Helper()
	s := &memStore{m: map[cid.Cid][]byte{}}
	root, size, err := Build(context.Background(), bytes.NewReader(data), s.put)
	if err != nil {
		t.Fatal(err)
	}
	if size != uint64(len(data)) {
		t.Fatalf("size %d, want %d", size, len(data))
	}
	leaves, total, err := Leaves(context.Background(), root, s.get)
	if err != nil {
		t.Fatal(err)
	}
	if total != size {
		t.Fatalf("leaves hold %d bytes, want %d", total, size)
	}
	var buf bytes.Buffer
	for _, l := range leaves {
		d, _ := s.get(context.Background(), l.Cid)
		buf.Write(d)
	}
	if !bytes.Equal(buf.Bytes(), data) {
		t.Fatal("leaves do not reassemble the input")
	}
	return s, root, leaves
}

func TestBuildRoundTrip(t *testing.T) {
	for _, n := range []int{0, 1, MinChunk, MaxChunk + 1, 5<<20 + 3} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			data := make([]byte, n)
			_, _ = rand.Read(data)
			_, root, leaves := build(t, data)
			if !strings.HasPrefix(root.String(), "bafyb4i") {
				t.Fatalf("root %s", root)
			}
			for _, l := range leaves {
				if !strings.HasPrefix(l.Cid.String(), "bafkr4i") {
					t.Fatalf("leaf %s", l.Cid)
				}
				if l.Size > MaxChunk {
					t.Fatalf("leaf of %d bytes", l.Size)
				}
			}
		})
	}
}

func TestDeepTree(t *testing.T) {
	// More leaves than MaxLinks forces a second level.
	leaves := make([]Link, MaxLinks+5)
	s := &memStore{m: map[cid.Cid][]byte{}}
	for i := range leaves {
		d := []byte(fmt.Sprint(i))
		lc := sumRaw(d)
		_ = s.put(lc, d)
		leaves[i] = Link{Cid: lc, Size: uint64(len(d))}
	}
	root, err := BuildTree(leaves, s.put)
	if err != nil {
		t.Fatal(err)
	}
	got, _, err := Leaves(context.Background(), root, s.get)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(leaves) || got[MaxLinks+4].Cid != leaves[MaxLinks+4].Cid {
		t.Fatalf("got %d leaves", len(got))
	}
}

// An edit in the middle of a file changes only the chunks around it.
func TestChunkingIsLocal(t *testing.T) {
	data := make([]byte, 16<<20)
	_, _ = rand.Read(data)
	_, _, a := build(t, data)
	edited := append([]byte(nil), data[:8<<20]...)
	edited = append(edited, []byte("inserted bytes shift everything after them")...)
	edited = append(edited, data[8<<20:]...)
	_, _, b := build(t, edited)
	old := map[cid.Cid]bool{}
	for _, l := range a {
		old[l.Cid] = true
	}
	var newBytes uint64
	for _, l := range b {
		if !old[l.Cid] {
			newBytes += l.Size
		}
	}
	if newBytes > 2*MaxChunk {
		t.Fatalf("an insert changed %d bytes of chunks", newBytes)
	}
}

func TestDecodeRejects(t *testing.T) {
	for _, tc := range []struct {
		name string
		data []byte
	}{
		{"garbage", []byte("not protobuf")},
		{"empty", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := sumPB(tc.data)
			if _, err := Decode(c, tc.data); err == nil {
				t.Fatal("decoded a bad node")
			}
		})
	}
}

func FuzzDecode(f *testing.F) {
	_, _, good, _ := EncodeNode([]Link{{Cid: sumRaw([]byte("x")), Size: 1}})
	f.Add(good)
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		_, _ = Decode(sumPB(data), data)
	})
}

func sumRaw(d []byte) cid.Cid { return casSum(0x55, d) }
func sumPB(d []byte) cid.Cid  { return casSum(0x70, d) }

// cutRef is FastCDC's byte-at-a-time loop, the reference for cut.
func cutRef(data []byte) int {
	n := len(data)
	if n <= MinChunk {
		return n
	}
	n = min(n, MaxChunk)
	normal := min(AvgChunk, n)
	var h uint64
	i := MinChunk
	for ; i < normal; i++ {
		h = h<<1 + gear[data[i]]
		if h&maskS == 0 {
			return i
		}
	}
	for ; i < n; i++ {
		h = h<<1 + gear[data[i]]
		if h&maskL == 0 {
			return i
		}
	}
	return n
}

func TestCutMatchesReference(t *testing.T) {
	data := make([]byte, 16<<20)
	_, _ = rand.Read(data)
	zeros := make([]byte, 3*MaxChunk)
	for _, tc := range []struct {
		name string
		data []byte
	}{{"random", data}, {"zeros", zeros}, {"short", data[:MinChunk+5]}} {
		t.Run(tc.name, func(t *testing.T) {
			chunks := 0
			for off := 0; off < len(tc.data); chunks++ {
				w := tc.data[off:min(off+MaxChunk+int(off%7), len(tc.data))]
				got, want := cut(w), cutRef(w)
				if got != want {
					t.Fatalf("chunk %d at %d: cut %d, reference %d", chunks, off, got, want)
				}
				off += got
			}
		})
	}
}

// scan finds every position the byte-at-a-time loop finds, at each lane
// of its rounds: masks of a few bits hit often, from any start and hash.
func TestScanMatchesReference(t *testing.T) {
	data := make([]byte, 1<<16)
	_, _ = rand.Read(data)
	for _, mask := range []uint64{maskS, maskL, 0x7 << 61, 0xF << 60, 0x3F << 58} {
		for _, start := range []int{0, 1, 5, 63} {
			i, h, hits := start, uint64(0x1234567)*uint64(start), 0
			ri, rh := i, h
			for {
				j, hj, ok := scan(data, i, h, mask)
				var rok bool
				for rok = false; ri < len(data); ri++ {
					rh = rh<<1 + gear[data[ri]]
					if rh&mask == 0 {
						rok = true
						break
					}
				}
				if j != ri || hj != rh || ok != rok {
					t.Fatalf("mask %#x from %d: scan (%d, %#x, %v), reference (%d, %#x, %v)", mask, start, j, hj, ok, ri, rh, rok)
				}
				if !ok {
					break
				}
				hits++
				i, h, ri = j+1, hj, ri+1
			}
			if mask == 0xF<<60 && hits < 1000 {
				t.Fatalf("mask %#x: only %d hits", mask, hits)
			}
		}
	}
}
