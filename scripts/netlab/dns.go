package netlab

import (
	"errors"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"

	"golang.org/x/net/dns/dnsmessage"
)

// DNS is a minimal authoritative DNS server over UDP for tests: it
// answers A queries from a table the test changes with Set, NXDOMAIN for
// names it does not hold, and an empty answer for other types. Names are
// matched without case and without the final dot.
type DNS struct {
	conn *net.UDPConn
	mu   sync.Mutex
	a    map[string][]netip.Addr
	n    map[string]int // A queries answered, per name
	done chan struct{}
}

// StartDNS serves DNS on addr ("IP:port"; port 53 for the system
// resolver of the hosts) until the test ends.
func StartDNS(t testing.TB, addr string) *DNS {
	t.Helper()
	conn, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.MustParseAddrPort(addr)))
	if err != nil {
		t.Fatalf("netlab: dns: %v", err)
	}
	d := &DNS{conn: conn, a: make(map[string][]netip.Addr), n: make(map[string]int), done: make(chan struct{})}
	go d.serve()
	t.Cleanup(func() {
		conn.Close()
		<-d.done
	})
	return d
}

// Addr returns the server's address.
func (d *DNS) Addr() netip.AddrPort { return d.conn.LocalAddr().(*net.UDPAddr).AddrPort() }

// Set replaces the A records of name (none: the name does not exist).
func (d *DNS) Set(name string, addrs ...netip.Addr) {
	d.mu.Lock()
	defer d.mu.Unlock()
	k := dnsKey(name)
	if len(addrs) == 0 {
		delete(d.a, k)
		return
	}
	d.a[k] = append([]netip.Addr(nil), addrs...)
}

// Queries returns how many A queries for name were answered.
func (d *DNS) Queries(name string) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.n[dnsKey(name)]
}

func dnsKey(name string) string { return strings.ToLower(strings.TrimSuffix(name, ".")) }

func (d *DNS) serve() {
	defer close(d.done)
	buf := make([]byte, 1500)
	for {
		n, from, err := d.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		if resp, ok := d.answer(buf[:n]); ok {
			_, _ = d.conn.WriteToUDPAddrPort(resp, from)
		}
	}
}

func (d *DNS) answer(q []byte) ([]byte, bool) {
	var p dnsmessage.Parser
	h, err := p.Start(q)
	if err != nil || h.Response {
		return nil, false
	}
	qs, err := p.AllQuestions()
	if err != nil || len(qs) != 1 {
		return nil, false
	}
	qq := qs[0]
	d.mu.Lock()
	addrs, known := d.a[dnsKey(qq.Name.String())]
	if qq.Type == dnsmessage.TypeA {
		d.n[dnsKey(qq.Name.String())]++
	}
	d.mu.Unlock()
	rh := dnsmessage.Header{ID: h.ID, Response: true, Authoritative: true, RecursionDesired: h.RecursionDesired, RecursionAvailable: true}
	if !known {
		rh.RCode = dnsmessage.RCodeNameError
	}
	b := dnsmessage.NewBuilder(nil, rh)
	b.EnableCompression()
	if b.StartQuestions() != nil || b.Question(qq) != nil || b.StartAnswers() != nil {
		return nil, false
	}
	if qq.Type == dnsmessage.TypeA && qq.Class == dnsmessage.ClassINET {
		for _, a := range addrs {
			rr := dnsmessage.ResourceHeader{Name: qq.Name, Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET, TTL: 0}
			if b.AResource(rr, dnsmessage.AResource{A: a.As4()}) != nil {
				return nil, false
			}
		}
	}
	out, err := b.Finish()
	return out, err == nil
}
