package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"

	"github.com/hanode/hanode/httpsession/hanode"
	"github.com/hanode/hanode/replicator/cluster"
)

// run serves the demo application on a node of the embedding package
// until ctx ends or the process gets SIGTERM or SIGINT, then shuts down in
// order (hanode.Node.Serve). The daemon is one user of the package; its
// demo application is one handler.
func run(ctx context.Context, cfg *Config, logw io.Writer) error {
	cfg.LogOutput = logw
	cfg.Version = buildVersion()
	node, err := hanode.Start(cfg)
	if err != nil {
		return err
	}
	app := &demoApp{node: node.Name(), mgr: node.Sessions(), store: node, cookie: cfg.CookieName, debug: cfg.DemoDebug}
	return node.Serve(ctx, app.handler())
}

// clusterView is what the demo application shows of the cluster.
type clusterView interface {
	Members() []cluster.MemberInfo
	Ready() bool
}

// The admin API's JSON shapes, as the CLI and the tests read them.
type (
	memberJSON  = cluster.MemberInfo
	sessionJSON = hanode.SessionJSON
	sessionList = hanode.SessionList
)

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
