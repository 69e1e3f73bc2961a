package main

// Failure detection and start-up between real processes in network
// namespaces, with the default settings (issue 15): a SIGKILLed node is
// declared dead by every survivor within 1.5 s, no live node is suspected,
// and a first member is ready within 0.5 s.

import (
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hanode/hanode/internal/testutil"
	"github.com/hanode/hanode/scripts/netlab"
)

// noFalseSuspicions fails the test when a live node suspected a member
// that was then heard again (hanode_membership_false_suspicions_total):
// on a network without injected loss or partitions, every suspicion of a
// live node is a false one.
func noFalseSuspicions(t *testing.T, nodes ...*e2eNode) {
	t.Helper()
	for _, n := range nodes {
		if n.proc.Exited() {
			continue
		}
		f := relMetric(n, "hanode_membership_false_suspicions_total")
		s := relMetric(n, "hanode_membership_suspicions_total")
		if f != 0 {
			t.Errorf("%s suspected a live member %g times (%g suspicions in all; health score %g)", n.name, f, s,
				relMetric(n, "hanode_membership_health_score"))
		} else {
			t.Logf("%s: %g suspicions, none false", n.name, s)
		}
	}
}

// deadAt polls n's /members every 5ms (the resolution of the measure)
// until the member named name (an old incarnation of it: the killed
// process) is listed dead, and returns when.
func deadAt(n *e2eNode, name string, limit time.Time) (time.Time, error) {
	var at time.Time
	err := testutil.WaitEvery(time.Until(limit), 5*time.Millisecond, func() error {
		_, body, err := n.adminGet("/members")
		now := time.Now()
		var ms []memberJSON
		if err == nil && json.Unmarshal(body, &ms) == nil {
			for _, m := range ms {
				if m.Name == name && m.State == "dead" {
					at = now
					return nil
				}
			}
		}
		return fmt.Errorf("%s does not list %s dead: %s %v", n.name, name, body, err)
	})
	return at, err
}

// TestDetectKill kills one of three nodes with SIGKILL, four times (the
// victim restarted under its name in between), and measures when each
// survivor lists it dead: at most 1.5 s after the kill, with the defaults.
func TestDetectKill(t *testing.T) {
	lab := netlab.New(t, "detect")
	bin := hanodeBinary(t)
	key := keyFile(t, bin)
	nodes := relCluster(t, lab, bin, key, 3)
	var delays []time.Duration
	for round := range 4 {
		victim := nodes[round%3]
		var survivors []*e2eNode
		for _, n := range nodes {
			if n != victim {
				survivors = append(survivors, n)
			}
		}
		victim.proc.Kill()
		killed := time.Now()
		var mu sync.Mutex
		var wg sync.WaitGroup
		for _, s := range survivors {
			wg.Add(1)
			go func() {
				defer wg.Done()
				at, err := deadAt(s, victim.name, killed.Add(15*time.Second))
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					t.Errorf("round %d: %v", round, err)
					return
				}
				d := at.Sub(killed)
				delays = append(delays, d)
				t.Logf("round %d: %s lists %s dead %v after the SIGKILL", round, s.name, victim.name, d.Round(time.Millisecond))
			}()
		}
		wg.Wait()
		if t.Failed() {
			t.FailNow()
		}
		noFalseSuspicions(t, survivors...)
		// Restart the victim (a new member under the old name).
		nodes[round%3] = relStart(t, bin, victim.host, victim.name, key)
		waitReady(t, 60*time.Second, nodes[round%3])
		for _, n := range nodes {
			relWaitAlive(t, n, 3)
		}
	}
	slices.Sort(delays)
	t.Logf("%d detections: min %v, median %v, max %v", len(delays), delays[0].Round(time.Millisecond),
		delays[len(delays)/2].Round(time.Millisecond), delays[len(delays)-1].Round(time.Millisecond))
	if worst := delays[len(delays)-1]; worst > 1500*time.Millisecond {
		t.Errorf("slowest detection %v after the SIGKILL, want <= 1.5s", worst)
	}
	noFalseSuspicions(t, nodes...)
}

var readyAfterRE = regexp.MustCompile(`msg=ready .*after=([0-9.]+[mµn]?s)`)

// TestFirstMemberStartsFast: a node with HA on and nobody else in the
// group is ready at most 0.5 s after its cluster runtime started (its own
// "ready ... after=" log line, which excludes the process's exec and
// flag parsing), and its /readyz answers 200 soon after the exec.
func TestFirstMemberStartsFast(t *testing.T) {
	lab := netlab.New(t, "firstup")
	bin := hanodeBinary(t)
	key := keyFile(t, bin)
	h := lab.AddHost("n1")
	start := time.Now()
	n := relStart(t, bin, h, "n1", key)
	// Polled every 5ms: the resolution of sinceExec.
	err := testutil.WaitEvery(30*time.Second, 5*time.Millisecond, func() error {
		if n.proc.Exited() {
			t.Fatalf("n1 exited: %s", n.proc.Logs())
		}
		code, _, err := n.adminGet("/readyz")
		if err == nil && code == 200 {
			return nil
		}
		return fmt.Errorf("/readyz %d %v", code, err)
	})
	if err != nil {
		t.Fatalf("n1 not ready after 30s (%v): %s", err, n.proc.Logs())
	}
	sinceExec := time.Since(start)
	m := readyAfterRE.FindStringSubmatch(n.proc.Logs())
	if m == nil {
		t.Fatalf("no ready line in the log:\n%s", n.proc.Logs())
	}
	after, err := time.ParseDuration(m[1])
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("first member: ready %v after the runtime started, /readyz 200 %v after the exec", after, sinceExec.Round(time.Millisecond))
	if after > 500*time.Millisecond {
		t.Errorf("first member ready %v after start, want <= 0.5s", after)
	}
}
