package main

import (
	"encoding/json"
	"html/template"
	"net/http"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/hanode/hanode/httpsession"
)

// Limits of the shop's input.
const (
	maxForm     = 16 << 10 // bytes of a form body
	maxUserLen  = 64       // characters of a user name
	maxItemLen  = 100      // characters of an item
	maxCartSize = 100      // items in a cart
)

// cartKey holds the cart: the items in the order they were added.
var cartKey = httpsession.NewKey[[]string]("cart")

// Shop is the application: its handlers keep the user (the session's
// principal) and the cart in the session. There is no password: the shop
// shows sessions, not authentication.
type Shop struct {
	// Sessions is the session manager (hanode.Node.Sessions).
	Sessions *httpsession.Manager
	// Node is the name of the node serving, shown in every answer.
	Node string
}

// Handler returns the shop's routes wrapped by the session middleware.
func (s *Shop) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /login", s.login)
	mux.HandleFunc("POST /logout", s.logout)
	mux.HandleFunc("GET /cart", s.loggedIn(s.getCart))
	mux.HandleFunc("POST /cart", s.loggedIn(s.addToCart))
	mux.HandleFunc("GET /{$}", s.page)
	return s.Sessions.LoadAndSave(mux)
}

type loginJSON struct {
	User string `json:"user"`
	Node string `json:"node"`
}

type cartJSON struct {
	User  string   `json:"user"`
	Items []string `json:"items"`
	Node  string   `json:"node"`
}

type errorJSON struct {
	Error string `json:"error"`
	Node  string `json:"node"`
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func (s *Shop) fail(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, errorJSON{Error: msg, Node: s.Node})
}

// failSession answers a session error with httpsession.ErrorStatus's
// code: 503 (retry, another node will serve it) for a change the peers did
// not acknowledge with consistency sync, 413 for a session over the size
// limits, 500 otherwise.
func (s *Shop) failSession(w http.ResponseWriter, what string, err error) {
	code := httpsession.ErrorStatus(err)
	if code == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "1")
	}
	s.fail(w, code, what+": "+err.Error())
}

// commit commits the session's changes before the answer, so that the
// answer tells whether they are kept. It reports whether the commit
// succeeded; if not, it has answered.
func (s *Shop) commit(w http.ResponseWriter, r *http.Request, what string) bool {
	if _, err := s.Sessions.Flush(r.Context()); err != nil {
		s.failSession(w, what, err)
		return false
	}
	return true
}

// formValue reads one field of a bounded form body, trimmed.
func formValue(w http.ResponseWriter, r *http.Request, name string) (string, bool) {
	r.Body = http.MaxBytesReader(w, r.Body, maxForm)
	if err := r.ParseForm(); err != nil {
		return "", false
	}
	return strings.TrimSpace(r.PostForm.Get(name)), true
}

// validText reports whether v is 1 to max printable characters.
func validText(v string, max int) bool {
	if v == "" || !utf8.ValidString(v) || utf8.RuneCountInString(v) > max {
		return false
	}
	return strings.IndexFunc(v, func(r rune) bool { return !unicode.IsPrint(r) }) < 0
}

// login logs the user in: a new session ID first (a session fixed by an
// attacker before the login is not the one that gets logged in), then the
// principal.
func (s *Shop) login(w http.ResponseWriter, r *http.Request) {
	user, ok := formValue(w, r, "user")
	if !ok || !validText(user, maxUserLen) {
		s.fail(w, http.StatusBadRequest, "user: 1 to 64 printable characters")
		return
	}
	ctx := r.Context()
	if err := s.Sessions.RenewToken(ctx); err != nil {
		s.failSession(w, "renew the session", err)
		return
	}
	if err := s.Sessions.SetPrincipal(ctx, user); err != nil {
		s.failSession(w, "log in", err)
		return
	}
	if !s.commit(w, r, "log in") {
		return
	}
	writeJSON(w, http.StatusOK, loginJSON{User: user, Node: s.Node})
}

// logout destroys the session on every node.
func (s *Shop) logout(w http.ResponseWriter, r *http.Request) {
	if err := s.Sessions.Destroy(r.Context()); err != nil {
		s.failSession(w, "log out", err)
		return
	}
	if !s.commit(w, r, "log out") {
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"node": s.Node})
}

// loggedIn answers 401 unless the session has a user.
func (s *Shop) loggedIn(h func(w http.ResponseWriter, r *http.Request, user string)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		user := s.Sessions.Principal(r.Context())
		if user == "" {
			s.fail(w, http.StatusUnauthorized, "not logged in")
			return
		}
		h(w, r, user)
	}
}

// cart returns the session's items (never nil).
func cart(r *http.Request) []string {
	items, _ := cartKey.Get(r.Context())
	if items == nil {
		return []string{}
	}
	return items
}

func (s *Shop) getCart(w http.ResponseWriter, r *http.Request, user string) {
	writeJSON(w, http.StatusOK, cartJSON{User: user, Items: cart(r), Node: s.Node})
}

func (s *Shop) addToCart(w http.ResponseWriter, r *http.Request, user string) {
	item, ok := formValue(w, r, "item")
	if !ok || !validText(item, maxItemLen) {
		s.fail(w, http.StatusBadRequest, "item: 1 to 100 printable characters")
		return
	}
	items := cart(r)
	if len(items) >= maxCartSize {
		s.fail(w, http.StatusBadRequest, "the cart is full")
		return
	}
	// A value got from the session is put back after the change: the
	// session stores what Put is given, not the slice Get returned.
	items = append(slices.Clip(items), item)
	if err := cartKey.Put(r.Context(), items); err != nil {
		s.failSession(w, "cart", err)
		return
	}
	if !s.commit(w, r, "cart") {
		return
	}
	writeJSON(w, http.StatusOK, cartJSON{User: user, Items: items, Node: s.Node})
}

var pageTmpl = template.Must(template.New("page").Parse(`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>shop on {{.Node}}</title>
<style>body{font-family:sans-serif;max-width:40em;margin:2em auto}form{margin:1em 0}</style>
</head>
<body>
<h1>shop</h1>
<p>Served by node <b id="node">{{.Node}}</b>.</p>
{{if .User}}
<p>Logged in as <b id="user">{{.User}}</b>.</p>
<h2>Cart</h2>
<ul id="cart">{{range .Items}}<li>{{.}}</li>{{else}}<li><i>empty</i></li>{{end}}</ul>
<form method="post" action="/cart"><input name="item" placeholder="item" required maxlength="100"> <button>Add to cart</button></form>
<form method="post" action="/logout"><button>Log out</button></form>
{{else}}
<form method="post" action="/login"><input name="user" placeholder="user name" required maxlength="64"> <button>Log in</button></form>
{{end}}
<script>
// The forms post to the JSON API, then show the page again.
for (const f of document.forms) {
  f.addEventListener('submit', async (e) => {
    e.preventDefault();
    await fetch(f.action, {method: 'POST', body: new URLSearchParams(new FormData(f))});
    location.reload();
  });
}
</script>
</body>
</html>
`))

func (s *Shop) page(w http.ResponseWriter, r *http.Request) {
	data := struct {
		Node, User string
		Items      []string
	}{Node: s.Node, User: s.Sessions.Principal(r.Context())}
	if data.User != "" {
		data.Items = cart(r)
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_ = pageTmpl.Execute(w, data)
}
