package multicast

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// flushConfig paces sending so that a burst of Broadcasts is still queued
// when Close is called right after it.
func flushConfig(c Config) Config {
	c.MaxSendRate = 256 << 10 // 64 KiB burst, then ~0.1 s per 25 KiB
	c.Compression = CompressionNone
	return c
}

const (
	flushMessages = 40
	flushSize     = 4000 // 160 kB in all: ~0.4 s of pacing after the burst
)

// broadcastThenClose broadcasts flushMessages messages and closes at once.
func broadcastThenClose(t *testing.T, a Transport) {
	t.Helper()
	for i := range flushMessages {
		if _, err := a.Broadcast(context.Background(), payload(i, flushSize), SendOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if q := a.Stats().SendQueueLen; q == 0 {
		t.Log("send queue already empty before Close: the test does not exercise the flush")
	}
	start := time.Now()
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > closeFlushTimeout+time.Second {
		t.Errorf("Close took %v", d)
	}
	if _, err := a.Broadcast(context.Background(), []byte("late"), SendOptions{}); !errors.Is(err, ErrClosed) {
		t.Errorf("Broadcast after Close: %v", err)
	}
}

func TestCloseFlushesSendQueueMem(t *testing.T) {
	n := NewMemNetwork(7)
	b := startNode(t, n, testConfig())
	defer b.stop()
	a, err := n.Join(flushConfig(testConfig()))
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for range a.Messages() {
		}
	}()
	go func() {
		for range a.Events() {
		}
	}()
	waitFor(t, 5*time.Second, "b sees a", func() bool {
		for _, ev := range b.eventsOf(EventNewSender) {
			if ev.From == a.LocalID() {
				return true
			}
		}
		return false
	})
	broadcastThenClose(t, a)
	waitFor(t, 5*time.Second, "b receives everything a broadcast before Close", func() bool {
		return b.count(a.LocalID()) >= flushMessages
	})
	checkInOrder(t, "b", b.received(a.LocalID()), flushMessages, flushSize)
	if st := a.Stats(); st.SendErrors != 0 || st.Rejected["send_error"] != 0 {
		t.Errorf("send errors while flushing: %+v", st)
	}
}

func TestCloseWithEmptyQueueIsQuick(t *testing.T) {
	n := NewMemNetwork(8)
	a, err := n.Join(testConfig())
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	a.Close()
	if d := time.Since(start); d > 500*time.Millisecond {
		t.Fatalf("Close of an idle transport took %v", d)
	}
}

// TestLoggerKeysOnce checks that the transport's log lines carry each key
// once, whatever the caller's logger already holds.
func TestLoggerKeysOnce(t *testing.T) {
	var buf bytes.Buffer
	base := slog.New(slog.NewJSONHandler(&buf, nil)).With("subsystem", "cluster")
	l := deriveLogger(base)
	l.Warn("x", "subsystem", "multicast", "peer", "p1")
	l.With("a", 1).Info("y", logKey, "multicast", "b", 2)
	for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		checkUniqueKeys(t, line)
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatal(err)
		}
		if m["subsystem"] != "cluster" || m[logKey] != "multicast" {
			t.Errorf("line %s", line)
		}
	}
}

// checkUniqueKeys fails if a JSON log line repeats a top-level key.
func checkUniqueKeys(t *testing.T, line string) {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(line))
	if _, err := dec.Token(); err != nil { // {
		t.Fatalf("%q: %v", line, err)
	}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		k := tok.(string)
		if seen[k] {
			t.Errorf("duplicate key %q in %s", k, line)
		}
		seen[k] = true
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			t.Fatalf("%q: %v", line, err)
		}
	}
}
