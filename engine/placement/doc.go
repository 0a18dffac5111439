// Package placement holds the storage controller's pure placement core: the
// Scheduler, which chooses pageservers for tenant shard locations, and
// ShardState, the per-shard record of policy, intent, observed state,
// generation and sequence with the dirty test a reconciler acts on
// (docs/storage-controller.md, Placement). Nothing here does I/O, blocks or
// reads a clock; every scan runs in node-id order, so the same inputs give
// the same choices. The shell in nodes/storcon owns one Scheduler and all
// ShardStates, applies heartbeats and reconcile results to them, and
// converts LocationConf to and from the pageserver API's location config.
//
// Scoring (lower wins, compared in order; only nodes that may schedule —
// Active and policy Active or Filling — and are not excluded are
// candidates; nodes whose utilization score is at least OverloadedScore are
// chosen only if no other candidate remains; no candidate at all is
// ErrNoSchedulableNode, which the API maps to 409):
//
//   - attached: AZ match with the shard's preferred AZ (yes, unknown, no);
//     this tenant's locations already on the node; utilization; attached
//     locations on the node; node id.
//   - secondary: AZ other than the one to avoid (the preferred AZ, else the
//     attached node's: other, unknown, same); this tenant's locations on
//     the node; utilization; all locations on the node; node id. The
//     shard's own nodes, the attached one included, are excluded. (The
//     all-locations count is Strata's: with equal utilization it spreads
//     secondaries instead of stacking them on the lowest id.)
//
// Utilization is the node's reported score, raised as in Neon to
// shards·10⁶/max_shard_count for the shards intent placed there since the
// report (never lowered until the next report), so placements between two
// heartbeats spread out.
//
// Counts. The scheduler keeps per node the intents naming it (Shards) and
// those attached to it (Attached), and per (tenant, node) the tenant's
// locations there. They change only inside ShardState's intent methods
// (SetAttached, MoveAttached, DemoteAttached, AddSecondary,
// RemoveSecondary, ClearIntent, Schedule, NodeOffline,
// IntentFromObserved), which take the Scheduler as an argument: a
// ShardState holds no reference to anything global, and the caller passes
// the one Scheduler all its shards were built on. Nothing rebuilds the
// counts; Scheduler.Check recounts every intent and names each difference
// (the controller's consistency check).
//
// Invariants (asserted with engine/invariants at the exit of every intent
// method and count edit; Check verifies the first three from scratch):
//   - every count equals a recount of all intents, and none is negative;
//     a node's attached count never exceeds its shard count;
//   - intent names only nodes the scheduler knows (RemoveNode refuses a
//     node any intent names), the attached node is never also a secondary,
//     and no secondary is named twice;
//   - the sequence number only grows, and grows with every intent change;
//   - a shard's generation never decreases.
//
// Observed state is per node: absent (the node holds nothing of the
// shard), known-unknown (it may hold something: a request failed part-way,
// or the node went offline) or the conf last applied. Dirty compares it
// with Wanted on available nodes only.
//
// What this package does not do: persistence, reconciling, generations'
// issue (the shell persists a generation, then calls SetGeneration), and
// optimisation (moving shards that are placed acceptably).
package placement
