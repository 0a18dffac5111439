// Package storcon is the storage controller service: it decides which
// pageserver holds each tenant shard (the pure core in engine/placement),
// issues the generations that keep two pageservers from both owning a
// shard's remote state, reconciles pageservers to its intent, tells compute
// where shards are attached (nodes/storcon/computehook) and serves the
// controller's API (nodes/storcon/storconapi). docs/storage-controller.md
// describes the workflows; the files split them: service.go (the owner and
// its lifecycle), config.go, api.go (routes, scopes, error mapping),
// nodes.go and heartbeat.go, tenants.go, reconcile.go, notify.go,
// upcalls.go (re-attach, validate), migrate.go, drainfill.go, split.go
// (shard split and its rollback), startup.go, leadership.go (stepping
// down for a successor that shares the store, and asking a predecessor
// to), consistency.go, metrics.go and pageserver.go (the pageserver
// client and location conf conversions).
//
// # Ownership
//
// One owner holds all shared state: Service.state, guarded by one
// clock.Mutex (Service.mu), holds the Scheduler, every shard's ShardState
// (map by TenantShardID, always iterated in sorted order), the nodes
// (address, AZ, policy, availability, last heartbeat) and the per-tenant
// entries with their operation lock (create, delete, policy,
// location_config, timelines, migrate, shard split). The lock is
// never held across I/O, network or store: a reconcile copies what it
// needs (intent, observed, generation, confs) under the lock, makes its
// calls, and applies each result under the lock as it arrives. Callers
// that need a change carried out wait for the shard's sequence: a finished
// reconcile records the sequence it started from (doneSeq) and broadcasts
// Service.changed; a caller that asks for a reconcile bumps the sequence
// first (requestReconcileLocked), so an earlier reconcile's outcome never
// answers it. Node registry changes are serialized by Service.nodeMu,
// which is taken before mu, store write included, so memory and the store
// change in the same order.
//
// # Invariants
//
//   - A generation is persisted (Store.IncrementGeneration, one atomic
//     statement) before any location config that carries it is sent; a
//     config-only change keeps the generation it has. The only exception
//     is the planted bug Bugs.GenerationPersistAfterAttach.
//   - Generations only increase: in the store (the store refuses lower),
//     in memory (placement.ShardState.SetGeneration asserts it), and a
//     generation the store issued while another was being issued (a
//     re-attach) makes the slower reconcile start over instead of
//     recording the lower one.
//   - Re-attach increments every generation issued to the node in one store
//     step before answering; validate answers valid only when memory and
//     the store both hold the generation (another controller process
//     sharing the store may have moved it on).
//   - Once stepped down, the controller sends nothing to the store,
//     pageservers or the compute hook, and it answers the step-down only
//     after the calls it had under way have ended.
//   - One reconcile (or live migration) per shard at a time; at most
//     MaxConcurrentReconciles plus MaxPriorityReconciles reconciles run,
//     and at most MaxDelayedReconciles wait. Live migrations take no
//     reconcile slot: they are bounded on their own — one per migrate
//     call (the tenant's operation lock) and DrainFillConcurrency per
//     drain, fill or node delete.
//   - A reconcile never detaches a shard's old locations before its
//     attached location is in place.
//   - Compute is told a tenant's map only when every shard of its current
//     count is attached with its current generation, and notifications of
//     one tenant are serialized (never an older map after a newer one).
//   - A shard split either commits — the parents' rows deleted and the
//     marks cleared in one store transaction, only after every parent's
//     pageserver split answered its children (the planted bug
//     Bugs.CommitSplitEarly commits before) — or rolls back: children's
//     rows deleted, parents attached again. Children start in their
//     parent's generation (copied, never lower); a parent re-attached
//     after a rollback gets a newer one. Rows still marked splitting never
//     outlive a start-up: it rolls them back before serving.
//
// # What is persisted and what is rebuilt
//
// The store (nodes/storcon/persist; its package doc has the full list)
// keeps generations and the node each was issued to, placement and shard
// scheduling policies, tenant configs, preferred AZs, the node registry
// with each node's scheduling policy, and the splitting marks. Everything
// else is rebuilt by start-up (startup.go): observed state and secondary
// locations from every pageserver's location list, node availability from
// heartbeats, intent from observed state and then Schedule, the scheduler's
// counts from intent, and compute notifications sent again.
//
// # Determinism
//
// Like every package under nodes/, this one reaches time, tasks, network
// and disk only through node.Env (docs/architecture.md), so the simulator
// runs the real controller with real pageservers; every task is started
// through the service's clock.Group and stopped by Shutdown.
package storcon
