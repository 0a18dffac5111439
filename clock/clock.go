package clock

import (
	"context"
	"time"
)

// Clock is the time-and-task seam. It is deliberately tiny: everything else
// in this package (channels, select, mutexes, conditions, wait groups, timers,
// sleeps, contexts with deadlines, task groups) is built once on top of these
// five methods, so that the real implementation (Real) and the simulator's
// single-threaded scheduler share all of the blocking logic and differ only in
// how a task parks and how time passes.
//
// Implementations must be safe for concurrent use in real mode. In the
// simulator exactly one task runs at a time.
type Clock interface {
	// Now returns the node's wall-clock time. In the simulator it may carry a
	// per-node offset and drift, so it must never be used to order events;
	// use Mono for durations and deadlines.
	Now() time.Time

	// Mono returns monotonic time elapsed since an arbitrary, fixed origin.
	// It never goes backwards. Deadlines and timers are measured on it.
	Mono() time.Duration

	// AfterFunc arranges for f to be called once, d from now (on the Mono
	// timeline). f runs outside any task: it must not block, and may only
	// do non-blocking work such as waking a Waiter or a TrySend on a Chan.
	// d <= 0 fires as soon as possible, never synchronously inside AfterFunc.
	AfterFunc(d time.Duration, f func()) Timer

	// Go starts fn as a new task with the given name. The task receives ctx
	// unchanged; when the owning node stops or (in the simulator) crashes,
	// its tasks are unwound. Names appear in deadlock and watchdog reports.
	Go(ctx context.Context, name string, fn func(ctx context.Context))

	// NewWaiter returns a fresh one-shot parking primitive for the calling
	// task. It is the only way blocking primitives in this package block.
	NewWaiter() Waiter
}

// Timer is a handle on a pending AfterFunc.
type Timer interface {
	// Stop cancels the timer. It reports whether the call stopped the timer
	// before it fired.
	Stop() bool
}

// Waiter parks one task until it is woken. Wake may be called before Wait, by
// any task or by a timer callback, any number of times; Wait returns at most
// once per Wake "permit" (like a binary semaphore starting at zero). Spurious
// returns from Wait are allowed, so callers re-check their condition in a loop.
type Waiter interface {
	Wait()
	Wake()
}
