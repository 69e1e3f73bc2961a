package hanode

import (
	"io"
	"sync/atomic"
	"time"

	"github.com/hanode/hanode/replicator"
	"github.com/hanode/hanode/replicator/cluster"
)

// memberJSON is the shape of one entry of GET /members.
type memberJSON = cluster.MemberInfo

// backend is the session store behind the daemon: the cluster runtime
// when HA is on, a local-only replica when it is off. *cluster.Node
// implements it as is.
type backend interface {
	replicator.Store
	Ready() bool
	Members() []cluster.MemberInfo
	Status() cluster.Status
	Drain()
	WriteMetrics(w io.Writer)
	Close() error
	Sessions() []*replicator.Session
}

var _ backend = (*cluster.Node)(nil)

// localBackend adapts the local-only store (HA off) to backend: it is
// always ready unless draining and is its own only member. The local
// store expires sessions by itself (a timer, no goroutine while idle).
type localBackend struct {
	*replicator.Local
	started  time.Time
	draining atomic.Bool
}

func newLocalBackend(node string) *localBackend {
	return &localBackend{Local: replicator.NewLocal(node, replicator.ReplicaConfig{}), started: time.Now()}
}

func (l *localBackend) Ready() bool { return !l.draining.Load() }
func (l *localBackend) Drain()      { l.draining.Store(true) }

func (l *localBackend) Members() []cluster.MemberInfo {
	return []cluster.MemberInfo{{
		ID: l.Node(), Name: l.Node(), Addr: "local", State: "alive",
		Self: true, Ready: l.Ready(), Started: l.started, LastSeen: time.Now(),
	}}
}

func (l *localBackend) Status() cluster.Status {
	phase := "ready"
	if l.draining.Load() {
		phase = "draining"
	}
	return cluster.Status{
		Node: l.Node(), ID: l.Node(), Ready: l.Ready(), Draining: l.draining.Load(),
		Sessions: l.Len(), Members: 1, ViewID: "local", Phase: phase,
	}
}

// WriteMetrics writes nothing: the daemon's own metrics cover HA off.
func (l *localBackend) WriteMetrics(io.Writer) {}

// Close stops expiry. Sessions of a local store live in memory only.
func (l *localBackend) Close() error { return l.Local.Close() }

// Sessions lists the live sessions.
func (l *localBackend) Sessions() []*replicator.Session {
	var out []*replicator.Session
	l.Replica().Range(func(s *replicator.Session) bool {
		if !s.Destroyed {
			out = append(out, s)
		}
		return true
	})
	return out
}
