package httpsession

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/hanode/hanode/replicator"
)

// Errors. Compare with errors.Is.
var (
	// ErrResponseStarted is returned by every change made after the
	// response has started (or after the handler returned): the change
	// can no longer be committed with this request. It is also counted in
	// Stats.LateWrites.
	ErrResponseStarted = errors.New("httpsession: response already started")
	// ErrNoSession is returned when the context carries no session: the
	// handler is not wrapped by LoadAndSave.
	ErrNoSession = errors.New("httpsession: no session in context (is the handler wrapped by LoadAndSave?)")
	// ErrTooManySessions is returned when a new session would exceed
	// Config.MaxActive under the MaxActiveRefuse policy.
	ErrTooManySessions = errors.New("httpsession: too many active sessions")
	// ErrDuplicateLogin is returned by SetPrincipal under the RefuseNewer
	// policy when the principal already has a live session.
	ErrDuplicateLogin = errors.New("httpsession: principal already has a session")
	// ErrNotSupported is returned when the store lacks an optional
	// capability (for example Iterate without a RangeStore).
	ErrNotSupported = errors.New("httpsession: not supported by the store")
	// ErrConfig wraps every configuration error from New.
	ErrConfig = errors.New("httpsession: invalid config")
)

// DuplicateLoginPolicy says what SetPrincipal does when the principal
// already has other live sessions (on any node).
type DuplicateLoginPolicy uint8

const (
	// AllowDuplicates lets a principal hold any number of sessions.
	AllowDuplicates DuplicateLoginPolicy = iota
	// InvalidateOlder destroys the principal's other sessions (reason
	// displaced) when the new login commits.
	InvalidateOlder
	// RefuseNewer makes SetPrincipal fail with ErrDuplicateLogin.
	RefuseNewer
)

// DirtyPolicy says which attributes a commit replicates.
type DirtyPolicy uint8

const (
	// WrittenKeys replicates the keys changed through the API (Put,
	// Remove, Pop, Clear, typed keys). A value read with Get and then
	// mutated in place (a map, a slice, a pointer to a struct) is NOT
	// replicated unless it is Put again. The default: cheapest.
	WrittenKeys DirtyPolicy = iota
	// DetectMutations also re-encodes, at commit, every mutable value
	// that was read and compares the bytes with the stored encoding; a
	// difference is replicated like a Put. Encodings that are not
	// deterministic (gob maps) may cause redundant but harmless sets.
	DetectMutations
)

// MaxActivePolicy says what happens when a new session would exceed
// Config.MaxActive.
type MaxActivePolicy uint8

const (
	// MaxActiveRefuse makes the first change of the new session fail
	// with ErrTooManySessions (LoadAndSave answers 503 if it reaches
	// the commit).
	MaxActiveRefuse MaxActivePolicy = iota
	// MaxActiveEvictOldest destroys (reason evicted) the oldest session
	// this Manager created or took over that is still live.
	MaxActiveEvictOldest
)

// CookieConfig configures the session cookie. Zero values are the secure
// defaults named in each field's comment.
type CookieConfig struct {
	Name   string // default "hanode_session"
	Domain string // default "": host-only cookie
	Path   string // default "/"
	// AllowScript drops the HttpOnly attribute. Default false: HttpOnly.
	// It is scs's HttpOnly inverted.
	AllowScript bool
	// Secure sends the cookie over HTTPS only. Default false; set it in
	// production. Required with SameSite=None.
	Secure bool
	// SameSite defaults to http.SameSiteLaxMode. http.SameSiteNoneMode
	// requires Secure.
	SameSite http.SameSite
	// Partitioned sets the CHIPS Partitioned attribute (requires Secure).
	Partitioned bool
	// BrowserSession makes the cookie a browser-session cookie (no
	// Expires) unless the handler calls RememberMe(ctx, true). Default
	// false: the cookie persists until the session's absolute deadline.
	// It is scs's Persist inverted.
	BrowserSession bool
}

// Config configures a Manager. Zero values take the defaults named in each
// field's comment; DefaultConfig returns them filled in.
type Config struct {
	// Lifetime is the absolute lifetime of a session from its creation.
	// Default 24h.
	Lifetime time.Duration
	// IdleTimeout ends a session not used for this long. Default 30m;
	// negative means none. (scs differs: its 0 means none.)
	IdleTimeout time.Duration
	Cookie      CookieConfig // the session cookie's name and attributes
	// HeaderName, when set, lets API clients send the token in this
	// request header instead of a cookie; a response to such a request
	// carries the (new) token in the same header instead of Set-Cookie.
	// Default "": cookies only.
	HeaderName string
	// Codec encodes values other than the common types. Default GobCodec.
	Codec Codec
	// Consistency is the default consistency of commits; a request can
	// override it with ConsistencyContext. Default replicator.Async.
	Consistency replicator.Consistency
	// MaxActive bounds the number of live sessions in the store; 0 (the
	// default) means no bound. MaxActivePolicy says what happens at it.
	MaxActive       int
	MaxActivePolicy MaxActivePolicy
	// DuplicateLogin is the policy of SetPrincipal. Default
	// AllowDuplicates.
	DuplicateLogin DuplicateLoginPolicy
	// Dirty is the dirty-tracking policy. Default WrittenKeys.
	Dirty DirtyPolicy
	// ErrorFunc answers a request whose session could not be committed
	// when the response started (the handler's first write, or its
	// return without writing). The handler's later writes are then
	// discarded. It answers only when the handler did not: a handler
	// that called Flush and got the error answers itself (ErrorStatus
	// gives the code), and ErrorFunc is called for that error only if the
	// handler returns without writing anything. Default: http.Error with
	// ErrorStatus(err): 503 for replicator.ErrNotReplicated (a sync commit
	// no peer acknowledged: indeterminate, retry on another node),
	// ErrTooManySessions and replicator.ErrClosed; 413 for
	// replicator.ErrTooLarge; 500 otherwise.
	ErrorFunc func(w http.ResponseWriter, r *http.Request, err error)
	// OnEvent, when set, is called synchronously for each lifecycle
	// event this Manager causes or observes. Keep it fast.
	OnEvent func(Event)
	// OnCommit, when set, is called after every commit with its result.
	OnCommit func(r *http.Request, res replicator.CommitResult, err error)
	// Logger receives warnings (never raw session IDs). Default
	// slog.Default().
	Logger *slog.Logger
	// Clock returns the current time. Default time.Now; tests inject a
	// fake.
	Clock func() time.Time
}

// DefaultConfig returns a Config with every default filled in.
func DefaultConfig() Config {
	var c Config
	c.setDefaults()
	return c
}

func (c *Config) setDefaults() {
	if c.Lifetime == 0 {
		c.Lifetime = 24 * time.Hour
	}
	if c.IdleTimeout == 0 {
		c.IdleTimeout = 30 * time.Minute
	}
	if c.Cookie.Name == "" {
		c.Cookie.Name = "hanode_session"
	}
	if c.Cookie.Path == "" {
		c.Cookie.Path = "/"
	}
	if c.Cookie.SameSite == 0 {
		c.Cookie.SameSite = http.SameSiteLaxMode
	}
	if c.Codec == nil {
		c.Codec = GobCodec{}
	}
	if c.ErrorFunc == nil {
		c.ErrorFunc = defaultErrorFunc
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Clock == nil {
		c.Clock = time.Now
	}
}

// Validate reports the first problem of c (after defaults are applied),
// wrapped in ErrConfig.
func (c Config) Validate() error {
	c.setDefaults()
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s", ErrConfig, fmt.Sprintf(format, a...))
	}
	switch {
	case c.Lifetime < 0:
		return bad("lifetime must be positive")
	case c.MaxActive < 0:
		return bad("max active must not be negative")
	case !validToken(c.Cookie.Name):
		return bad("cookie name %q is not a valid token", c.Cookie.Name)
	case c.Cookie.SameSite == http.SameSiteNoneMode && !c.Cookie.Secure:
		return bad("SameSite=None requires Secure")
	case c.Cookie.Partitioned && !c.Cookie.Secure:
		return bad("Partitioned requires Secure")
	case c.HeaderName != "" && !validToken(c.HeaderName):
		return bad("header name %q is not a valid token", c.HeaderName)
	case c.Consistency > replicator.SyncAll:
		return bad("unknown consistency %d", c.Consistency)
	case c.DuplicateLogin > RefuseNewer:
		return bad("unknown duplicate-login policy %d", c.DuplicateLogin)
	case c.Dirty > DetectMutations:
		return bad("unknown dirty policy %d", c.Dirty)
	case c.MaxActivePolicy > MaxActiveEvictOldest:
		return bad("unknown max-active policy %d", c.MaxActivePolicy)
	}
	return nil
}

// ErrorStatus returns the HTTP status code for a commit error, as the
// default ErrorFunc answers it:
//   - 503 Service Unavailable for replicator.ErrNotReplicated (a Sync or
//     SyncAll commit that no peer, or not every live peer, acknowledged in
//     time, or that a node alone refused): the change may or may not have
//     been applied, like any failed request; a client or load balancer
//     retries on another node, where the retry wins over it;
//   - 503 for ErrTooManySessions, replicator.ErrClosed (the node is
//     shutting down) and replicator.ErrNotReady (the request's session
//     cookie names a session that a joining node has not received yet:
//     retry on another node, the cookie is left as it is);
//   - 413 Content Too Large for replicator.ErrTooLarge: the session would
//     exceed the store's size limits; retrying does not help;
//   - 500 Internal Server Error otherwise.
func ErrorStatus(err error) int {
	switch {
	case errors.Is(err, replicator.ErrNotReplicated), errors.Is(err, ErrTooManySessions), errors.Is(err, replicator.ErrClosed),
		errors.Is(err, replicator.ErrNotReady):
		return http.StatusServiceUnavailable
	case errors.Is(err, replicator.ErrTooLarge):
		return http.StatusRequestEntityTooLarge
	}
	return http.StatusInternalServerError
}

func defaultErrorFunc(w http.ResponseWriter, _ *http.Request, err error) {
	code := ErrorStatus(err)
	msg := http.StatusText(code)
	switch {
	case errors.Is(err, replicator.ErrNotReplicated):
		msg = "service unavailable: the session change could not be replicated; retry the request"
		w.Header().Set("Retry-After", "1")
	case errors.Is(err, replicator.ErrNotReady):
		msg = "service unavailable: this node does not hold the cluster's sessions yet; retry the request"
		w.Header().Set("Retry-After", "1")
	case code == http.StatusRequestEntityTooLarge:
		msg = "session too large"
	}
	http.Error(w, msg, code)
}

// validToken reports whether s is a non-empty RFC 7230 token, as cookie
// and header names must be.
func validToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte("()<>@,;:\\\"/[]?={}", c) >= 0 {
			return false
		}
	}
	return true
}
