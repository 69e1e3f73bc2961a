package httpsession

import (
	"bytes"
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
	f.Fuzz(func(t *testing.T, b []byte) {
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
