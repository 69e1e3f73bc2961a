package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/hanode/hanode/httpsession"
	"github.com/hanode/hanode/replicator"
	"github.com/hanode/hanode/replicator/cluster"
)

// noCluster is the cluster view of a node without peers.
type noCluster struct{}

func (noCluster) Members() []cluster.MemberInfo { return nil }
func (noCluster) Ready() bool                   { return true }

// TestDemoJSONHasNoRawSessionID: the demo's JSON answers and page name the
// session by its short hash (the field names stay), never by the ID that
// is the HttpOnly cookie's value.
func TestDemoJSONHasNoRawSessionID(t *testing.T) {
	mgr, err := httpsession.New(replicator.NewLocal("n1", replicator.ReplicaConfig{}), httpsession.Config{})
	if err != nil {
		t.Fatal(err)
	}
	app := &demoApp{node: "n1", mgr: mgr, store: noCluster{}, cookie: "hanode_session"}
	srv := httptest.NewServer(app.handler())
	defer srv.Close()
	resp, err := http.Post(srv.URL+"/counter", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var cookie string
	for _, c := range resp.Cookies() {
		if c.Name == "hanode_session" {
			cookie = c.Value
		}
	}
	id := cj0(cookie)
	if len(id) < 20 {
		t.Fatalf("cookie %q", cookie)
	}
	var cj counterJSON
	if err := json.Unmarshal(body, &cj); err != nil || cj.Session != replicator.ShortHash(id) || cj.N != 1 {
		t.Fatalf("counter JSON %s (err %v), want session %s", body, err, replicator.ShortHash(id))
	}
	for _, path := range []string{"/counter", "/api/cluster", "/"} {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+path, nil)
		req.AddCookie(&http.Cookie{Name: "hanode_session", Value: cookie})
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || strings.Contains(string(b), id) || !strings.Contains(string(b), replicator.ShortHash(id)) {
			t.Errorf("%s: %d, raw ID shown: %v, hash shown: %v", path, resp.StatusCode, strings.Contains(string(b), id), strings.Contains(string(b), replicator.ShortHash(id)))
		}
	}
}
