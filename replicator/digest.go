package replicator

// Anti-entropy: two replicas compare bucketed digests and exchange the
// records of the buckets that differ (BucketSessions, then MergeSession on
// the other side). The hash is FNV-1a with a final mix, fixed across
// processes and versions of this package, so digests of different nodes
// compare.

const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)

type fnv64 uint64

func newFNV() fnv64 { return fnvOffset }

func (h fnv64) str(s string) fnv64 {
	h = h.u64(uint64(len(s)))
	for i := 0; i < len(s); i++ {
		h ^= fnv64(s[i])
		h *= fnvPrime
	}
	return h
}

func (h fnv64) u64(v uint64) fnv64 {
	for i := 0; i < 8; i++ {
		h ^= fnv64(byte(v))
		h *= fnvPrime
		v >>= 8
	}
	return h
}

func (h fnv64) stamp(s Stamp) fnv64 {
	return h.u64(uint64(s.Epoch)).u64(s.HLC).str(s.Node)
}

// mix64 is the splitmix64 finaliser: it spreads the FNV state before
// per-session hashes are summed.
func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// BucketOf returns the digest bucket of a session ID among buckets
// (buckets ≥ 1).
func BucketOf(id string, buckets int) int {
	return int(mix64(uint64(newFNV().str(id))) % uint64(buckets))
}

// recordHash hashes what two replicas must agree on for one record: the
// ID, the tombstone, the metadata key (epoch, version, owner, created,
// idle timeout, deadline), the principal and its stamp, and every
// attribute's key, stamp, deletion flag and value length. LastAccess is
// left out: it moves on every request and travels in batched touches, so
// it would make digests differ all the time; values are represented by
// their stamps.
func recordHash(s *Session) uint64 {
	h := newFNV().str(s.ID)
	if s.Destroyed {
		h = h.u64(1).u64(uint64(s.Reason)).str(s.RenamedTo)
		return mix64(uint64(h))
	}
	h = h.u64(0).u64(uint64(s.Epoch)).u64(s.Version).str(s.Owner)
	h = h.u64(uint64(s.Created)).u64(uint64(s.IdleTimeout)).u64(uint64(s.Deadline))
	h = h.str(s.Principal).stamp(s.PrincipalAt)
	sum := uint64(0)
	for k, a := range s.Attrs.All() {
		ah := newFNV().str(k).stamp(a.Stamp).u64(uint64(len(a.Value)))
		if a.Deleted {
			ah = ah.u64(1)
		}
		sum += mix64(uint64(ah)) // order-free, as when attributes were a map
	}
	return mix64(uint64(h.u64(sum)))
}

// Digest returns one hash per bucket over every record (live sessions and
// tombstones). Two replicas holding the same records have equal digests;
// a bucket that differs names the records to exchange (BucketSessions).
// buckets below 1 is taken as 1. The cost is one pass over the replica.
func (r *Replica) Digest(buckets int) []uint64 {
	if buckets < 1 {
		buckets = 1
	}
	d := make([]uint64, buckets)
	r.Range(func(s *Session) bool {
		d[BucketOf(s.ID, buckets)] += recordHash(s)
		return true
	})
	return d
}

// BucketSessions returns the records (live and tombstones) of bucket i of
// buckets, to ship to a peer whose digest differs. The caller owns the
// slice; the sessions are shared and immutable.
func (r *Replica) BucketSessions(i, buckets int) []*Session {
	if buckets < 1 {
		buckets = 1
	}
	var out []*Session
	r.Range(func(s *Session) bool {
		if BucketOf(s.ID, buckets) == i {
			out = append(out, s)
		}
		return true
	})
	return out
}
