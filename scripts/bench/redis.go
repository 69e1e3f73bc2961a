package bench

import (
	"io"
	"log/slog"
	"time"

	"github.com/hanode/hanode/replicator"
	"github.com/hanode/hanode/replicator/redisstore"
)

// HanodeRedis is httpsession on the Redis store (store = redis): one
// address is a standalone Redis, several the seeds of a Redis Cluster.
func HanodeRedis(name string, addrs []string, c replicator.Consistency) (*Variant, error) {
	st, err := redisstore.New(redisstore.Config{
		Node: "n1", Addrs: addrs,
		// The benchmark measures cost, not the tail: a WAIT that a
		// loaded 2-CPU host answers late must not fail a request.
		SyncTimeout: time.Second,
		Logger:      slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		return nil, err
	}
	v := Hanode(name, st, c)
	v.Close = func() { st.Close() }
	return v, nil
}
