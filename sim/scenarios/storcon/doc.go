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
// The checkers watch three wires through spies (net.HTTPClient wrappers
// that only record): the controller's calls to pageservers, its compute
// notifications, and the pageservers' re-attach upcalls; and they poll the
// pageservers' locations, the controller's tenant descriptions and its
// validate upcall.
//
//   - Generations (ErrGeneration): every generation a shard is handed (a
//     location_config with a generation above every earlier one, a
//     re-attach answer) is strictly higher than every generation of the
//     shard seen before; one generation never reaches two nodes; across
//     controller restarts the controller never describes or validates a
//     generation below one already handed out.
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
