package hanode

import (
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"slices"
	"sync"
	"syscall"

	"github.com/hanode/hanode/multicast"
)

// Key rotation without downtime: `hanode run` re-reads its key file on
// SIGHUP and swaps the new keys into the running keyring (every holder,
// the multicast transport and the state transfer, sees them at its next
// packet or stream). A file that does not load (parse error, loose
// permissions, missing) is refused with an error in the log, and the old
// keys stay in use. The procedure, one step at a time on every node:
// add the new key (not primary) and SIGHUP; mark it primary and SIGHUP;
// remove the old key and SIGHUP.

// logHangups answers SIGHUP when there is nothing to reload (HA off) with
// a log line instead of the default action, which would end the process:
// operators send SIGHUP out of habit (log rotation, reload scripts).
func logHangups(log *slog.Logger) (stop func()) {
	return onHangup(func() {
		log.Info("SIGHUP: nothing to reload with HA off (the key file is reloaded on SIGHUP when HA is on)")
	})
}

// startKeyReload reloads path into keys on every SIGHUP until stop is
// called.
func startKeyReload(path string, keys *multicast.Keyring, log *slog.Logger) (stop func()) {
	return onHangup(func() { _, _ = reloadKeys(path, keys, log) })
}

// onHangup calls fn on every SIGHUP, one at a time, until stop is called.
func onHangup(fn func()) (stop func()) {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGHUP)
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-done:
				return
			case <-ch:
				fn()
			}
		}
	}()
	return sync.OnceFunc(func() {
		signal.Stop(ch)
		close(done)
	})
}

// reloadKeys loads path and, when it loads, replaces the keys of kr with
// it, logging what changed. It reports whether anything changed.
func reloadKeys(path string, kr *multicast.Keyring, log *slog.Logger) (bool, error) {
	next, err := multicast.LoadKeyFile(path)
	if err != nil {
		log.Error("key reload refused: keeping the current keys", "key_file", path, "err", err, "keys", kr.Describe())
		return false, err
	}
	if next.Equal(kr) {
		log.Info("key reload: key file unchanged", "key_file", path, "keys", kr.Describe())
		return false, nil
	}
	oldIDs, newIDs := kr.IDs(), next.IDs()
	var added, removed, changed []uint8
	for _, id := range newIDs {
		newKey, _ := next.Lookup(id)
		if oldKey, ok := kr.Lookup(id); !ok {
			added = append(added, id)
		} else if oldKey != newKey {
			changed = append(changed, id)
		}
	}
	for _, id := range oldIDs {
		if !slices.Contains(newIDs, id) {
			removed = append(removed, id)
		}
	}
	oldPrimary, _ := kr.Primary()
	newPrimary, _ := next.Primary()
	before := kr.Describe()
	kr.Replace(next)
	log.Info("key reload: new keys in use", "key_file", path,
		"added", fmt.Sprint(added), "removed", fmt.Sprint(removed),
		"primary_before", oldPrimary, "primary", newPrimary,
		"keys_before", before, "keys", kr.Describe())
	if len(changed) > 0 {
		log.Warn("key reload: key ids now name different keys; members still using the old bytes under these ids are rejected (use a new id to rotate)", "ids", fmt.Sprint(changed))
	}
	return true, nil
}
