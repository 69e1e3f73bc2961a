package replicator

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"slices"
)

// Snapshot stream format (state transfer and snapshot files):
//
//	header:  magic "HNSNAP", format version byte (SnapshotVersion),
//	         8-byte little-endian hash of the cluster name
//	records: uvarint length (> 0), then a session record (appendSession)
//	end:     uvarint 0
//	trailer: uvarint record count, then a 4-byte little-endian CRC-32C of
//	         every byte before it (header through count)
//
// A reader refuses a stream whose magic, version or cluster differ, whose
// records do not decode, whose count or checksum do not match, or that
// ends early.

// SnapshotVersion is the snapshot format version.
const SnapshotVersion = 1

// MaxSnapshotRecord is the longest session record a snapshot reader
// accepts.
const MaxSnapshotRecord = 256 << 20

var snapMagic = [6]byte{'H', 'N', 'S', 'N', 'A', 'P'}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// ErrForeignSnapshot is returned for a snapshot of another cluster.
var ErrForeignSnapshot = errors.New("replicator: snapshot of another cluster")

// ClusterHash is the 64-bit hash of a cluster name used in snapshot
// headers.
func ClusterHash(name string) uint64 { return mix64(uint64(newFNV().str(name))) }

type crcWriter struct {
	w   io.Writer
	crc uint32
}

func (c *crcWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.crc = crc32.Update(c.crc, castagnoli, p[:n])
	return n, err
}

// WriteSnapshot streams every record of r (live sessions and tombstones)
// to w and returns the number of records written. It holds no lock while
// writing and copies no session: it walks the replica shard by shard, so
// a snapshot taken during changes holds, per session, either the old or
// the new record. Merging is order-free, so that is enough for state
// transfer as long as the receiver also applies the deltas that arrive
// meanwhile.
func WriteSnapshot(w io.Writer, r *Replica, clusterName string) (n int, err error) {
	cw := &crcWriter{w: w}
	bw := bufio.NewWriterSize(cw, 64<<10)
	var hdr [15]byte
	copy(hdr[:], snapMagic[:])
	hdr[6] = SnapshotVersion
	binary.LittleEndian.PutUint64(hdr[7:], ClusterHash(clusterName))
	bw.Write(hdr[:])
	var buf, rec []byte
	var batch []*Session
	for i := range r.shards {
		batch = r.shardRecords(i, batch[:0])
		for _, s := range batch {
			rec = appendSession(rec[:0], s)
			buf = binary.AppendUvarint(buf[:0], uint64(len(rec)))
			bw.Write(buf)
			if _, err := bw.Write(rec); err != nil {
				return n, fmt.Errorf("replicator: write snapshot: %w", err)
			}
			n++
		}
		clear(batch)
	}
	buf = binary.AppendUvarint(buf[:0], 0)
	buf = binary.AppendUvarint(buf, uint64(n))
	bw.Write(buf)
	if err := bw.Flush(); err != nil {
		return n, fmt.Errorf("replicator: write snapshot: %w", err)
	}
	var sum [4]byte
	binary.LittleEndian.PutUint32(sum[:], cw.crc)
	if _, err := w.Write(sum[:]); err != nil {
		return n, fmt.Errorf("replicator: write snapshot: %w", err)
	}
	return n, nil
}

// crcReader reads through a *bufio.Reader and checksums what it returns.
type crcReader struct {
	r   *bufio.Reader
	crc uint32
	one [1]byte
}

func (c *crcReader) ReadByte() (byte, error) {
	b, err := c.r.ReadByte()
	if err == nil {
		c.one[0] = b
		c.crc = crc32.Update(c.crc, castagnoli, c.one[:])
	}
	return b, err
}

func (c *crcReader) full(p []byte) error {
	n, err := io.ReadFull(c.r, p)
	c.crc = crc32.Update(c.crc, castagnoli, p[:n])
	return err
}

func snapErr(what string, err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%w: snapshot truncated in %s", ErrCorrupt, what)
	}
	if errors.Is(err, ErrCorrupt) {
		return fmt.Errorf("snapshot %s: %w", what, err)
	}
	return fmt.Errorf("replicator: read snapshot %s: %w", what, err)
}

// ReadSnapshot reads a snapshot from rd and calls fn for each record, in
// stream order, and returns the number of records. fn sees records before
// the trailer is verified: a caller that must not act on a bad snapshot
// stages the records and uses them only when ReadSnapshot returns nil
// (LoadSnapshot and LoadFile do). An error from fn stops the read and is
// returned. When rd is a *bufio.Reader it is read directly and nothing
// past the trailer is consumed, so a snapshot can be followed by other
// data on a stream.
//
// Errors: ErrForeignSnapshot for another cluster; ErrCorrupt (wrapped)
// for a bad magic, version, record, count, checksum or a truncation.
func ReadSnapshot(rd io.Reader, clusterName string, fn func(*Session) error) (n int, err error) {
	br, ok := rd.(*bufio.Reader)
	if !ok {
		br = bufio.NewReaderSize(rd, 64<<10)
	}
	cr := &crcReader{r: br}
	var hdr [15]byte
	if err := cr.full(hdr[:]); err != nil {
		return 0, snapErr("header", err)
	}
	if [6]byte(hdr[:6]) != snapMagic {
		return 0, fmt.Errorf("%w: not a hanode snapshot (bad magic)", ErrCorrupt)
	}
	if hdr[6] != SnapshotVersion {
		return 0, fmt.Errorf("%w: snapshot format version %d, want %d", ErrCorrupt, hdr[6], SnapshotVersion)
	}
	if binary.LittleEndian.Uint64(hdr[7:]) != ClusterHash(clusterName) {
		return 0, fmt.Errorf("%w (want cluster %q)", ErrForeignSnapshot, clusterName)
	}
	var buf []byte
	for {
		l, err := binary.ReadUvarint(cr)
		if err != nil {
			return n, snapErr("record length", err)
		}
		if l == 0 {
			break
		}
		if l > MaxSnapshotRecord {
			return n, fmt.Errorf("%w: snapshot record %d is %d bytes, limit %d", ErrCorrupt, n, l, MaxSnapshotRecord)
		}
		// Grow the buffer as data actually arrives, so that a bogus
		// length on a short stream cannot make us allocate it.
		buf = buf[:0]
		for len(buf) < int(l) {
			chunk := min(int(l)-len(buf), 1<<20)
			buf = slices.Grow(buf, chunk)
			if err := cr.full(buf[len(buf) : len(buf)+chunk]); err != nil {
				return n, snapErr("record", err)
			}
			buf = buf[:len(buf)+chunk]
		}
		s, used, err := decodeSession(buf)
		if err != nil {
			return n, fmt.Errorf("snapshot record %d: %w", n, err)
		}
		if used != len(buf) {
			return n, fmt.Errorf("%w: snapshot record %d has %d trailing bytes", ErrCorrupt, n, len(buf)-used)
		}
		if err := fn(s); err != nil {
			return n, err
		}
		n++
	}
	count, err := binary.ReadUvarint(cr)
	if err != nil {
		return n, snapErr("trailer", err)
	}
	want := cr.crc
	var sum [4]byte
	if _, err := io.ReadFull(br, sum[:]); err != nil {
		return n, snapErr("checksum", err)
	}
	if count != uint64(n) {
		return n, fmt.Errorf("%w: snapshot holds %d records, trailer says %d", ErrCorrupt, n, count)
	}
	if got := binary.LittleEndian.Uint32(sum[:]); got != want {
		return n, fmt.Errorf("%w: snapshot checksum %08x, computed %08x", ErrCorrupt, got, want)
	}
	return n, nil
}

// LoadSnapshot reads a whole snapshot from rd into a staging list and,
// only when all of it is verified, merges it into r (MergeSession). On
// error nothing was merged. It returns the number of records.
func LoadSnapshot(rd io.Reader, r *Replica, clusterName string) (int, error) {
	var staged []*Session
	n, err := ReadSnapshot(rd, clusterName, func(s *Session) error {
		staged = append(staged, s)
		return nil
	})
	if err != nil {
		return 0, err
	}
	for _, s := range staged {
		r.MergeSession(s)
	}
	return n, nil
}

// Sealer encrypts and authenticates a snapshot file. Snapshot files hold
// every session ID (with the public route, the whole cookie) and every
// attribute, so SaveFile and LoadFile never write or read them in clear.
// multicast.SnapshotSealer seals with the cluster key under a label of its
// own; its reader must verify the stream's end (a truncated file is an
// error, not a short read).
type Sealer interface {
	// SealWriter returns a writer that seals what is written to w;
	// Close writes the end of the sealed stream (it does not close w).
	SealWriter(w io.Writer) (io.WriteCloser, error)
	// OpenReader returns a reader of what SealWriter wrote to r.
	OpenReader(r io.Reader) io.Reader
}

// Errors of snapshot files (LoadFile).
var (
	// ErrSnapshotPermissions: the file is readable or writable by its
	// group or others (chmod 600), like the key file.
	ErrSnapshotPermissions = errors.New("replicator: snapshot file is accessible by group or others (chmod 600)")
	// ErrSnapshotFile: the path is a symlink or not a regular file, or no
	// Sealer was given.
	ErrSnapshotFile = errors.New("replicator: snapshot file refused")
	// ErrSnapshotSeal: the file is not sealed with a key of the key ring
	// (written before snapshots were sealed, with a key since retired, or
	// tampered with).
	ErrSnapshotSeal = errors.New("replicator: snapshot file does not open with the cluster keys")
)

// SaveFile writes a snapshot of r, sealed with s, to path atomically: to
// a temporary file of mode 600 in the same directory, fsynced, renamed
// over path, then the directory fsynced. It returns the number of
// records.
func SaveFile(path string, r *Replica, clusterName string, s Sealer) (n int, err error) {
	if s == nil {
		return 0, fmt.Errorf("%w: no sealer (snapshot files are never written in clear)", ErrSnapshotFile)
	}
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, base+".tmp-*")
	if err != nil {
		return 0, fmt.Errorf("replicator: save snapshot: %w", err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if err = f.Chmod(0o600); err != nil {
		return 0, fmt.Errorf("replicator: save snapshot: %w", err)
	}
	sw, err := s.SealWriter(f)
	if err != nil {
		return 0, fmt.Errorf("replicator: save snapshot: %w", err)
	}
	if n, err = WriteSnapshot(sw, r, clusterName); err != nil {
		return 0, err
	}
	if err = sw.Close(); err != nil {
		return 0, fmt.Errorf("replicator: save snapshot: %w", err)
	}
	if err = f.Sync(); err != nil {
		return 0, fmt.Errorf("replicator: save snapshot: %w", err)
	}
	if err = f.Close(); err != nil {
		return 0, fmt.Errorf("replicator: save snapshot: %w", err)
	}
	if err = os.Rename(tmp, path); err != nil {
		return 0, fmt.Errorf("replicator: save snapshot: %w", err)
	}
	if d, derr := os.Open(dir); derr == nil {
		d.Sync()
		d.Close()
	}
	return n, nil
}

// LoadFile loads the sealed snapshot file at path into r: it reads,
// opens and verifies the whole file before merging anything, so a
// truncated, corrupt, foreign or unsealed file leaves r untouched. It
// refuses a symlink, a file that is not regular and a file its group or
// others can read or write. It returns the number of records.
func LoadFile(path string, r *Replica, clusterName string, s Sealer) (int, error) {
	if s == nil {
		return 0, fmt.Errorf("%w: no sealer", ErrSnapshotFile)
	}
	lst, err := os.Lstat(path)
	if err != nil {
		return 0, fmt.Errorf("replicator: load snapshot: %w", err)
	}
	if lst.Mode()&os.ModeSymlink != 0 {
		return 0, fmt.Errorf("%w: %s is a symlink (use the file itself)", ErrSnapshotFile, path)
	}
	f, err := os.Open(path)
	if err != nil {
		return 0, fmt.Errorf("replicator: load snapshot: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return 0, fmt.Errorf("replicator: load snapshot: %w", err)
	}
	if !st.Mode().IsRegular() || !os.SameFile(st, lst) {
		return 0, fmt.Errorf("%w: %s is not a regular file", ErrSnapshotFile, path)
	}
	if perm := st.Mode().Perm(); perm&0o066 != 0 {
		return 0, fmt.Errorf("%w: %s has mode %#o", ErrSnapshotPermissions, path, perm)
	}
	br := bufio.NewReaderSize(s.OpenReader(f), 64<<10)
	var staged []*Session
	n, err := ReadSnapshot(br, clusterName, func(s *Session) error {
		staged = append(staged, s)
		return nil
	})
	if err == nil {
		// The sealed stream must end right after the trailer, with its
		// authenticated end mark.
		if _, err = br.ReadByte(); err == io.EOF {
			err = nil
		} else if err == nil {
			err = fmt.Errorf("%w: data after the snapshot trailer", ErrCorrupt)
		}
	}
	if err != nil {
		if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrForeignSnapshot) {
			err = fmt.Errorf("%w: %w", ErrSnapshotSeal, err)
		}
		return 0, fmt.Errorf("%s: %w", path, err)
	}
	for _, s := range staged {
		r.MergeSession(s)
	}
	return n, nil
}
