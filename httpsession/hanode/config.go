package hanode

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/hanode/hanode/httpsession"
	"github.com/hanode/hanode/membership"
	"github.com/hanode/hanode/multicast"
	"github.com/hanode/hanode/replicator"
	"github.com/hanode/hanode/replicator/cluster"
)

// Settings come from four sources; the first that sets a key wins:
// a command-line flag, a HANODE_<NAME> environment variable, the config
// file, the built-in default.
const (
	sourceFlag    = "flag"
	sourceEnv     = "env"
	sourceFile    = "file"
	sourceDefault = "default"
)

type kind int

const (
	kindString kind = iota
	kindBool
	kindInt
	kindDuration
	kindAddr      // host:port to listen on
	kindGroup     // multicast IPv4 group:port
	kindEnum      // one of option.choices
	kindNodeName  // route suffix
	kindSecret    // string never printed
	kindPath      // file name
	kindNonNegDur // duration >= 0
	kindList      // list of strings: "a,b" in a flag, env or file, or ["a", "b"] in the file
)

// option describes one setting: its flag name (also the config-file key
// and, upper-cased with '-' as '_', the HANODE_ environment suffix).
type option struct {
	name    string
	kind    kind
	def     string
	usage   string
	choices []string
	daemon  bool // a setting of `hanode run` only: AddFlags leaves it out
}

// options lists every setting of `hanode run` and of every application
// built on this package, in the order `config check` prints them. A new
// setting is a row here, a field of Config and a case in Config.set.
var options = []option{
	{name: "node", kind: kindNodeName, usage: "node name, the session cookie's route suffix (required when HA is on)"},
	{name: "ha", kind: kindBool, def: "false", usage: "replicate sessions to the other nodes (false: local sessions, no network)"},
	{name: "store", kind: kindEnum, def: "replica", choices: []string{StoreReplica, StoreRedis}, usage: "where sessions live: replica (in-process; replicated when ha is on) or redis (Redis or Redis Cluster at store-addrs, whatever ha says)"},
	{name: "store-addrs", kind: kindList, usage: "Redis host:port (store = redis): one address is a standalone Redis, several are the seeds of a Redis Cluster"},
	{name: "store-password", kind: kindSecret, usage: "password of the Redis store (AUTH)"},
	{name: "store-password-file", kind: kindPath, usage: "file holding the Redis store's password (instead of store-password)"},
	{name: "store-tls", kind: kindBool, def: "false", usage: "connect to the Redis store over TLS"},
	{name: "listen", kind: kindAddr, def: "127.0.0.1:8080", usage: "HTTP address of the (demo) application"},
	{name: "admin", kind: kindAddr, def: "127.0.0.1:9090", usage: "HTTP address of the admin API (/livez /readyz /metrics ...); keep it on loopback or set --admin-token"},
	{name: "admin-token", kind: kindSecret, usage: "bearer token required by the admin endpoints that list or kill sessions (required for them when --admin is not loopback); visible in ps: prefer admin-token-file"},
	{name: "admin-token-file", kind: kindPath, usage: "file holding the admin token (one line, mode 600), instead of admin-token"},
	{name: "cluster", kind: kindString, def: "hanode", usage: "cluster name; nodes of other clusters on the same group are ignored"},
	{name: "group", kind: kindGroup, def: multicast.DefaultGroup.String(), usage: "multicast group IPv4:PORT"},
	{name: "interface", kind: kindString, usage: "network interface name or IP address to join the group on (required when HA is on)"},
	{name: "ttl", kind: kindInt, def: "1", usage: "multicast TTL (1: this LAN segment only)"},
	{name: "peers", kind: kindList, usage: "unicast instead of multicast, for networks that drop it: comma-separated peers, host or host:port (port: the group's), IPv4 addresses or names; seeds are enough, members learn each other"},
	{name: "discovery", kind: kindString, usage: "unicast instead of multicast with the peers found in DNS: dns:NAME (the IPv4 addresses of NAME, e.g. a Kubernetes headless Service, re-resolved every 5s)"},
	{name: "loopback", kind: kindBool, def: "false", usage: "deliver multicast to other nodes on this host (several nodes on one host)"},
	{name: "key-file", kind: kindPath, usage: "cluster key file made by `hanode keygen`, mode 600 (required when HA is on)"},
	{name: "consistency", kind: kindEnum, def: "async", choices: []string{"async", "sync", "sync-all"}, usage: "when a commit counts as done: async, sync (one peer acked) or sync-all"},
	{name: "sync-timeout", kind: kindNonNegDur, def: "100ms", usage: "bound of a sync wait; a sync commit no peer acknowledged in time fails (503)"},
	{name: "lone-survivor", kind: kindEnum, def: "refuse", choices: []string{"refuse", "accept"}, usage: "with consistency sync or sync-all, what the only live member does with writes: refuse them (503, /readyz 503: no acknowledged write can be lost) or accept them unreplicated (available, but lost if it dies alone)"},
	{name: "snapshot", kind: kindPath, usage: "file the node's replica is saved to on shutdown and loaded from at start (HA on)"},
	{name: "snapshot-interval", kind: kindNonNegDur, def: "0s", usage: "also save the snapshot this often (0: only on shutdown)"},
	{name: "idle-timeout", kind: kindNonNegDur, def: "30m", usage: "sessions end after this long without a request (0: never)"},
	{name: "lifetime", kind: kindDuration, def: "24h", usage: "sessions end this long after they were created"},
	{name: "cookie-name", kind: kindString, def: "hanode_session", usage: "name of the session cookie"},
	{name: "cookie-secure", kind: kindBool, def: "false", usage: "set the Secure attribute on the session cookie (use behind HTTPS)"},
	{name: "shutdown-timeout", kind: kindNonNegDur, def: "10s", usage: "how long SIGTERM waits for in-flight requests"},
	{name: "drain-delay", kind: kindNonNegDur, def: "0s", usage: "on SIGTERM, how long the node keeps serving with /readyz at 503 before it closes its listener, so that load balancers see it go (set it to the health check's interval x fall)"},
	{name: "log-format", kind: kindEnum, def: "text", choices: []string{"text", "json"}, usage: "log output format"},
	{name: "log-level", kind: kindEnum, def: "info", choices: []string{"debug", "info", "warn", "error"}, usage: "minimum log level"},
	{name: "pprof", kind: kindBool, def: "false", usage: "serve /debug/pprof/ on the admin address (requires the admin token when not loopback)"},
	{name: "redis-listen", kind: kindString, usage: "serve the Redis protocol on this HOST:PORT, each key a replicated record (empty: off); a non-loopback address needs a password"},
	{name: "redis-password", kind: kindSecret, usage: "password Redis-protocol clients must give with AUTH (or AUTH default PASSWORD)"},
	{name: "redis-password-file", kind: kindPath, usage: "file holding the Redis-protocol password, its first line (instead of redis-password)"},
	{name: "demo-debug", kind: kindBool, def: "false", daemon: true, usage: "add GET /debug/sleep?ms=N to the demo application (a slow request, for shutdown tests); never in production"},
}

func lookupOption(name string) (option, bool) {
	for _, o := range options {
		if o.name == name {
			return o, true
		}
	}
	return option{}, false
}

// envName returns the environment variable of a setting: HANODE_KEY_FILE
// for key-file.
func envName(name string) string {
	return "HANODE_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

// value is one resolved setting and where it came from.
type value struct {
	raw    string
	source string // flag, env, file, default
	where  string // --key-file, HANODE_KEY_FILE, /etc/hanode.toml:12
}

// Config is the effective configuration of a node: of `hanode run` or of
// an application embedding hanode. Get it from Load, FromFlags or FromEnv,
// which fill every settings field: each holds the setting of its name
// (HA: ha, KeyFile: key-file, SnapshotEvery: snapshot-interval, IdleTimeout:
// idle-timeout with 0 for none); Settings gives their defaults and
// meanings. The fields after ConfigFile are set in code before Start.
type Config struct {
	Node            string                     // node: the member name and route suffix
	HA              bool                       // ha: replicate over the cluster
	Listen          string                     // listen: the application address
	Admin           string                     // admin: the admin API address
	AdminToken      string                     // admin-token: the admin API bearer token
	AdminTokenFile  string                     // the admin token was read from this file (AdminToken holds it)
	Cluster         string                     // cluster: the cluster name
	Group           netip.AddrPort             // group: the multicast group
	Interface       string                     // interface: name or IPv4 address
	Peers           []string                   // unicast mode: "host[:port]" entries
	Discovery       string                     // unicast mode: "dns:NAME"
	TTL             int                        // ttl: multicast hops
	Loopback        bool                       // loopback: multicast loopback
	KeyFile         string                     // key-file: the cluster key ring
	Consistency     replicator.Consistency     // consistency: the default per commit
	SyncTimeout     time.Duration              // sync-timeout
	LoneSurvivor    cluster.LoneSurvivorPolicy // lone-survivor
	Snapshot        string                     // snapshot: the snapshot file
	SnapshotEvery   time.Duration              // snapshot-interval
	IdleTimeout     time.Duration              // idle-timeout; 0: none
	Lifetime        time.Duration              // lifetime; 0: none
	CookieName      string                     // cookie-name
	CookieSecure    bool                       // cookie-secure
	ShutdownTimeout time.Duration              // shutdown-timeout
	DrainDelay      time.Duration              // drain-delay
	LogFormat       string                     // log-format: text or json
	LogLevel        string                     // log-level
	Pprof           bool                       // pprof: /debug/pprof on the admin API
	DemoDebug       bool                       // demo-debug

	// The Redis store (store = redis).
	Store             string   // store: StoreReplica or StoreRedis
	StoreAddrs        []string // store-addrs
	StorePassword     string   // store-password
	StorePasswordFile string   // store-password-file
	StoreTLS          bool     // store-tls

	RedisListen       string // redis-listen; empty: off
	RedisPassword     string // redis-password
	RedisPasswordFile string // redis-password-file

	// ConfigFile is the file the settings were read from, if any.
	ConfigFile string
	values     map[string]value

	// The fields below are not settings: an application sets them in code
	// before Start.

	// Sessions configures the session manager Start creates. The settings
	// set its Lifetime (lifetime), IdleTimeout (idle-timeout),
	// Cookie.Name (cookie-name), Cookie.Secure (cookie-secure) and
	// Consistency (consistency), and its Logger when nil; every other
	// field (ErrorFunc, Codec, Cookie.Path, MaxActive, OnEvent, ...) is the
	// application's. Default: the zero httpsession.Config.
	Sessions httpsession.Config
	// Logger receives the node's log lines; the node adds its name to
	// each. Default: a text or JSON logger (log-format) at log-level
	// writing to LogOutput.
	Logger *slog.Logger
	// LogOutput is where the default logger writes. Default: os.Stderr.
	LogOutput io.Writer
	// Version is the application's version, shown by GET /status and the
	// hanode_build_info metric. Default: the main module's version from
	// the program's build info (BuildVersion).
	Version string
}

// ErrConfig is wrapped by every configuration error: a bad flag,
// environment variable or config file line, a missing setting, an
// unreadable key file.
var ErrConfig = errors.New("invalid configuration")

// suggest returns the option name closest to an unknown key, if any is
// close enough to be a typo.
func suggest(key string) string {
	best, bestD := "", 3
	for _, o := range options {
		if d := editDistance(strings.ReplaceAll(key, "_", "-"), o.name); d < bestD {
			best, bestD = o.name, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			c := prev[j-1]
			if a[i-1] != b[j-1] {
				c++
			}
			cur[j] = min(c, prev[j]+1, cur[j-1]+1)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// flagSource is what the command line set: name → raw value for the flags
// the user gave. getenv reads the environment (os.Getenv in production).
type flagSource map[string]string

// loadConfig resolves every option by precedence flag > env > file >
// default, parses and validates it. configFile may be empty.
func loadConfig(flags flagSource, getenv func(string) string, configFile string) (*Config, error) {
	var file map[string]fileEntry
	if configFile != "" {
		f, err := os.Open(configFile)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrConfig, err)
		}
		file, err = parseConfigFile(configFile, f)
		f.Close()
		if err != nil {
			return nil, err
		}
	}
	cfg := &Config{ConfigFile: configFile, values: make(map[string]value, len(options))}
	var errs []error
	for _, o := range options {
		var v value
		if raw, ok := flags[o.name]; ok {
			v = value{raw: raw, source: sourceFlag, where: "--" + o.name}
		} else if raw := getenv(envName(o.name)); raw != "" {
			v = value{raw: raw, source: sourceEnv, where: envName(o.name)}
		} else if e, ok := file[o.name]; ok {
			v = value{raw: e.raw, source: sourceFile, where: fmt.Sprintf("%s:%d", configFile, e.line)}
			if e.list && o.kind != kindList {
				errs = append(errs, fmt.Errorf("%w: %s: %s: takes one value, not a list", ErrConfig, v.where, o.name))
				continue
			}
		} else {
			v = value{raw: o.def, source: sourceDefault, where: "default"}
		}
		cfg.values[o.name] = v
		if err := cfg.set(o, v.raw); err != nil {
			errs = append(errs, fmt.Errorf("%w: %s: %s: %v", ErrConfig, v.where, o.name, err))
		}
	}
	if len(errs) == 0 && cfg.AdminTokenFile != "" {
		if cfg.AdminToken != "" {
			errs = append(errs, fmt.Errorf("%w: admin-token (%s) and admin-token-file (%s) are both set; keep one", ErrConfig, cfg.values["admin-token"].where, cfg.values["admin-token-file"].where))
		} else if tok, err := readTokenFile(cfg.AdminTokenFile); err != nil {
			errs = append(errs, fmt.Errorf("%w: %s: admin-token-file: %w", ErrConfig, cfg.values["admin-token-file"].where, err))
		} else {
			cfg.AdminToken = tok
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return cfg, nil
}

// ErrTokenFilePermissions is wrapped when the admin token file can be
// read or written by its group or by others (fix with chmod 600).
var ErrTokenFilePermissions = errors.New("admin token file is accessible by group or others (chmod 600)")

// readTokenFile reads the admin token from path: a regular file of mode
// 600 (like the key file) holding one line of printable characters
// without spaces. Its errors never show the file's content.
func readTokenFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return "", err
	}
	if !st.Mode().IsRegular() {
		return "", fmt.Errorf("%s is not a regular file", path)
	}
	if perm := st.Mode().Perm(); perm&0o066 != 0 {
		return "", fmt.Errorf("%w: %s has mode %#o", ErrTokenFilePermissions, path, perm)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxTokenFile+1))
	if err != nil {
		return "", err
	}
	tok, err := parseAdminToken(b)
	if err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	return tok, nil
}

const maxTokenFile = 4096

// parseAdminToken returns the token held by the content of a token file:
// one line of printable characters without spaces, surrounding white
// space ignored. Its errors never show the content.
func parseAdminToken(b []byte) (string, error) {
	if len(b) > maxTokenFile {
		return "", fmt.Errorf("larger than %d bytes", maxTokenFile)
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return "", errors.New("empty")
	}
	for _, r := range tok {
		if r <= ' ' || r == 0x7f {
			return "", errors.New("the token must be one line of printable characters without spaces (content not shown)")
		}
	}
	return tok, nil
}

func (c *Config) set(o option, raw string) error {
	switch o.kind {
	case kindBool:
		b, err := parseBool(raw)
		if err != nil {
			return err
		}
		switch o.name {
		case "ha":
			c.HA = b
		case "loopback":
			c.Loopback = b
		case "cookie-secure":
			c.CookieSecure = b
		case "pprof":
			c.Pprof = b
		case "demo-debug":
			c.DemoDebug = b
		case "store-tls":
			c.StoreTLS = b
		}
	case kindInt:
		n, err := strconv.Atoi(raw)
		if err != nil {
			return fmt.Errorf("%q is not an integer", raw)
		}
		if o.name == "ttl" {
			if n < 1 || n > 255 {
				return fmt.Errorf("%d is out of range 1-255", n)
			}
			c.TTL = n
		}
	case kindDuration, kindNonNegDur:
		d, err := time.ParseDuration(raw)
		if err != nil {
			return fmt.Errorf("%q is not a duration (examples: 500ms, 30s, 30m, 24h)", raw)
		}
		if d < 0 {
			return fmt.Errorf("%s is negative", raw)
		}
		if o.kind == kindDuration && d == 0 {
			return errors.New("must be longer than 0")
		}
		switch o.name {
		case "sync-timeout":
			c.SyncTimeout = d
		case "idle-timeout":
			c.IdleTimeout = d
		case "lifetime":
			c.Lifetime = d
		case "shutdown-timeout":
			c.ShutdownTimeout = d
		case "drain-delay":
			c.DrainDelay = d
		case "snapshot-interval":
			c.SnapshotEvery = d
		}
	case kindAddr:
		if err := checkListenAddr(raw); err != nil {
			return err
		}
		switch o.name {
		case "listen":
			c.Listen = raw
		case "admin":
			c.Admin = raw
		}
	case kindGroup:
		ap, err := netip.ParseAddrPort(raw)
		if err != nil {
			return fmt.Errorf("%q is not IPv4:PORT", raw)
		}
		if !ap.Addr().Is4() || !ap.Addr().IsMulticast() {
			return fmt.Errorf("%s is not an IPv4 multicast address (224.0.0.0/4; use 239.255.0.0/16)", ap.Addr())
		}
		if ap.Port() == 0 {
			return errors.New("port 0 is not allowed")
		}
		c.Group = ap
	case kindEnum:
		ok := false
		for _, ch := range o.choices {
			ok = ok || ch == raw
		}
		if !ok {
			return fmt.Errorf("%q is not one of %s", raw, strings.Join(o.choices, ", "))
		}
		switch o.name {
		case "consistency":
			cons, err := replicator.ParseConsistency(raw)
			if err != nil {
				return err
			}
			c.Consistency = cons
		case "lone-survivor":
			p, err := cluster.ParseLoneSurvivor(raw)
			if err != nil {
				return err
			}
			c.LoneSurvivor = p
		case "log-format":
			c.LogFormat = raw
		case "log-level":
			c.LogLevel = raw
		case "store":
			c.Store = raw
		}
	case kindNodeName:
		if raw != "" && !membership.ValidName(raw) {
			return fmt.Errorf("%q is not a valid node name (1-64 of A-Z a-z 0-9 _ -; no dots, it becomes the cookie's route suffix)", raw)
		}
		c.Node = raw
	case kindList:
		items := parseList(raw)
		switch o.name { // one case per list setting: c.Field = items
		case "peers":
			// Parsed from raw, not items: an empty entry ("a,,b") is an
			// error here, not skipped.
			ps, err := multicast.ParsePeers(raw)
			if err != nil {
				return err
			}
			c.Peers = c.Peers[:0]
			for _, p := range ps {
				c.Peers = append(c.Peers, p.String())
			}
		case "store-addrs":
			for _, a := range items {
				if _, _, err := net.SplitHostPort(a); err != nil {
					return fmt.Errorf("%q is not HOST:PORT", a)
				}
			}
			c.StoreAddrs = items
		}
	case kindString, kindSecret, kindPath:
		switch o.name {
		case "admin-token":
			c.AdminToken = raw
		case "cluster":
			if raw == "" {
				return errors.New("must not be empty")
			}
			c.Cluster = raw
		case "interface":
			c.Interface = raw
		case "discovery":
			if strings.TrimSpace(raw) != "" {
				if _, err := multicast.ParseDiscovery(raw); err != nil {
					return err
				}
			}
			c.Discovery = strings.TrimSpace(raw)
		case "key-file":
			c.KeyFile = raw
		case "admin-token-file":
			c.AdminTokenFile = raw
		case "snapshot":
			c.Snapshot = raw
		case "store-password":
			c.StorePassword = raw
		case "store-password-file":
			c.StorePasswordFile = raw
		case "redis-listen":
			if raw != "" {
				if err := checkListenAddr(raw); err != nil {
					return err
				}
			}
			c.RedisListen = raw
		case "redis-password":
			c.RedisPassword = raw
		case "redis-password-file":
			c.RedisPasswordFile = raw
		case "cookie-name":
			if raw == "" || strings.ContainsAny(raw, " \t;,=\"") {
				return fmt.Errorf("%q is not a valid cookie name", raw)
			}
			c.CookieName = raw
		}
	}
	return nil
}

// parseList splits a list setting: comma-separated, blanks around items
// and empty items dropped.
func parseList(raw string) []string {
	var out []string
	for _, it := range strings.Split(raw, ",") {
		if it = strings.TrimSpace(it); it != "" {
			out = append(out, it)
		}
	}
	return out
}

func parseBool(raw string) (bool, error) {
	switch strings.ToLower(raw) {
	case "true", "1", "yes", "on":
		return true, nil
	case "false", "0", "no", "off":
		return false, nil
	}
	return false, fmt.Errorf("%q is not a boolean (true or false)", raw)
}

func checkListenAddr(raw string) error {
	host, port, err := net.SplitHostPort(raw)
	if err != nil {
		return fmt.Errorf("%q is not HOST:PORT", raw)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
		return fmt.Errorf("%q has a bad port", raw)
	}
	if host != "" && host != "localhost" {
		if _, err := netip.ParseAddr(host); err != nil {
			return fmt.Errorf("%q: host must be an IP address, localhost or empty", raw)
		}
	}
	return nil
}

// Validate checks the settings that depend on each other. It names the
// source of each offending value.
func (c *Config) Validate() error {
	var errs []error
	need := func(name string, have bool) {
		if !have {
			errs = append(errs, fmt.Errorf("%w: %s is required when HA is on (--%s, %s or `%s = ...` in the config file)", ErrConfig, name, name, envName(name), name))
		}
	}
	if c.Store == StoreRedis {
		if len(c.StoreAddrs) == 0 {
			errs = append(errs, fmt.Errorf("%w: store-addrs is required when store = redis (--store-addrs host:port[,host:port...], %s or `store-addrs = [...]` in the config file)", ErrConfig, envName("store-addrs")))
		}
		if c.StorePassword != "" && c.StorePasswordFile != "" {
			errs = append(errs, fmt.Errorf("%w: set store-password (%s) or store-password-file (%s), not both", ErrConfig, c.values["store-password"].where, c.values["store-password-file"].where))
		}
	}
	if c.HA && c.Store != StoreRedis {
		need("node", c.Node != "")
		need("interface", c.Interface != "")
		need("key-file", c.KeyFile != "")
	}
	if len(c.Peers) > 0 && c.Discovery != "" {
		errs = append(errs, fmt.Errorf("%w: peers (%s) and discovery (%s) are both set; use one", ErrConfig, c.values["peers"].where, c.values["discovery"].where))
	}
	if c.Listen == c.Admin && !strings.HasSuffix(c.Listen, ":0") { // port 0: each gets its own
		errs = append(errs, fmt.Errorf("%w: listen and admin are both %s (%s, %s)", ErrConfig, c.Listen, c.values["listen"].where, c.values["admin"].where))
	}
	errs = append(errs, c.validateRESP()...)
	if c.IdleTimeout > c.Lifetime {
		errs = append(errs, fmt.Errorf("%w: idle-timeout %s is longer than lifetime %s", ErrConfig, c.IdleTimeout, c.Lifetime))
	}
	return errors.Join(errs...)
}

// Source returns where a setting came from: flag, env, file or default,
// and the precise place (--node, HANODE_NODE, file:line, default).
func (c *Config) Source(name string) (source, where string) {
	v := c.values[name]
	return v.source, v.where
}

// AdminIsLoopback reports whether the admin listener is reachable only
// from this host.
func (c *Config) AdminIsLoopback() bool { return isLoopbackAddr(c.Admin) }

func isLoopbackAddr(hostport string) bool {
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.IsLoopback()
}

// NodeName returns the route suffix: --node, or "local" when HA is off
// and no name was given.
func (c *Config) NodeName() string {
	if c.Node == "" {
		return "local"
	}
	return c.Node
}

// WriteEffective prints every setting with its value and source, one a
// line, the admin token masked.
func (c *Config) WriteEffective(w io.Writer) {
	width := 0
	for _, o := range options {
		width = max(width, len(o.name))
	}
	if c.ConfigFile != "" {
		fmt.Fprintf(w, "# config file: %s\n", c.ConfigFile)
	} else {
		fmt.Fprintf(w, "# config file: none\n")
	}
	for _, o := range options {
		v := c.values[o.name]
		shown := v.raw
		switch {
		case o.kind == kindSecret && shown != "":
			shown = "(set, hidden)"
		case o.kind == kindList:
			items := parseList(shown)
			for i, it := range items {
				items[i] = tomlQuote(it)
			}
			shown = "[" + strings.Join(items, ", ") + "]"
		case shown == "":
			shown = `""`
		case o.kind == kindString || o.kind == kindPath || o.kind == kindNodeName:
			shown = strconv.Quote(shown)
		}
		src := v.source
		if v.source != sourceDefault {
			src = v.source + " " + v.where
		}
		fmt.Fprintf(w, "%-*s = %-24s # %s\n", width, o.name, shown, src)
	}
}

// optionNames returns the sorted option names (for help and tests).
func optionNames() []string {
	n := make([]string, 0, len(options))
	for _, o := range options {
		n = append(n, o.name)
	}
	sort.Strings(n)
	return n
}
