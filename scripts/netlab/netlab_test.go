package netlab

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hanode/hanode/internal/testutil"
)

// The test binary doubles as the tiny programs the self-test runs inside
// hosts, chosen by environment variable.
const (
	envEcho = "NETLAB_TEST_ECHO" // serve UDP echo on this port (unicast) and the next (group 239.255.77.1)
	envSend = "NETLAB_TEST_SEND" // send "ping" to this address and print the answer
)

const testGroup = "239.255.77.1"

func TestMain(m *testing.M) {
	if port := os.Getenv(envEcho); port != "" {
		os.Exit(echo(port))
	}
	if addr := os.Getenv(envSend); addr != "" {
		os.Exit(send(addr))
	}
	os.Exit(m.Run())
}

func echo(port string) int {
	uc, err := net.ListenPacket("udp4", ":"+port)
	if err != nil {
		fmt.Println(err)
		return 1
	}
	ifi, err := net.InterfaceByName("eth0")
	if err != nil {
		fmt.Println(err)
		return 1
	}
	// The group listens on port+1: both sockets on one port would need
	// SO_REUSEADDR on the unicast one too.
	pn, _ := strconv.Atoi(port)
	gaddr, _ := net.ResolveUDPAddr("udp4", testGroup+":"+strconv.Itoa(pn+1))
	mc, err := net.ListenMulticastUDP("udp4", ifi, gaddr)
	if err != nil {
		fmt.Println(err)
		return 1
	}
	fmt.Println("echo ready")
	serve := func(c net.PacketConn, tag string) {
		buf := make([]byte, 1500)
		for {
			n, from, err := c.ReadFrom(buf)
			if err != nil {
				return
			}
			_, _ = uc.WriteTo([]byte(tag+":"+string(buf[:n])), from)
		}
	}
	go serve(mc, "mcast")
	serve(uc, "ucast")
	return 0
}

func send(addr string) int {
	c, err := net.ListenPacket("udp4", ":0")
	if err != nil {
		fmt.Println(err)
		return 1
	}
	to, err := net.ResolveUDPAddr("udp4", addr)
	if err != nil {
		fmt.Println(err)
		return 1
	}
	buf := make([]byte, 1500)
	for i := 0; i < 10; i++ {
		_, _ = c.WriteTo([]byte("ping"), to)
		_ = c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		n, _, err := c.ReadFrom(buf)
		if err == nil {
			fmt.Println(string(buf[:n]))
			return 0
		}
	}
	fmt.Println("no answer")
	return 3
}

// sendFrom runs the sender in host h and returns its output.
func sendFrom(t *testing.T, h *Host, addr string) (string, error) {
	t.Helper()
	cmd := h.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envSend+"="+addr)
	p := h.StartCmd(cmd)
	err := p.Wait(30 * time.Second)
	return strings.TrimSpace(p.Logs()), err
}

// sendFromHere sends from the test process (the bridge side).
func sendFromHere(addr string) (string, error) {
	c, err := net.Dial("udp4", addr)
	if err != nil {
		return "", err
	}
	defer c.Close()
	buf := make([]byte, 1500)
	for i := 0; i < 10; i++ {
		_, _ = c.Write([]byte("ping"))
		_ = c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		n, err := c.Read(buf)
		if err == nil {
			return string(buf[:n]), nil
		}
	}
	return "", errors.New("no answer")
}

func TestLabSelfTest(t *testing.T) {
	lab := New(t, "selftest")
	h1, h2 := lab.AddHost("h1"), lab.AddHost("h2")
	if h1.IP() == h2.IP() || h1.IP().String() == "" {
		t.Fatalf("addresses %s %s", h1.IP(), h2.IP())
	}

	cmd := h1.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envEcho+"=7777")
	echoProc := h1.StartCmd(cmd)
	testutil.Until(t, 20*time.Second, "the echo server starts", func() (bool, string) {
		if echoProc.Exited() {
			t.Fatalf("echo server exited: %s", echoProc.Logs())
		}
		return strings.Contains(echoProc.Logs(), "echo ready"), echoProc.Logs()
	})

	// Bridge side to host, unicast.
	if got, err := sendFromHere(h1.Addr(7777)); err != nil || got != "ucast:ping" {
		t.Fatalf("bridge → h1: %q %v", got, err)
	}
	// Host to host, unicast and multicast.
	if got, err := sendFrom(t, h2, h1.Addr(7777)); err != nil || got != "ucast:ping" {
		t.Fatalf("h2 → h1 unicast: %q %v", got, err)
	}
	if got, err := sendFrom(t, h2, testGroup+":7778"); err != nil || got != "mcast:ping" {
		t.Fatalf("h2 → group: %q %v", got, err)
	}

	// A partition cuts both ways; healing restores it.
	if err := h1.Partition(h2); err != nil {
		t.Fatalf("partition (is nftables installed?): %v", err)
	}
	if got, err := sendFrom(t, h2, testGroup+":7778"); err == nil {
		t.Fatalf("h2 → group across a partition answered %q", got)
	}
	if err := h1.Heal(h2); err != nil {
		t.Fatal(err)
	}
	if got, err := sendFrom(t, h2, testGroup+":7778"); err != nil || got != "mcast:ping" {
		t.Fatalf("h2 → group after heal: %q %v", got, err)
	}

	// 100% loss drops everything; 0 removes the rule.
	if err := h1.DropUDP(100); err != nil {
		t.Fatal(err)
	}
	if _, err := sendFromHere(h1.Addr(7777)); err == nil {
		t.Fatal("answer despite 100% UDP loss")
	}
	if err := h1.DropUDP(0); err != nil {
		t.Fatal(err)
	}
	if _, err := sendFromHere(h1.Addr(7777)); err != nil {
		t.Fatalf("after removing loss: %v", err)
	}

	// Kill ends the process; its PID is gone.
	echoProc.Kill()
	if !echoProc.Exited() {
		t.Fatal("echo still running after Kill")
	}
}

func TestNewOutsideLab(t *testing.T) {
	t.Setenv(EnvLab, "") // as outside the lab, also when the suite runs inside it
	if err := Available(); err == nil || !strings.Contains(err.Error(), "scripts/test.sh") {
		t.Fatalf("Available() outside the lab = %v", err)
	}
}
