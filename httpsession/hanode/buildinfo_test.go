package hanode

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/hanode/hanode/internal/buildinfo"
	"github.com/hanode/hanode/multicast"
)

// GET /status and hanode_build_info carry the build: version, commit, Go
// version and the wire protocol versions (fields added, none renamed).
func TestStatusAndMetricsShowBuild(t *testing.T) {
	store := newLocalBackend("n1")
	t.Cleanup(func() { store.Close() })
	var draining atomic.Bool
	cfg := &Config{Admin: "127.0.0.1:0", Version: "v0.1.0"}
	adm := &admin{cfg: cfg, store: store, log: slog.New(slog.DiscardHandler), draining: &draining}
	srv := httptest.NewServer(adm.handler())
	t.Cleanup(srv.Close)
	get := func(path string) string {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			t.Fatalf("GET %s: %d %s", path, resp.StatusCode, b)
		}
		return string(b)
	}
	build := buildinfo.Read()
	var st struct {
		Version      string `json:"version"`
		Commit       *string
		GoVersion    string `json:"go_version"`
		WireVersion  int    `json:"wire_version"`
		WireVersions []int  `json:"wire_versions"`
		Membership   []int  `json:"membership_versions"`
	}
	body := get("/status")
	if err := json.Unmarshal([]byte(body), &st); err != nil {
		t.Fatal(err)
	}
	if st.Version != "v0.1.0" || st.Commit == nil || *st.Commit != build.Commit || st.GoVersion != build.GoVersion ||
		st.WireVersion != multicast.WireVersion || len(st.WireVersions) == 0 || len(st.Membership) == 0 {
		t.Errorf("/status build fields: %+v\n%s", st, body)
	}
	want := fmt.Sprintf(`hanode_build_info{version="v0.1.0",go_version=%q,node=`, build.GoVersion)
	wire := fmt.Sprintf(`,commit=%q,wire_version="%d",wire_versions=%q} 1`, build.Commit, multicast.WireVersion, buildinfo.FormatVersions(build.WireVersions))
	m := get("/metrics")
	if !strings.Contains(m, want) || !strings.Contains(m, wire) {
		t.Errorf("/metrics lacks %s...%s:\n%s", want, wire, m)
	}
}
