// Package clock is Strata's time-and-task seam.
//
// Services in engine/ and nodes/ never read the real clock, start goroutines,
// or use native channels and select: they go through a Clock. Two
// implementations exist: Real (this package, backed by the runtime and the OS
// clock) and the simulator's (package sim), which runs every task
// single-threaded under a seeded scheduler with virtual time.
//
// Everything that can block is written once here on top of the five methods
// of Clock, so the simulator sees every wait:
//
//   - Chan[T] (NewChan): bounded FIFO channel, always buffered; Send, Recv,
//     TrySend, TryRecv, Close, Len, Cap.
//   - Select / TrySelect over Cases: Chan.RecvCase, Chan.RecvCaseOK,
//     Chan.SendCase, DoneCase(ctx); a timer is a RecvCase on its C.
//   - Contexts: WithCancel, WithTimeout, WithDeadline; OnDone.
//   - Time: Sleep, NewTimer (ChanTimer), After, NewTicker.
//   - Locks and waits: Mutex, Cond, WaitGroup, Semaphore.
//   - Group: named tasks of one owner, cancelled and joined together.
//
// # Invariants
//
//   - A primitive blocks only through Clock.NewWaiter().Wait(), in a loop
//     that re-checks its condition (Wait may return spuriously).
//   - The blocking pattern is always: register the Waiter with every source
//     that could make the caller ready, check readiness, Wait, unregister.
//     Registering before checking means no wake-up is lost; a commit (taking
//     an item, granting a lock) is atomic with its readiness check under the
//     source's own sync.Mutex.
//   - Internal sync.Mutex sections are short, never span a Wait, and never
//     call user code; Wake is called under them, so Waiter.Wake must not
//     block or call back into this package.
//   - No randomness and no map iteration: Select picks the FIRST ready case
//     in argument order; waiters are woken, and callbacks run, in the order
//     they registered; Mutex, Cond and Semaphore are FIFO. Given the same
//     schedule, the simulator sees the same sequence of wake-ups.
//   - Cancellation of a context made here runs its callbacks synchronously
//     inside cancel (a CancelFunc, or the deadline timer's callback), so no
//     hidden goroutine decides when a waiter runs. IN THE SIMULATOR ONLY
//     CONTEXTS FROM THIS PACKAGE may be waited on (plus Background/TODO and
//     wrappers such as context.WithValue); a standard-library cancellable
//     context falls back to context.AfterFunc, whose goroutine the
//     scheduler cannot see. In real mode any context works.
//   - A task unwound inside Wait (the simulator ends a crashed node's tasks
//     with runtime.Goexit there) leaves every primitive consistent: its
//     registrations are removed, and a lock, units or a signal granted to it
//     in the meantime pass to the next waiter.
//   - AfterFunc callbacks of both implementations run one at a time, in
//     deadline order, ties in registration order, never synchronously inside
//     AfterFunc; they may call AfterFunc, Wake, TrySend, CancelFuncs and
//     WaitGroup.Done, but must not block.
//
// Sending on, or closing, a closed Chan panics, as in Go.
//
// The conformance suite in clock/clocktest runs unchanged against any Clock;
// this package's tests run it against Real and against a minimal
// single-threaded virtual clock that checks same-seed determinism.
package clock
