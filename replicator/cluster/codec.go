package cluster

import (
	"github.com/hanode/hanode/internal/wire"
	"github.com/hanode/hanode/replicator"
)

// codec is replicator's wire codec: batches of deltas on the multicast
// transport, session records in anti-entropy responses.
var codec = wire.Of[replicator.Delta, replicator.Session]()
