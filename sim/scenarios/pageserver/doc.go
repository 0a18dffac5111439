// Package pageserver is the `pageserver` simulation scenario: a compute
// (walproposer plus a page reader over the page service) writes WAL
// through 1, 3 or 5 safekeepers; 1 or 2 pageservers ingest it through
// their WAL receivers (picking safekeepers from the broker) and serve pages
// of an unsharded or a two-shard tenant. The seed draws the shape, the
// page engine's checkpoint, compaction and GC settings, and the faults:
// crashes (torn writes) and graceful stops of every kind of node,
// partitions including one-way cuts, slow links, broken connections, disk
// errors on the pageservers, clock offsets. In half the seeds (swarm
// parameter remote_storage) the pageservers have the world's object store:
// they upload their layers and indexes and, after a crash, reconcile their
// disk with object storage (never with the planted
// ps-dcl-before-layer-sync, whose lost layer object storage would heal),
// attaching at once and downloading layers on demand; a third of those
// seeds (swarm parameter max_local_layer_bytes) give them a disk budget of
// a few layers, so layers are evicted and downloaded again under the
// faults.
//
// Checkers (docs/architecture.md, Invariants, Pages):
//   - every page the reader was answered with at LSN L equals the redo of
//     every committed record at or below L for its block; a block the
//     committed WAL never wrote by L must read as not found. Which records
//     are committed is decided by the committed WAL read back from the
//     safekeepers at the end (appends whose acknowledgement was lost are
//     resolved, never skipped);
//   - a read below the GC cutoff is refused with an error naming the
//     cutoff, never answered with another page;
//   - a block sent to a shard that does not own it is refused
//     (INVALID_REQUEST naming the owner), never answered;
//   - liveness: after healing, a fresh record commits, every shard's
//     last_record_lsn reaches the final commit LSN, and every block reads
//     back, from its owner, as the committed WAL says.
//
// Planted bugs (see Scenario().Bugs) prove the checkers can fail.
package pageserver
