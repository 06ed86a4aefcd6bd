package relay

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
)

// The event log on disk is one append-only file:
//
//	header:  "archy-relay-log\n" then a version byte (1)
//	records: length uint32 LE | CRC-32C of payload uint32 LE | payload
//
// Each payload is one accepted event as NIP-01 JSON. The relay's state is a
// pure function of the events in the order they were accepted (replacement
// and deletion are decided again on replay), so the log holds nothing else.
// An append is one write followed by fsync before the client hears OK. A
// torn or corrupt record (a crash mid-append) ends the log: on open, it and
// anything after it are moved to a side file and cut off.
const (
	journalName    = "events.log"
	journalMagic   = "archy-relay-log\n"
	journalVersion = 1
	recordHeader   = 8
	// maxRecord only guards against a corrupt length: it is far above
	// any event a relay accepts, and never depends on the Config.
	maxRecord = 64 << 20
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// journal is the open event log.
type journal struct {
	dir    string
	f      *os.File
	size   int64 // bytes of valid log: the offset of the next append
	broken error // set by a failed append: no append is safe after it
}

// openJournal opens (creating if needed) the log in dir and calls replay
// with the payload of every valid record, in order. A torn tail is moved
// aside and cut off; the number of bytes cut is returned.
func openJournal(dir string, replay func([]byte) error) (*journal, int64, error) {
	path := filepath.Join(dir, journalName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, 0, fmt.Errorf("open event log: %w", err)
	}
	j := &journal{dir: dir, f: f}
	cut, err := j.load(replay)
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	return j, cut, nil
}

func (j *journal) load(replay func([]byte) error) (int64, error) {
	st, err := j.f.Stat()
	if err != nil {
		return 0, fmt.Errorf("stat event log: %w", err)
	}
	hdr := append([]byte(journalMagic), journalVersion)
	if st.Size() < int64(len(hdr)) {
		// Empty, or a crash while the header was written.
		if err := j.f.Truncate(0); err != nil {
			return 0, fmt.Errorf("truncate event log: %w", err)
		}
		if _, err := j.f.WriteAt(hdr, 0); err != nil {
			return 0, fmt.Errorf("write event log header: %w", err)
		}
		if err := j.f.Sync(); err != nil {
			return 0, fmt.Errorf("sync event log: %w", err)
		}
		if err := syncDir(j.dir); err != nil {
			return 0, err
		}
		j.size = int64(len(hdr))
		_, err := j.f.Seek(j.size, io.SeekStart)
		return 0, err
	}
	r := bufio.NewReaderSize(j.f, 1<<20)
	if _, err := io.ReadFull(r, hdr); err != nil || string(hdr[:len(journalMagic)]) != journalMagic {
		return 0, fmt.Errorf("event log %s is not an archy relay log", j.f.Name())
	}
	if hdr[len(journalMagic)] != journalVersion {
		return 0, fmt.Errorf("event log %s has version %d, this relay reads version %d", j.f.Name(), hdr[len(journalMagic)], journalVersion)
	}
	off := int64(len(hdr))
	var rh [recordHeader]byte
	var payload []byte
	for {
		if _, err := io.ReadFull(r, rh[:]); err != nil {
			if errors.Is(err, io.EOF) {
				break // clean end
			}
			break // torn header
		}
		n := int64(binary.LittleEndian.Uint32(rh[0:4]))
		sum := binary.LittleEndian.Uint32(rh[4:8])
		if n == 0 || n > maxRecord {
			break
		}
		if int64(cap(payload)) < n {
			payload = make([]byte, n)
		}
		payload = payload[:n]
		if _, err := io.ReadFull(r, payload); err != nil {
			break
		}
		if crc32.Checksum(payload, crcTable) != sum {
			break
		}
		if err := replay(payload); err != nil {
			return 0, fmt.Errorf("replay event log at offset %d: %w", off, err)
		}
		off += recordHeader + n
	}
	j.size = off
	cut := st.Size() - off
	if cut > 0 {
		if err := j.cutTail(off); err != nil {
			return 0, err
		}
	}
	if _, err := j.f.Seek(off, io.SeekStart); err != nil {
		return 0, fmt.Errorf("seek event log: %w", err)
	}
	return cut, nil
}

// cutTail copies the bytes from off to the end into a side file (for a
// human to look at) and truncates the log at off.
func (j *journal) cutTail(off int64) error {
	side := filepath.Join(j.dir, journalName+".torn")
	out, err := os.OpenFile(side, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("save torn end of event log: %w", err)
	}
	_, err = io.Copy(out, io.NewSectionReader(j.f, off, 1<<62))
	if err2 := out.Sync(); err == nil {
		err = err2
	}
	if err2 := out.Close(); err == nil {
		err = err2
	}
	if err != nil {
		return fmt.Errorf("save torn end of event log: %w", err)
	}
	if err := j.f.Truncate(off); err != nil {
		return fmt.Errorf("truncate event log: %w", err)
	}
	if err := j.f.Sync(); err != nil {
		return fmt.Errorf("sync event log: %w", err)
	}
	return nil
}

// append writes one record and syncs it to disk. On failure the log is cut
// back to where it was, so a failed append leaves no partial record; and
// since a failed write or fsync leaves the file's state unknown, every
// later append fails too, until the relay is restarted and the log is
// read (and any torn end cut) again.
func (j *journal) append(payload []byte) error {
	if j.broken != nil {
		return fmt.Errorf("event log unusable since an earlier failure (restart the relay): %w", j.broken)
	}
	buf := make([]byte, recordHeader+len(payload))
	binary.LittleEndian.PutUint32(buf[0:4], uint32(len(payload)))
	binary.LittleEndian.PutUint32(buf[4:8], crc32.Checksum(payload, crcTable))
	copy(buf[recordHeader:], payload)
	if _, err := j.f.Write(buf); err != nil {
		j.rollback()
		j.broken = fmt.Errorf("append to event log: %w", err)
		return j.broken
	}
	if err := j.f.Sync(); err != nil {
		j.rollback()
		j.broken = fmt.Errorf("sync event log: %w", err)
		return j.broken
	}
	j.size += int64(len(buf))
	return nil
}

func (j *journal) rollback() {
	_ = j.f.Truncate(j.size)
	_, _ = j.f.Seek(j.size, io.SeekStart)
}

// rewrite replaces the log with one holding exactly payloads, in order:
// written to a temporary file, synced, renamed over the log, and the
// folder synced. A crash at any point leaves either the old or the new log.
func (j *journal) rewrite(payloads func(yield func([]byte) error) error) error {
	tmpPath := filepath.Join(j.dir, journalName+".tmp")
	tmp, err := os.OpenFile(tmpPath, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("compact event log: %w", err)
	}
	defer os.Remove(tmpPath) // no-op after the rename
	w := bufio.NewWriterSize(tmp, 1<<20)
	size := int64(0)
	write := func(p []byte) error {
		_, err := w.Write(p)
		size += int64(len(p))
		return err
	}
	err = write(append([]byte(journalMagic), journalVersion))
	if err == nil {
		err = payloads(func(p []byte) error {
			var rh [recordHeader]byte
			binary.LittleEndian.PutUint32(rh[0:4], uint32(len(p)))
			binary.LittleEndian.PutUint32(rh[4:8], crc32.Checksum(p, crcTable))
			if err := write(rh[:]); err != nil {
				return err
			}
			return write(p)
		})
	}
	if err == nil {
		err = w.Flush()
	}
	if err == nil {
		err = tmp.Sync()
	}
	if err2 := tmp.Close(); err == nil {
		err = err2
	}
	if err != nil {
		return fmt.Errorf("compact event log: %w", err)
	}
	path := filepath.Join(j.dir, journalName)
	if err := os.Rename(tmpPath, path); err != nil {
		return fmt.Errorf("compact event log: %w", err)
	}
	if err := syncDir(j.dir); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0o600)
	if err != nil {
		return fmt.Errorf("reopen event log: %w", err)
	}
	if _, err := f.Seek(size, io.SeekStart); err != nil {
		f.Close()
		return fmt.Errorf("reopen event log: %w", err)
	}
	j.f.Close()
	j.f = f
	j.size = size
	return nil
}

func (j *journal) close() error {
	if err := j.f.Close(); err != nil {
		return fmt.Errorf("close event log: %w", err)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync folder %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync folder %s: %w", dir, err)
	}
	return nil
}
