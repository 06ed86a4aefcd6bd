package dag

import (
	"bytes"
	"strconv"
)

// Chunks end at the edges of the large members of a tar archive, so an
// OCI image archive, which keeps each layer as a member, is cut so that a
// layer's chunks depend on the layer alone: an unchanged layer gives the
// same blocks in every version of an image, wherever it sits in the
// archive, and an update fetches only what changed.
//
// The rule depends only on the bytes, and is applied the same way to a
// stream as to a file, so a CID stays a function of the content: walk the
// tar headers from the start of the input for as long as they are valid
// (a POSIX/ustar or GNU header block with a good checksum; PAX extended
// headers of up to maxPAX bytes honoured for the size; at most
// maxTarEntries entries); every regular member of at least MinChunk bytes
// ends a chunk where its data starts and where it ends. Input that is not
// a tar archive stops the walk at its first block, and nothing changes.
const (
	maxTarEntries = 1 << 16
	maxPAX        = 60 << 10
	tarBlock      = 512
)

// tarLookahead is how far past the furthest chunk end the chunker keeps
// input in view, so every header that can move a cut is read in time.
const tarLookahead = tarBlock + maxPAX + tarBlock

// tarWalk follows the headers of a tar archive through a stream.
type tarWalk struct {
	next    uint64 // stream offset of the next header
	done    bool
	entries int
	paxSize int64 // size given by a PAX header for the next entry, or -1
}

func newTarWalk() tarWalk { return tarWalk{paxSize: -1} }

// walk reads the headers that lie wholly in buf, which holds the stream
// from offset base on (to its end if eof), and appends the cuts they give.
func (t *tarWalk) walk(buf []byte, base uint64, eof bool, cuts []uint64) []uint64 {
	for !t.done {
		if t.next < base {
			t.done = true // a header went by unread: cannot happen with tarLookahead
			break
		}
		rel := t.next - base
		if rel+tarBlock > uint64(len(buf)) {
			if eof {
				t.done = true
			}
			break
		}
		hdr := buf[rel : rel+tarBlock]
		size, typ, ok := parseTarHeader(hdr)
		if !ok || t.entries >= maxTarEntries {
			t.done = true
			break
		}
		t.entries++
		data := t.next + tarBlock
		switch typ {
		case 'x': // PAX extended header for the next entry
			if size > maxPAX {
				t.done = true
				continue
			}
			if rel+tarBlock+uint64(size) > uint64(len(buf)) {
				t.entries--
				if eof {
					t.done = true
				}
				return cuts
			}
			t.paxSize = paxSize(buf[rel+tarBlock : rel+tarBlock+uint64(size)])
		case '0', 0, '7':
			if t.paxSize >= 0 {
				size = t.paxSize
			}
			t.paxSize = -1
			if size >= MinChunk {
				cuts = append(cuts, data, data+uint64(size))
			}
		case 'S': // GNU sparse: the data is not the file; stop here
			t.done = true
			continue
		default:
			if typ != 'g' && typ != 'L' && typ != 'K' {
				t.paxSize = -1
			}
		}
		t.next = data + (uint64(size)+tarBlock-1)/tarBlock*tarBlock
	}
	return cuts
}

// parseTarHeader checks a header block and returns its size and type; ok
// is false for a block of zeros (the end of an archive) or anything that
// is not a valid header.
func parseTarHeader(b []byte) (size int64, typ byte, ok bool) {
	var unsigned, signed int64
	for i, c := range b {
		if i >= 148 && i < 156 {
			c = ' '
		}
		unsigned += int64(c)
		signed += int64(int8(c))
	}
	want, err := parseOctal(b[148:156])
	if err != nil || (want != unsigned && want != signed) {
		return 0, 0, false
	}
	if unsigned == 8*' ' { // all zeros but the checksum field's spaces
		return 0, 0, false
	}
	if f := b[124:136]; f[0]&0x80 != 0 { // base-256 (GNU): sizes of 8 GiB and more
		if f[0] != 0x80 {
			return 0, 0, false
		}
		for _, c := range f[1:4] {
			if c != 0 {
				return 0, 0, false
			}
		}
		for _, c := range f[4:] {
			size = size<<8 | int64(c)
		}
	} else if size, err = parseOctal(f); err != nil {
		return 0, 0, false
	}
	if size < 0 {
		return 0, 0, false
	}
	return size, b[156], true
}

func parseOctal(f []byte) (int64, error) {
	s := string(bytes.Trim(f, " \x00"))
	if s == "" {
		return 0, nil
	}
	return strconv.ParseInt(s, 8, 64)
}

// paxSize returns the size record of PAX extended header data, or -1.
func paxSize(data []byte) int64 {
	size := int64(-1)
	for len(data) > 0 {
		sp := bytes.IndexByte(data, ' ')
		if sp <= 0 {
			return -1
		}
		n, err := strconv.Atoi(string(data[:sp]))
		if err != nil || n <= sp || n > len(data) {
			return -1
		}
		rec := data[sp+1 : n]
		data = data[n:]
		if k, v, ok := bytes.Cut(bytes.TrimSuffix(rec, []byte("\n")), []byte("=")); ok && string(k) == "size" {
			s, err := strconv.ParseInt(string(v), 10, 64)
			if err != nil || s < 0 {
				return -1
			}
			size = s
		}
	}
	return size
}

// TarCuts returns the cuts the chunker makes in data (see above).
func TarCuts(data []byte) []uint64 {
	t := newTarWalk()
	return t.walk(data, 0, true, nil)
}
