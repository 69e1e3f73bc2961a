package redisstore

import (
	"hash/maphash"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/redis/rueidis"

	"github.com/hanode/hanode/replicator"
)

// nearCache holds decoded sessions in this process, kept coherent by
// Redis's server-assisted client-side caching: every connection tracks
// the keys it reads (CLIENT TRACKING ON NOLOOP), so a change another
// client makes to a session this process read reaches onInvalidate,
// which drops the entry. Changes this process makes on the same
// connection are not echoed (NOLOOP; plain commands only, a script's
// writes are echoed): Commit updates the entry itself, from the snapshot
// it changed and the version the transaction returned, so the next
// request of the user is served from memory (read-your-writes without a
// round trip), and re-reads the key in the same transaction to stay
// tracked.
//
// Races between a read (or a commit) and an invalidation are settled by
// tokens: a bucket counter per hash of the ID, bumped by every
// invalidation of an ID in that bucket, and a generation bumped when the
// connection drops (all entries go). An entry is stored only if its
// token did not change since the read or commit began.
type nearCache struct {
	prefix string // key prefix of session hashes: "<prefix>s:{"
	limit  int    // entries per shard
	seed   maphash.Seed
	gen    atomic.Uint64
	shards [64]nearShard
}

type nearShard struct {
	mu  sync.RWMutex
	m   map[string]*replicator.Session
	inv [64]uint64 // invalidation counters by bucket
}

type nearToken struct {
	gen, inv uint64
}

func newNearCache(prefix string, entries int) *nearCache {
	c := &nearCache{prefix: prefix + "s:{", limit: max(entries/64, 1), seed: maphash.MakeSeed()}
	for i := range c.shards {
		c.shards[i].m = map[string]*replicator.Session{}
	}
	return c
}

func (c *nearCache) locate(id string) (*nearShard, int) {
	h := maphash.String(c.seed, id)
	return &c.shards[h%64], int((h >> 6) % 64)
}

func (c *nearCache) get(id string) *replicator.Session {
	sh, _ := c.locate(id)
	sh.mu.RLock()
	ss := sh.m[id]
	sh.mu.RUnlock()
	return ss
}

func (c *nearCache) token(id string) nearToken {
	sh, b := c.locate(id)
	sh.mu.RLock()
	t := nearToken{gen: c.gen.Load(), inv: sh.inv[b]}
	sh.mu.RUnlock()
	return t
}

// put stores ss (nil: removes the entry) if no invalidation of id came
// since t was taken; a full shard drops an arbitrary entry first.
func (c *nearCache) put(id string, ss *replicator.Session, t nearToken) {
	sh, b := c.locate(id)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if ss == nil || c.gen.Load() != t.gen || sh.inv[b] != t.inv {
		delete(sh.m, id)
		return
	}
	if _, ok := sh.m[id]; !ok && len(sh.m) >= c.limit {
		for k := range sh.m {
			delete(sh.m, k)
			break
		}
	}
	sh.m[id] = ss
}

// touch moves the cached entry's last access forward (the batched touch
// that writes it to Redis is this process's own write: not echoed).
func (c *nearCache) touch(id string, now int64) {
	sh, _ := c.locate(id)
	sh.mu.Lock()
	if ss := sh.m[id]; ss != nil && now > ss.LastAccess {
		ns := *ss
		ns.LastAccess = now
		sh.m[id] = &ns
	}
	sh.mu.Unlock()
}

// drop removes id's entry and counts an invalidation.
func (c *nearCache) drop(id string) {
	sh, b := c.locate(id)
	sh.mu.Lock()
	delete(sh.m, id)
	sh.inv[b]++
	sh.mu.Unlock()
}

// onInvalidate is rueidis's OnInvalidations callback: keys changed by
// other clients, or nil when the connection was lost (everything goes).
func (c *nearCache) onInvalidate(keys []rueidis.RedisMessage) {
	if dbgInv != nil {
		dbgInv(keys)
	}
	if keys == nil {
		c.gen.Add(1)
		for i := range c.shards {
			sh := &c.shards[i]
			sh.mu.Lock()
			clear(sh.m)
			sh.mu.Unlock()
		}
		return
	}
	for _, k := range keys {
		key, err := k.ToString()
		if err != nil {
			continue
		}
		if rest, ok := strings.CutPrefix(key, c.prefix); ok {
			c.drop(strings.TrimSuffix(rest, "}"))
		}
	}
}

// applyDelta returns old (nil for a new session) with d applied as the
// commit script applies it, at version v, under id.
func applyDelta(old *replicator.Session, id string, d *replicator.Delta, v uint64) *replicator.Session {
	var ns replicator.Session
	attrs := map[string]replicator.Attr{}
	if old != nil {
		ns = *old
		attrs = old.Attrs.Map()
	} else {
		ns = replicator.Session{Epoch: 0, Created: d.Created}
	}
	ns.ID = id
	if old == nil || d.Epoch >= ns.Epoch {
		ns.Epoch, ns.Owner = d.Epoch, d.Owner
	}
	if ns.Created == 0 {
		ns.Created = d.Created
	}
	ns.LastAccess = max(ns.LastAccess, d.LastAccess)
	ns.IdleTimeout, ns.Deadline = d.IdleTimeout, d.Deadline
	st := replicator.Stamp{Epoch: ns.Epoch, Node: ns.Owner}
	for _, op := range d.Ops {
		switch op.Kind {
		case replicator.OpSet:
			attrs[op.Key] = replicator.Attr{Value: op.Value}
		case replicator.OpDel:
			delete(attrs, op.Key)
		case replicator.OpPrincipal:
			ns.Principal = string(op.Value)
		}
	}
	for k, a := range attrs {
		a.Stamp = st
		attrs[k] = a
	}
	ns.Attrs = replicator.NewAttrs(attrs)
	ns.PrincipalAt = st
	ns.Version = v
	return &ns
}

var dbgInv func([]rueidis.RedisMessage)
