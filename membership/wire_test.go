package membership

import (
	"bytes"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
)

func TestWorstCaseHeartbeatFits(t *testing.T) {
	meta := map[string]string{}
	for i := range MaxMetaKeys {
		meta[strings.Repeat(strconv.Itoa(i%10), 2)+strconv.Itoa(i)] = ""
	}
	// Fill MaxMetaSize with the longest values allowed.
	size := 0
	for k := range meta {
		size += len(k)
	}
	for k := range meta {
		n := min(MaxMetaValueLen, MaxMetaSize-size)
		meta[k] = strings.Repeat("v", n)
		size += n
	}
	if err := checkMeta(meta); err != nil {
		t.Fatal(err)
	}
	msg := &message{Type: typeHeartbeat, Name: strings.Repeat("n", MaxNameLen), Started: epoch,
		Incarnation: ^uint64(0), View: ^uint64(0), Meta: meta}
	for range MaxSuspicions {
		msg.Suspicions = append(msg.Suspicions, suspicion{ID: uuid.New(), Incarnation: ^uint64(0)})
	}
	b := msg.encode(nil)
	if len(b) > MaxPayloadSize {
		t.Fatalf("worst-case heartbeat has %d bytes, MaxPayloadSize is %d", len(b), MaxPayloadSize)
	}
	got, err := decode(b)
	if err != nil || !reflect.DeepEqual(got, normalize(msg)) {
		t.Fatalf("round trip: %v", err)
	}
}

// normalize returns m as decode returns it.
func normalize(m *message) *message {
	c := *m
	if len(c.Meta) == 0 {
		c.Meta = nil
	}
	if len(c.Suspicions) == 0 {
		c.Suspicions = nil
	}
	if c.Type == typeHeartbeat {
		c.Started = time.Unix(0, c.Started.UnixNano())
	}
	return &c
}

// FuzzRoundTrip builds a message of every type from fuzzed fields, encodes
// it and checks that decoding gives it back.
func FuzzRoundTrip(f *testing.F) {
	f.Add(uint8(1), "node-1", int64(1), uint64(2), uint64(3), uint32(4), []byte("0123456789abcdef"), "k", "v", uint8(2))
	f.Add(uint8(4), "a", int64(-1), ^uint64(0), uint64(0), ^uint32(0), []byte{}, "", "", uint8(0))
	f.Fuzz(func(t *testing.T, typ uint8, name string, started int64, inc, view uint64, seq uint32, id []byte, k, v string, nsus uint8) {
		var u uuid.UUID
		copy(u[:], id)
		m := &message{Type: msgType(typ%5 + 1)}
		switch m.Type {
		case typeHeartbeat:
			if checkName(name) != nil {
				name = "n"
			}
			m.Name, m.Started, m.Incarnation, m.View = name, time.Unix(0, started), inc, view
			if meta := map[string]string{k: v}; checkMeta(meta) == nil {
				m.Meta = meta
			}
			for i := range int(nsus) % (MaxSuspicions + 1) {
				m.Suspicions = append(m.Suspicions, suspicion{ID: u, Incarnation: inc + uint64(i)})
			}
		case typePing:
			m.To, m.Seq, m.Incarnation, m.Flags = u, seq, inc, uint64(nsus%2)
		case typePingReq, typeAck:
			m.To, m.Seq, m.Target, m.Incarnation = u, seq, uuid.UUID{1}, inc
			if m.Type == typePingReq {
				m.Flags = uint64(nsus % 2)
			}
		case typeLeave:
			m.Incarnation = inc
		}
		b := m.encode(nil)
		got, err := decode(b)
		if err != nil {
			t.Fatalf("decode(encode(%+v)): %v", m, err)
		}
		if !reflect.DeepEqual(got, normalize(m)) {
			t.Fatalf("round trip:\n got %+v\nwant %+v", got, m)
		}
		// Trailing bytes (fields of a later release) are ignored.
		if got2, err := decode(append(b, 0xff, 0)); err != nil || !reflect.DeepEqual(got2, got) {
			t.Fatalf("with trailing bytes: %v", err)
		}
	})
}

// FuzzStep feeds arbitrary payloads to a Machine that knows a few members:
// no panic, and whatever decodes re-encodes to an equal message.
func FuzzStep(f *testing.F) {
	f.Add(heartbeat("b", 1, suspicion{ID: uuid.UUID{0xa}, Incarnation: 0}))
	f.Add((&message{Type: typePing, To: uuid.UUID{0xa}, Seq: 1}).encode(nil))
	f.Add((&message{Type: typePingReq, To: uuid.UUID{0xa}, Seq: 1, Target: uuid.UUID{0xb}}).encode(nil))
	f.Add((&message{Type: typeAck, To: uuid.UUID{0xa}, Seq: 1, Target: uuid.UUID{0xb}, Incarnation: 2}).encode(nil))
	f.Add((&message{Type: typeLeave}).encode(nil))
	f.Add([]byte{1})
	f.Fuzz(func(t *testing.T, payload []byte) {
		cfg := DefaultConfig()
		cfg.ID, cfg.Name, cfg.Started = uuid.UUID{0xa}, "a", epoch
		m, err := New(cfg, epoch)
		if err != nil {
			t.Fatal(err)
		}
		m.Step(uuid.UUID{0xb}, heartbeat("b", 1), epoch)
		m.Step(uuid.UUID{0xc}, heartbeat("c", 1), epoch)
		now := epoch
		for _, from := range []uuid.UUID{{0xb}, {0xc}, {0xd}} {
			now = now.Add(time.Second)
			m.Tick(now)
			err := m.Step(from, payload, now)
			msg, derr := decode(payload)
			if (err == nil) != (derr == nil) {
				t.Fatalf("Step error %v, decode error %v", err, derr)
			}
			if derr == nil {
				again, err := decode(msg.encode(nil))
				if err != nil || !reflect.DeepEqual(again, msg) {
					t.Fatalf("re-encode: %v\n got %+v\nwant %+v", err, again, msg)
				}
			}
		}
		m.Ready()
		if v := m.View(); len(v.Members) > cfg.MaxMembers {
			t.Fatal("too many members")
		}
	})
}

// The core stays a pure state machine: no network, no other hanode
// package, no clock.
func TestPureImports(t *testing.T) {
	files, _ := filepath.Glob("*.go")
	fset := token.NewFileSet()
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		src, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		f, err := parser.ParseFile(fset, name, src, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range f.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			if p == "net" || strings.HasPrefix(p, "net/") || strings.HasPrefix(p, "github.com/hanode/") || p == "os" || p == "sync" {
				t.Errorf("%s imports %s", name, p)
			}
		}
		for _, call := range []string{"time.Now", "time.Since", "time.Until", "time.Sleep", "time.After", "time.NewTimer", "time.NewTicker", "time.Tick", "go func"} {
			if bytes.Contains(src, []byte(call)) {
				t.Errorf("%s uses %s", name, call)
			}
		}
	}
}
