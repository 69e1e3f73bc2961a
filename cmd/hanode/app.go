package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"

	"github.com/hanode/hanode/httpsession"
)

// demoApp is the application `hanode run` serves on --listen when it has
// none of its own. It uses httpsession exactly as an application would.
type demoApp struct {
	node  string
	mgr   *httpsession.Manager
	store backend
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
	return a.mgr.LoadAndSave(mux)
}

// sessionID returns the current session's ID without the route suffix.
func (a *demoApp) sessionID(r *http.Request) string {
	tok := a.mgr.Token(r.Context())
	if id, _, ok := httpsession.ParseID(tok); ok {
		return id
	}
	if i := strings.LastIndexByte(tok, '.'); i > 0 {
		return tok[:i]
	}
	return tok
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
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
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
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (a *demoApp) deleteAttr(w http.ResponseWriter, r *http.Request) {
	if err := a.mgr.Remove(r.Context(), r.PathValue("key")); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

type clusterJSON struct {
	Node    string            `json:"node"`
	Session string            `json:"session"`
	Attrs   map[string]string `json:"attrs"`
	Members []memberJSON      `json:"members"`
	Ready   bool              `json:"ready"`
}

func (a *demoApp) cluster(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	out := clusterJSON{Node: a.node, Attrs: map[string]string{}, Members: a.store.Members(), Ready: a.store.Ready()}
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
	if !a.mgr.Exists(ctx, "n") {
		if err := a.mgr.Put(ctx, "n", 0); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = io.WriteString(w, strings.ReplaceAll(indexHTML, "{{NODE}}", htmlEscape(a.node)))
}

func htmlEscape(s string) string {
	r := strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&quot;", "'", "&#39;")
	return r.Replace(s)
}

// indexHTML is self-contained: no external scripts, styles or fonts.
const indexHTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>hanode demo</title>
<style>
body{font-family:system-ui,sans-serif;max-width:46rem;margin:2rem auto;padding:0 1rem;color:#222}
h1{font-size:1.4rem} code{background:#f3f3f3;padding:0 .25rem}
table{border-collapse:collapse;width:100%;margin:.5rem 0 1.5rem} td,th{border-bottom:1px solid #ddd;padding:.3rem;text-align:left}
.alive{color:#070} .suspect{color:#a60} .dead,.left{color:#a00} .note{background:#fffbe6;padding:.75rem;border:1px solid #eed}
button{font-size:1rem;margin-right:.5rem}
</style>
</head>
<body>
<h1>hanode demo: served by <code id="node">{{NODE}}</code></h1>
<p>Your session: <code id="session">…</code></p>
<p><button id="inc">Increment counter</button> counter <b id="n">…</b></p>
<h2>Session attributes</h2>
<table id="attrs"><tr><th>key</th><th>value</th></tr></table>
<h2>Members</h2>
<table id="members"><tr><th>name</th><th>state</th><th>ready</th><th>address</th></tr></table>
<p class="note">Failover: every node holds a replica of every session. Kill the node that serves you
(<code>kill -9</code>) and send the next request to another node: it answers with the same session and
the same attributes, and rewrites the cookie's route suffix (the part after the last dot) to its own name,
so the sticky load balancer sends you there from then on.</p>
<script>
function cell(tr, text, cls){var td=document.createElement('td');td.textContent=text;if(cls)td.className=cls;tr.appendChild(td);}
function fill(id, rows, cols){var t=document.getElementById(id);while(t.rows.length>1)t.deleteRow(1);
  rows.forEach(function(r){var tr=t.insertRow();cols(tr,r);});}
function refresh(){
  fetch('/api/cluster',{credentials:'same-origin'}).then(function(r){return r.json();}).then(function(c){
    document.getElementById('node').textContent=c.node;
    document.getElementById('session').textContent=c.session||'(none)';
    document.getElementById('n').textContent=(c.attrs&&c.attrs.n)||'0';
    fill('attrs',Object.keys(c.attrs||{}).map(function(k){return [k,c.attrs[k]];}),function(tr,r){cell(tr,r[0]);cell(tr,r[1]);});
    fill('members',c.members||[],function(tr,m){cell(tr,m.name+(m.self?' (this node)':''));cell(tr,m.state,m.state);cell(tr,m.ready?'yes':'no');cell(tr,m.addr);});
  }).catch(function(){document.getElementById('node').textContent='(unreachable: the node may be down)';});
}
document.getElementById('inc').onclick=function(){fetch('/counter',{method:'POST',credentials:'same-origin'}).then(refresh);};
refresh(); setInterval(refresh,1000);
</script>
</body>
</html>
`

var _ = json.Marshal
