// Package redistest starts real redis-server processes for tests: a
// standalone server, or a Redis Cluster of masters with replicas built
// with redis-cli --cluster create. Every process listens on 127.0.0.1 (in
// the test's network namespace when the suite runs in one), keeps no
// data on disk and is killed when the test ends.
//
// The tests fail, not skip, when redis-server or redis-cli is missing:
// CI installs Debian's redis-server and redis-tools.
package redistest

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hanode/hanode/internal/testutil"
)

// Server is one redis-server process.
type Server struct {
	Addr string // host:port to dial
	Port int    // its TCP port
	Dir  string // its working directory (config, data, log)
	cmd  *exec.Cmd
	done chan struct{}
}

// Cluster is a Redis Cluster started by StartCluster.
type Cluster struct {
	Servers []*Server // masters first, then replicas
	t       testing.TB
}

func binary(t testing.TB, name string) string {
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("redistest: %s not found (apt-get install redis-server redis-tools): %v", name, err)
	}
	return p
}

func freePort(t testing.TB) int {
	// A cluster node also listens on port+10000: pick ports whose bus
	// port is free too.
	for range 50 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("redistest: %v", err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		if port+10000 > 65535 {
			continue
		}
		bus, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port+10000))
		if err != nil {
			continue
		}
		bus.Close()
		return port
	}
	t.Fatal("redistest: no free port pair")
	return 0
}

// Start starts a standalone redis-server with extra arguments
// (e.g. "--requirepass", "secret").
func Start(t testing.TB, extra ...string) *Server {
	t.Helper()
	return start(t, false, extra...)
}

// start runs redis-server on a free port (TLS-only on it when tlsOnly).
func start(t testing.TB, tlsOnly bool, extra ...string) *Server {
	bin := binary(t, "redis-server")
	dir := t.TempDir()
	var lastErr error
	for range 3 {
		port := freePort(t)
		args := []string{"--port", strconv.Itoa(port)}
		if tlsOnly {
			args = []string{"--port", "0", "--tls-port", strconv.Itoa(port)}
		}
		args = append(args, "--bind", "127.0.0.1",
			"--save", "", "--appendonly", "no", "--dir", dir, "--daemonize", "no",
			"--protected-mode", "no", "--loglevel", "warning", "--logfile", filepath.Join(dir, "redis.log"))
		args = append(args, extra...)
		cmd := exec.Command(bin, args...)
		if err := cmd.Start(); err != nil {
			t.Fatalf("redistest: start redis-server: %v", err)
		}
		s := &Server{Addr: "127.0.0.1:" + strconv.Itoa(port), Port: port, Dir: dir, cmd: cmd, done: make(chan struct{})}
		go func() { _ = cmd.Wait(); close(s.done) }()
		t.Cleanup(s.Kill)
		if lastErr = s.waitUp(10 * time.Second); lastErr == nil {
			return s
		}
		s.Kill()
	}
	t.Fatalf("redistest: redis-server did not start: %v", lastErr)
	return nil
}

func (s *Server) waitUp(d time.Duration) error {
	exited := errors.New("exited")
	err := testutil.Wait(d, func() error {
		select {
		case <-s.done:
			return exited
		default:
		}
		c, err := net.DialTimeout("tcp", s.Addr, 200*time.Millisecond)
		if err != nil {
			return fmt.Errorf("%s not listening after %s: %w", s.Addr, d, err)
		}
		c.Close()
		return nil
	})
	if err == exited {
		log, _ := os.ReadFile(filepath.Join(s.Dir, "redis.log"))
		return fmt.Errorf("exited: %s", log)
	}
	return err
}

// Kill ends the process with SIGKILL and waits for it (idempotent).
func (s *Server) Kill() {
	select {
	case <-s.done:
		return
	default:
	}
	_ = s.cmd.Process.Signal(syscall.SIGKILL)
	<-s.done
}

// Alive reports whether the process still runs.
func (s *Server) Alive() bool {
	select {
	case <-s.done:
		return false
	default:
		return true
	}
}

// Do runs one command with redis-cli against the server and returns its
// output, trimmed.
func (s *Server) Do(args ...string) (string, error) {
	cli, err := exec.LookPath("redis-cli")
	if err != nil {
		return "", err
	}
	out, err := exec.Command(cli, append([]string{"-h", "127.0.0.1", "-p", strconv.Itoa(s.Port)}, args...)...).CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// Info returns the fields of INFO section.
func (s *Server) Info(section string) map[string]string {
	out, _ := s.Do("INFO", section)
	m := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		if k, v, ok := strings.Cut(strings.TrimSpace(sc.Text()), ":"); ok {
			m[k] = v
		}
	}
	return m
}

// StartTLS starts a standalone redis-server that accepts only TLS, with a
// self-signed certificate for 127.0.0.1, and returns it and the path of
// that certificate in PEM (the CA a client must trust).
func StartTLS(t testing.TB, extra ...string) (*Server, string) {
	t.Helper()
	dir := t.TempDir()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "redistest"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	// The listening port chosen by start carries TLS; plain TCP is off.
	s := start(t, true, append([]string{"--tls-cert-file", certFile, "--tls-key-file", keyFile,
		"--tls-ca-cert-file", certFile, "--tls-auth-clients", "no"}, extra...)...)
	return s, certFile
}

// StartCluster starts masters*(1+replicas) cluster-enabled servers and
// joins them with redis-cli --cluster create. nodeTimeout is the
// cluster-node-timeout (how soon a dead master's replica takes over).
func StartCluster(t testing.TB, masters, replicas int, nodeTimeout time.Duration) *Cluster {
	t.Helper()
	cli := binary(t, "redis-cli")
	c := &Cluster{t: t}
	var addrs []string
	for range masters * (1 + replicas) {
		s := start(t, false, "--cluster-enabled", "yes", "--cluster-config-file", "nodes-"+strconv.Itoa(len(addrs))+".conf",
			"--cluster-node-timeout", strconv.FormatInt(nodeTimeout.Milliseconds(), 10),
			"--cluster-require-full-coverage", "no")
		c.Servers = append(c.Servers, s)
		addrs = append(addrs, s.Addr)
	}
	args := append([]string{"--cluster", "create"}, addrs...)
	args = append(args, "--cluster-replicas", strconv.Itoa(replicas), "--cluster-yes")
	if out, err := exec.Command(cli, args...).CombinedOutput(); err != nil {
		t.Fatalf("redistest: redis-cli --cluster create: %v\n%s", err, out)
	}
	c.WaitHealthy(masters, 30*time.Second)
	c.WaitReplicas(replicas, 30*time.Second)
	return c
}

// Addrs returns every server's address.
func (c *Cluster) Addrs() []string {
	var out []string
	for _, s := range c.Servers {
		out = append(out, s.Addr)
	}
	return out
}

// AliveAddrs returns the addresses of the servers still running.
func (c *Cluster) AliveAddrs() []string {
	var out []string
	for _, s := range c.Servers {
		if s.Alive() {
			out = append(out, s.Addr)
		}
	}
	return out
}

// Masters returns the live servers whose role is master.
func (c *Cluster) Masters() []*Server {
	var out []*Server
	for _, s := range c.Servers {
		if s.Alive() && s.Info("replication")["role"] == "master" {
			out = append(out, s)
		}
	}
	return out
}

// MasterOf returns the live master serving key's slot.
func (c *Cluster) MasterOf(key string) *Server {
	for _, s := range c.Masters() {
		// A master owns the slot when it answers a read for the key
		// without a redirection.
		if r, err := s.Do("EXISTS", key); err == nil && !strings.HasPrefix(r, "MOVED") && !strings.Contains(r, "MOVED") {
			return s
		}
	}
	return nil
}

// WaitReplicas waits until every live master has n replicas with an
// established replication link, or fails the test.
func (c *Cluster) WaitReplicas(n int, d time.Duration) {
	c.t.Helper()
	testutil.WaitFor(c.t, d, fmt.Sprintf("redistest: every master has %d online replicas", n), func() bool {
		for _, m := range c.Masters() {
			info := m.Info("replication")
			if k, _ := strconv.Atoi(info["connected_slaves"]); k < n {
				return false
			}
			for i := range n {
				if !strings.Contains(info["slave"+strconv.Itoa(i)], "state=online") {
					return false
				}
			}
		}
		return true
	})
}

// WaitHealthy waits until every live server reports cluster_state:ok and
// the cluster has want masters with slots, or fails the test.
func (c *Cluster) WaitHealthy(want int, d time.Duration) {
	c.t.Helper()
	testutil.WaitFor(c.t, d, "redistest: cluster_state:ok on every live server", func() bool {
		for _, s := range c.Servers {
			if !s.Alive() {
				continue
			}
			out, err := s.Do("CLUSTER", "INFO")
			if err != nil || !strings.Contains(out, "cluster_state:ok") {
				return false
			}
		}
		return len(c.Masters()) >= want
	})
}
