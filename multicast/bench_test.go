package multicast

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
)

// sessionDelta builds a realistic replication batch: n small records of
// session id, attribute key and a JSON-ish value.
func sessionDelta(rng *rand.Rand, n int) []byte {
	var b []byte
	for range n {
		b = fmt.Appendf(b, `{"op":"SET","sid":"%016x%016x","epoch":%d,"ver":%d,"key":"user.cart","val":{"items":[%d,%d],"total":%d.%02d,"currency":"EUR"}}`,
			rng.Uint64(), rng.Uint64(), rng.IntN(5), rng.IntN(1000), rng.IntN(9999), rng.IntN(9999), rng.IntN(500), rng.IntN(100))
		b = append(b, '\n')
	}
	return b
}

func benchInputs() map[string][]byte {
	rng := rand.New(rand.NewPCG(7, 7))
	random := make([]byte, 4096)
	for i := range random {
		random[i] = byte(rng.Uint32())
	}
	kv := make([]byte, 0, 1024)
	for i := range 40 {
		kv = fmt.Appendf(kv, "k%d=%d;", i, rng.IntN(1e6))
	}
	return map[string][]byte{
		"delta1":   sessionDelta(rng, 1),  // ~190 B: below the threshold
		"delta8":   sessionDelta(rng, 8),  // ~1.5 KB: one batched datagram's worth
		"delta64":  sessionDelta(rng, 64), // ~12 KB: a burst batch
		"kv":       kv,
		"random4k": random,
	}
}

func BenchmarkCompress(b *testing.B) {
	for _, name := range []string{"delta1", "delta8", "delta64", "kv", "random4k"} {
		in := benchInputs()[name]
		for _, mode := range []struct {
			name string
			c    Compression
		}{{"none", CompressionNone}, {"s2", CompressionS2}, {"zstd", CompressionZstd}} {
			b.Run(name+"/"+mode.name, func(b *testing.B) {
				c := newCodec(mode.c, 256, 4<<20)
				b.SetBytes(int64(len(in)))
				for b.Loop() {
					out, ok := c.compress(in)
					if ok {
						if _, err := c.decompress(out); err != nil {
							b.Fatal(err)
						}
					}
				}
				out, _ := c.compress(in)
				b.ReportMetric(float64(len(out))/float64(len(in)), "ratio")
			})
		}
	}
}

// BenchmarkMemBroadcastDeliver measures Broadcast → seal → mem network →
// open → order → deliver between two members (real time).
func BenchmarkMemBroadcastDeliver(b *testing.B) {
	for _, size := range []int{100, 1000, 10000} {
		b.Run(fmt.Sprint(size), func(b *testing.B) {
			func() {
				net := NewMemNetwork(1)
				cfg := testConfig()
				cfg.SendQueue = 1 << 20
				a, _ := net.Join(cfg)
				r, _ := net.Join(cfg)
				defer a.Close()
				defer r.Close()
				// Real time: wait until r has heard a's first status.
				for ev := range r.Events() {
					if ev.From == a.LocalID() {
						break
					}
				}
				msg := make([]byte, size)
				b.SetBytes(int64(size))
				b.ResetTimer()
				// A window of outstanding messages keeps the benchmark
				// within the receive queue (no loss, no repair).
				credits := make(chan struct{}, 256)
				done := make(chan struct{})
				go func() {
					for range b.N {
						<-r.Messages()
						<-credits
					}
					close(done)
				}()
				for range b.N {
					credits <- struct{}{}
					if _, err := a.Broadcast(context.Background(), msg, SendOptions{}); err != nil {
						b.Error(err)
						return
					}
				}
				<-done
				b.StopTimer()
			}()
		})
	}
}
