package redisstore

import (
	"bytes"
	"strings"
	"testing"
)

// FuzzParse feeds arbitrary hashes (as Redis could hold after a bug, an
// older version or a hand edit) to the decoder of a session hash: it
// never panics, and a session it returns has a version and only the
// attributes of the a: fields.
func FuzzParse(f *testing.F) {
	f.Add([]byte("v\x001\x00o\x00n1\x00e\x002\x00a:k\x00val\x00p\x00alice"))
	f.Add([]byte("v\x00x\x00l\x00-5\x00d\x0099999999999999999999999\x00a:\x00"))
	f.Add([]byte("a:k\x00v"))
	f.Fuzz(func(t *testing.T, data []byte) {
		parts := bytes.Split(data, []byte{0})
		m := map[string]string{}
		for i := 0; i+1 < len(parts); i += 2 {
			m[string(parts[i])] = string(parts[i+1])
		}
		ss := parse("id", m)
		if ss == nil {
			return
		}
		if ss.Version == 0 || ss.ID != "id" {
			t.Fatalf("session without a version: %+v", ss)
		}
		for k, a := range ss.Attrs.All() {
			if m["a:"+k] != string(a.Value) {
				t.Fatalf("attribute %q not from field a:%s", k, k)
			}
		}
		n := 0
		for k := range m {
			if strings.HasPrefix(k, "a:") {
				n++
			}
		}
		if n != ss.Attrs.Len() {
			t.Fatalf("%d a: fields, %d attributes", n, ss.Attrs.Len())
		}
	})
}
