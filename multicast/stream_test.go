package multicast

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"testing"
)

func sealStream(t testing.TB, kr *Keyring, data []byte, label string) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := NewSealedWriter(kr, &buf, label)
	if err != nil {
		t.Fatal(err)
	}
	// Uneven writes.
	for len(data) > 0 {
		n := min(len(data), 1+len(data)%70001)
		if _, err := w.Write(data[:n]); err != nil {
			t.Fatal(err)
		}
		data = data[n:]
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestSealedStreamRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, size := range []int{0, 1, MaxStreamChunk - 1, MaxStreamChunk, MaxStreamChunk + 1, 300_000} {
		data := make([]byte, size)
		for i := range data {
			data[i] = byte(rng.Uint32())
		}
		s := sealStream(t, testKeyring, data, "state")
		got, err := io.ReadAll(NewSealedReader(testKeyring, bytes.NewReader(s), "state", 0))
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("size %d: err %v, equal %v", size, err, bytes.Equal(got, data))
		}
	}
}

func TestSealedStreamRejects(t *testing.T) {
	data := bytes.Repeat([]byte("session "), 20_000) // 160 KB, 3 chunks
	s := sealStream(t, testKeyring, data, "state")
	read := func(b []byte, kr *Keyring, label string) error {
		_, err := io.ReadAll(NewSealedReader(kr, bytes.NewReader(b), label, 0))
		return err
	}
	var other [KeySize]byte
	other[5] = 9
	wrongKey, _ := NewKeyring(map[uint8][KeySize]byte{1: other}, 1)
	if err := read(s, wrongKey, "state"); !errors.Is(err, ErrStream) {
		t.Fatalf("wrong key: %v", err)
	}
	if err := read(s, testKeyring, "other"); !errors.Is(err, ErrStream) {
		t.Fatalf("wrong label: %v", err)
	}
	for _, cut := range []int{0, 3, 37, 40, 1000, len(s) / 2, len(s) - 20 - TagLen, len(s) - 1} {
		if err := read(s[:cut], testKeyring, "state"); !errors.Is(err, ErrStream) || !errors.Is(err, io.ErrUnexpectedEOF) && cut != len(s)-20-TagLen {
			t.Fatalf("truncated at %d/%d: %v", cut, len(s), err)
		}
	}
	for i := 0; i < len(s); i += 97 {
		b := bytes.Clone(s)
		b[i] ^= 0x40
		if err := read(b, testKeyring, "state"); err == nil {
			t.Fatalf("tampered byte %d accepted", i)
		}
	}
	// Dropping a whole chunk (reordering) is caught by the counter nonce.
	first := 37 + 4 + MaxStreamChunk + TagLen
	b := append(bytes.Clone(s[:37]), s[first:]...)
	if err := read(b, testKeyring, "state"); !errors.Is(err, ErrStream) {
		t.Fatalf("dropped chunk: %v", err)
	}
	// A declared chunk size above the reader's limit is refused.
	if err := read(s, testKeyring, "state"); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadAll(NewSealedReader(testKeyring, bytes.NewReader(s), "state", 1024)); !errors.Is(err, ErrStream) {
		t.Fatalf("oversized chunk: %v", err)
	}
}

func FuzzSealedStreamReader(f *testing.F) {
	f.Add(sealStream(f, testKeyring, []byte("hello"), "fuzz"))
	f.Add(sealStream(f, testKeyring, nil, "fuzz"))
	f.Add([]byte("HNS1\x01"))
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := io.ReadAll(NewSealedReader(testKeyring, bytes.NewReader(b), "fuzz", 4096))
		if err == nil && len(got) > 0 && len(b) < 37 {
			t.Fatal("plaintext from a stream without a header")
		}
	})
}

// TestBoundSealedStream: a bound stream opens only with the bind it was
// written for (a recorded handshake stream does not open in another
// handshake), not as an unbound stream, and a bound reader refuses a
// chunk above its limit before reading it.
func TestBoundSealedStream(t *testing.T) {
	var buf bytes.Buffer
	w, err := NewBoundSealedWriter(testKeyring, &buf, "req", []byte("nonce-A"))
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("hello"))
	w.Close()
	if len(w.Salt()) != StreamSaltLen {
		t.Fatalf("salt %d bytes", len(w.Salt()))
	}
	r := NewBoundSealedReader(testKeyring, bytes.NewReader(buf.Bytes()), "req", 64, []byte("nonce-A"))
	if got, err := io.ReadAll(r); err != nil || string(got) != "hello" || !bytes.Equal(r.Salt(), w.Salt()) {
		t.Fatalf("same bind: %q %v", got, err)
	}
	for name, rd := range map[string]io.Reader{
		"other bind": NewBoundSealedReader(testKeyring, bytes.NewReader(buf.Bytes()), "req", 64, []byte("nonce-B")),
		"empty bind": NewBoundSealedReader(testKeyring, bytes.NewReader(buf.Bytes()), "req", 64, nil),
		"unbound":    NewSealedReader(testKeyring, bytes.NewReader(buf.Bytes()), "req", 64),
	} {
		if _, err := io.ReadAll(rd); !errors.Is(err, ErrStream) {
			t.Errorf("%s: err = %v", name, err)
		}
	}
	big := sealStream(t, testKeyring, make([]byte, 1000), "req")
	if _, err := io.ReadAll(NewBoundSealedReader(testKeyring, bytes.NewReader(big), "req", 100, nil)); !errors.Is(err, ErrStream) {
		t.Errorf("chunk above the limit: %v", err)
	}
}
