package main

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/hanode/hanode/httpsession"
	"github.com/hanode/hanode/replicator"
)

// demoApp is the application `hanode run` serves on --listen when it has
// none of its own. It uses httpsession exactly as an application would.
type demoApp struct {
	node   string
	mgr    *httpsession.Manager
	store  clusterView
	cookie string // session cookie name, to show the route a request came with
	debug  bool   // --demo-debug: GET /debug/sleep?ms=N
}

// maxAttrBody bounds PUT /attrs/{key}.
const maxAttrBody = 64 << 10

func (a *demoApp) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /counter", a.counter(false))
	mux.HandleFunc("POST /counter", a.counter(true))
	mux.HandleFunc("GET /attrs/{key}", a.getAttr)
	mux.HandleFunc("PUT /attrs/{key}", a.putAttr)
	mux.HandleFunc("DELETE /attrs/{key}", a.deleteAttr)
	mux.HandleFunc("GET /api/cluster", a.cluster)
	mux.HandleFunc("GET /{$}", a.index)
	h := a.mgr.LoadAndSave(mux)
	if !a.debug {
		return h
	}
	outer := http.NewServeMux()
	outer.HandleFunc("GET /debug/sleep", sleepHandler)
	outer.Handle("/", h)
	return outer
}

// sleepHandler answers after ?ms=N milliseconds (at most a minute): a
// request that is still in flight when SIGTERM comes, for shutdown tests.
func sleepHandler(w http.ResponseWriter, r *http.Request) {
	ms, err := strconv.Atoi(r.URL.Query().Get("ms"))
	if err != nil || ms < 0 || ms > 60000 {
		http.Error(w, "ms: 0-60000", http.StatusBadRequest)
		return
	}
	time.Sleep(time.Duration(ms) * time.Millisecond)
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	fmt.Fprintf(w, "slept %dms\n", ms)
}

// routeIn returns the route suffix of the session cookie the request
// came with ("" without one): when it names another node, this request is
// a failover and this node rebinds the cookie to itself.
func (a *demoApp) routeIn(r *http.Request) string {
	c, err := r.Cookie(a.cookie)
	if err != nil {
		return ""
	}
	if _, route, ok := httpsession.ParseID(c.Value); ok {
		return route
	}
	return ""
}

// sessionID returns how the page and the JSON answers name the current
// session: the short hash of its ID (as in the admin listing and the
// logs), never the ID itself, which with the route is the whole cookie
// (the cookie is HttpOnly: a script on the page must not learn it).
func (a *demoApp) sessionID(r *http.Request) string {
	tok := a.mgr.Token(r.Context())
	if tok == "" {
		return ""
	}
	return httpsession.ShortHash(tok)
}

// commit commits the request's session before the answer, so that the
// answer can tell: a sync write that no peer acknowledged gets 503 (the
// write may or may not be applied; retry it, on another node if need be),
// an oversized session 413, another failure 500 (httpsession.ErrorStatus).
// It reports whether the commit succeeded; if not, it has answered.
func (a *demoApp) commit(w http.ResponseWriter, r *http.Request) bool {
	_, err := a.mgr.Flush(r.Context())
	if err == nil {
		return true
	}
	a.answerError(w, err)
	return false
}

// answerError answers a session error with httpsession.ErrorStatus.
func (a *demoApp) answerError(w http.ResponseWriter, err error) {
	code := httpsession.ErrorStatus(err)
	msg := err.Error()
	if errors.Is(err, replicator.ErrNotReplicated) {
		w.Header().Set("Retry-After", "1")
		msg = "not replicated: " + err.Error() + "; the write may or may not have been applied: retry it (another node will serve it)"
	}
	if errors.Is(err, replicator.ErrNotReady) {
		w.Header().Set("Retry-After", "1")
	}
	http.Error(w, msg, code)
}

type counterJSON struct {
	Node    string `json:"node"`
	Session string `json:"session"`
	N       int    `json:"n"`
}

func (a *demoApp) counter(increment bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		n := a.mgr.GetInt(ctx, "n")
		if increment {
			n++
		}
		if increment || !a.mgr.Exists(ctx, "n") {
			// Creates the session when there is none.
			if err := a.mgr.Put(ctx, "n", n); err != nil {
				a.answerError(w, err)
				return
			}
		}
		if !a.commit(w, r) {
			return
		}
		writeJSON(w, http.StatusOK, counterJSON{Node: a.node, Session: a.sessionID(r), N: n})
	}
}

func (a *demoApp) getAttr(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	key := r.PathValue("key")
	if !a.mgr.Exists(ctx, key) {
		http.Error(w, "no such attribute", http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = io.WriteString(w, a.mgr.GetString(ctx, key))
}

func (a *demoApp) putAttr(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxAttrBody))
	if err != nil {
		http.Error(w, "body too large", http.StatusRequestEntityTooLarge)
		return
	}
	if err := a.mgr.Put(r.Context(), r.PathValue("key"), string(body)); err != nil {
		a.answerError(w, err)
		return
	}
	if !a.commit(w, r) {
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (a *demoApp) deleteAttr(w http.ResponseWriter, r *http.Request) {
	if err := a.mgr.Remove(r.Context(), r.PathValue("key")); err != nil {
		a.answerError(w, err)
		return
	}
	if !a.commit(w, r) {
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

type clusterJSON struct {
	Node    string            `json:"node"`
	Session string            `json:"session"`
	RouteIn string            `json:"route_in"` // the cookie's route this request came with`
	Attrs   map[string]string `json:"attrs"`
	Members []memberJSON      `json:"members"`
	Ready   bool              `json:"ready"`
}

func (a *demoApp) cluster(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	out := clusterJSON{Node: a.node, RouteIn: a.routeIn(r), Attrs: map[string]string{}, Members: a.store.Members(), Ready: a.store.Ready()}
	if out.Members == nil {
		out.Members = []memberJSON{}
	}
	if a.mgr.Exists(ctx, "n") || len(a.mgr.Keys(ctx)) > 0 {
		out.Session = a.sessionID(r)
		keys := a.mgr.Keys(ctx)
		sort.Strings(keys)
		for _, k := range keys {
			out.Attrs[k] = fmt.Sprint(a.mgr.Get(ctx, k))
		}
	}
	writeJSON(w, http.StatusOK, out)
}

func (a *demoApp) index(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	fresh := !a.mgr.Exists(ctx, "n")
	if fresh {
		if err := a.mgr.Put(ctx, "n", 0); err != nil {
			a.answerError(w, err)
			return
		}
	}
	// served_by remembers which node served the page last, so that the
	// page can tell a failover from a sticky request.
	prev := a.mgr.GetString(ctx, "served_by")
	if prev != a.node {
		if err := a.mgr.Put(ctx, "served_by", a.node); err != nil {
			a.answerError(w, err)
			return
		}
	}
	if !a.commit(w, r) {
		return
	}
	routeIn := a.routeIn(r)
	var event string
	switch {
	case fresh:
		event = fmt.Sprintf("New session: %s created it, and the cookie's route suffix is %s. Reload: the load balancer keeps sending you to %s.", a.node, a.node, a.node)
	case routeIn != "" && routeIn != a.node:
		event = fmt.Sprintf("Failover: your cookie named %s, but this request reached %s (%s is down or draining). %s already held a replica of your session, took it over with the same ID and attributes, and rebound the cookie's route to %s: the load balancer now sends you here.", routeIn, a.node, routeIn, a.node, a.node)
	case prev != "" && prev != a.node:
		// The page's live refresh already carried the session here.
		event = fmt.Sprintf("Failover: the previous page came from %s, this one from %s, with the same session: %s took it over (on this request or on a live refresh of the page) and rebound the cookie's route to %s.", prev, a.node, a.node, a.node)
	default:
		event = fmt.Sprintf("Sticky: your cookie's route is %s and the load balancer sent you to %s.", a.node, a.node)
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	page := strings.NewReplacer(
		"{{NODE}}", htmlEscape(a.node),
		"{{SESSION}}", htmlEscape(a.sessionID(r)),
		"{{N}}", strconv.Itoa(a.mgr.GetInt(ctx, "n")),
		"{{EVENT}}", htmlEscape(event),
	).Replace(indexHTML)
	_, _ = io.WriteString(w, page)
}

func htmlEscape(s string) string {
	r := strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&quot;", "'", "&#39;")
	return r.Replace(s)
}

// indexHTML is self-contained: no external scripts, styles or fonts. The
// server fills the placeholders, so the page is right without script; the
// script then refreshes it every second from /api/cluster (through the
// load balancer, with the same cookie), which shows a failover live.
const indexHTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>hanode demo</title>
<style>
body{font-family:system-ui,sans-serif;max-width:50rem;margin:2rem auto;padding:0 1rem;color:#222}
h1{font-size:1.4rem} h2{font-size:1.1rem} code{background:#f3f3f3;padding:0 .25rem}
table{border-collapse:collapse;width:100%;margin:.5rem 0 1.5rem} td,th{border-bottom:1px solid #ddd;padding:.3rem;text-align:left}
.alive{color:#070} .suspect{color:#a60} .dead,.left{color:#a00} .note{background:#fffbe6;padding:.75rem;border:1px solid #eed}
#event{background:#eef6ff;padding:.75rem;border:1px solid #cde} #live li{margin:.2rem 0}
button{font-size:1rem;margin-right:.5rem}
</style>
</head>
<body>
<h1>hanode demo: served by <code id="node">{{NODE}}</code></h1>
<p>Your session: <code id="session">{{SESSION}}</code> &middot; counter <b id="n">{{N}}</b>
<button id="inc">Increment counter</button></p>
<p id="event">{{EVENT}}</p>
<h2>What happened since this page loaded</h2>
<ul id="live"><li>page served by <code>{{NODE}}</code></li></ul>
<h2>Members as <span id="self">{{NODE}}</span> sees them</h2>
<table id="members"><tr><th>name</th><th>state</th><th>ready</th><th>address</th></tr></table>
<h2>Session attributes</h2>
<table id="attrs"><tr><th>key</th><th>value</th></tr></table>
<p class="note">How failover works: every node holds a replica of every session. The cookie is
<code>&lt;id&gt;.&lt;route&gt;</code>; the load balancer sends you to the node named by the route. Kill that node
(<code>kill -9</code>, or stop it: <code>/readyz</code> goes 503 first) and reload: the load balancer sends the request to
another node, which answers with the same session and attributes and rewrites the route to its own name, so you
stick to it from then on. Nobody is logged out.</p>
<script>
var last={node:document.getElementById('node').textContent,session:document.getElementById('session').textContent};
function cell(tr, text, cls){var td=document.createElement('td');td.textContent=text;if(cls)td.className=cls;tr.appendChild(td);}
function fill(id, rows, cols){var t=document.getElementById(id);while(t.rows.length>1)t.deleteRow(1);
  rows.forEach(function(r){var tr=t.insertRow();cols(tr,r);});}
function note(text){var li=document.createElement('li');li.textContent=new Date().toLocaleTimeString()+': '+text;
  var ul=document.getElementById('live');ul.appendChild(li);while(ul.children.length>20)ul.removeChild(ul.firstChild);}
var down=false;
function refresh(){
  fetch('/api/cluster',{credentials:'same-origin',cache:'no-store'}).then(function(r){return r.json();}).then(function(c){
    if(down){note('answered again');down=false;}
    if(c.node!==last.node){
      note('now served by '+c.node+' (was '+last.node+')'+(c.session===last.session?', same session':', NEW session')+
        (c.route_in&&c.route_in!==c.node?': '+c.node+' took the session over and rebound the cookie route from '+c.route_in+' to '+c.node:''));
      document.getElementById('event').textContent='Failover seen live: '+last.node+' \u2192 '+c.node+
        (c.session===last.session?', same session, route rebound to '+c.node+'.':', new session.');
    }
    last.node=c.node; if(c.session)last.session=c.session;
    document.getElementById('node').textContent=c.node;
    document.getElementById('self').textContent=c.node;
    document.getElementById('session').textContent=c.session||'(none)';
    document.getElementById('n').textContent=(c.attrs&&c.attrs.n)||'0';
    fill('attrs',Object.keys(c.attrs||{}).map(function(k){return [k,c.attrs[k]];}),function(tr,r){cell(tr,r[0]);cell(tr,r[1]);});
    fill('members',c.members||[],function(tr,m){cell(tr,m.name+(m.self?' (this node)':''));cell(tr,m.state,m.state);cell(tr,m.ready?'yes':'no');cell(tr,m.addr);});
  }).catch(function(){if(!down){note('no answer: the node (or the load balancer) is down');down=true;}});
}
document.getElementById('inc').onclick=function(){fetch('/counter',{method:'POST',credentials:'same-origin'}).then(function(r){
  if(!r.ok){r.text().then(function(t){note('increment failed: '+r.status+' '+t.trim()+(r.status===503?' (retry: the load balancer sends you to a node that can replicate)':''));});}
  refresh();}).catch(function(){note('increment failed: no answer');});};
refresh(); setInterval(refresh,1000);
</script>
</body>
</html>
`
