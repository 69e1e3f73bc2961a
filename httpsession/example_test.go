package httpsession_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/hanode/hanode/httpsession"
	"github.com/hanode/hanode/httpsession/sessiontest"
	"github.com/hanode/hanode/replicator"
)

// do sends a request with the cookie header and returns the body and the
// new cookie (if any).
func do(h http.Handler, path, cookie string) (body, setCookie string) {
	r := httptest.NewRequest("GET", path, nil)
	if cookie != "" {
		r.Header.Set("Cookie", cookie)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	for _, c := range w.Result().Cookies() {
		setCookie = c.Name + "=" + c.Value
	}
	return w.Body.String(), setCookie
}

func Example() {
	store := replicator.NewLocal("web1", replicator.DefaultReplicaConfig())
	sessions, err := httpsession.New(store, httpsession.DefaultConfig())
	if err != nil {
		panic(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/visit", func(w http.ResponseWriter, r *http.Request) {
		n := sessions.GetInt(r.Context(), "visits") + 1
		if err := sessions.Put(r.Context(), "visits", n); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		fmt.Fprintf(w, "visit %d", n)
	})
	h := sessions.LoadAndSave(mux)

	body, cookie := do(h, "/visit", "")
	fmt.Println(body, strings.HasSuffix(cookie, ".web1"))
	body, _ = do(h, "/visit", cookie)
	fmt.Println(body)
	// Output:
	// visit 1 true
	// visit 2
}

type Cart struct {
	Items []string
}

func ExampleNewKey() {
	var cartKey = httpsession.NewKey[Cart]("cart") // registers Cart with gob
	sessions, _ := httpsession.New(sessiontest.NewStore("web1"), httpsession.DefaultConfig())
	h := sessions.LoadAndSave(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cart, _ := cartKey.Get(r.Context())
		cart.Items = append(cart.Items, r.URL.Query().Get("add"))
		if err := cartKey.Put(r.Context(), cart); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		fmt.Fprint(w, cart.Items)
	}))
	_, cookie := do(h, "/?add=tea", "")
	body, _ := do(h, "/?add=milk", cookie)
	fmt.Println(body)
	// Output: [tea milk]
}

// Two nodes share a replicated store; node a dies and node b serves the
// same cookie, taking the session over and rewriting the route.
func ExampleManager_LoadAndSave_failover() {
	cluster := sessiontest.NewCluster("a", "b")
	app := func(node string) http.Handler {
		m, _ := httpsession.New(cluster.Node(node), httpsession.DefaultConfig())
		return m.LoadAndSave(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if v := r.URL.Query().Get("user"); v != "" {
				m.Put(r.Context(), "user", v)
			}
			fmt.Fprint(w, m.GetString(r.Context(), "user"))
		}))
	}
	a, b := app("a"), app("b")
	_, cookie := do(a, "/?user=alice", "")
	body, newCookie := do(b, "/", cookie)
	fmt.Println(body, strings.HasSuffix(cookie, ".a"), strings.HasSuffix(newCookie, ".b"))
	// Output: alice true true
}

func ExampleFromContext() {
	sessions, _ := httpsession.New(sessiontest.NewStore("web1"), httpsession.DefaultConfig())
	h := sessions.LoadAndSave(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s, ok := httpsession.FromContext(r.Context())
		fmt.Println(ok, s.Status())
	}))
	do(h, "/", "")
	_, ok := httpsession.FromContext(httptest.NewRequest("GET", "/", nil).Context())
	fmt.Println(ok)
	// Output:
	// true unmodified
	// false
}

func ExampleShortHash() {
	fmt.Println(len(httpsession.ShortHash("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.web1")))
	// Output: 12
}

// Load and Commit handle a session outside LoadAndSave, for example in a
// WebSocket read loop or a background job that has the token.
func ExampleManager_Load() {
	store := replicator.NewLocal("web1", replicator.DefaultReplicaConfig())
	defer store.Close()
	sessions, err := httpsession.New(store, httpsession.DefaultConfig())
	if err != nil {
		panic(err)
	}
	ctx, _ := sessions.Load(context.Background(), "") // "" or an unknown token: a new session
	if err := sessions.Put(ctx, "job", "started"); err != nil {
		panic(err)
	}
	token, expiry, err := sessions.Commit(ctx) // nothing is committed without it
	if err != nil {
		panic(err)
	}
	fmt.Println(strings.HasSuffix(token, ".web1"), !expiry.IsZero())

	later, _ := sessions.Load(context.Background(), token)
	fmt.Println(sessions.GetString(later, "job"))
	// Output:
	// true true
	// started
}

// A value changed in place after Get is saved only when it is Put back.
func ExampleSession_Get() {
	store := replicator.NewLocal("web1", replicator.DefaultReplicaConfig())
	defer store.Close()
	sessions, _ := httpsession.New(store, httpsession.DefaultConfig())
	cartKey := httpsession.NewKey[[]string]("cart")

	ctx, _ := sessions.Load(context.Background(), "")
	_ = cartKey.Put(ctx, []string{"apple"})
	token, _, _ := sessions.Commit(ctx)

	ctx, _ = sessions.Load(context.Background(), token)
	cart, _ := cartKey.Get(ctx)
	cart = append(cart, "pear")
	_ = cartKey.Put(ctx, cart) // without this line the pear is lost
	_, _, _ = sessions.Commit(ctx)

	ctx, _ = sessions.Load(context.Background(), token)
	cart, _ = cartKey.Get(ctx)
	fmt.Println(cart)
	// Output: [apple pear]
}
