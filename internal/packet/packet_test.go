package packet

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"
)

func validHeader() Header {
	return Header{Version: Version, Type: TypeData, Flags: FlagFragment | FlagCompressed, KeyID: 1,
		Length: 100, Cluster: [8]byte{1, 2, 3, 4, 5, 6, 7, 8}, Sender: uuid.New(), Seq: 10, HighSeq: 12, FragIndex: 2, FragCount: 5, Timestamp: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC).UnixMilli()}
}

func TestHeaderRoundTrip(t *testing.T) {
	h := validHeader()
	b := h.Append(nil)
	b = append(b, make([]byte, 100)...)
	got, err := DecodeHeader(b)
	if err != nil || got != h {
		t.Fatalf("got %+v, %v", got, err)
	}
	for _, cut := range []int{0, 1, HeaderLen - 1, HeaderLen, len(b) - 1} {
		if _, err := DecodeHeader(b[:cut]); err == nil {
			t.Fatalf("decoded %d bytes", cut)
		}
	}
}

func FuzzDecodeHeader(f *testing.F) {
	h := validHeader()
	f.Add(append(h.Append(nil), make([]byte, 100)...))
	f.Add([]byte("HN"))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := DecodeHeader(b)
		if err != nil {
			return
		}
		// Whatever decodes re-encodes to the same bytes.
		if enc := h.Append(nil); !bytes.Equal(enc, b[:HeaderLen]) {
			t.Fatalf("re-encoded %x, input %x", enc, b[:HeaderLen])
		}
		if int(h.Length) != len(b)-HeaderLen {
			t.Fatal("length not checked")
		}
	})
}

func FuzzHeaderRoundTrip(f *testing.F) {
	f.Add(uint8(1), uint8(0), uint8(1), uint64(1), uint64(1), uint16(0), uint16(1), uint16(16))
	f.Fuzz(func(t *testing.T, typ, flags, key uint8, seq, high uint64, idx, count, length uint16) {
		h := Header{Version: Version, Type: Type(typ), Flags: Flags(flags), KeyID: key, Length: length,
			Cluster: [8]byte{9}, Sender: uuid.UUID{1}, Seq: seq, HighSeq: high, FragIndex: idx, FragCount: count,
			Timestamp: int64(seq ^ high)}
		b := append(h.Append(nil), make([]byte, length)...)
		got, err := DecodeHeader(b)
		if err == nil && got != h {
			t.Fatalf("round trip: %+v != %+v", got, h)
		}
	})
}

// A header of another version is refused with ErrVersion, not decoded.
func TestDecodeHeaderVersion(t *testing.T) {
	h := validHeader()
	h.Version = Version + 1
	b := append(h.Append(nil), make([]byte, 100)...)
	if _, err := DecodeHeader(b); !errors.Is(err, ErrVersion) {
		t.Fatalf("got %v, want ErrVersion", err)
	}
}
