// Package cluster is the `cluster` simulation scenario: the whole storage
// path under the storage controller with object storage as the source of
// truth. A compute writes page records through a walproposer to 1 or 3
// safekeepers, which offload sealed WAL segments to the world's object
// store and remove WAL below what every pageserver made remote (short
// removal interval and feedback expiry, so removal happens within the
// run); the real controller (nodes/storcon) places a tenant (unsharded or
// of two shards) on 2 or 3 pageservers that ingest the WAL, upload layers
// and indexes under their generations, validate them and delete through
// their deletion queues; the compute reads batches of blocks through the
// rich page client, whose shard map follows notify-attach.
//
// Faults: object store latency, throttling, transient errors before and
// after the operation took effect, and (some seeds) reads that miss an
// existing object; controller and pageserver crashes (torn writes,
// graceful stops) and pageservers that lose their disk and re-attach from
// object storage; an operator migrating shards and running rolling
// restarts (drain, restart, fill) through the controller's API;
// partitions including one-way cuts, broken and slow links, clock
// offsets; and a location_config delivered a second time, seconds late
// (replay), which makes a pageserver attach with a generation older than
// the newest.
//
// Checkers (spies on each pageserver's object store and control-plane
// client and on the controller's pageserver client, observer.go):
//   - Pages (package pagecheck): every page the client answered at LSN L
//     equals the redo of every committed record at or below L for its
//     block, across migrations, lost disks and re-attach from object
//     storage; a probe sent to a shard that does not own a block is
//     refused.
//   - ErrDeletedLive: no object the newest index of the shard's current
//     generation names (the one an attachment would load) is deleted; and
//     after healing every object that index names exists (ErrMissingObject).
//   - ErrUnvalidatedDelete: a pageserver deletes an object only after it
//     put, under some generation, an index that no longer names it, then
//     asked the controller about that generation and was told it is valid:
//     a stale generation never deletes.
//   - ErrIndexBeforeLayers: an index is put only after every layer of its
//     own generation it names was put by the same pageserver.
//   - ErrIndexAboveGen: a pageserver never reads an index of a generation
//     above every one it was handed for the shard.
//   - ErrStaleUpload: a location that acknowledged AttachedStale (and was
//     sent nothing since) puts nothing.
//   - No acknowledged WAL lost (pagecheck.ErrLostCommit): the committed
//     WAL, read back from the safekeepers and, below what they removed,
//     from the offloaded segments, holds every acknowledged commit at a
//     record's end.
//   - Liveness (ErrNoProgress): after healing a fresh record commits, the
//     tenant settles, a pageserver that then loses its disk re-attaches
//     from object storage and reaches a later commit, every shard ingests
//     the final commit, every block reads back, and every timeline's
//     remote_consistent_lsn reaches its disk_consistent_lsn.
//
// Planted bugs (see Scenario().Bugs) prove the checkers can fail.
package cluster
