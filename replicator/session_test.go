package replicator

import "testing"

func TestSessionExpired(t *testing.T) {
	const t0 = int64(1000 * sec)
	for _, c := range []struct {
		s    Session
		now  int64
		want bool
	}{
		{Session{LastAccess: t0}, t0 + 1e6*sec, false},                       // neither timeout: never
		{Session{LastAccess: t0, IdleTimeout: 30 * sec}, t0 + 29*sec, false}, // idle, not yet
		{Session{LastAccess: t0, IdleTimeout: 30 * sec}, t0 + 30*sec, true},  // idle, at the limit
		{Session{LastAccess: t0, Deadline: t0 + 10*sec}, t0 + 9*sec, false},  // deadline, not yet
		{Session{LastAccess: t0, Deadline: t0 + 10*sec}, t0 + 10*sec, true},  // deadline reached
		{Session{LastAccess: t0, IdleTimeout: 30 * sec, Deadline: t0 + 10*sec}, t0 + 10*sec, true},
		{Session{LastAccess: t0, IdleTimeout: 5 * sec, Deadline: t0 + 10*sec}, t0 + 5*sec, true},
	} {
		if got := c.s.Expired(c.now); got != c.want {
			t.Errorf("%+v.Expired(t0%+d s) = %v", c.s, (c.now-t0)/sec, got)
		}
	}
}
