package bench

import (
	"fmt"
	"os"
	"testing"

	"github.com/hanode/hanode/replicator"
)

// sessions is the number of distinct sessions each middleware benchmark
// cycles through (one cookie per session).
const nSessions = 4096

// variants lists the middleware under test. The Redis ones need
// REDIS_ADDR (run.sh sets it); they are skipped otherwise.
var variants = []struct {
	name string
	new  func() (*Variant, error)
}{
	{"bare", func() (*Variant, error) { return Bare(), nil }},
	{"hanode-local", func() (*Variant, error) { return HanodeLocal(), nil }},
	{"hanode-ha-async", func() (*Variant, error) { return HanodeHA(false, 3, replicator.Async) }},
	{"hanode-ha-sync", func() (*Variant, error) { return HanodeHA(false, 3, replicator.Sync) }},
	{"scs-memstore", func() (*Variant, error) { return SCSMem(), nil }},
	{"scs-redis", func() (*Variant, error) { return SCSRedis(os.Getenv("REDIS_ADDR")), nil }},
	{"gorilla-redis", func() (*Variant, error) { return GorillaRedis(os.Getenv("REDIS_ADDR")), nil }},
	{"hanode-redis", func() (*Variant, error) {
		return HanodeRedis("hanode, store = redis", []string{os.Getenv("REDIS_ADDR")}, replicator.Async)
	}},
}

// BenchmarkMiddleware: one request with one get and one put per op.
func BenchmarkMiddleware(b *testing.B) {
	for _, vv := range variants {
		if (vv.name == "scs-redis" || vv.name == "gorilla-redis" || vv.name == "hanode-redis") && os.Getenv("REDIS_ADDR") == "" {
			b.Run(vv.name, func(b *testing.B) { b.Skip("REDIS_ADDR not set") })
			continue
		}
		// Set up once, outside the timed function (which runs once per
		// b.N round).
		v, err := vv.new()
		if err != nil {
			b.Fatal(err)
		}
		cookies, err := Prime(v, nSessions)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(vv.name, func(b *testing.B) { BenchHandler(b, v.H, cookies) })
		v.Close()
	}
}

func BenchmarkDeltaEncode(b *testing.B) {
	for _, n := range []int{1, 8, 64} {
		b.Run(fmt.Sprint(n), BenchEncodeBatch(n))
	}
}

func BenchmarkDeltaDecodeApply(b *testing.B) {
	for _, n := range []int{1, 8, 64} {
		b.Run(fmt.Sprint(n), BenchDecodeApplyBatch(n))
	}
}

func BenchmarkSealOpen(b *testing.B) {
	for _, n := range []int{1 << 10, 64 << 10} {
		b.Run(fmt.Sprint(n), BenchSealOpen(n))
	}
}

func BenchmarkCompressDeltas(b *testing.B) {
	for _, in := range DeltaBatches() {
		for _, c := range Codecs() {
			b.Run(in.Name+"/"+c.Name+"/compress", BenchCompress(c, in.B, false))
			b.Run(in.Name+"/"+c.Name+"/decompress", BenchCompress(c, in.B, true))
		}
	}
}
