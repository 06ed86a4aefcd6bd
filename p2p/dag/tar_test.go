package dag

import (
	"archive/tar"
	"bytes"
	"crypto/rand"
	"fmt"
	"testing"
)

// tarOf returns a tar archive holding files (name, data) in order.
func tarOf(t *testing.T, files ...[]byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for i, f := range files {
		hdr := &tar.Header{Name: fmt.Sprintf("blobs/sha256/%064d", i), Mode: 0o644, Size: int64(len(f)), Typeflag: tar.TypeReg}
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
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := bytes.NewReader(tc.data)
			cuts, err := TarCuts(r)
			if err != nil {
				t.Fatal(err)
			}
			if pos, _ := r.Seek(0, 1); pos != 0 {
				t.Fatalf("reader left at %d, want 0", pos)
			}
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
	// New bytes: the changed layer, plus its tar header and padding.
	if limit := uint64(len(changed)) + 2048; fresh > limit || fresh < uint64(len(changed)) {
		t.Fatalf("v2 has %d bytes in new leaves, want between %d and %d", fresh, len(changed), limit)
	}
}
