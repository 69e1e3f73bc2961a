package multicast

// Security tests: key rotation on a running cluster (Keyring.Replace),
// unauthenticated input refused before any work, bounded memory under a
// flood of forged packets.

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/uuid"

	"github.com/hanode/hanode/internal/packet"
)

func key(b byte) [KeySize]byte {
	var k [KeySize]byte
	for i := range k {
		k[i] = b ^ byte(i)
	}
	return k
}

func ring(t testing.TB, primary uint8, ids ...uint8) *Keyring {
	t.Helper()
	m := map[uint8][KeySize]byte{}
	for _, id := range ids {
		m[id] = key(id)
	}
	kr, err := NewKeyring(m, primary)
	if err != nil {
		t.Fatal(err)
	}
	return kr
}

func TestSecurityKeyringReplace(t *testing.T) {
	kr := ring(t, 1, 1)
	next := ring(t, 2, 1, 2)
	kr.Replace(next)
	if id, k := kr.Primary(); id != 2 || k != key(2) {
		t.Fatalf("primary after Replace = %d", id)
	}
	if !kr.Equal(next) || kr.Equal(ring(t, 1, 1, 2)) {
		t.Fatal("Equal")
	}
	// Replace copies: later changes of next do not leak into kr.
	next.Replace(ring(t, 3, 3))
	if got := kr.IDs(); len(got) != 2 {
		t.Fatalf("IDs = %v", got)
	}
	d := kr.Describe()
	if !strings.Contains(d, "(primary 2)") || !strings.HasPrefix(d, "1:") {
		t.Fatalf("Describe = %q", d)
	}
	k := key(2)
	for _, enc := range []string{string(k[:]), strings.ToLower(strings.TrimRight(string(k[:4]), ""))} {
		if strings.Contains(d, enc) {
			t.Fatal("Describe shows key material")
		}
	}
	if KeyFingerprint(key(1)) == KeyFingerprint(key(2)) || len(KeyFingerprint(key(1))) != 8 {
		t.Fatal("fingerprints")
	}
	line, err := GenerateKeyLine(9, false)
	if err != nil || !strings.HasPrefix(line, "key 9 ") || strings.Contains(line, "primary") {
		t.Fatalf("GenerateKeyLine = %q %v", line, err)
	}
	if kr2, err := ParseKeyring([]byte(line)); err != nil || kr2.IDs()[0] != 9 {
		t.Fatalf("parse generated line: %v", err)
	}
}

// The derived-key cache must not outlive a Replace that gives a key id
// other bytes.
func TestSecuritySealerCacheFlushedOnReplace(t *testing.T) {
	aKR, bKR := ring(t, 1, 1), ring(t, 1, 1)
	a := testEngine(t, func(c *Config) { c.Keyring = aKR })
	b := testEngine(t, func(c *Config) { c.Keyring = bKR })
	deliver := func(msg string) int {
		for _, p := range sealedData(t, a, []byte(msg)) {
			b.step(p, addrA, t0)
		}
		return len(b.drain().messages)
	}
	if deliver("one") != 1 {
		t.Fatal("not delivered with equal keys")
	}
	other, _ := NewKeyring(map[uint8][KeySize]byte{1: key(0x55)}, 1)
	bKR.Replace(other)
	if deliver("two") != 0 || b.stats.Rejected[reasonAuth] != 1 {
		t.Fatalf("stale derived key used after Replace: rejected %v", b.stats.Rejected)
	}
	aKR.Replace(other)
	// "three" authenticates (it waits in the buffer behind the refused "two").
	if deliver("three") != 0 || b.stats.Rejected[reasonAuth] != 1 || len(b.peers[a.id].buf) != 1 {
		t.Fatalf("not accepted after both replaced: rejected %v", b.stats.Rejected)
	}
}

// Unauthenticated packets are refused before decompression or any
// allocation per sender: a "compressed" bomb without a valid tag counts as
// auth, never as decompress, and creates no peer state.
func TestSecurityUnauthenticatedBombAndFlood(t *testing.T) {
	e := testEngine(t, nil)
	src := testEngine(t, nil)
	valid := sealedData(t, src, bytes.Repeat([]byte("x"), 900))[0]
	// Compressed-flag bomb: a valid-looking header with the compressed
	// flag and a zstd frame declaring a huge size, no key.
	bomb := []byte{0x28, 0xb5, 0x2f, 0xfd, 0xa4, 0xff, 0xff, 0xff, 0x7f}
	bomb = append(bomb, make([]byte, 1000)...)
	h := packet.Header{Version: WireVersion, Type: packet.TypeData, Flags: packet.FlagCompressed, KeyID: 1, Cluster: ClusterID("test"),
		Sender: uuid.New(), Seq: 1, HighSeq: 1, FragCount: 1, Length: uint16(len(bomb) + TagLen), Timestamp: t0.UnixMilli()}
	pkt := append(h.Append(nil), bomb...)
	pkt = append(pkt, make([]byte, TagLen)...)
	e.step(pkt, addrA, t0)
	if e.stats.Rejected[reasonAuth] != 1 || e.stats.Rejected[reasonDecompress] != 0 {
		t.Fatalf("bomb: rejected %v", e.stats.Rejected)
	}
	// A flood: random bytes, bit flips of a valid packet, forged senders,
	// oversize; nothing delivered, no peer created, every packet counted.
	const n = 20000
	buf := make([]byte, MaxUDPPayload)
	for i := range n {
		var b []byte
		switch i % 4 {
		case 0:
			rand.Read(buf[:1+i%1400])
			b = buf[:1+i%1400]
		case 1:
			b = append([]byte(nil), valid...)
			b[i%len(b)] ^= 1 << (i % 8)
			if i%len(b) >= 16 && i%len(b) < 32 { // the sender id: our own id is skipped uncounted
				continue
			}
		case 2:
			b = append([]byte(nil), valid...)
			rand.Read(b[16:32]) // another sender, same ciphertext
		case 3:
			b = buf[:e.cfg.MaxDatagram+1+i%1000]
		}
		e.step(b, addrA, t0)
	}
	if r := e.drain(); len(r.messages) != 0 {
		t.Fatalf("delivered %d forged messages", len(r.messages))
	}
	if len(e.peers) != 0 {
		t.Fatalf("%d peers created by unauthenticated packets", len(e.peers))
	}
	if got, want := totalRejected(e.stats), e.stats.PacketsReceived; got != want {
		t.Fatalf("rejected %d of %d packets: %v", got, want, e.stats.Rejected)
	}
	for _, r := range []string{reasonAuth, reasonOversize, reasonMalformed} {
		if e.stats.Rejected[r] == 0 {
			t.Errorf("no %q rejection: %v", r, e.stats.Rejected)
		}
	}
}

// Other cluster names and unknown key ids are told apart and counted.
func TestSecurityOtherClusterAndKey(t *testing.T) {
	e := testEngine(t, nil)
	otherCluster := testEngine(t, func(c *Config) { c.ClusterName = "other" })
	otherKey := testEngine(t, func(c *Config) { c.Keyring = ring(t, 7, 7) })
	sameIDOtherBytes := testEngine(t, func(c *Config) { c.Keyring, _ = NewKeyring(map[uint8][KeySize]byte{1: key(9)}, 1) })
	for _, src := range []*engine{otherCluster, otherKey, sameIDOtherBytes} {
		for _, p := range sealedData(t, src, []byte("intruder")) {
			e.step(p, addrA, t0)
		}
	}
	if r := e.drain(); len(r.messages) != 0 {
		t.Fatal("delivered")
	}
	want := map[string]uint64{reasonCluster: 1, reasonUnknownKey: 1, reasonAuth: 1}
	for k, v := range want {
		if e.stats.Rejected[k] != v {
			t.Fatalf("rejected %v, want %v", e.stats.Rejected, want)
		}
	}
}

// rotateAll replaces the keyring of every member, one member at a time,
// with a pause between members (as an operator would, node by node; the
// pause is part of the scenario, in synctest's virtual time).
func rotateAll(krs []*Keyring, next func() *Keyring, pause time.Duration) {
	for _, kr := range krs {
		kr.Replace(next())
		time.Sleep(pause)
	}
}

// waitEachDelivers waits until every node has delivered k more messages
// of every other.
func waitEachDelivers(t *testing.T, nodes []*node, k int) {
	t.Helper()
	from := make([][]int, len(nodes))
	for j, dst := range nodes {
		for _, src := range nodes {
			from[j] = append(from[j], dst.count(src.LocalID()))
		}
	}
	for j, dst := range nodes {
		for i, src := range nodes {
			if i != j {
				waitFor(t, 30*time.Second, fmt.Sprintf("node %d to deliver %d more of node %d", j, k, i), func() bool {
					return dst.count(src.LocalID()) >= from[j][i]+k
				})
			}
		}
	}
}

// TestSecurityRotationUnderLoad rotates the cluster key of 3 members in
// three steps (install key 2, promote it, retire key 1) while every member
// broadcasts: every message is delivered in order and nothing is rejected.
func TestSecurityRotationUnderLoad(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		net := NewMemNetwork(3)
		var krs []*Keyring
		nodes := startNodes(t, net, 3, func(c *Config) {
			kr := ring(t, 1, 1)
			krs = append(krs, kr)
			c.Keyring = kr
		})
		var stop atomic.Bool
		sent := make([]int, len(nodes))
		var wg sync.WaitGroup
		for i, nd := range nodes {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for k := 0; !stop.Load(); k++ {
					if _, err := nd.Broadcast(context.Background(), payload(k, 100+k%3000), SendOptions{}); err != nil {
						t.Errorf("broadcast: %v", err)
						return
					}
					sent[i] = k + 1
					time.Sleep(2 * time.Millisecond) // the pace of the load, virtual (synctest)
				}
			}()
		}
		// The load flows before the rotation, and after it under key 2 alone.
		waitEachDelivers(t, nodes, 100)
		rotateAll(krs, func() *Keyring { return ring(t, 1, 1, 2) }, 300*time.Millisecond) // install
		rotateAll(krs, func() *Keyring { return ring(t, 2, 1, 2) }, 300*time.Millisecond) // promote
		rotateAll(krs, func() *Keyring { return ring(t, 2, 2) }, 300*time.Millisecond)    // retire
		waitEachDelivers(t, nodes, 100)
		stop.Store(true)
		wg.Wait()
		for i, src := range nodes {
			for j, dst := range nodes {
				if i == j {
					continue
				}
				waitFor(t, 30*time.Second, "deliveries", func() bool { return dst.count(src.LocalID()) == sent[i] })
				msgs := dst.received(src.LocalID())
				for k, m := range msgs {
					if !bytes.Equal(m.Payload, payload(k, 100+k%3000)) {
						t.Fatalf("node %d from %d: message %d corrupted", j, i, k)
					}
				}
			}
		}
		for i, nd := range nodes {
			if id, _ := krs[i].Primary(); id != 2 {
				t.Fatalf("node %d primary %d", i, id)
			}
			if r := nd.Stats().Rejected; r[reasonUnknownKey]+r[reasonAuth]+r[reasonCluster] != 0 {
				t.Errorf("node %d rejected during a correct rotation: %v", i, r)
			}
			if len(nd.eventsOf(EventBehind)) != 0 {
				t.Errorf("node %d lost messages", i)
			}
		}
		if sent[0] < 100 {
			t.Fatalf("little load: %v", sent)
		}
		// After retiring key 1, a member still on key 1 is locked out.
		stale := startNode(t, net, func() Config { c := testConfig(); c.Keyring = ring(t, 1, 1); return c }())
		defer stale.stop()
		before := make([]uint64, len(nodes))
		for i, nd := range nodes {
			before[i] = nd.Stats().Rejected[reasonUnknownKey]
		}
		broadcastN(t, stale, 3, 10, SendOptions{})
		// Every node refused the 3 messages (what follows them, statuses
		// of the stale member, is refused the same way).
		for i, nd := range nodes {
			waitFor(t, 10*time.Second, fmt.Sprintf("node %d to refuse the stale member's messages", i), func() bool {
				return nd.Stats().Rejected[reasonUnknownKey] >= before[i]+3
			})
		}
		for i, nd := range nodes {
			if nd.count(stale.LocalID()) != 0 || nd.Stats().Rejected[reasonUnknownKey] == 0 {
				t.Errorf("node %d: retired key accepted (rejected %v)", i, nd.Stats().Rejected)
			}
		}
	})
}

// A sealed stream (state transfer) follows the keyring: a stream started
// before Replace finishes with its key; new streams use the new primary;
// a stream under a retired key is refused.
func TestSecurityStreamRotation(t *testing.T) {
	kr := ring(t, 1, 1)
	var buf bytes.Buffer
	w, err := NewSealedWriter(kr, &buf, "t")
	if err != nil {
		t.Fatal(err)
	}
	data := bytes.Repeat([]byte("state"), 50000)
	w.Write(data[:1000])
	kr.Replace(ring(t, 2, 1, 2))
	w.Write(data[1000:])
	w.Close()
	got, err := io.ReadAll(NewSealedReader(kr, bytes.NewReader(buf.Bytes()), "t", 0))
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("stream across Replace: %v", err)
	}
	var buf2 bytes.Buffer
	w, _ = NewSealedWriter(kr, &buf2, "t")
	w.Write(data)
	w.Close()
	if buf2.Bytes()[4] != 2 {
		t.Fatalf("new stream sealed with key %d", buf2.Bytes()[4])
	}
	kr.Replace(ring(t, 2, 2))
	if _, err := io.ReadAll(NewSealedReader(kr, bytes.NewReader(buf.Bytes()), "t", 0)); !errors.Is(err, ErrStream) {
		t.Fatalf("stream under retired key 1: %v", err)
	}
	// Bit flips anywhere after the header fail authentication, never
	// return forged plaintext.
	b := buf2.Bytes()
	for _, i := range []int{5, 40, 41, 100, len(b) / 2, len(b) - 1} {
		c := append([]byte(nil), b...)
		c[i] ^= 0x80
		got, err := io.ReadAll(NewSealedReader(kr, bytes.NewReader(c), "t", 0))
		if err == nil || (len(got) > 0 && !bytes.HasPrefix(data, got)) {
			t.Fatalf("flip at %d: err %v, %d bytes", i, err, len(got))
		}
	}
}

// FuzzParseKeyring: arbitrary key files never panic; an accepted one
// re-renders to a file that parses to the same keyring.
func FuzzParseKeyring(f *testing.F) {
	text, _ := GenerateKeyFile()
	f.Add(text)
	l2, _ := GenerateKeyLine(2, false)
	f.Add(text + l2)
	f.Add("key 1 AAAA primary\nkey 1\n")
	f.Add("key 300 " + strings.Repeat("A", 43) + "=\n")
	f.Fuzz(func(t *testing.T, text string) {
		kr, err := ParseKeyring([]byte(text))
		if err != nil {
			if !errors.Is(err, ErrKeyring) {
				t.Fatalf("error does not wrap ErrKeyring: %v", err)
			}
			return
		}
		p, _ := kr.Primary()
		var b strings.Builder
		for _, id := range kr.IDs() {
			k, _ := kr.Lookup(id)
			b.WriteString("key " + strconv.Itoa(int(id)) + " " + base64.StdEncoding.EncodeToString(k[:]))
			if id == p {
				b.WriteString(" primary")
			}
			b.WriteString("\n")
		}
		again, err := ParseKeyring([]byte(b.String()))
		if err != nil || !again.Equal(kr) {
			t.Fatalf("round trip: %v", err)
		}
		_ = kr.Describe()
	})
}

// A member (holding the key) flooding NAKs gets NakAnswerRate answers per
// second; the rest is refused and counted, and the budget refills.
func TestSecurityNakRateLimit(t *testing.T) {
	a := testEngine(t, func(c *Config) { c.NakAnswerRate = 50 })
	b := testEngine(t, nil)
	sealedData(t, a, []byte("repair me"))
	addrB := netip.MustParseAddrPort("10.0.0.2:4000")
	nak := func() []byte {
		nb := nakBody{target: a.id, ranges: []seqRange{{1, 1}}}
		return b.control(packet.TypeNak, 0, nb.append(nil))
	}
	for range 500 {
		a.step(nak(), addrB, t0)
	}
	if got := a.stats.Retransmissions; got != 50 {
		t.Fatalf("%d retransmissions for 500 NAKs in one instant, want 50", got)
	}
	if got := a.stats.Rejected[reasonRate]; got != 450 {
		t.Fatalf("nak_rate rejections %d, want 450", got)
	}
	a.drain()
	for range 10 {
		a.step(nak(), addrB, t0.Add(time.Second))
	}
	if got := a.stats.Retransmissions; got != 60 {
		t.Fatalf("budget did not refill: %d retransmissions", got)
	}
	// Another requester has its own budget.
	c := testEngine(t, nil)
	nb := nakBody{target: a.id, ranges: []seqRange{{1, 1}}}
	a.step(c.control(packet.TypeNak, 0, nb.append(nil)), addrA, t0.Add(time.Second))
	if got := a.stats.Retransmissions; got != 61 {
		t.Fatalf("other requester refused: %d", got)
	}
}

// FuzzControlBodies: the NAK, ack and status decoders accept exactly what
// the encoders produce (decode then encode gives the input back), and
// encode then decode gives the fields back.
func FuzzControlBodies(f *testing.F) {
	f.Add((&nakBody{target: uuid.UUID{1}, ranges: []seqRange{{1, 5}, {9, 9}}}).append(nil))
	f.Add((&ackBody{target: uuid.UUID{2}, upTo: 7}).append(nil))
	f.Add((&statusBody{low: 3, entries: []statusEntry{{uuid.UUID{3}, 4}}}).append(nil))
	f.Fuzz(func(t *testing.T, b []byte) {
		if n, err := decodeNak(b); err == nil && !bytes.Equal(n.append(nil), b) {
			t.Fatalf("nak re-encodes differently")
		}
		if a, err := decodeAck(b); err == nil && !bytes.Equal(a.append(nil), b) {
			t.Fatalf("ack re-encodes differently")
		}
		if s, err := decodeStatus(b); err == nil && !bytes.Equal(s.append(nil), b) {
			t.Fatalf("status re-encodes differently")
		}
		// Fields from the input: 16-byte target, then (first, last) pairs.
		if len(b) < 16 {
			return
		}
		nb := nakBody{target: uuid.UUID(b[:16])}
		sb := statusBody{low: uint64(len(b))}
		rest := b[16:]
		for len(rest) >= 16 && len(nb.ranges) < maxNakRanges {
			first := max(1, binary.BigEndian.Uint64(rest))
			last := max(first, binary.BigEndian.Uint64(rest[8:]))
			nb.ranges = append(nb.ranges, seqRange{first, last})
			sb.entries = append(sb.entries, statusEntry{uuid.UUID(rest[:16]), last})
			rest = rest[16:]
		}
		if len(nb.ranges) > 0 {
			got, err := decodeNak(nb.append(nil))
			if err != nil || got.target != nb.target || !slices.Equal(got.ranges, nb.ranges) {
				t.Fatalf("nak round trip: %v", err)
			}
		}
		got, err := decodeStatus(sb.append(nil))
		if err != nil || got.low != sb.low || !slices.Equal(got.entries, sb.entries) {
			t.Fatalf("status round trip: %v", err)
		}
	})
}

// FuzzSealedStreamRoundTrip: whatever is written, in whatever pieces,
// reads back identical; the stream cut anywhere short of its end is an
// error, never a shorter success.
func FuzzSealedStreamRoundTrip(f *testing.F) {
	f.Add([]byte("state"), uint16(1), uint16(3))
	f.Add(bytes.Repeat([]byte{7}, 70000), uint16(65535), uint16(100))
	f.Fuzz(func(t *testing.T, data []byte, piece, cut uint16) {
		var buf bytes.Buffer
		w, err := NewSealedWriter(testKeyring, &buf, "fuzz")
		if err != nil {
			t.Fatal(err)
		}
		p := max(1, int(piece))
		for rest := data; len(rest) > 0; {
			n := min(p, len(rest))
			if _, err := w.Write(rest[:n]); err != nil {
				t.Fatal(err)
			}
			rest = rest[n:]
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(NewSealedReader(testKeyring, bytes.NewReader(buf.Bytes()), "fuzz", 0))
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("round trip of %d bytes: %v, got %d", len(data), err, len(got))
		}
		short := buf.Bytes()[:int(cut)%buf.Len()]
		if _, err := io.ReadAll(NewSealedReader(testKeyring, bytes.NewReader(short), "fuzz", 0)); err == nil {
			t.Fatalf("stream cut at %d of %d read without error", len(short), buf.Len())
		}
		if _, err := io.ReadAll(NewSealedReader(testKeyring, bytes.NewReader(buf.Bytes()), "other", 0)); err == nil && buf.Len() > 0 {
			t.Fatal("stream read under another label")
		}
	})
}
