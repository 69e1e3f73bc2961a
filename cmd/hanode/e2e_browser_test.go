package main

// The demo page in a real headless browser (Debian's chromium) behind
// HAProxy: load it, SIGKILL the node that served it, reload, and see the
// same session served by another node, the cookie rebound to it.
//
// The browser is driven over the DevTools protocol on a pipe
// (--remote-debugging-pipe: JSON messages ended by NUL on fds 3 and 4), so
// no WebSocket library is needed; its cookies live in the browser process
// across reloads, exactly as for a user.

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hanode/hanode/scripts/netlab"
)

// cdp is a minimal DevTools protocol client over the pipe.
type cdp struct {
	w       io.WriteCloser
	mu      sync.Mutex
	next    int
	pending map[int]chan cdpMsg
	closed  chan struct{}
}

type cdpMsg struct {
	ID     int             `json:"id"`
	Method string          `json:"method"`
	Result json.RawMessage `json:"result"`
	Error  *struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

func newCDP(w io.WriteCloser, r io.Reader) *cdp {
	c := &cdp{w: w, pending: map[int]chan cdpMsg{}, closed: make(chan struct{})}
	go func() {
		defer close(c.closed)
		br := bufio.NewReaderSize(r, 1<<20)
		for {
			b, err := br.ReadBytes(0)
			if err != nil {
				return
			}
			var m cdpMsg
			if json.Unmarshal(b[:len(b)-1], &m) != nil || m.ID == 0 {
				continue // events: the test polls instead
			}
			c.mu.Lock()
			ch := c.pending[m.ID]
			delete(c.pending, m.ID)
			c.mu.Unlock()
			if ch != nil {
				ch <- m
			}
		}
	}()
	return c
}

// call sends a command (to a page when session is set) and waits for its answer.
func (c *cdp) call(session, method string, params any, result any) error {
	c.mu.Lock()
	c.next++
	id := c.next
	ch := make(chan cdpMsg, 1)
	c.pending[id] = ch
	c.mu.Unlock()
	msg := map[string]any{"id": id, "method": method, "params": params}
	if params == nil {
		msg["params"] = map[string]any{}
	}
	if session != "" {
		msg["sessionId"] = session
	}
	b, _ := json.Marshal(msg)
	if _, err := c.w.Write(append(b, 0)); err != nil {
		return fmt.Errorf("%s: %w", method, err)
	}
	select {
	case m := <-ch:
		if m.Error != nil {
			return fmt.Errorf("%s: %s", method, m.Error.Message)
		}
		if result != nil {
			return json.Unmarshal(m.Result, result)
		}
		return nil
	case <-c.closed:
		return fmt.Errorf("%s: the browser closed the pipe", method)
	case <-time.After(30 * time.Second):
		return fmt.Errorf("%s: no answer in 30s", method)
	}
}

// browserBinary finds Debian's chromium (or Google Chrome).
func browserBinary(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("chromium not found: apt-get install -y chromium (CI installs it in .ci/run)")
	return ""
}

type browserPage struct {
	t       *testing.T
	c       *cdp
	session string
}

// startBrowser starts headless chromium with the DevTools pipe and opens
// an empty page.
func startBrowser(t *testing.T) *browserPage {
	t.Helper()
	bin := browserBinary(t)
	dir := t.TempDir()
	// fd 3: the browser reads commands; fd 4: it writes answers.
	cmdR, cmdW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--no-first-run", "--no-default-browser-check", "--no-proxy-server", "--remote-debugging-pipe",
		"--user-data-dir="+dir+"/profile", "about:blank")
	cmd.ExtraFiles = []*os.File{cmdR, outW}
	// chromium wants a writable HOME for its caches and crash dumps.
	cmd.Env = append(os.Environ(), "HOME="+dir)
	p := netlab.StartProcess(t, dir, "chromium", cmd)
	cmdR.Close()
	outW.Close()
	c := newCDP(cmdW, outR)
	t.Cleanup(func() {
		_ = c.call("", "Browser.close", nil, nil)
		cmdW.Close()
		_ = p.Wait(5 * time.Second)
	})
	var target struct {
		TargetID string `json:"targetId"`
	}
	if err := c.call("", "Target.createTarget", map[string]any{"url": "about:blank"}, &target); err != nil {
		t.Fatalf("chromium: %v\n%s", err, p.Logs())
	}
	var att struct {
		SessionID string `json:"sessionId"`
	}
	if err := c.call("", "Target.attachToTarget", map[string]any{"targetId": target.TargetID, "flatten": true}, &att); err != nil {
		t.Fatal(err)
	}
	bp := &browserPage{t: t, c: c, session: att.SessionID}
	for _, m := range []string{"Page.enable", "Runtime.enable", "Network.enable"} {
		if err := c.call(bp.session, m, nil, nil); err != nil {
			t.Fatal(err)
		}
	}
	return bp
}

// eval evaluates a JavaScript expression that returns a string.
func (b *browserPage) eval(expr string) (string, error) {
	var res struct {
		Result struct {
			Value any `json:"value"`
		} `json:"result"`
		ExceptionDetails *struct {
			Text string `json:"text"`
		} `json:"exceptionDetails"`
	}
	if err := b.c.call(b.session, "Runtime.evaluate", map[string]any{"expression": expr, "returnByValue": true}, &res); err != nil {
		return "", err
	}
	if res.ExceptionDetails != nil {
		return "", fmt.Errorf("javascript: %s", res.ExceptionDetails.Text)
	}
	s, _ := res.Result.Value.(string)
	return s, nil
}

// demoState is what the demo page shows.
type demoState struct {
	Fresh   bool       `json:"fresh"` // a document loaded after the marker was set
	Node    string     `json:"node"`
	Session string     `json:"session"`
	N       string     `json:"n"`
	Event   string     `json:"event"`
	Live    string     `json:"live"`
	Members [][]string `json:"members"` // name, state, ready
}

const demoStateJS = `(function(){
  function t(id){var e=document.getElementById(id);return e?e.textContent:'';}
  var rows=[];var tb=document.getElementById('members');
  if(tb){for(var i=1;i<tb.rows.length;i++){var r=tb.rows[i];rows.push([r.cells[0].textContent,r.cells[1].textContent,r.cells[2].textContent]);}}
  return JSON.stringify({fresh:window.__hanodeOld===undefined&&document.readyState==='complete',
    node:t('node'),session:t('session'),n:t('n'),event:t('event'),live:t('live'),members:rows});
})()`

func (b *browserPage) state() (demoState, error) {
	var st demoState
	s, err := b.eval(demoStateJS)
	if err != nil {
		return st, err
	}
	return st, json.Unmarshal([]byte(s), &st)
}

// load navigates (or reloads) and waits until the new document is
// complete and its script has filled the members table.
func (b *browserPage) load(url string, reload bool) demoState {
	b.t.Helper()
	if _, err := b.eval("window.__hanodeOld=1;''"); err != nil {
		b.t.Fatal(err)
	}
	var err error
	if reload {
		err = b.c.call(b.session, "Page.reload", map[string]any{"ignoreCache": true}, nil)
	} else {
		err = b.c.call(b.session, "Page.navigate", map[string]any{"url": url}, nil)
	}
	if err != nil {
		b.t.Fatal(err)
	}
	var st demoState
	eventually(b.t, 20*time.Second, "the demo page loads and shows the members", func() (bool, string) {
		st, err = b.state()
		return err == nil && st.Fresh && len(st.Members) > 0 && st.Session != "" && st.Session != "(none)",
			fmt.Sprintf("%+v %v", st, err)
	})
	return st
}

// cookieRoute returns the route of the session cookie the browser holds.
func (b *browserPage) cookieRoute(url string) string {
	b.t.Helper()
	var res struct {
		Cookies []struct {
			Name  string `json:"name"`
			Value string `json:"value"`
		} `json:"cookies"`
	}
	if err := b.c.call(b.session, "Network.getCookies", map[string]any{"urls": []string{url}}, &res); err != nil {
		b.t.Fatal(err)
	}
	for _, c := range res.Cookies {
		if c.Name == cookieName {
			return routeOf(c.Value)
		}
	}
	return ""
}

func memberState(st demoState, name string) string {
	for _, m := range st.Members {
		if strings.TrimSuffix(m[0], " (this node)") == name {
			return m[1]
		}
	}
	return ""
}

func TestBrowserDemoFailover(t *testing.T) {
	lab, nodes := startLBCluster(t, "browser")
	base := startHAProxy(t, lab, nodes)
	page := startBrowser(t)
	url := base + "/"

	st := page.load(url, false)
	first := st.Node
	served := nodeNamed(nodes, first)
	if served == nil {
		t.Fatalf("page served by %q", first)
	}
	if !strings.Contains(st.Event, "New session") {
		t.Errorf("first load: event %q", st.Event)
	}
	for _, n := range nodes {
		if s := memberState(st, n.name); s != "alive" {
			t.Errorf("first load: member %s is %q, want alive (%v)", n.name, s, st.Members)
		}
	}
	if r := page.cookieRoute(url); r != first {
		t.Fatalf("cookie route %q, page served by %s", r, first)
	}
	// Sticky across reloads.
	st = page.load(url, true)
	if st.Node != first || !strings.Contains(st.Event, "Sticky") {
		t.Fatalf("reload: served by %s (%q), want %s, sticky", st.Node, st.Event, first)
	}
	session := st.Session
	t.Logf("page served by %s, session %s…", first, session[:8])
	for _, n := range nodes {
		if n != served {
			eventually(t, 20*time.Second, n.name+" holds the page's session", func() (bool, string) {
				return holdsSessionHash(t, n, session), "" // the page shows the session's hash
			})
		}
	}

	served.proc.Kill()
	st = page.load(url, true)
	if st.Node == first || st.Session != session {
		t.Fatalf("after SIGKILL of %s: page served by %s with session %s, want another node and session %s", first, st.Node, st.Session, session)
	}
	if !strings.Contains(st.Event, "Failover") || !strings.Contains(st.Event, first) {
		t.Errorf("after failover: event %q", st.Event)
	}
	if r := page.cookieRoute(url); r != st.Node {
		t.Errorf("cookie route after failover %q, want %s", r, st.Node)
	}
	second := st.Node
	t.Logf("after SIGKILL of %s, reload: served by %s, same session; %q", first, second, st.Event)
	// The page updates live: the dead node leaves the members table.
	eventually(t, 20*time.Second, "the page shows "+first+" is no longer alive", func() (bool, string) {
		st, err := page.state()
		return err == nil && memberState(st, first) != "alive", fmt.Sprintf("%v %v", st.Members, err)
	})
	st = page.load(url, true)
	if st.Node != second || st.Session != session || !strings.Contains(st.Event, "Sticky") {
		t.Errorf("reload after failover: %s %q, want sticky on %s", st.Node, st.Event, second)
	}
}
