// Package layers holds tests of the code's shape: TestImportsPointDown
// keeps hanode's imports pointing down, and TestExportedFieldsDocumented
// keeps every exported struct field of a library package commented.
//
// The layers, from the bottom (a package may import only packages of a
// lower layer; tests are free, since an upward import in a test builds
// no cycle into the product):
//
//	0  helpers that import no hanode package: internal/testutil, scripts;
//	   internal machinery of the layers above: internal/packet
//	   (multicast's packet header), internal/hlc (the hybrid logical
//	   clock), internal/subs (event subscriber lists), internal/wire
//	   (the bridge to replicator's wire codec)
//	1  the transports and the membership state machine: multicast,
//	   membership; the test labs that poll with internal/testutil:
//	   scripts/netlab (network namespaces), replicator/redisstore/redistest
//	   (redis-server and Redis Cluster)
//	2  the replica and its codecs: replicator; internal/buildinfo
//	3  runtimes and stores on the replica: replicator/* (cluster,
//	   redisstore, storetest, resp, ...), httpsession/sessiontest
//	4  the session manager: httpsession
//	5  what embeds or adapts it: httpsession/* (hanode, scsstore, routertest)
//	6  the benchmark harness: scripts/bench
//	7  programs: cmd/*, scripts/bench/cmd/*
//
// A new package must be placed in this table (layerOf in layers_test.go)
// before TestImportsPointDown passes.
package layers
