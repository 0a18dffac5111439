// Package split is the `split` simulation scenario: a tenant outgrows its
// shards while a compute keeps writing and reading. The real storage
// controller (nodes/storcon, embedded store on a simulated disk) places a
// tenant — unsharded or of two shards — on 2 or 3 real pageservers that
// ingest WAL from 1 or 3 safekeepers; a client splits it (0→2→4, or 2→4;
// from unsharded with a new stripe when the seed says so) at random
// moments; the compute writes page records through a walproposer and reads
// batches of blocks through the rich page client (nodes/compute/pageclient),
// whose shard map the controller's notify-attach updates (the client's
// HookReceiver). Faults: controller and pageserver crashes (torn writes,
// graceful stops) including targeted controller crashes right before and
// right after a pageserver's shard_split call, partitions including
// one-way cuts, slow and broken links, clock offsets. The pageservers
// always have the world's object store: the controller moves the shards of
// a pageserver that stays down to another, which can only carry the data
// through object storage.
//
// Checkers:
//   - Pages (package pagecheck): every page the client answered at LSN L
//     equals the redo of every committed record at or below L for its
//     block — before, during and after the split; a read is never refused
//     except below the GC cutoff (a refusal naming another shard means a
//     request was routed wrongly); a probe sent straight to a shard that
//     does not own a block is refused, never answered.
//   - Splits (ErrSplit): whenever the tenant settles, it is either split
//     (every child present, no parent, nothing marked splitting) or not (the
//     parents, no child rows); the shard count the controller reports never
//     goes down; after healing the pageservers hold attached exactly the
//     shards of the final count.
//   - Generations (ErrGeneration): the generations the controller sends a
//     shard in attached location_configs never go down, and a child starts
//     at least at its parent's.
//   - Client (ErrMap, ErrRetriedInternal): the shard count of the
//     notifications the compute receives never goes down; the client never
//     retries an attempt that failed Internal.
//   - Liveness (ErrNoProgress): after healing, a fresh record commits, the
//     split the client asked for last has committed, every shard ingests up
//     to the final commit, the client's map is the controller's, and every
//     block reads back through the client as the committed WAL says.
//
// Planted bugs (see Scenario().Bugs) prove the checkers can fail.
package split
