package replicator

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/hanode/hanode/internal/hlc"
)

func fill(t testing.TB, r *Replica, n, valueSize int) {
	t.Helper()
	v := bytes.Repeat([]byte("x"), valueSize)
	var c hlc.Clock
	for i := 0; i < n; i++ {
		d := &Delta{ID: fmt.Sprintf("session-%08d", i), Owner: "node-a", LastAccess: int64(i), IdleTimeout: 1800e9,
			Ops: []Op{{Kind: OpSet, Key: "user", Value: v}}}
		if i%3 == 0 {
			d.Ops = append(d.Ops, Op{Kind: OpPrincipal, Value: []byte(fmt.Sprintf("u%d", i%100))})
		}
		if err := r.Commit(d, &c, int64(i)); err != nil {
			t.Fatal(err)
		}
	}
}

func TestSnapshotRoundTrip(t *testing.T) {
	src := NewReplica(ReplicaConfig{})
	fill(t, src, 10000, 64)
	mustApply(t, src, &Delta{ID: "dead", Owner: "b", HLC: 1, Ops: []Op{{Kind: OpInvalidate}}})
	var buf bytes.Buffer
	n, err := WriteSnapshot(&buf, src, "prod")
	if err != nil || n != 10001 {
		t.Fatal(n, err)
	}
	dst := NewReplica(ReplicaConfig{})
	m, err := LoadSnapshot(bytes.NewReader(buf.Bytes()), dst, "prod")
	if err != nil || m != n {
		t.Fatal(m, err)
	}
	if !slices.Equal(src.Digest(64), dst.Digest(64)) || dst.Len() != 10000 || dst.Lookup("dead") == nil {
		t.Fatal("replicas differ after load")
	}
	if len(dst.SessionsOf("u3")) != len(src.SessionsOf("u3")) {
		t.Fatal("principal index")
	}

	// A stream with data after the snapshot, read through a bufio.Reader,
	// leaves that data unread.
	br := bufio.NewReader(bytes.NewReader(append(slices.Clone(buf.Bytes()), "tail"...)))
	if _, err := ReadSnapshot(br, "prod", func(*Session) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if rest, _ := br.ReadString(0); rest != "tail" {
		t.Fatalf("rest %q", rest)
	}
}

func TestSnapshotRefused(t *testing.T) {
	src := NewReplica(ReplicaConfig{})
	fill(t, src, 300, 10)
	var buf bytes.Buffer
	if _, err := WriteSnapshot(&buf, src, "prod"); err != nil {
		t.Fatal(err)
	}
	good := buf.Bytes()
	check := func(name string, b []byte, cluster string, want error) {
		t.Helper()
		dst := NewReplica(ReplicaConfig{})
		_, err := LoadSnapshot(bytes.NewReader(b), dst, cluster)
		if !errors.Is(err, want) {
			t.Fatalf("%s: err = %v, want %v", name, err, want)
		}
		if dst.Len() != 0 || dst.Tombstones() != 0 {
			t.Fatalf("%s: something was loaded", name)
		}
	}
	check("foreign", good, "test", ErrForeignSnapshot)
	check("empty", nil, "prod", ErrCorrupt)
	for _, cut := range []int{1, 10, 15, 16, len(good) / 2, len(good) - 5, len(good) - 1} {
		check(fmt.Sprintf("truncated at %d", cut), good[:cut], "prod", ErrCorrupt)
	}
	for _, pos := range []int{0, 6, 20, len(good) / 3, len(good) / 2, len(good) - 6, len(good) - 1} {
		b := slices.Clone(good)
		b[pos] ^= 0x10
		want := ErrCorrupt
		if pos >= 7 && pos < 15 {
			want = ErrForeignSnapshot
		}
		check(fmt.Sprintf("bit flip at %d", pos), b, "prod", want)
	}
	for pos := 15; pos < len(good); pos += 97 {
		b := slices.Clone(good)
		b[pos] ^= 1
		check(fmt.Sprintf("bit flip at %d", pos), b, "prod", ErrCorrupt)
	}
}

func TestSaveLoadFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "sessions.snap")
	src := NewReplica(ReplicaConfig{})
	fill(t, src, 1000, 100)
	if n, err := SaveFile(path, src, "c", testSealer(t)); err != nil || n != 1000 {
		t.Fatal(n, err)
	}
	dst := NewReplica(ReplicaConfig{})
	if n, err := LoadFile(path, dst, "c", testSealer(t)); err != nil || n != 1000 || dst.Len() != 1000 {
		t.Fatal(n, err)
	}
	// A half-written file loads nothing.
	b, _ := os.ReadFile(path)
	os.WriteFile(path, b[:len(b)*2/3], 0o600)
	dst = NewReplica(ReplicaConfig{})
	if _, err := LoadFile(path, dst, "c", testSealer(t)); !errors.Is(err, ErrCorrupt) || dst.Len() != 0 {
		t.Fatal("half file loaded", err)
	}
	if _, err := LoadFile(filepath.Join(dir, "absent"), dst, "c", testSealer(t)); !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Fatalf("temp files left: %v", ents)
	}
}
