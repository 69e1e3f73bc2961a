package resp

import (
	"strconv"
	"testing"

	"github.com/hanode/hanode/replicator"
)

// BenchmarkExec measures the engine alone over a local store: the cost
// hanode adds per command before replication.
func BenchmarkExec(b *testing.B) {
	for _, tc := range []struct {
		name string
		args func(i int) [][]byte
	}{
		{"SET", func(i int) [][]byte {
			return [][]byte{[]byte("SET"), []byte("key:" + strconv.Itoa(i%1000)), []byte("xxx")}
		}},
		{"GET", func(i int) [][]byte { return [][]byte{[]byte("GET"), []byte("key:" + strconv.Itoa(i%1000))} }},
		{"HSET-1000-fields", func(i int) [][]byte {
			return [][]byte{[]byte("HSET"), []byte("myhash"), []byte("element:" + strconv.Itoa(i%1000)), []byte("xxx")}
		}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			e, _ := NewEngine(replicator.NewLocal("n1", replicator.ReplicaConfig{}), Config{})
			c := e.NewClient("bench")
			var w Reply
			for i := 0; i < 1000; i++ {
				e.Exec(c, [][]byte{[]byte("SET"), []byte("key:" + strconv.Itoa(i)), []byte("xxx")}, &w)
				e.Exec(c, [][]byte{[]byte("HSET"), []byte("myhash"), []byte("element:" + strconv.Itoa(i)), []byte("xxx")}, &w)
			}
			args := make([][][]byte, 1000)
			for i := range args {
				args[i] = tc.args(i)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				w.Reset()
				e.Exec(c, args[i%1000], &w)
			}
		})
	}
}
