// Package storcon is the `storcon` simulation scenario: the real storage
// controller (nodes/storcon, on its embedded store on a simulated disk)
// places tenants on 2-5 real pageservers (nodes/pageserver, which
// re-attach to it at every start) and tells a compute hook receiver
// (computehook.Receiver) where they are. A client drives the controller's
// API: tenants created (unsharded, 2 or 4 shards, Attached{0} or
// Attached{1}) and deleted, timelines created and deleted, placement and
// scheduling policies changed, shards migrated, nodes drained, filled and
// paused. The seed draws the shape, the controller's intervals and the
// faults: controller and pageserver crashes (torn writes, graceful stops),
// pageservers that come back with an empty disk, partitions including
// one-way cuts, slow and broken links, clock offsets, and targeted
// controller crashes right after a location_config that handed out a new
// generation (with that pageserver cut off from the controller for a
// while).
//
// Half the seeds (shared_db) keep the controller's state in a database
// that several controller processes share, as PostgreSQL is shared in
// production: persist.Remote to a persist.Server on a "db" node (a
// crash-safe DiskStore on that node's disk), which the nemesis crashes
// and cuts off like any other node, and which holds the answer of 1-8% of
// its committed writes past the caller's timeout (db_lost_answers): a
// store write whose answer is lost may have taken effect, and the
// controller must resolve it (planted bug storcon-ignore-lost-writes
// skips that). There one to three
// leadership hand-overs run (handover.go): the other controller slot
// starts a controller whose real start-up asks the running one to step
// down. In a clean hand-over the old one steps down (503 to everything
// from then on) and the pageservers, whose control-plane address still
// leads to it, move over at random moments; if it cannot be reached, the
// orchestrator stops it. In a fenced one a partition leaves the old
// controller with a minority of the pageservers, away from the new one,
// the database and the compute hook; the new one gives up on it, moves
// the minority's attached shards with new generations, and the old one,
// its memory behind the database, keeps answering the minority and the
// prober until it is stopped.
//
// The checkers watch three wires through spies (net.HTTPClient wrappers
// that only record): the controllers' calls to pageservers, their compute
// notifications, and the pageservers' re-attach upcalls; they poll the
// pageservers' locations, the leader's tenant descriptions and the
// validate upcall of every controller a pageserver may reach; and the
// shared database's own store reports every generation it commits.
//
//   - Generations (ErrGeneration): every generation a shard is handed (a
//     location_config with a generation above every earlier one, a
//     re-attach answer) is strictly higher than every generation of the
//     shard seen before; one generation never reaches two nodes; across
//     controller restarts the controller never describes or validates a
//     generation below one already handed out, and no controller validates
//     a generation below the one the shared database held when the call
//     was made.
//   - Split brain (ErrSplitBrain): the generations pageservers hold in an
//     attached mode are validated in one call; two nodes holding a shard
//     in AttachedSingle are never both valid.
//   - Compute (ErrNotify): every notification names each shard of the
//     tenant exactly once (with the stripe size when sharded), and only
//     nodes told to hold that shard attached.
//   - Moves (ErrDetachedFirst): a location_config that takes a shard's
//     only attached location away from a live node (it is answering) is a
//     violation while the tenant must stay attached (it exists, its policy
//     is Attached for sure, no delete or policy change is under way).
//   - Tenants (ErrLostTenant): an acknowledged create is never lost, an
//     acknowledged delete never undone. Calls whose outcome is unknown are
//     resolved from the controller's tenant list, never skipped.
//   - Liveness (ErrNoProgress): after healing, nodes and tenants are put
//     back to plain policies and, within a budget, for every shard
//     observed equals intent and the pageservers hold exactly that, its
//     generation validates, nothing is reconciling, dirty or pending, the
//     consistency check passes, and the compute hook's last notification
//     for every tenant names the attached nodes.
//
// Planted bugs (see Scenario().Bugs) prove the checkers can fail.
package storcon
