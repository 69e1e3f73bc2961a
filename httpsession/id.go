package httpsession

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"

	"github.com/hanode/hanode/membership"
	"github.com/hanode/hanode/replicator"
)

// Session IDs.
//
// A token, the value of the session cookie (or header), is
// "<id>.<route>": id is idBytes random bytes from crypto/rand in unpadded
// URL-safe base64 (idLen characters) and route is the name of the node that
// served the session last. The store is keyed by id alone, so a failover
// changes only the route suffix.

const (
	idBytes     = 24 // 192 random bits
	idLen       = 32 // base64.RawURLEncoding.EncodedLen(idBytes)
	maxRouteLen = membership.MaxNameLen
	// MaxTokenLen is the longest token ParseID accepts.
	MaxTokenLen = idLen + 1 + maxRouteLen
)

// newID returns a fresh random session ID (without route).
func newID() string {
	var b [idBytes]byte
	// crypto/rand.Read never fails on supported platforms (Go 1.24+):
	// it crashes the program instead of returning weak randomness.
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// formatToken joins an ID and a route into a token.
func formatToken(id, route string) string {
	if route == "" {
		return id
	}
	return id + "." + route
}

// ParseID splits a token into its session ID and route. It accepts only a
// well-formed token: an ID of exactly 32 URL-safe base64 characters,
// optionally followed by "." and a route of 1 to 64 characters from
// [A-Za-z0-9_-]. Anything else, of any length, returns ok == false without
// allocating. A well-formed ID is not necessarily a known one: the caller
// looks it up and mints a fresh ID when the store does not know it.
func ParseID(token string) (id, route string, ok bool) {
	if len(token) < idLen || len(token) > MaxTokenLen {
		return "", "", false
	}
	for i := 0; i < idLen; i++ {
		if !isIDChar(token[i]) {
			return "", "", false
		}
	}
	id = token[:idLen]
	if len(token) == idLen {
		return id, "", true
	}
	if token[idLen] != '.' {
		return "", "", false
	}
	route = token[idLen+1:]
	if !validRoute(route) {
		return "", "", false
	}
	return id, route, true
}

func isIDChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_'
}

// validRoute reports whether s can be a route suffix: a node name
// (membership.ValidName: 1 to 64 characters of [A-Za-z0-9_-]).
func validRoute(s string) bool { return membership.ValidName(s) }

// sameID compares two IDs in constant time.
func sameID(a, b string) bool {
	return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

// ShortHash returns a short, stable, non-reversible label for a session ID
// or token, for logs and metrics: the first 12 hex digits of the SHA-256 of
// the ID part. Never log a raw ID: anyone who reads it can use the session.
func ShortHash(idOrToken string) string {
	if id, _, ok := ParseID(idOrToken); ok {
		idOrToken = id
	}
	return replicator.ShortHash(idOrToken)
}
