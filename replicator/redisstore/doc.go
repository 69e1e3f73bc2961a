// Package redisstore keeps httpsession's sessions in Redis or a Redis
// Cluster instead of the in-process replica: for deployments whose
// sessions no longer fit in every node's memory, or whose web tier spans
// networks that one multicast group cannot cover. `hanode run --store
// redis --store-addrs ...` (and the embedding package's `store = "redis"`)
// use it; an application can also use it directly:
//
//	st, err := redisstore.New(redisstore.Config{Node: "web1", Addrs: []string{"10.0.0.5:6379"}})
//	if err != nil { ... }            // Redis unreachable: the error names it
//	defer st.Close()
//	m, err := httpsession.New(st, httpsession.DefaultConfig())
//
// # Data model
//
// One hash per session, "<prefix>s:{<id>}", whose hash tag is the session
// ID: a cluster slot never splits a session. A commit is one round trip,
// a MULTI/EXEC on the session's master that writes only the changed
// attributes and the metadata, bumps the version and sets the TTL (idle
// timeout plus a grace for batched accesses, capped by the absolute
// deadline). Sync and SyncAll commits add a WAIT on the same connection.
// A destroyed session is a tombstone hash for Config.TombstoneTTL, so a
// late write cannot bring it back. The principal index is one sorted set
// per principal, "<prefix>p:{<hash>}". A rename (RenewToken) takes two
// round trips: the old ID becomes a tombstone pointing to the new one,
// then the new hash is written.
//
// # Near cache
//
// Sessions this process read or wrote are served from memory. Each
// connection tracks the keys it read (RESP3 CLIENT TRACKING ON NOLOOP):
// Redis reports every change by another client, and the entry goes. The
// process's own commits are plain commands, which NOLOOP does not echo,
// and update the entry themselves; a lost connection empties the cache.
// Between nodes a change is visible once its invalidation arrived
// (usually well under a millisecond): keep routing users stickily.
//
// # Caller's duties
//
//  1. Close the Store when done: it flushes batched accesses.
//  2. Treat an error wrapping ErrUnavailable as a failed request (the
//     httpsession middleware does: the request gets its ErrorFunc).
//  3. Watch Ready/Err (or /readyz and hanode_store_redis_up): they report
//     outages between requests.
//
// Redis 6 or later (RESP3, client tracking) is required; Valkey works.
package redisstore
