// Package hanode turns high availability on in a Go web application with
// one setting, `ha`, and gives the application what an operator needs
// around it: the same settings, admin API, health checks, metrics, drain,
// key reload and ordered shutdown as the `hanode run` daemon, which is
// itself built on this package.
//
// With `ha = false` (the default) sessions live in the process, with no
// network at all. With `ha = true` every node of the cluster holds a
// replica of every session, kept up to date over IP multicast on the LAN,
// authenticated and encrypted with the cluster key: when a node dies, the
// load balancer sends its users to another node, which has their sessions
// and takes them over. The application code is the same in both cases.
//
// It is httpsession's runtime sub-package, as replicator/cluster is
// replicator's: it listens on sockets and imports the cluster runtime,
// which the httpsession package itself never does (an application that
// brings its own store imports httpsession alone).
//
// # Quick start
//
// The whole wiring of an application is a few lines in main:
//
//	func main() {
//		hanode.AddFlags(flag.CommandLine) // --ha, --node, --listen, --admin, --config, ...
//		flag.Parse()
//		cfg, err := hanode.FromFlags(flag.CommandLine) // flags > HANODE_* env > config file > defaults
//		if err != nil {
//			log.Fatal(err)
//		}
//		node, err := hanode.Start(cfg) // the session store the ha setting chose
//		if err != nil {
//			log.Fatal(err)
//		}
//		sessions := node.Sessions() // an *httpsession.Manager
//
//		mux := http.NewServeMux()
//		mux.HandleFunc("POST /count", func(w http.ResponseWriter, r *http.Request) {
//			n := sessions.GetInt(r.Context(), "n") + 1
//			sessions.Put(r.Context(), "n", n)
//			fmt.Fprintln(w, n)
//		})
//		// The app on --listen, the admin API on --admin, until SIGTERM.
//		if err := node.Serve(context.Background(), sessions.LoadAndSave(mux)); err != nil {
//			log.Fatal(err)
//		}
//	}
//
// Run it alone, HA off:
//
//	./app --listen :8080
//
// or as one of three nodes on a LAN, HA on (the key file from
// `hanode keygen`, mode 600, the same on every node):
//
//	./app --ha --node n1 --interface eth0 --key-file /etc/hanode/cluster.key --listen :8080
//
// cmd/shop in this repository is a complete example (login, cart,
// logout), with a test that kills a node with SIGKILL and finds every user
// still logged in, with the same cart, on the others.
//
// # Settings
//
// The settings are those of `hanode run`, with the same names, from the
// same sources. The first source that sets a setting wins:
//
//  1. a command-line flag (--key-file), when the application uses
//     AddFlags and FromFlags;
//  2. an environment variable HANODE_<NAME> (HANODE_KEY_FILE);
//  3. the config file (--config FILE, -c FILE or HANODE_CONFIG), TOML with
//     the flag names as keys (key-file = "/etc/hanode/cluster.key");
//  4. the default.
//
// FromEnv reads only the environment and the config file (an application
// with flags of its own); Load takes the sources explicitly. Every error
// wraps ErrConfig and names where the bad value came from: --ttl,
// HANODE_TTL or /etc/app.toml:12. `hanode config check -c FILE` checks an
// application's config file too and prints every effective setting with
// its source. Settings lists them all with their defaults; the important
// ones:
//
//   - ha: the HA toggle (default false).
//   - node, interface, key-file: required when ha is true (and store is
//     the replica). node is the
//     route suffix of the session cookies, so that a load balancer can send
//     each user to the node that holds the session ("<id>.<node>").
//   - peers or discovery: unicast to listed peers (a list setting:
//     peers = ["10.0.0.2", "10.0.0.3"] or "10.0.0.2,10.0.0.3") or to the
//     addresses of a DNS name, for networks that drop multicast.
//   - store: replica (default: the in-process replica above) or redis
//     (sessions on Redis or Redis Cluster at store-addrs, with
//     store-password-file and store-tls), whatever ha says.
//   - listen, admin: the application's and the admin API's addresses
//     (default 127.0.0.1:8080 and 127.0.0.1:9090). Keep admin on loopback
//     or set admin-token-file (or admin-token).
//   - consistency: async (default: answer at once, replicate in the
//     background), sync (one peer acknowledges the change before the
//     first byte; not acknowledged within sync-timeout, the commit fails
//     and the request answers 503, see httpsession.ErrorStatus) or
//     sync-all (every live peer); lone-survivor says what a sync node left
//     alone does with writes.
//   - idle-timeout, lifetime, cookie-name, cookie-secure: the sessions.
//   - shutdown-timeout, drain-delay: the shutdown (below).
//   - redis-listen (with redis-password-file or redis-password): also
//     serve the Redis protocol on that address, every key a replicated
//     record of the replica (package replicator/resp), for applications
//     in other languages on the same host; RedisAddr returns its address.
//
// Settings that are code rather than configuration are fields of Config
// set before Start: Sessions (the httpsession.Config for ErrorFunc, Codec,
// cookie path and the rest), Logger or LogOutput, Version.
//
// # What Start and Serve do
//
// Start validates the settings, binds the listen and admin addresses (a
// port in use fails before the node joins), installs the SIGHUP handler,
// opens the store (HA off: an in-memory replica that expires sessions on
// its own; HA on: the cluster node, which joins and receives the
// cluster's sessions) and creates the session manager.
//
// Serve serves the application and the admin API until its context ends
// or the process gets SIGTERM or SIGINT, then stops in this order:
//
//  1. GET /readyz answers 503 at once, so that the load balancer takes
//     the node out; the node keeps serving for drain-delay (set it to the
//     health check's interval × fall);
//  2. the application's listener closes and in-flight requests finish,
//     for at most shutdown-timeout;
//  3. the store sends its last changes to the other nodes and announces
//     the leave (sessions stay in the cluster; bounded);
//  4. the admin listener closes and Serve returns nil.
//
// SIGHUP re-reads the key file with HA on (key rotation without
// downtime; a file that does not load is refused and the old keys stay)
// and is logged with HA off: it never ends the process.
//
// # The admin API
//
// Served on the admin address, the same as `hanode run`'s, so that the
// `hanode status`, `hanode members`, `hanode sessions` and `hanode drain`
// commands work against an application too:
//
//	GET  /livez               the process answers
//	GET  /readyz              200 once the node serves users (joined, holds the sessions, not draining)
//	GET  /members             the cluster members this node sees
//	GET  /status              node, version, ha, ready, draining, sessions, phase, in_flight, ...
//	GET  /metrics             Prometheus text: the application's HTTP requests (server="app"),
//	                          the admin API's, the process's and the replication's
//	GET  /sessions            the sessions (hashed IDs; raw IDs with the admin token)
//	GET  /sessions/{id}       one session
//	DELETE /sessions/{id}     destroy a session on every node
//	POST /drain               make the node unready; sessions stay
//	/debug/pprof/             with pprof = true
//
// Listing, killing and draining need the admin token when admin-token is
// set, and are refused on a non-loopback admin address without one.
//
// # Running your own servers
//
// Serve is optional. An application with servers of its own serves
// Node.AdminHandler, wraps its handler with Node.Instrument (for the
// metrics and the in-flight count) and Sessions().LoadAndSave, calls
// Node.Drain when it starts to stop and Node.Close at the end. It serves
// on the listeners Start bound, Node.AppListener and Node.AdminListener.
package hanode
