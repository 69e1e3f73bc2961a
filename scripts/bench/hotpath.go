package bench

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"testing"
	"time"

	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"

	"github.com/hanode/hanode/internal/wire"
	"github.com/hanode/hanode/multicast"
	"github.com/hanode/hanode/replicator"
)

// codec is replicator's wire codec, as replicator/cluster uses it.
var codec = wire.Of[replicator.Delta, replicator.Session]()

// RealisticDeltas returns n deltas shaped like what httpsession commits
// for a typical web app: one to three changed keys among a counter, a
// CSRF token, a flash message, a last-visited path and a JSON cart, on
// distinct sessions with 192-bit IDs.
func RealisticDeltas(rng *mrand.Rand, n int) []*replicator.Delta {
	ds := make([]*replicator.Delta, n)
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC).UnixNano()
	for i := range ds {
		idb := make([]byte, 24)
		for j := range idb {
			idb[j] = byte(rng.Uint32())
		}
		d := &replicator.Delta{
			ID: base64.RawURLEncoding.EncodeToString(idb), Owner: "web-1", Epoch: 1,
			Version: uint64(rng.IntN(50) + 1), HLC: uint64(now)<<0 + uint64(i),
			Created: now - int64(rng.IntN(3600))*1e9, LastAccess: now, IdleTimeout: int64(30 * time.Minute), Deadline: now + int64(24*time.Hour),
		}
		d.Ops = append(d.Ops, replicator.Op{Kind: replicator.OpSet, Key: "n", Value: fmt.Appendf(nil, "%d", rng.IntN(1000))})
		switch rng.IntN(4) {
		case 0:
			d.Ops = append(d.Ops, replicator.Op{Kind: replicator.OpSet, Key: "cart", Value: fmt.Appendf(nil,
				`{"items":[{"sku":"SKU-%05d","qty":%d,"price":%d.%02d},{"sku":"SKU-%05d","qty":1,"price":%d.99}],"currency":"EUR","coupon":""}`,
				rng.IntN(99999), rng.IntN(5)+1, rng.IntN(200), rng.IntN(100), rng.IntN(99999), rng.IntN(90))})
		case 1:
			tok := make([]byte, 32)
			for j := range tok {
				tok[j] = byte(rng.Uint32())
			}
			d.Ops = append(d.Ops, replicator.Op{Kind: replicator.OpSet, Key: "csrf", Value: []byte(base64.RawURLEncoding.EncodeToString(tok))})
		case 2:
			d.Ops = append(d.Ops, replicator.Op{Kind: replicator.OpSet, Key: "flash", Value: []byte("Your changes have been saved.")},
				replicator.Op{Kind: replicator.OpSet, Key: "last_path", Value: fmt.Appendf(nil, "/account/orders/%d?page=%d", rng.IntN(1e6), rng.IntN(9)+1)})
		}
		ds[i] = d
	}
	return ds
}

// DeltaBatches returns encoded batches (the replicator codec's AppendBatch) of 1, 8
// and 64 realistic deltas: one request, about one datagram's worth, and
// a burst.
func DeltaBatches() []NamedBytes {
	rng := mrand.New(mrand.NewPCG(7, 7))
	var out []NamedBytes
	for _, n := range []int{1, 8, 64} {
		out = append(out, NamedBytes{fmt.Sprintf("batch of %d deltas", n), codec.AppendBatch(nil, RealisticDeltas(rng, n))})
	}
	// A ~4 KB session record as state transfer sends it.
	s := &replicator.Session{ID: "x", Owner: "web-1", Epoch: 1, Version: 3}
	attrs := map[string]replicator.Attr{}
	for _, d := range RealisticDeltas(rng, 48) {
		for _, op := range d.Ops {
			attrs[fmt.Sprintf("%s%d", op.Key, len(attrs))] = replicator.Attr{Value: op.Value, Stamp: replicator.Stamp{Epoch: 1, HLC: d.HLC, Node: "web-1"}}
		}
	}
	s.Attrs = replicator.NewAttrs(attrs)
	rec := codec.AppendSession(nil, s)
	out = append(out, NamedBytes{fmt.Sprintf("session record (state transfer), %d attrs", s.Attrs.Len()), rec})
	return out
}

// NamedBytes is a benchmark input.
type NamedBytes struct {
	Name string
	B    []byte
}

// Codec is one compression mode, configured as the multicast package
// configures it (zstd fastest, no CRC, 1 MiB window; S2 default level).
type Codec struct {
	Name       string
	Compress   func(dst, src []byte) []byte
	Decompress func(dst, src []byte) ([]byte, error)
}

// Codecs returns none, S2 and zstd.
func Codecs() []Codec {
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1),
		zstd.WithLowerEncoderMem(true), zstd.WithWindowSize(1<<20), zstd.WithEncoderCRC(false))
	if err != nil {
		panic(err)
	}
	dec, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true),
		zstd.WithDecoderMaxMemory(4<<20), zstd.WithDecodeAllCapLimit(true))
	if err != nil {
		panic(err)
	}
	return []Codec{
		{"none", func(dst, src []byte) []byte { return append(dst[:0], src...) }, func(dst, src []byte) ([]byte, error) { return append(dst[:0], src...), nil }},
		{"S2", func(dst, src []byte) []byte { return s2.Encode(dst[:cap(dst)], src) }, func(dst, src []byte) ([]byte, error) { return s2.Decode(dst[:cap(dst)], src) }},
		{"zstd", func(dst, src []byte) []byte { return enc.EncodeAll(src, dst[:0]) }, func(dst, src []byte) ([]byte, error) { return dec.DecodeAll(src, dst[:0]) }},
	}
}

// BenchCompress measures compressing (decompress false) or decompressing in.
func BenchCompress(c Codec, in []byte, decompress bool) func(b *testing.B) {
	return func(b *testing.B) {
		dst := make([]byte, 0, s2.MaxEncodedLen(len(in))+64)
		comp := c.Compress(dst, in)
		comp = append([]byte(nil), comp...)
		out := make([]byte, 0, len(in)+64)
		b.SetBytes(int64(len(in)))
		b.ReportAllocs()
		b.ResetTimer()
		for b.Loop() {
			if decompress {
				if _, err := c.Decompress(out, comp); err != nil {
					b.Fatal(err)
				}
			} else {
				c.Compress(dst, in)
			}
		}
		b.ReportMetric(float64(len(comp))/float64(len(in)), "ratio")
	}
}

// BenchEncodeBatch measures the replicator codec's AppendBatch of n realistic deltas.
func BenchEncodeBatch(n int) func(b *testing.B) {
	return func(b *testing.B) {
		ds := RealisticDeltas(mrand.New(mrand.NewPCG(1, 2)), n)
		buf := codec.AppendBatch(nil, ds)
		b.SetBytes(int64(len(buf)))
		b.ReportAllocs()
		b.ResetTimer()
		for b.Loop() {
			buf = codec.AppendBatch(buf[:0], ds)
		}
	}
}

// BenchDecodeApplyBatch measures what a receiver does with a batch:
// DecodeBatchFor (as the cluster's receive loop: IDs of held sessions
// shared, the previous batch's deltas reused), then Replica.Apply of each
// delta, on a replica that holds the sessions (new versions every round).
func BenchDecodeApplyBatch(n int) func(b *testing.B) {
	return func(b *testing.B) {
		ds := RealisticDeltas(mrand.New(mrand.NewPCG(1, 2)), n)
		r := replicator.NewReplica(replicator.DefaultReplicaConfig())
		b.ReportAllocs()
		buf := codec.AppendBatch(nil, ds)
		b.SetBytes(int64(len(buf)))
		var prev []*replicator.Delta
		b.ResetTimer()
		for i := 0; b.Loop(); i++ {
			b.StopTimer()
			for _, d := range ds {
				d.Version = uint64(i + 1)
				d.HLC += 1
			}
			buf = codec.AppendBatch(buf[:0], ds)
			b.StartTimer()
			got, err := codec.DecodeBatchFor(r, prev, buf)
			if err != nil {
				b.Fatal(err)
			}
			prev = got
			for _, d := range got {
				if _, err := r.Apply(d); err != nil {
					b.Fatal(err)
				}
			}
		}
	}
}

// BenchSealOpen measures AES-256-GCM sealing and opening through the
// public sealed-stream API (the state-transfer path; datagrams use the
// same per-sender AEAD): write chunk-sized messages, read them back.
func BenchSealOpen(chunk int) func(b *testing.B) {
	return func(b *testing.B) {
		kr := NewKeyring()
		msg := make([]byte, chunk)
		rand.Read(msg)
		var pipe bytes.Buffer
		out := make([]byte, chunk)
		b.SetBytes(int64(chunk))
		b.ReportAllocs()
		b.ResetTimer()
		for b.Loop() {
			pipe.Reset()
			w, err := multicast.NewSealedWriter(kr, &pipe, "bench")
			if err != nil {
				b.Fatal(err)
			}
			if _, err := w.Write(msg); err != nil {
				b.Fatal(err)
			}
			if err := w.Close(); err != nil {
				b.Fatal(err)
			}
			r := multicast.NewSealedReader(kr, &pipe, "bench", multicast.MaxStreamChunk)
			if _, err := io.ReadFull(r, out); err != nil {
				b.Fatal(err)
			}
		}
	}
}
