// Package clock is Strata's time-and-task seam.
//
// Services in engine/ and nodes/ never read the real clock, start goroutines,
// or use native channels and select: they go through a Clock. Two
// implementations exist: Real (this package, backed by the runtime and the OS
// clock) and the simulator's (package sim), which runs every task
// single-threaded under a seeded scheduler with virtual time.
//
// Everything that can block — Chan, Select, Mutex, Cond, WaitGroup, Sleep,
// timers, WithTimeout/WithDeadline/WithCancel contexts, task groups — is
// written once here on top of the five methods of Clock, so the simulator
// sees every wait. Invariants:
//
//   - A primitive blocks only through Clock.NewWaiter().Wait().
//   - Internal sync.Mutex sections are short and never span a Wait.
//   - Wake-ups triggered by context cancellation are delivered synchronously
//     for contexts made by this package (they implement AfterFunc), so no
//     hidden goroutine decides when a waiter runs.
//
// The conformance suite in clock/clocktest runs unchanged against any Clock.
package clock
