// Package goredistest checks the Redis protocol of replicator/resp with
// go-redis v9, a real Go client, in a module of its own so that go-redis
// stays out of hanode's go.mod.
package goredistest
