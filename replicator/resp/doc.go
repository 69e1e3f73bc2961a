// Package resp serves the Redis protocol (RESP2, and RESP3 after HELLO 3)
// over hanode's replicated store, so that applications in any language
// keep their sessions in their local hanode through the Redis session
// store they already use (phpredis, connect-redis, redis-py, Spring
// Session, ...): every key is a record of the same replica as the HTTP
// sessions, replicated to every node over the multicast group.
//
// # The model
//
// A key k is the replica record replicator.KeyPrefix+k ("kv:k"), a
// namespace that httpsession IDs never enter. A string is the record's
// attribute "s"; a hash is one attribute per field ("h"+field), so HSET of
// one field replicates that field alone. A key's TTL is the record's
// Deadline: it travels with every write and a key past it reads as absent
// on every node at the same moment (the replica then reclaims the record;
// key records leave no tombstone). DEL deletes the attributes — tombstones
// that merge like writes — and leaves the empty record for
// Config.ReclaimAfter.
//
// Commands of one key are serialised on a node (HINCRBY, SET NX and SET
// GET are atomic there). Writes to one key from two nodes at once resolve
// per attribute, the later write winning, as HTTP sessions do; the TTL of
// the later commit wins. Writes follow Config.Consistency: with Sync, +OK
// means a peer acknowledged the write, and a write that no peer
// acknowledged in time (replicator.ErrNotReplicated) gets an error reply
// asking the client to retry it.
//
// # Commands
//
// PING, ECHO, AUTH, HELLO, SELECT (database 0 only), CLIENT (SETNAME,
// GETNAME, SETINFO, ID), COMMAND (COUNT, DOCS, INFO), INFO, QUIT, RESET;
// GET, SET (EX, PX, EXAT, PXAT, NX, XX, KEEPTTL, GET), SETEX, PSETEX,
// SETNX, GETDEL, GETEX, MGET, DEL, UNLINK, EXISTS, EXPIRE, PEXPIRE,
// EXPIREAT, PEXPIREAT (NX, XX, GT, LT), TTL, PTTL, PERSIST, TYPE, RENAME,
// SCAN (MATCH, COUNT, TYPE), KEYS, DBSIZE; HSET, HMSET, HGET, HMGET,
// HGETALL, HDEL, HEXISTS, HLEN, HKEYS, HINCRBY; MULTI, EXEC, DISCARD.
// Replies follow Redis 7.0 (checked against redis-server by the
// compatibility test in cmd/hanode). Any other command gets "-ERR unknown
// command" and the connection stays usable. MULTI/EXEC runs the queued
// commands with every key they name locked and commits their writes
// together at the end, one delta per key. SCAN's cursor is a position in
// a hash order of the keys; each call walks every record (COUNT is a hint
// with a floor of 1000), as do KEYS and DBSIZE.
//
// # The network part
//
// Server reads requests with github.com/tidwall/redcon's RESP reader, in
// front of which a guard enforces Limits (arguments per request, bytes per
// bulk string and per request, inline line length): a request over a
// limit or malformed gets an error reply and the connection is closed.
// Connections are bounded (Config.MaxConns) and closed after
// Config.IdleTimeout of silence. Pipelined requests are answered with one
// write per batch read.
//
// Use:
//
//	e, err := resp.NewEngine(store, resp.Config{Consistency: replicator.Sync, Password: pw})
//	srv := resp.NewServer(e)
//	go srv.Serve(ln)
//	defer srv.Close()
//
// The store is a replicator.Local (HA off) or a *cluster.Node (HA on):
// anything with the httpsession store interface and Range.
package resp
