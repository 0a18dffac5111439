// Package sim is Strata's deterministic simulator: a single-baton scheduler
// with virtual time, the simulated clock seam, nodes with incarnations that
// crash and restart on their surviving disks, fault plans, a rolling trace
// hash, and the scenario harness that runs one seed.
//
// Layers, bottom up: World (scheduler, virtual time, trace; world.go,
// task.go, clock.go, trace.go); Node and incarnation (node.go,
// incarnation.go) with a simnet endpoint, a simdisk view, the shared object
// store (store.go), a seeded source, a virtual-time logger, a metrics
// registry and failpoints per incarnation; fault plans (Nemesis, HealAll in
// faults.go); scenarios (Scenario, RunSeed, CheckDeterminism, Swarm, Stat,
// Converge in scenario.go) and parallel sweeps (sweep.go). Scenarios
// themselves live in sim/scenarios; docs/simulator.md explains how to write
// one.
//
// # Execution model
//
// Every task is a goroutine, but only the task holding the baton runs. A task
// gives the baton back when it parks in Waiter.Wait (the only way the clock
// package's primitives block) or returns. The scheduler then fires the
// AfterFunc callbacks that are due (in deadline order, equal deadlines in
// registration order), picks the next runnable task with the world's seeded
// RNG, or, when none is runnable, advances virtual time to the next timer.
// Computation takes no virtual time.
//
// # Invariants
//
//   - Exactly one goroutine touches simulator state at a time: either the
//     scheduler goroutine or the task holding the baton. Baton hand-offs go
//     through channels, which give the happens-before edges; no locks.
//   - Everything that can change the outcome is hashed into the trace
//     (scheduling decisions, time advances, random draws, delivered
//     messages, crashes). Same seed, same hash, in any process.
//   - Nothing in this package is a package-level mutable variable, so many
//     worlds run in parallel in one process (strata sim -j).
//   - A crashed incarnation never runs again: its parked tasks are resumed
//     only to unwind (runtime.Goexit inside Wait), its timers never fire, and
//     Go on its clock starts nothing.
//   - A run never hangs: a deadlock (nothing runnable, no timer) is reported
//     with every task and where it blocks; a task that blocks natively or
//     spins past the watchdog's wall-clock bound is reported and abandoned
//     (should it let go later, the world's remaining tasks unwind then).
//   - A live task ends only by returning: a panic or a runtime.Goexit of
//     its own fails the run.
package sim
