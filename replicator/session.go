package replicator

// Expired reports whether s has expired at now (Unix nanoseconds): its
// idle timeout has passed since its last access, or its absolute deadline
// has passed. This is the rule of the replica's expiry timers (which add
// PeerExpiryGrace for sessions other nodes own) and of a request that
// finds the session in a store before a timer removed it.
func (s *Session) Expired(now int64) bool {
	e := expiryOf(s, 0)
	return e != 0 && now >= e
}
