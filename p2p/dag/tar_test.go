package dag

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"testing"
	"testing/iotest"

	cid "github.com/ipfs/go-cid"
)

// tarOf returns a tar archive holding files (name, data) in order.
func tarOf(t *testing.T, files ...[]byte) []byte {
	t.Helper()
	return tarNamed(t, "blobs/sha256/%064d", files...)
}

// tarNamed is tarOf with a name pattern; names over 100 bytes make Go's
// writer add a PAX header before the member.
func tarNamed(t *testing.T, pattern string, files ...[]byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for i, f := range files {
		// A directory between members, as real archives have.
		if err := tw.WriteHeader(&tar.Header{Name: fmt.Sprintf("dir%d/", i), Mode: 0o755, Typeflag: tar.TypeDir}); err != nil {
			t.Fatal(err)
		}
		hdr := &tar.Header{Name: fmt.Sprintf(pattern, i), Mode: 0o644, Size: int64(len(f)), Typeflag: tar.TypeReg}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(f); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func randBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

func TestTarCuts(t *testing.T) {
	small, big1, big2 := randBytes(100), randBytes(MinChunk+7), randBytes(3*MaxChunk+1)
	for _, tc := range []struct {
		name  string
		data  []byte
		files [][]byte // the members whose data must sit between cut pairs
	}{
		{"not a tar", randBytes(10_000), nil},
		{"empty", nil, nil},
		{"small members only", tarOf(t, small, small), nil},
		{"large members", tarOf(t, small, big1, small, big2), [][]byte{big1, big2}},
		{"pax headers", tarNamed(t, "a-very-long-name-that-needs-a-pax-header/%0120d", big1, small, big2), [][]byte{big1, big2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cuts := TarCuts(tc.data)
			if len(cuts) != 2*len(tc.files) {
				t.Fatalf("%d cuts %v, want %d", len(cuts), cuts, 2*len(tc.files))
			}
			for i, f := range tc.files {
				got := tc.data[cuts[2*i]:cuts[2*i+1]]
				if !bytes.Equal(got, f) {
					t.Fatalf("member %d: cuts [%d,%d) do not frame its data", i, cuts[2*i], cuts[2*i+1])
				}
			}
		})
	}
}

// An update of one member of a tar archive (a layer of an OCI image)
// changes only that member's leaves and the few bytes around it.
func TestTarUpdateKeepsOtherMembersLeaves(t *testing.T) {
	layers := [][]byte{randBytes(2 << 20), randBytes(3<<20 + 5), randBytes(2<<20 + 11), randBytes(1 << 20)}
	v1 := tarOf(t, layers...)
	changed := randBytes(3<<20 + 999) // a different size shifts everything after it
	layers[1] = changed
	v2 := tarOf(t, layers...)
	_, _, l1 := build(t, v1)
	_, _, l2 := build(t, v2)
	old := map[string]bool{}
	for _, l := range l1 {
		old[l.Cid.KeyString()] = true
	}
	var fresh uint64
	for _, l := range l2 {
		if !old[l.Cid.KeyString()] {
			fresh += l.Size
		}
	}
	// New bytes: the changed layer, plus the tar headers and padding
	// around it (far less than one content-defined chunk).
	if limit := uint64(len(changed)) + 4096; fresh > limit || fresh < uint64(len(changed)) {
		t.Fatalf("v2 has %d bytes in new leaves, want between %d and %d", fresh, len(changed), limit)
	}
}

// The cuts of a stream are those of the same bytes whole: a CID does not
// depend on how the bytes arrive.
func TestTarCutsStreamed(t *testing.T) {
	data := tarNamed(t, "a-very-long-name-that-needs-a-pax-header/%0120d",
		randBytes(MaxChunk+3), randBytes(100), randBytes(2*MaxChunk), randBytes(MinChunk))
	s := &memStore{m: map[cid.Cid][]byte{}}
	whole, _, err := Build(context.Background(), bytes.NewReader(data), s.put)
	if err != nil {
		t.Fatal(err)
	}
	streamed, _, err := Build(context.Background(), iotest.HalfReader(bytes.NewReader(data)), s.put)
	if err != nil {
		t.Fatal(err)
	}
	if whole != streamed {
		t.Fatalf("streamed root %s, whole root %s", streamed, whole)
	}
	leaves, _, err := Leaves(context.Background(), whole, s.get)
	if err != nil {
		t.Fatal(err)
	}
	ends := map[uint64]bool{}
	var off uint64
	for _, l := range leaves {
		off += l.Size
		ends[off] = true
	}
	for _, c := range TarCuts(data) {
		if !ends[c] {
			t.Fatalf("no chunk ends at cut %d", c)
		}
	}
}
