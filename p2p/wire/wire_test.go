package wire

import (
	"bufio"
	"bytes"
	"errors"
	"testing"

	"github.com/archy-node/archy/cas"
)

func TestRoundTrip(t *testing.T) {
	c := cas.Sum([]byte("x"))
	var buf bytes.Buffer
	w := bufio.NewWriter(&buf)
	WriteUvarint(w, 300)
	WriteBytes(w, []byte("hello"))
	WriteBytes(w, c.Bytes())
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(&buf)
	if v, err := ReadUvarint(r, 300); err != nil || v != 300 {
		t.Fatalf("uvarint %d, %v", v, err)
	}
	if b, err := ReadBytes(r, 5); err != nil || string(b) != "hello" {
		t.Fatalf("bytes %q, %v", b, err)
	}
	if got, err := ReadCID(r); err != nil || !got.Equals(c) {
		t.Fatalf("cid %s, %v", got, err)
	}
}

// A length over the bound is refused before anything is allocated, and a
// CID that is not archy's is a protocol violation.
func TestBounds(t *testing.T) {
	var buf bytes.Buffer
	w := bufio.NewWriter(&buf)
	WriteBytes(w, make([]byte, 6))
	_ = w.Flush()
	if _, err := ReadBytes(bufio.NewReader(bytes.NewReader(buf.Bytes())), 5); !errors.Is(err, ErrProtocol) {
		t.Fatalf("6 bytes read with max 5: %v", err)
	}
	buf.Reset()
	WriteBytes(w, []byte("not a cid"))
	_ = w.Flush()
	if _, err := ReadCID(bufio.NewReader(&buf)); !errors.Is(err, ErrProtocol) {
		t.Fatalf("garbage read as a cid: %v", err)
	}
}

func FuzzRead(f *testing.F) {
	f.Add([]byte{5, 'h', 'e', 'l', 'l', 'o'})
	f.Add(append([]byte{36}, cas.Sum(nil).Bytes()...))
	f.Fuzz(func(t *testing.T, b []byte) {
		if p, err := ReadBytes(bufio.NewReader(bytes.NewReader(b)), 64); err == nil && len(p) > 64 {
			t.Fatalf("read %d bytes past the bound", len(p))
		}
		if c, err := ReadCID(bufio.NewReader(bytes.NewReader(b))); err == nil && cas.Check(c) != nil {
			t.Fatalf("read an invalid cid %s", c)
		}
		_, _ = ReadPeerID(bufio.NewReader(bytes.NewReader(b)))
	})
}
