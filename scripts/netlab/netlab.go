// Package netlab builds small networks of Linux network namespaces for
// end-to-end tests: a bridge in the test's own (private) namespace and
// one namespace per host, joined to the bridge by a veth pair whose far
// end is called eth0. Tests start real processes in the hosts, kill them,
// and make the network lossy or partitioned with nftables.
//
// The lab never touches a real interface: it runs only when the test
// process itself is inside a private network namespace, as
// scripts/test.sh arranges (`unshare -rn`, HANODE_NETLAB=1). Elsewhere
// New fails the test with the fix ("run scripts/test.sh"), or skips it
// when HANODE_NO_NETNS=1.
//
// Addresses: lab k has the bridge at 10.77.k.1/24 and its i-th host
// (from 0) at 10.77.k.(10+i). Hosts route 224.0.0.0/4 through eth0 and
// the bridge does not snoop IGMP, so multicast reaches every host.
//
// Cleanup (registered with t.Cleanup) kills every process the lab
// started, by PID, and deletes the links it created, by name. Every wait
// is bounded.
package netlab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hanode/hanode/internal/testutil"
)

// Environment variables.
const (
	// EnvLab is set to 1 by scripts/test.sh inside the private namespace.
	EnvLab = "HANODE_NETLAB"
	// EnvSkip, set to 1, makes New skip instead of fail outside the lab.
	EnvSkip = "HANODE_NO_NETNS"
)

// commandTimeout bounds every ip/nft/nsenter helper command.
const commandTimeout = 20 * time.Second

// Lab is one bridge and its hosts.
type Lab struct {
	t      testing.TB
	name   string
	index  int    // k in 10.77.k.0/24
	bridge string // interface name of the bridge
	dir    string // logs

	mu    sync.Mutex
	hosts []*Host
	procs []*Process
}

// Available reports whether the lab can run here, and why not.
func Available() error {
	if os.Getenv(EnvLab) != "1" {
		return fmt.Errorf("netlab: %s is not set: the network lab runs only inside the private network namespace that scripts/test.sh creates (run: bash scripts/test.sh)", EnvLab)
	}
	for _, tool := range []string{"ip", "nsenter", "unshare"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("netlab: %s not found (apt-get install iproute2 util-linux)", tool)
		}
	}
	return nil
}

// New creates a lab with its bridge, or fails the test with the fix when
// the process is not inside the lab's private namespace (skips when
// HANODE_NO_NETNS=1).
func New(t testing.TB, name string) *Lab {
	t.Helper()
	if err := Available(); err != nil {
		if os.Getenv(EnvSkip) == "1" {
			t.Skipf("%v (skipped: %s=1)", err, EnvSkip)
		}
		t.Fatalf("%v; or set %s=1 to skip the namespace tests", err, EnvSkip)
	}
	l := &Lab{t: t, name: name, dir: t.TempDir()}
	// Allocate a subnet: creating the bridge is atomic, so the first free
	// index wins, also across test processes sharing the namespace.
	var lastErr error
	for k := 1; k <= 250; k++ {
		br := "hnlab" + strconv.Itoa(k)
		if _, err := run("ip", "link", "add", br, "type", "bridge", "mcast_snooping", "0"); err != nil {
			lastErr = err
			if strings.Contains(err.Error(), "File exists") {
				continue
			}
			t.Fatalf("netlab: create bridge: %v (is the process privileged in its namespace? run: bash scripts/test.sh)", err)
		}
		l.index, l.bridge = k, br
		break
	}
	if l.bridge == "" {
		t.Fatalf("netlab: no free bridge index: %v", lastErr)
	}
	t.Cleanup(l.cleanup)
	l.must("ip", "addr", "add", l.BridgeIP().String()+"/24", "dev", l.bridge)
	l.must("ip", "link", "set", l.bridge, "up")
	t.Logf("netlab %s: bridge %s, 10.77.%d.0/24", name, l.bridge, l.index)
	return l
}

// BridgeIP returns the address of the test process on the lab network.
func (l *Lab) BridgeIP() netip.Addr { return netip.AddrFrom4([4]byte{10, 77, byte(l.index), 1}) }

func (l *Lab) must(name string, args ...string) string {
	l.t.Helper()
	out, err := run(name, args...)
	if err != nil {
		l.t.Fatalf("netlab: %v", err)
	}
	return out
}

// run runs a helper command, bounded by commandTimeout.
func run(name string, args ...string) (string, error) {
	return runInput(nil, name, args...)
}

func runInput(stdin []byte, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// Host is one network namespace on the lab's bridge.
type Host struct {
	lab     *Lab
	name    string
	n       int
	ip      netip.Addr
	veth    string
	sleeper *exec.Cmd
	pid     int
}

// AddHost creates a namespace (held by a sleeping process), joins it to
// the bridge through eth0 with the next address, brings lo up and routes
// multicast through eth0.
func (l *Lab) AddHost(name string) *Host {
	l.t.Helper()
	l.mu.Lock()
	n := len(l.hosts)
	l.mu.Unlock()
	if n >= 200 {
		l.t.Fatal("netlab: too many hosts")
	}
	h := &Host{lab: l, name: name, n: n, ip: netip.AddrFrom4([4]byte{10, 77, byte(l.index), byte(10 + n)})}
	h.veth = fmt.Sprintf("hv%d-%d", l.index, n)

	// The sleeper holds the namespace; it dies with the lab.
	h.sleeper = exec.Command("unshare", "-n", "sleep", "86400")
	h.sleeper.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := h.sleeper.Start(); err != nil {
		l.t.Fatalf("netlab: start namespace holder: %v", err)
	}
	h.pid = h.sleeper.Process.Pid
	l.mu.Lock()
	l.hosts = append(l.hosts, h)
	l.mu.Unlock()
	if err := waitNewNetns(h.pid, 10*time.Second); err != nil {
		l.t.Fatalf("netlab: host %s: %v", name, err)
	}
	pid := strconv.Itoa(h.pid)
	l.must("ip", "link", "add", h.veth, "type", "veth", "peer", "name", "eth0", "netns", pid)
	l.must("ip", "link", "set", h.veth, "master", l.bridge, "up")
	for _, args := range [][]string{
		{"ip", "link", "set", "lo", "up"},
		{"ip", "addr", "add", h.ip.String() + "/24", "dev", "eth0"},
		{"ip", "link", "set", "eth0", "up"},
		{"ip", "route", "add", "224.0.0.0/4", "dev", "eth0"},
	} {
		if _, err := h.Run(args[0], args[1:]...); err != nil {
			l.t.Fatalf("netlab: host %s: %v", name, err)
		}
	}
	l.t.Logf("netlab %s: host %s at %s (pid %d)", l.name, name, h.ip, h.pid)
	return h
}

// waitNewNetns waits until pid is in a network namespace other than ours.
func waitNewNetns(pid int, timeout time.Duration) error {
	self, err := os.Readlink("/proc/self/ns/net")
	if err != nil {
		return err
	}
	return testutil.Wait(timeout, func() error {
		ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/net", pid))
		if err == nil && ns != self {
			return nil
		}
		return fmt.Errorf("process %d did not enter a new network namespace within %s", pid, timeout)
	})
}

// Name returns the host's name.
func (h *Host) Name() string { return h.name }

// IP returns the host's address on the lab network.
func (h *Host) IP() netip.Addr { return h.ip }

// Addr returns "IP:port".
func (h *Host) Addr(port int) string { return netip.AddrPortFrom(h.ip, uint16(port)).String() }

// PID returns the PID of the process that holds the host's namespace.
func (h *Host) PID() int { return h.pid }

// Command returns a command that runs name in the host's namespace.
func (h *Host) Command(name string, args ...string) *exec.Cmd {
	return exec.Command("nsenter", append([]string{"-t", strconv.Itoa(h.pid), "-n", "--", name}, args...)...)
}

// Run runs a short command in the host's namespace, bounded, and returns
// its combined output.
func (h *Host) Run(name string, args ...string) (string, error) {
	return run("nsenter", append([]string{"-t", strconv.Itoa(h.pid), "-n", "--", name}, args...)...)
}

// Process is a process started in a host.
type Process struct {
	where   string // the host's name, or "test" (StartProcess)
	group   bool   // in its own process group, killed as a group
	name    string
	cmd     *exec.Cmd
	logPath string
	logFile *os.File
	done    chan struct{}
	err     error
}

// Start starts name in the host, its output going to a log file that is
// dumped when the test fails. The lab kills it at cleanup.
func (h *Host) Start(name string, args ...string) *Process {
	h.lab.t.Helper()
	return h.StartCmd(h.Command(name, args...))
}

// StartCmd starts a command built with Command (to set Env or Dir).
func (h *Host) StartCmd(cmd *exec.Cmd) *Process {
	l := h.lab
	l.t.Helper()
	base := filepath.Base(cmd.Args[len(cmd.Args)-1])
	for i, a := range cmd.Args {
		if a == "--" && i+1 < len(cmd.Args) {
			base = filepath.Base(cmd.Args[i+1])
			break
		}
	}
	l.mu.Lock()
	logPath := filepath.Join(l.dir, fmt.Sprintf("%s-%s-%d.log", h.name, base, len(l.procs)))
	l.mu.Unlock()
	f, err := os.Create(logPath)
	if err != nil {
		l.t.Fatalf("netlab: %v", err)
	}
	cmd.Stdout, cmd.Stderr = f, f
	p, err := start(cmd, base, h.name, logPath, f, false)
	if err != nil {
		l.t.Fatalf("netlab: start %s on %s: %v", base, h.name, err)
	}
	l.mu.Lock()
	l.procs = append(l.procs, p)
	l.mu.Unlock()
	return p
}

// start starts cmd (its output already going to f) with SIGKILL as its
// parent-death signal, in its own process group when group is true, and
// closes f when it ends.
func start(cmd *exec.Cmd, name, where, logPath string, f *os.File, group bool) (*Process, error) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: group}
	p := &Process{where: where, group: group, name: name, cmd: cmd, logPath: logPath, logFile: f, done: make(chan struct{})}
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, err
	}
	go func() {
		p.err = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	return p, nil
}

// StartProcess starts cmd in the test's own namespace (no lab host: a
// load balancer, a browser), in its own process group, its output (and
// its stdout, unless cmd sets one) going to dir/name.log. At t's cleanup
// the whole group is killed and, when t failed, the log is dumped.
func StartProcess(t testing.TB, dir, name string, cmd *exec.Cmd) *Process {
	t.Helper()
	logPath := filepath.Join(dir, name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		t.Fatalf("netlab: %v", err)
	}
	if cmd.Stdout == nil {
		cmd.Stdout = f
	}
	cmd.Stderr = f
	p, err := start(cmd, name, "test", logPath, f, true)
	if err != nil {
		t.Fatalf("netlab: start %s: %v", name, err)
	}
	t.Cleanup(func() {
		p.Kill()
		if t.Failed() {
			t.Logf("---- log of %s ----\n%s", name, p.tail())
		}
	})
	return p
}

// PID returns the process id (of nsenter, which execs the command in
// place, so it is the command's own PID).
func (p *Process) PID() int { return p.cmd.Process.Pid }

// Signal sends sig to the process.
func (p *Process) Signal(sig syscall.Signal) error { return p.cmd.Process.Signal(sig) }

// Kill sends SIGKILL (to its process group, for StartProcess) and waits
// (bounded) for the process to end.
func (p *Process) Kill() {
	p.sigkill()
	_ = p.Wait(10 * time.Second)
}

func (p *Process) sigkill() {
	if p.Exited() {
		return
	}
	if p.group {
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
}

// Stop sends SIGTERM and waits up to timeout for a clean exit; it returns
// the process's exit error (nil for exit status 0).
func (p *Process) Stop(timeout time.Duration) error {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	return p.Wait(timeout)
}

// Pause stops the process (SIGSTOP); Resume continues it.
func (p *Process) Pause() error  { return p.cmd.Process.Signal(syscall.SIGSTOP) }
func (p *Process) Resume() error { return p.cmd.Process.Signal(syscall.SIGCONT) }

// ErrTimeout is returned by Wait when the process is still running.
var ErrTimeout = errors.New("netlab: timeout")

// Wait waits up to timeout for the process to exit.
func (p *Process) Wait(timeout time.Duration) error {
	select {
	case <-p.done:
		return p.err
	case <-time.After(timeout):
		return fmt.Errorf("%w: %s on %s still running after %s", ErrTimeout, p.name, p.where, timeout)
	}
}

// Exited reports whether the process has ended.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// tail returns the last 64 KiB of the log.
func (p *Process) tail() string {
	logs := p.Logs()
	if len(logs) > 64<<10 {
		logs = "...\n" + logs[len(logs)-64<<10:]
	}
	return logs
}

// Logs returns what the process printed so far.
func (p *Process) Logs() string {
	b, _ := os.ReadFile(p.logPath)
	return string(b)
}

// Nft loads an nftables ruleset (nft -f syntax) into the host's namespace.
// Example, drop 10% of incoming UDP (nft wants a newline after a
// chain's closing brace):
//
//	h.Nft(`table inet loss {
//		chain in {
//			type filter hook input priority 0;
//			meta l4proto udp numgen random mod 100 < 10 drop
//		}
//	}`)
func (h *Host) Nft(rules string) error {
	_, err := runInput([]byte(rules), "nsenter", "-t", strconv.Itoa(h.pid), "-n", "--", "nft", "-f", "-")
	return err
}

// DropUDP makes the host drop percent% of the UDP datagrams it receives
// (0 removes the rule).
func (h *Host) DropUDP(percent int) error {
	_, _ = h.Run("nft", "delete", "table", "inet", "netlab_loss")
	if percent <= 0 {
		return nil
	}
	rule := fmt.Sprintf("meta l4proto udp numgen random mod 100 < %d drop", percent)
	if percent >= 100 {
		rule = "meta l4proto udp drop"
	}
	return h.Nft("table inet netlab_loss {\n\tchain in {\n\t\ttype filter hook input priority 0; policy accept;\n\t\t" + rule + "\n\t}\n}\n")
}

const partitionTable = `table inet netlab_part {
	set blocked { type ipv4_addr; }
	chain in { type filter hook input priority 0; policy accept; ip saddr @blocked drop; }
	chain out { type filter hook output priority 0; policy accept; ip daddr @blocked drop; }
}`

// block makes h drop all traffic from and to the given hosts.
func (h *Host) block(others ...*Host) error {
	if err := h.Nft(partitionTable); err != nil {
		return err
	}
	for _, o := range others {
		if _, err := h.Run("nft", "add", "element", "inet", "netlab_part", "blocked", "{", o.ip.String(), "}"); err != nil {
			return err
		}
	}
	return nil
}

func (h *Host) unblock(others ...*Host) error {
	for _, o := range others {
		if _, err := h.Run("nft", "delete", "element", "inet", "netlab_part", "blocked", "{", o.ip.String(), "}"); err != nil && !strings.Contains(err.Error(), "No such file") {
			return err
		}
	}
	return nil
}

// Partition cuts h off from others in both directions (unicast and
// multicast), until Heal.
func (h *Host) Partition(others ...*Host) error {
	if err := h.block(others...); err != nil {
		return err
	}
	for _, o := range others {
		if err := o.block(h); err != nil {
			return err
		}
	}
	return nil
}

// Heal undoes Partition.
func (h *Host) Heal(others ...*Host) error {
	if err := h.unblock(others...); err != nil {
		return err
	}
	for _, o := range others {
		if err := o.unblock(h); err != nil {
			return err
		}
	}
	return nil
}

// cleanup kills the lab's processes and namespace holders by PID, dumps
// the logs of a failed test, and deletes the links by name.
func (l *Lab) cleanup() {
	l.mu.Lock()
	procs, hosts := l.procs, l.hosts
	l.mu.Unlock()
	for _, p := range procs {
		p.sigkill()
		if err := p.Wait(10 * time.Second); errors.Is(err, ErrTimeout) {
			l.t.Logf("netlab: %v", err)
		}
	}
	if l.t.Failed() {
		for _, p := range procs {
			l.t.Logf("---- log of %s on %s (%s) ----\n%s", p.name, p.where, p.logPath, p.tail())
		}
	}
	for _, h := range hosts {
		_ = h.sleeper.Process.Signal(syscall.SIGKILL)
		done := make(chan struct{})
		go func() { _ = h.sleeper.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			l.t.Logf("netlab: namespace holder %d of %s did not exit", h.pid, h.name)
		}
		// The veth goes with the namespace; delete it in case it lingers.
		_, _ = run("ip", "link", "del", h.veth)
	}
	if _, err := run("ip", "link", "del", l.bridge); err != nil {
		l.t.Logf("netlab: %v", err)
	}
}
