package httpsession

import (
	"bytes"
	"math"
	"strings"
	"testing"
	"time"
)

func FuzzParseID(f *testing.F) {
	f.Add(newID() + ".node-1")
	f.Add(newID())
	f.Add("")
	f.Add(strings.Repeat("A", idLen) + "." + strings.Repeat("r", maxRouteLen+1))
	f.Add("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=.x")
	f.Fuzz(func(t *testing.T, tok string) {
		id, route, ok := ParseID(tok)
		if !ok {
			return
		}
		if len(id) != idLen || len(tok) > MaxTokenLen {
			t.Fatalf("accepted %q", tok)
		}
		if formatToken(id, route) != tok {
			t.Fatalf("round trip %q -> %q %q", tok, id, route)
		}
		if route != "" && !validRoute(route) {
			t.Fatalf("bad route %q", route)
		}
	})
}

func FuzzCodec(f *testing.F) {
	for _, v := range []any{"s", 42, int64(-1), int32(7), true, 1.5, []byte("b"), time.Unix(5, 6).UTC(), map[string]int{"a": 1}} {
		b, _, _ := encodeValue(GobCodec{}, v)
		f.Add(b)
	}
	for _, b := range [][]byte{{tagInt, 0x80}, {tagInt32, 0x80, 0x80, 0x80, 0x80, 0x20}, {tagBool, 2}, {tagFloat64, 1}, {tagString}} {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		// A value checkValue accepts at load is decoded lazily: it must
		// decode without error, and the typed getters' direct decoding
		// must agree with decodeValue.
		if checkValue(b) {
			v, err := decodeValue(GobCodec{}, b)
			if err != nil {
				t.Fatalf("checkValue accepted %x, decodeValue: %v", b, err)
			}
			agree := func(got any, ok bool) {
				if ok && got != v {
					t.Fatalf("decodeAs gave %#v, decodeValue %#v", got, v)
				}
			}
			agree(decodeAs[string](b))
			agree(decodeAs[int](b))
			agree(decodeAs[int64](b))
			agree(decodeAs[int32](b))
			agree(decodeAs[bool](b))
			if x, ok := decodeAs[float64](b); ok && math.Float64bits(x) != math.Float64bits(v.(float64)) {
				t.Fatalf("decodeAs gave %v, decodeValue %v", x, v)
			}
		}
		for _, c := range []Codec{GobCodec{}, JSONCodec{}} {
			v, err := decodeValue(c, b) // must not panic
			if err != nil || v == nil {
				continue
			}
			b2, _, err := encodeValue(c, v)
			if err != nil {
				continue
			}
			v2, err := decodeValue(c, b2)
			if err != nil {
				t.Fatalf("re-decode of %T: %v", v, err)
			}
			if b[0] < tagCodec {
				b3, _, _ := encodeValue(c, v2)
				if !bytes.Equal(b2, b3) {
					t.Fatalf("unstable encoding of %T", v)
				}
			}
		}
	})
}

// A time whose zone offset is not whole minutes (local mean time) keeps
// its instant and encodes the same on every pass (found by FuzzCodec).
func TestCodecTimeSubMinuteOffset(t *testing.T) {
	in := time.Date(1800, 1, 1, 0, 0, 0, 0, time.FixedZone("LMT", -17762))
	b, _, err := encodeValue(GobCodec{}, in)
	if err != nil {
		t.Fatal(err)
	}
	v, err := decodeValue(GobCodec{}, b)
	if err != nil {
		t.Fatal(err)
	}
	if got := v.(time.Time); !got.Equal(in) {
		t.Fatalf("instant changed: %v, want %v", got, in)
	}
	b2, _, _ := encodeValue(GobCodec{}, v)
	if !bytes.Equal(b, b2) {
		t.Fatalf("encoding changed on a second pass: %x then %x", b, b2)
	}
}
