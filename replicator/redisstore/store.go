package redisstore

import (
	"context"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"

	"github.com/hanode/hanode/replicator"
)

// Errors returned by the store besides replicator's ErrTooLarge,
// ErrDestroyed, ErrClosed and ErrNotReplicated (a Sync or SyncAll commit
// that no, or not enough, Redis replicas acknowledged within SyncTimeout:
// applied on the master, its survival of a failover unknown).
var (
	// ErrUnavailable wraps every failure to reach Redis: the request that
	// needed the store gets it, nothing is silently dropped.
	ErrUnavailable = errors.New("redisstore: redis unavailable")
	// ErrNoReplica is reported by Err when RequireReplica is set and a
	// master has no online replica: sync commits to it cannot succeed.
	ErrNoReplica = errors.New("redisstore: no redis replica")
)

type script struct {
	src string
	sha string
}

func newScript(src string) *script {
	sum := sha1.Sum([]byte(src))
	return &script{src: src, sha: hex.EncodeToString(sum[:])}
}

var (
	scInvalidate = newScript(invalidateScript)
	scTouch      = newScript(touchScript)
	scIndex      = newScript(indexScript)
)

// Store keeps sessions in Redis or a Redis Cluster: one hash per session,
// written by one MULTI/EXEC per commit (only the changed attributes, the
// metadata and the TTL), read through a near cache that Redis keeps
// coherent. It implements replicator.Store, httpsession.RangeStore and
// httpsession.LoadStore. All methods are safe for concurrent use.
type Store struct {
	cfg Config
	c   rueidis.Client

	touchMu sync.Mutex
	touches map[string]int64

	near *nearCache // nil when CacheSessions < 0

	lenMu   sync.Mutex
	lenN    int
	lenAt   time.Time
	lenBusy bool // a count is running

	up        atomic.Bool
	replicas  atomic.Int64           // fewest online replicas of a master (last health check)
	noReplica atomic.Pointer[string] // why sync cannot succeed ("" or nil: it can)
	lastErr   atomic.Pointer[outage]
	logMu     sync.Mutex
	logAt     time.Time
	st        stats

	stop   chan struct{}
	wg     sync.WaitGroup
	closed atomic.Bool
}

type outage struct {
	op  string
	err error
	at  time.Time
}

var _ replicator.Store = (*Store)(nil)

// New connects to Redis and returns the store. It fails with an error
// naming the addresses when Redis cannot be reached or refuses the
// credentials. Close it when done.
func New(cfg Config) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	opt := rueidis.ClientOption{
		InitAddress:      cfg.Addrs,
		Username:         cfg.Username,
		Password:         cfg.Password,
		TLSConfig:        cfg.TLS,
		ClientName:       "hanode-" + cfg.Node,
		DisableCache:     cfg.CacheSessions < 0,
		ConnWriteTimeout: max(cfg.Timeout, time.Second),
		Dialer:           defaultDialer(cfg.Timeout),
	}
	var near *nearCache
	if cfg.CacheSessions > 0 {
		// The near cache is ours (decoded sessions); rueidis's own cache
		// stays empty (no DoCache), its connections only carry the
		// tracking of the keys they read.
		near = newNearCache(cfg.Prefix, cfg.CacheSessions)
		opt.CacheSizeEachConn = 1 << 16
		// Default tracking mode: Redis remembers the keys this
		// connection read and reports their changes by others (NOLOOP:
		// not this connection's own, which Commit follows itself).
		// Broadcast mode would also report, through the connections
		// rueidis keeps to replicas, every write replicated to them.
		opt.ClientTrackingOptions = []string{"NOLOOP"}
		opt.OnInvalidations = near.onInvalidate
		// One pipelined connection per Redis node: NOLOOP hides this
		// process's writes only from the connection that made them, so a
		// second connection would echo every write back as a change.
		opt.PipelineMultiplex = -1
	}
	c, err := rueidis.NewClient(opt)
	if err != nil {
		return nil, fmt.Errorf("%w: connect to %s: %v", ErrUnavailable, strings.Join(cfg.Addrs, ","), err)
	}
	s := &Store{
		cfg: cfg, c: c,
		touches: map[string]int64{},
		near:    near,
		stop:    make(chan struct{}),
	}
	ctx, cancel := context.WithTimeout(context.Background(), cfg.Timeout)
	defer cancel()
	if err := s.ping(ctx); err != nil {
		c.Close()
		return nil, fmt.Errorf("%w: %s: %v", ErrUnavailable, strings.Join(cfg.Addrs, ","), err)
	}
	s.up.Store(true)
	cfg.Logger.Info("redis session store connected", "addrs", strings.Join(cfg.Addrs, ","),
		"mode", modeName(c.Mode()), "near_cache_sessions", max(cfg.CacheSessions, 0))
	s.every(s.cfg.TouchInterval, s.flushTouches)
	s.every(s.cfg.HealthInterval, s.checkHealth)
	return s, nil
}

func modeName(m rueidis.ClientMode) string {
	switch m {
	case rueidis.ClientModeCluster:
		return "cluster"
	case rueidis.ClientModeSentinel:
		return "sentinel"
	}
	return "standalone"
}

// Close flushes batched accesses and disconnects. Sessions stay in Redis.
func (s *Store) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	close(s.stop)
	s.wg.Wait()
	s.flushTouches()
	s.c.Close()
	return nil
}

// Client returns the underlying Redis client (for tests and tools).
func (s *Store) Client() rueidis.Client { return s.c }

// Node returns this node's name.
func (s *Store) Node() string { return s.cfg.Node }

// Key names. The session ID is the hash tag (a cluster slot never
// splits a session's keys); a principal's index is tagged by its hash.
func (s *Store) key(id string) string { return s.cfg.Prefix + "s:{" + id + "}" }
func (s *Store) index(principal string) string {
	sum := sha256.Sum256([]byte(principal))
	return s.cfg.Prefix + "p:{" + hex.EncodeToString(sum[:16]) + "}"
}

func (s *Store) opCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), s.cfg.Timeout)
}

// fail records an outage: counted, logged (at most once a second) and
// reported by Ready and Err until an operation succeeds again.
func (s *Store) fail(op string, err error) error {
	s.st.errors(op).Add(1)
	s.lastErr.Store(&outage{op: op, err: err, at: time.Now()})
	s.up.Store(false)
	s.logMu.Lock()
	now := time.Now()
	logIt := now.Sub(s.logAt) >= time.Second
	if logIt {
		s.logAt = now
	}
	s.logMu.Unlock()
	if logIt {
		s.cfg.Logger.Warn("redis session store: operation failed", "op", op, "err", err)
	}
	return fmt.Errorf("%w: %s: %v", ErrUnavailable, op, err)
}

func (s *Store) ok() {
	if !s.up.Load() {
		s.up.Store(true)
		s.cfg.Logger.Info("redis session store reachable again")
	}
}

// Get returns the live session with this ID, or nil. A store outage is
// counted and reported by Ready; Get then returns nil (use Load to tell
// the two apart).
func (s *Store) Get(id string) *replicator.Session {
	ctx, cancel := s.opCtx()
	defer cancel()
	ss, _ := s.Load(ctx, id)
	return ss
}

// Load returns the live session with this ID; nil and a nil error when
// there is none; an error wrapping ErrUnavailable when Redis could not
// answer. A session in the near cache is served from memory.
func (s *Store) Load(ctx context.Context, id string) (*replicator.Session, error) {
	if id == "" {
		return nil, nil
	}
	var tok nearToken
	if s.near != nil && s.up.Load() { // during a known outage, ask Redis (and fail)
		if ss := s.near.get(id); ss != nil {
			if !s.pastTTL(ss, time.Now().UnixNano()) {
				s.st.cacheHits.Add(1)
				return ss, nil
			}
			// Redis has removed it or is about to: ask.
			s.forget(id)
		}
		tok = s.near.token(id)
	}
	s.st.cacheMisses.Add(1)
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	m, err := s.c.Do(ctx, s.c.B().Hgetall().Key(s.key(id)).Build()).AsStrMap()
	if err != nil {
		s.st.getErrors.Add(1)
		return nil, s.fail("get", err)
	}
	ss := parse(id, m)
	if s.near != nil {
		s.near.put(id, ss, tok)
	}
	s.ok()
	return ss, nil
}

// parse builds a session snapshot from a hash; nil for an empty one.
func parse(id string, m map[string]string) *replicator.Session {
	if len(m) == 0 {
		return nil
	}
	if _, dead := m["x"]; dead {
		return nil // a tombstone
	}
	ss := &replicator.Session{ID: id}
	attrs := make(map[string]replicator.Attr, len(m))
	for k, v := range m {
		if name, ok := strings.CutPrefix(k, "a:"); ok {
			attrs[name] = replicator.Attr{Value: []byte(v)}
			continue
		}
		switch k {
		case "o":
			ss.Owner = v
		case "e":
			n, _ := strconv.ParseUint(v, 10, 32)
			ss.Epoch = uint32(n)
		case "v":
			ss.Version, _ = strconv.ParseUint(v, 10, 64)
		case "c":
			ss.Created, _ = strconv.ParseInt(v, 10, 64)
		case "l":
			ss.LastAccess, _ = strconv.ParseInt(v, 10, 64)
		case "i":
			ss.IdleTimeout, _ = strconv.ParseInt(v, 10, 64)
		case "d":
			ss.Deadline, _ = strconv.ParseInt(v, 10, 64)
		case "p":
			ss.Principal = v
		}
	}
	if ss.Version == 0 {
		return nil // a hash left by a partial write, never a session
	}
	for k, a := range attrs {
		a.Stamp = replicator.Stamp{Epoch: ss.Epoch, Node: ss.Owner}
		attrs[k] = a
	}
	ss.Attrs = replicator.NewAttrs(attrs)
	ss.PrincipalAt = replicator.Stamp{Epoch: ss.Epoch, Node: ss.Owner}
	return ss
}

// pastTTL reports whether a cached snapshot is past the TTL its commit
// gave it in Redis (an expiry's invalidation may not have arrived).
func (s *Store) pastTTL(ss *replicator.Session, now int64) bool {
	if ss.Deadline != 0 && now >= ss.Deadline {
		return true
	}
	return ss.IdleTimeout > 0 && now-ss.LastAccess >= ss.IdleTimeout+2*int64(s.cfg.TouchInterval)
}

// ttl returns the Redis TTL of a session in milliseconds (0: none): the
// idle timeout plus a grace for batched touches, capped by the absolute
// deadline. httpsession checks both exactly at load; the TTL removes
// what nobody loads any more.
func (s *Store) ttl(last, idle, deadline int64) int64 {
	ttl := int64(-1)
	if idle > 0 {
		ttl = (idle + 2*int64(s.cfg.TouchInterval)) / 1e6
	}
	if deadline > 0 {
		rest := (deadline - last) / 1e6
		if ttl < 0 || rest < ttl {
			ttl = rest
		}
	}
	if ttl < 0 {
		return 0
	}
	return max(ttl, 1)
}

// forget removes id from the near cache (after this process changed it
// in a way the cache cannot follow).
func (s *Store) forget(id string) {
	if s.near != nil {
		s.near.put(id, nil, nearToken{})
	}
}

// evalCmd builds EVALSHA, or EVAL when the script is not cached on the
// server (after a restart or a failover).
func (s *Store) evalCmd(sc *script, full bool, keys, args []string) rueidis.Completed {
	if full {
		return s.c.B().Eval().Script(sc.src).Numkeys(int64(len(keys))).Key(keys...).Arg(args...).Build()
	}
	return s.c.B().Evalsha().Sha1(sc.sha).Numkeys(int64(len(keys))).Key(keys...).Arg(args...).Build()
}

func noScript(err error) bool {
	re, ok := rueidis.IsRedisErr(err)
	return ok && re.IsNoScript()
}

// eval runs one script, by its SHA1 or, when the server does not have it
// cached (after a restart or a failover), by its source.
func (s *Store) eval(ctx context.Context, sc *script, keys, args []string) rueidis.RedisResult {
	res := s.c.Do(ctx, s.evalCmd(sc, false, keys, args))
	if noScript(res.Error()) {
		res = s.c.Do(ctx, s.evalCmd(sc, true, keys, args))
	}
	return res
}

// scriptErr maps the scripts' errors to the replicator's.
func scriptErr(err error) (error, bool) {
	re, ok := rueidis.IsRedisErr(err)
	if !ok {
		return nil, false
	}
	msg := re.Error()
	switch {
	case strings.Contains(msg, "HANODE_DESTROYED"):
		return fmt.Errorf("%w: commit on a destroyed session", replicator.ErrDestroyed), true
	}
	return nil, false
}

// Commit writes d in one round trip: one script on the session's master
// writes the changed attributes, the metadata and the TTL; with Sync or
// SyncAll a WAIT follows on the same connection. A rename takes a second
// round trip (the new ID has another hash tag), a principal change one to
// update the principal index. An error means the request must not
// assume the write happened; ErrNotReplicated means it happened on the
// master only (replicator.ErrNotReplicated).
func (s *Store) Commit(ctx context.Context, d *replicator.Delta, c replicator.Consistency) (replicator.CommitResult, error) {
	var res replicator.CommitResult
	if err := ctx.Err(); err != nil {
		return res, err
	}
	if s.closed.Load() {
		return res, replicator.ErrClosed
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	if d.Owner == "" {
		d.Owner = s.cfg.Node
	}
	d.HLC = uint64(time.Now().UnixNano())
	var (
		invalidate, hasPrincipal bool
		reason                   byte = byte(replicator.ReasonInvalidated)
		renameTo, principal      string
		fields                   []string // attribute field, value pairs for HSET
		copied                   []string // a renamed session's fields
		dels                     []string
	)
	for _, op := range d.Ops {
		switch op.Kind {
		case replicator.OpSet:
			if len(op.Value) > s.cfg.MaxAttrBytes {
				return res, fmt.Errorf("%w: attribute %q is %d bytes, limit %d", replicator.ErrTooLarge, op.Key, len(op.Value), s.cfg.MaxAttrBytes)
			}
			fields = append(fields, "a:"+op.Key, string(op.Value))
		case replicator.OpDel:
			dels = append(dels, "a:"+op.Key)
		case replicator.OpInvalidate:
			invalidate = true
			if len(op.Value) == 1 {
				reason = op.Value[0]
			}
		case replicator.OpRename:
			renameTo = op.Key
		case replicator.OpPrincipal:
			hasPrincipal, principal = true, string(op.Value)
		}
	}
	if invalidate {
		return res, s.invalidate(ctx, d.ID, string([]byte{reason}))
	}
	// The session as this process knows it: for the size limit and to
	// follow its own write in the near cache.
	old, err := s.Load(ctx, d.ID)
	if err != nil {
		s.st.commitErrors.Add(1)
		return res, err
	}
	if size := sizeAfter(old, d); size > s.cfg.MaxSessionBytes {
		return res, fmt.Errorf("%w: session would be %d bytes, limit %d", replicator.ErrTooLarge, size, s.cfg.MaxSessionBytes)
	}
	target := d.ID
	var oldPrincipal string
	if renameTo != "" {
		target = renameTo
		var p string
		copied, p, err = s.takeForRename(ctx, d.ID, renameTo)
		if err != nil {
			return res, err
		}
		oldPrincipal = p
	}
	var tok nearToken
	if s.near != nil {
		tok = s.near.token(target)
	}
	// One transaction on the session's master: plain commands, not a
	// script, so that Redis does not echo the change back to this
	// connection (CLIENT TRACKING NOLOOP ignores script writes).
	key := s.key(target)
	b := s.c.B()
	ttl := s.ttl(d.LastAccess, d.IdleTimeout, d.Deadline)
	meta := []string{"o", d.Owner, "e", strconv.FormatUint(uint64(d.Epoch), 10),
		"l", strconv.FormatInt(d.LastAccess, 10), "i", strconv.FormatInt(d.IdleTimeout, 10),
		"d", strconv.FormatInt(d.Deadline, 10)}
	if hasPrincipal {
		meta = append(meta, "p", principal)
	}
	hset := b.Hset().Key(key).FieldValue()
	for i := 0; i+1 < len(copied); i += 2 {
		hset = hset.FieldValue(copied[i], copied[i+1])
	}
	for i := 0; i+1 < len(meta); i += 2 {
		hset = hset.FieldValue(meta[i], meta[i+1])
	}
	for i := 0; i+1 < len(fields); i += 2 {
		hset = hset.FieldValue(fields[i], fields[i+1])
	}
	cmds := rueidis.Commands{b.Multi().Build(), hset.Build()}
	if len(dels) > 0 {
		cmds = append(cmds, b.Hdel().Key(key).Field(dels...).Build())
	}
	if old == nil || renameTo != "" {
		cmds = append(cmds, b.Hsetnx().Key(key).Field("c").Value(strconv.FormatInt(d.Created, 10)).Build())
	}
	cmds = append(cmds, b.Hincrby().Key(key).Field("v").Increment(1).Build())
	if ttl > 0 {
		cmds = append(cmds, b.Pexpire().Key(key).Milliseconds(ttl).Build())
	} else {
		cmds = append(cmds, b.Persist().Key(key).Build())
	}
	// A read after the writes keeps this connection tracking the key (a
	// write ends the tracking of every client, its own included) and
	// tells whether the writes landed in a tombstone.
	cmds = append(cmds, b.Hexists().Key(key).Field("x").Build(), b.Exec().Build())
	need := int64(0)
	if c != replicator.Async {
		need = 1
		if c == replicator.SyncAll {
			need = int64(s.cfg.SyncAllReplicas)
			if need == 0 {
				need = max(s.replicas.Load(), 1)
			}
		}
		cmds = append(cmds, b.Wait().Numreplicas(need).Timeout(max(s.cfg.SyncTimeout.Milliseconds(), 1)).Build())
	}
	out := s.c.DoMulti(ctx, cmds...)
	execAt := len(cmds) - 1
	if need > 0 {
		execAt--
	}
	arr, err := out[execAt].ToArray()
	if err == nil && len(arr) < 4 {
		err = fmt.Errorf("transaction answered %d replies", len(arr))
	}
	if err != nil {
		for _, r := range out[:execAt] {
			if e := r.Error(); e != nil {
				err = e
				break
			}
		}
		s.forget(target)
		s.st.commitErrors.Add(1)
		return res, s.fail("commit", err)
	}
	if dead, _ := arr[len(arr)-1].AsBool(); dead {
		// A tombstone: the writes went into it and stay invisible.
		s.forget(target)
		return res, fmt.Errorf("%w: commit on a destroyed session", replicator.ErrDestroyed)
	}
	if renameTo == "" && old != nil {
		// The principal as this node knows it (the near cache follows
		// every change); a stale one leaves an index entry that
		// SessionsOf drops.
		oldPrincipal = old.Principal
	}
	v, _ := arr[len(arr)-3].AsInt64()
	d.Version = uint64(v)
	if s.near != nil {
		// Follow this process's own write (Redis does not echo it): the
		// loaded snapshot plus d is the new state when nobody else wrote
		// in between (the version says so).
		var ns *replicator.Session
		if (old != nil && old.Version+1 == d.Version) || (old == nil && d.Version == 1 && renameTo == "") {
			ns = applyDelta(old, target, d, d.Version)
		}
		s.near.put(target, ns, tok)
	}
	s.st.commits.Add(1)
	s.ok()
	if renameTo != "" || (hasPrincipal && principal != oldPrincipal) {
		newP := oldPrincipal
		if hasPrincipal {
			newP = principal
		}
		if err := s.moveIndex(ctx, d.ID, target, oldPrincipal, newP, d.Deadline); err != nil {
			return res, err
		}
	}
	if need > 0 {
		acks, err := out[len(out)-1].AsInt64()
		if err != nil {
			s.st.commitErrors.Add(1)
			return res, s.fail("wait", err)
		}
		res.Acks = int(acks)
		if acks < need {
			res.TimedOut = true
			s.st.notReplicated.Add(1)
			return res, fmt.Errorf("%w: %d of %d redis replicas within %s", replicator.ErrNotReplicated, acks, need, s.cfg.SyncTimeout)
		}
		res.Replicated = true
	}
	return res, nil
}

// sizeAfter returns the bytes of old's live attributes (names and
// values) once d's sets and deletes are applied.
func sizeAfter(old *replicator.Session, d *replicator.Delta) int {
	size := 0
	cur := map[string]int{}
	if old != nil {
		for k, a := range old.Attrs.All() {
			if !a.Deleted {
				cur[k] = len(k) + len(a.Value)
			}
		}
	}
	for _, op := range d.Ops {
		switch op.Kind {
		case replicator.OpSet:
			cur[op.Key] = len(op.Key) + len(op.Value)
		case replicator.OpDel:
			delete(cur, op.Key)
		}
	}
	for _, n := range cur {
		size += n
	}
	return size
}

// invalidate turns a session into a tombstone and removes it from its
// principal's index.
func (s *Store) invalidate(ctx context.Context, id, tombValue string) error {
	out := s.eval(ctx, scInvalidate, []string{s.key(id)},
		[]string{tombValue, strconv.FormatInt(s.cfg.TombstoneTTL.Milliseconds(), 10), ""})
	arr, err := out.ToArray()
	if err != nil {
		if e, ok := scriptErr(err); ok {
			return e
		}
		s.st.commitErrors.Add(1)
		return s.fail("commit", err)
	}
	s.forget(id)
	s.st.commits.Add(1)
	s.ok()
	if p, _ := arr[0].ToString(); p != "" {
		if err := s.c.Do(ctx, s.c.B().Zrem().Key(s.index(p)).Member(id).Build()).Error(); err != nil {
			s.st.indexErrors.Add(1)
			return s.fail("index", err)
		}
	}
	return nil
}

// takeForRename turns the old ID into a tombstone pointing to the new one
// and returns its fields as field, value pairs for the commit on the new
// ID.
func (s *Store) takeForRename(ctx context.Context, oldID, newID string) (pairs []string, principal string, err error) {
	var version string
	out := s.eval(ctx, scInvalidate, []string{s.key(oldID)},
		[]string{"r:" + newID, strconv.FormatInt(s.cfg.TombstoneTTL.Milliseconds(), 10), "1"})
	arr, err := out.ToArray()
	if err != nil {
		if e, ok := scriptErr(err); ok {
			return nil, "", e
		}
		s.st.commitErrors.Add(1)
		return nil, "", s.fail("commit", err)
	}
	s.forget(oldID)
	principal, _ = arr[0].ToString()
	kv, _ := arr[1].AsStrSlice()
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i] != "v" && kv[i] != "c" { // the version goes on; created by HSETNX
			pairs = append(pairs, kv[i], kv[i+1])
		}
		if kv[i] == "v" {
			version = kv[i+1]
		}
	}
	if version != "" {
		pairs = append(pairs, "v", version)
	}
	return pairs, principal, nil
}

// indexScript adds a session to its principal's index (a sorted set
// scored by the session's deadline in ms, +inf for none), drops entries
// past their deadline and lets the index expire with its last session.
//
//	KEYS[1] index  ARGV[1] ID  ARGV[2] score  ARGV[3] now (ms)
const indexScript = `
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[3])
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
local top = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
if top[2] == 'inf' then
  redis.call('PERSIST', KEYS[1])
else
  redis.call('PEXPIREAT', KEYS[1], top[2])
end
return 1
`

// moveIndex updates the principal index after a principal change or a
// rename.
func (s *Store) moveIndex(ctx context.Context, oldID, newID, oldP, newP string, deadline int64) error {
	if oldP != "" {
		if err := s.c.Do(ctx, s.c.B().Zrem().Key(s.index(oldP)).Member(oldID).Build()).Error(); err != nil {
			s.st.indexErrors.Add(1)
			return s.fail("index", err)
		}
	}
	if newP == "" {
		return nil
	}
	score := "inf"
	if deadline > 0 {
		score = strconv.FormatInt(deadline/1e6, 10)
	}
	out := s.eval(ctx, scIndex, []string{s.index(newP)}, []string{newID, score, strconv.FormatInt(time.Now().UnixMilli(), 10)})
	if err := out.Error(); err != nil {
		s.st.indexErrors.Add(1)
		return s.fail("index", err)
	}
	return nil
}

// SessionsOf returns the IDs of the live sessions of a principal, sorted.
// An outage returns nil (counted, reported by Ready).
func (s *Store) SessionsOf(principal string) []string {
	if principal == "" {
		return nil
	}
	ctx, cancel := s.opCtx()
	defer cancel()
	key := s.index(principal)
	ids, err := s.c.Do(ctx, s.c.B().Zrange().Key(key).Min(strconv.FormatInt(time.Now().UnixMilli(), 10)).Max("+inf").Byscore().Build()).AsStrSlice()
	if err != nil {
		s.fail("index", err)
		return nil
	}
	out := ids[:0]
	for _, id := range ids {
		ss, err := s.Load(ctx, id)
		if err != nil {
			return nil
		}
		if ss == nil || ss.Principal != principal {
			// Expired by its TTL, or moved: drop the stale entry.
			s.c.Do(ctx, s.c.B().Zrem().Key(key).Member(id).Build())
			continue
		}
		out = append(out, id)
	}
	sortStrings(out)
	return out
}

// Touch records an access at now (unix nanoseconds). Accesses are batched
// and written every TouchInterval, extending the session's TTL.
func (s *Store) Touch(id string, now int64) {
	s.touchMu.Lock()
	if now > s.touches[id] {
		s.touches[id] = now
	}
	s.touchMu.Unlock()
	s.st.touches.Add(1)
	if s.near != nil {
		s.near.touch(id, now)
	}
}

// every runs fn every interval on a goroutine of its own until Close.
func (s *Store) every(interval time.Duration, fn func()) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-s.stop:
				return
			case <-t.C:
			}
			fn()
		}
	}()
}

// flushTouches writes the batched accesses, pipelined, per slot.
func (s *Store) flushTouches() {
	s.touchMu.Lock()
	batch := s.touches
	if len(batch) == 0 {
		s.touchMu.Unlock()
		return
	}
	s.touches = make(map[string]int64, len(batch))
	s.touchMu.Unlock()
	grace := strconv.FormatInt(2*s.cfg.TouchInterval.Milliseconds(), 10)
	ids := make([]string, 0, len(batch))
	for id := range batch {
		ids = append(ids, id)
	}
	ctx, cancel := s.opCtx()
	defer cancel()
	build := func(full bool, ids []string) []rueidis.Completed {
		cmds := make([]rueidis.Completed, len(ids))
		for i, id := range ids {
			cmds[i] = s.evalCmd(scTouch, full, []string{s.key(id)}, []string{strconv.FormatInt(batch[id], 10), grace})
		}
		return cmds
	}
	var failed, missing []string
	// Sessions in the near cache: a transaction of plain commands, which
	// Redis does not echo back to this node (a script's writes it does,
	// emptying the entry the touch just refreshed).
	var viaScript []string
	var tx []rueidis.Completed
	var txIDs []string
	var execs []int // index of each EXEC in tx
	b := s.c.B()
	for _, id := range ids {
		var ss *replicator.Session
		if s.near != nil {
			ss = s.near.get(id)
		}
		if ss == nil {
			viaScript = append(viaScript, id)
			continue
		}
		at, key := batch[id], s.key(id)
		tx = append(tx, b.Multi().Build(),
			b.Hset().Key(key).FieldValue().FieldValue("l", strconv.FormatInt(at, 10)).Build())
		if ttl := s.ttl(at, ss.IdleTimeout, ss.Deadline); ttl > 0 {
			tx = append(tx, b.Pexpire().Key(key).Milliseconds(ttl).Build())
		}
		tx = append(tx, b.Hexists().Key(key).Field("x").Build(), b.Exec().Build())
		txIDs = append(txIDs, id)
		execs = append(execs, len(tx)-1)
	}
	if len(tx) > 0 {
		out := s.c.DoMulti(ctx, tx...) // tx is consumed
		for k, i := range execs {
			if err := out[i].Error(); err != nil {
				failed = append(failed, txIDs[k])
				s.fail("touch", err)
			}
		}
	}
	ids = viaScript
	for i, r := range s.c.DoMulti(ctx, build(false, ids)...) {
		if err := r.Error(); noScript(err) {
			missing = append(missing, ids[i])
		} else if err != nil {
			failed = append(failed, ids[i])
			s.fail("touch", err)
		}
	}
	if len(missing) > 0 {
		for i, r := range s.c.DoMulti(ctx, build(true, missing)...) {
			if err := r.Error(); err != nil {
				failed = append(failed, missing[i])
				s.fail("touch", err)
			}
		}
	}
	// Keep failed accesses for the next round unless a newer one came.
	s.touchMu.Lock()
	for _, id := range failed {
		if batch[id] > s.touches[id] {
			s.touches[id] = batch[id]
		}
	}
	s.touchMu.Unlock()
}
