package redisstore_test

import (
	"log"
	"net/http"

	"github.com/hanode/hanode/httpsession"
	"github.com/hanode/hanode/replicator/redisstore"
)

// An application keeps its sessions in a Redis Cluster (the addresses are
// seeds; one address would be a standalone Redis).
func ExampleNew() {
	st, err := redisstore.New(redisstore.Config{
		Node:  "web1", // the route suffix of this node's cookies
		Addrs: []string{"10.0.0.5:7000", "10.0.0.6:7000", "10.0.0.7:7000"},
	})
	if err != nil {
		log.Fatal(err) // names the addresses it could not reach
	}
	defer st.Close()
	m, err := httpsession.New(st, httpsession.DefaultConfig())
	if err != nil {
		log.Fatal(err)
	}
	http.Handle("/", m.LoadAndSave(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := m.GetInt(r.Context(), "visits")
		_ = m.Put(r.Context(), "visits", n+1)
	})))
}
