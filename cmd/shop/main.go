// Command shop is a small web shop (log in, fill a cart, log out) whose
// users stay logged in with their cart when the node serving them dies.
// It is written as an application developer would write it: its whole
// HA wiring is the few lines of main, through the embedding package
// github.com/hanode/hanode/httpsession/hanode, so it takes the same
// settings as `hanode run` (flags, HANODE_* environment variables, the
// config file) and serves the same admin API on --admin.
//
//	shop --listen :8080                       # HA off: sessions in this process
//	shop --ha --node n1 --interface eth0 --key-file /etc/hanode/cluster.key
//
// Its HTTP API:
//
//	POST /login   user=U  renews the session ID, logs U in: 200 {"user": U, "node": NODE}
//	POST /cart    item=I  appends I to the cart: 200 {"user": U, "items": [...], "node": NODE}
//	GET  /cart            the cart: 200 {"user": U, "items": [...], "node": NODE}
//	POST /logout          destroys the session: 200 {"node": NODE}
//	GET  /                an HTML page with a login form, the cart and an add-item form
//
// /cart answers 401 when the user is not logged in.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"

	"github.com/hanode/hanode/httpsession/hanode"
)

func main() {
	hanode.AddFlags(flag.CommandLine)
	flag.Parse()
	cfg, err := hanode.FromFlags(flag.CommandLine)
	if err != nil {
		exit(err)
	}
	node, err := hanode.Start(cfg)
	if err != nil {
		exit(err)
	}
	shop := &Shop{Sessions: node.Sessions(), Node: node.Name()}
	if err := node.Serve(context.Background(), shop.Handler()); err != nil {
		exit(err)
	}
}

// exit reports err and ends the process: 2 for a configuration error,
// 1 for any other.
func exit(err error) {
	fmt.Fprintf(os.Stderr, "shop: %v\n", err)
	if errors.Is(err, hanode.ErrConfig) {
		os.Exit(2)
	}
	os.Exit(1)
}
