// Package httpsession is hanode's HTTP session library: net/http middleware
// and a session API whose sessions survive the death of a web server,
// because every change is replicated to the other nodes by the
// replicator.Store underneath.
//
// # Getting started
//
// Create one Manager per application over a store (the cluster runtime
// when HA is on, replicator.NewLocal when it is off), wrap your router with
// LoadAndSave, and use the session in handlers:
//
//	store := replicator.NewLocal("web1", replicator.DefaultReplicaConfig())
//	sessions, err := httpsession.New(store, httpsession.DefaultConfig())
//	if err != nil { ... }
//
//	mux := http.NewServeMux() // or chi, gorilla/mux, any http.Handler
//	mux.HandleFunc("POST /login", func(w http.ResponseWriter, r *http.Request) {
//		ctx := r.Context()
//		sessions.RenewToken(ctx)          // session fixation defence
//		sessions.SetPrincipal(ctx, user)  // replicated principal index
//		sessions.Put(ctx, "theme", "dark")
//	})
//	http.ListenAndServe(":8080", sessions.LoadAndSave(mux))
//
// The vocabulary is the one Go developers know: Put, Get, GetString and the
// other typed getters, Pop and PopString..., Remove, Exists, Keys, Clear,
// Destroy, RenewToken, RememberMe, Deadline, Token, Status and Iterate, as
// Manager methods taking the request context. FromContext returns the
// *Session itself (it never panics), and NewKey gives typed keys:
//
//	var cartKey = httpsession.NewKey[Cart]("cart") // registers Cart with gob
//	cart, ok := cartKey.Get(ctx)
//	err := cartKey.Put(ctx, cart)
//
// # The caller's duties
//
//  1. Wrap every handler that uses sessions with LoadAndSave, once.
//  2. Change the session before the response starts. The middleware
//     commits before the first byte (it never buffers the body); a change
//     after that returns ErrResponseStarted and is counted in
//     Stats.LateWrites. A streaming handler calls Flush(ctx) first if it
//     wants to know the commit's result.
//  3. Check the error of Put: a value that cannot be encoded fails there,
//     not silently later.
//  4. Call RenewToken on login and privilege changes.
//  5. Never log a token; log ShortHash(token) instead.
//  6. Give every node a distinct name (the store's Node): it is the route
//     suffix a sticky load balancer reads.
//
// # Tokens, routes and failover
//
// A token is "<id>.<route>": 192 random bits from crypto/rand in URL-safe
// base64, then the name of the node that serves the session. The store is
// keyed by the id alone. A sticky load balancer sends the request to the
// route's node; when that node is down it sends it elsewhere, and the node
// that receives a token whose route is another node (or an unknown one)
// finds the session in its replica, takes it over (a TAKEOVER operation
// with a higher epoch, so its writes win) and re-issues the cookie with its
// own route, even if the handler changed nothing (such a takeover is
// committed Async: a request that changes nothing waits for no
// acknowledgement). A token the store does not know never becomes a
// session: a fresh ID is minted. A store that cannot tell yet (a cluster
// node that is still joining: replicator.ErrNotReady from its Load) fails
// the request with 503 instead, and the cookie is left as it is. HAProxy:
//
//	use-server %[req.cook(hanode_session),field(-1,.)] if { req.cook(hanode_session) -m found }
//	option redispatch
//
// # What a commit replicates
//
// Only the keys a request changed (set or deleted) plus the session's
// metadata (created, last access, idle timeout, deadline). Two requests of
// one session that change different keys, on one node or on two, both
// keep their changes: the store merges per key, last writer wins. A
// request that changes nothing costs a Store.Touch, which the store
// batches, not a commit. Destroy is a tombstone that wins over every
// concurrent write.
//
// By default (DirtyPolicy WrittenKeys) a value read with Get and mutated in
// place is neither committed nor replicated: the change is lost when the
// request ends unless the value is Put again. The pattern that works:
//
//	cart, _ := cartKey.Get(ctx)
//	cart.Items = append(cart.Items, item)
//	err := cartKey.Put(ctx, cart)
//
// Config.Dirty = DetectMutations re-encodes, at commit, every mutable
// value read in the request and replicates those whose encoding changed,
// at the cost of one encoding per value read. Either way, a value changed
// after its Put and before the response starts is stored with the change.
//
// # Values and codecs
//
// string, int, int32, int64, bool, float64, []byte and time.Time are
// stored with a compact tagged encoding; other values go through the
// Codec (GobCodec by default, or JSONCodec). Every value of a session is
// decoded when the request loads it: a session holding a value this
// version cannot decode (a rolling upgrade with changed types) is
// destroyed and replaced by a fresh one, counted in Stats.Undecodable,
// instead of locking the user out.
//
// # Expiry, users, limits and consistency
//
// Sessions end after Config.IdleTimeout without use or Config.Lifetime
// after creation, whichever comes first; the store's timers expire them
// and a request that finds an expired session replaces it. There is no
// cleanup step to remember: replicator.Local arms a timer with its first
// commit (no goroutine while idle; Local.Close stops it) and the cluster
// runtime runs its own expiry loop until it stops. OnEvent
// reports creation, destruction (with its reason: invalidated, expired,
// displaced, evicted), renewal and takeover.
//
// SetPrincipal ties a session to a user in a replicated index: SessionsOf
// lists a user's sessions, DestroyPrincipal ends them all, and
// Config.DuplicateLogin allows several, invalidates the older ones or
// refuses the new login. Config.MaxActive bounds live sessions, refusing
// new ones (ErrTooManySessions) or evicting the oldest.
//
// What "committed before the first byte" guarantees depends on the
// consistency. Async (the default): the change is applied to this node's
// replica and queued for the peers; nobody waits for the network.
// Sync: it is also acknowledged by at least one peer; SyncAll: by every
// live peer. Config.Consistency, ConsistencyContext or SetConsistency
// choose it. With HA off (replicator.Local) nothing is replicated whatever
// the mode. A sync commit that is not acknowledged in time (the cluster's
// SyncTimeout, 100 ms by default), or that finds no live peer, fails with
// replicator.ErrNotReplicated: the middleware answers 503 through
// Config.ErrorFunc (ErrorStatus maps commit errors to status codes: 503,
// 413 for an oversized session, 500), or a handler that called Flush gets
// the error and answers itself. After a 503 the change may or may not be
// applied (indeterminate, like any failed request); the node rebinds the
// cookie to itself, so that a retry on another node commits above it and
// wins.
//
// # Moving from scs
//
// The vocabulary is scs's (github.com/alexedwards/scs/v2), as Manager
// methods taking the request context: LoadAndSave, Put, Get and the typed
// getters, Pop..., Remove, Exists, Keys, Clear, Destroy, RenewToken,
// RememberMe, Deadline, SetDeadline, Token, Status, Iterate, MergeSession,
// and Load and Commit for sessions outside the middleware. What differs:
//
//	scs                           httpsession
//	SessionManager.IdleTimeout    Config.IdleTimeout: scs's 0 means no idle timeout
//	  (default 0: none)             (its default); here 0 means the default, 30m, and
//	                                a negative value means none
//	Lifetime (default 24h)        Config.Lifetime (default 24h)
//	Cookie.Name ("session")       Config.Cookie.Name ("hanode_session")
//	Cookie.HttpOnly (true)        Config.Cookie.AllowScript (false): HttpOnly = !AllowScript
//	Cookie.Persist (true)         Config.Cookie.BrowserSession (false): Persist = !BrowserSession
//	Cookie.Secure, SameSite,      Config.Cookie.Secure, SameSite (Lax), Partitioned,
//	  Partitioned, Domain, Path     Domain, Path: same meaning, same defaults
//	Store, Codec                  the replicator.Store given to New; Config.Codec
//	ErrorFunc                     Config.ErrorFunc
//	token: random string          token: "<id>.<route>", the route naming the node
//	WriteSessionCookie            none: LoadAndSave writes the cookie; after Load and
//	                                Commit, send the token Commit returns yourself
//
// The two booleans are inverted so that the zero Config is the secure
// default, as scs's defaults are. Two habits to drop: changing a value
// read with Get without putting it back (see Get), and relying on a Put
// that fails silently (Put returns its error here).
//
// An scs application that keeps scs can still replicate its sessions
// with the adapter module github.com/hanode/hanode/httpsession/scsstore
// (its own go.mod); its limits are in the README.
//
// # API clients
//
// With Config.HeaderName set, a client may send the token in that header;
// the response then carries a new token in the same header instead of a
// cookie.
//
// # Tests
//
// Package sessiontest provides in-memory stores, including a cluster whose
// replication a test can hold and release, to test handlers that use
// sessions without a network.
package httpsession
