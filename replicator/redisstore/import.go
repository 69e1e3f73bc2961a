package redisstore

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/hanode/hanode/replicator"
)

var scImport = newScript(importScript)

// Import writes a session taken from elsewhere (a replica snapshot, when
// a deployment moves to Redis) unless Redis already holds that ID (a
// session or a tombstone: what is in Redis wins). Destroyed and expired
// sessions are skipped. It reports whether the session was written.
func (s *Store) Import(ctx context.Context, ss *replicator.Session) (bool, error) {
	now := time.Now().UnixNano()
	if ss == nil || ss.Destroyed || s.pastTTL(ss, now) {
		return false, nil
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	version := max(ss.Version, 1)
	args := []string{strconv.FormatInt(s.ttl(max(ss.LastAccess, now), ss.IdleTimeout, ss.Deadline), 10),
		"o", ss.Owner, "e", strconv.FormatUint(uint64(ss.Epoch), 10), "v", strconv.FormatUint(version, 10),
		"c", strconv.FormatInt(ss.Created, 10), "l", strconv.FormatInt(ss.LastAccess, 10),
		"i", strconv.FormatInt(ss.IdleTimeout, 10), "d", strconv.FormatInt(ss.Deadline, 10)}
	if ss.Principal != "" {
		args = append(args, "p", ss.Principal)
	}
	for k, a := range ss.Attrs.All() {
		if !a.Deleted {
			args = append(args, "a:"+k, string(a.Value))
		}
	}
	n, err := s.eval(ctx, scImport, []string{s.key(ss.ID)}, args).AsInt64()
	if err != nil {
		return false, s.fail("import", err)
	}
	if n == 0 {
		return false, nil
	}
	s.forget(ss.ID)
	if ss.Principal != "" {
		if err := s.moveIndex(ctx, ss.ID, ss.ID, "", ss.Principal, ss.Deadline); err != nil {
			return true, fmt.Errorf("import %s: principal index: %w", replicator.ShortHash(ss.ID), err)
		}
	}
	return true, nil
}
