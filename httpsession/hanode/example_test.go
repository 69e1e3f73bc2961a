package hanode_test

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/cookiejar"

	"github.com/hanode/hanode/httpsession/hanode"
)

// An application's whole wiring: settings (flags > HANODE_* env > config
// file > defaults), the node (HA off here; --ha turns it on), the session
// manager, the application on --listen and the admin API on --admin until
// SIGTERM. The command line is given to Parse by hand so that the example
// runs on free loopback ports; a real main calls flag.Parse().
func Example() {
	fs := flag.NewFlagSet("app", flag.ExitOnError)
	hanode.AddFlags(fs)
	fs.Parse([]string{"--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0", "--log-level", "error"})

	cfg, err := hanode.FromFlags(fs)
	if err != nil {
		log.Fatal(err)
	}
	node, err := hanode.Start(cfg)
	if err != nil {
		log.Fatal(err)
	}
	sessions := node.Sessions()

	mux := http.NewServeMux()
	mux.HandleFunc("POST /count", func(w http.ResponseWriter, r *http.Request) {
		n := sessions.GetInt(r.Context(), "n") + 1
		sessions.Put(r.Context(), "n", n)
		fmt.Fprintf(w, "count %d on %s\n", n, node.Name())
	})

	ctx, stop := context.WithCancel(context.Background()) // a real main passes context.Background()
	done := make(chan error)
	go func() { done <- node.Serve(ctx, sessions.LoadAndSave(mux)) }()

	// A user of the application, and an operator's health check.
	jar, _ := cookiejar.New(nil)
	user := &http.Client{Jar: jar}
	for range 2 {
		resp, err := user.Post("http://"+node.AppAddr().String()+"/count", "", nil)
		if err != nil {
			log.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		fmt.Print(string(body))
	}
	resp, err := http.Get("http://" + node.AdminAddr().String() + "/readyz")
	if err != nil {
		log.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Print("readyz: ", string(body))

	stop() // as SIGTERM would: drain, finish requests, flush, leave
	fmt.Println("stopped:", <-done)
	// Output:
	// count 1 on local
	// count 2 on local
	// readyz: ready
	// stopped: <nil>
}
