package bench

import (
	"bytes"
	"encoding/base32"
	"encoding/gob"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/gorilla/securecookie"
	"github.com/gorilla/sessions"
	goredis "github.com/redis/go-redis/v9"
)

// GorillaRedisStore is a gorilla/sessions Store keeping values in Redis
// and a securecookie-signed session ID in the cookie. It does what the
// common third-party Redis stores for gorilla do (rbcervilla/redisstore,
// boj/redistore): gob-encoded values, SET with expiry on every Save, the
// cookie re-encoded on every Save. Written here to avoid pinning one of
// them; the cost is the same shape.
type GorillaRedisStore struct {
	c      *goredis.Client
	codecs []securecookie.Codec
	opts   sessions.Options
	prefix string
}

// NewGorillaRedisStore returns a store over c with a hash key for the cookie.
func NewGorillaRedisStore(c *goredis.Client, hashKey []byte) *GorillaRedisStore {
	return &GorillaRedisStore{
		c:      c,
		codecs: securecookie.CodecsFromPairs(hashKey),
		opts:   sessions.Options{Path: "/", MaxAge: 86400 * 30, HttpOnly: true},
		prefix: "gsession:",
	}
}

// Get returns the session of this request (cached in the request registry).
func (s *GorillaRedisStore) Get(r *http.Request, name string) (*sessions.Session, error) {
	return sessions.GetRegistry(r).Get(s, name)
}

// New loads the session named by the request's cookie, or a new one.
func (s *GorillaRedisStore) New(r *http.Request, name string) (*sessions.Session, error) {
	sess := sessions.NewSession(s, name)
	opts := s.opts
	sess.Options = &opts
	sess.IsNew = true
	c, err := r.Cookie(name)
	if err != nil {
		return sess, nil
	}
	if err := securecookie.DecodeMulti(name, c.Value, &sess.ID, s.codecs...); err != nil {
		return sess, nil
	}
	data, err := s.c.Get(r.Context(), s.prefix+sess.ID).Bytes()
	if errors.Is(err, goredis.Nil) {
		return sess, nil
	}
	if err != nil {
		return sess, err
	}
	if err := gob.NewDecoder(bytes.NewReader(data)).Decode(&sess.Values); err != nil {
		return sess, err
	}
	sess.IsNew = false
	return sess, nil
}

// Save writes the values to Redis and the signed ID to the cookie.
func (s *GorillaRedisStore) Save(r *http.Request, w http.ResponseWriter, sess *sessions.Session) error {
	if sess.ID == "" {
		sess.ID = strings.TrimRight(base32.StdEncoding.EncodeToString(securecookie.GenerateRandomKey(32)), "=")
	}
	var buf bytes.Buffer
	if err := gob.NewEncoder(&buf).Encode(sess.Values); err != nil {
		return err
	}
	if err := s.c.Set(r.Context(), s.prefix+sess.ID, buf.Bytes(), time.Duration(sess.Options.MaxAge)*time.Second).Err(); err != nil {
		return err
	}
	encoded, err := securecookie.EncodeMulti(sess.Name(), sess.ID, s.codecs...)
	if err != nil {
		return err
	}
	http.SetCookie(w, sessions.NewCookie(sess.Name(), encoded, sess.Options))
	return nil
}
