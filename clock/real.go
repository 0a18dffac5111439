package clock

import (
	"container/heap"
	"context"
	"math"
	"runtime/pprof"
	"sync"
	"time"
)

// Real is the production Clock: the OS wall clock, the runtime's monotonic
// clock, goroutines for tasks and a one-slot channel for each Waiter.
//
// Timers are not handed to time.AfterFunc one by one. A single dispatcher
// goroutine per Real keeps them in a heap ordered by (deadline, registration
// order) and runs due callbacks one at a time, in that order. This gives real
// mode the same contract the simulator has: callbacks never run concurrently
// with each other, an earlier deadline fires first, and equal deadlines fire
// in registration order. The dispatcher exits when no timer is pending, so an
// idle Real holds no goroutine.
//
// Use NewReal; the zero value is not usable.
type Real struct {
	origin time.Time // carries the runtime's monotonic reading

	mu      sync.Mutex
	timers  timerHeap
	seq     uint64
	running bool          // a dispatcher goroutine exists
	kick    chan struct{} // wakes the dispatcher when the earliest deadline changes
}

// NewReal returns a real Clock whose Mono origin is the moment of the call.
func NewReal() *Real {
	return &Real{origin: time.Now(), kick: make(chan struct{}, 1)}
}

var _ Clock = (*Real)(nil)

// Now returns time.Now().
func (r *Real) Now() time.Time { return time.Now() }

// Mono returns the monotonic time elapsed since NewReal.
func (r *Real) Mono() time.Duration { return time.Since(r.origin) }

// AfterFunc runs f on the dispatcher goroutine once Mono has reached
// Mono()+d. f must not block: it delays every later timer of this Real.
func (r *Real) AfterFunc(d time.Duration, f func()) Timer {
	if f == nil {
		panic("clock: AfterFunc with nil func")
	}
	t := &realTimer{r: r, f: f}
	r.mu.Lock()
	now := r.Mono()
	t.when = now + max(d, 0)
	if t.when < now { // saturate: a "never" timeout must not wrap into the past
		t.when = math.MaxInt64
	}
	r.seq++
	t.seq = r.seq
	heap.Push(&r.timers, t)
	if !r.running {
		r.running = true
		go r.dispatch()
	} else if r.timers[0] == t {
		select {
		case r.kick <- struct{}{}:
		default:
		}
	}
	r.mu.Unlock()
	return t
}

// dispatch runs due timers in order until none is pending.
func (r *Real) dispatch() {
	sleep := time.NewTimer(time.Hour)
	defer sleep.Stop()
	for {
		r.mu.Lock()
		if len(r.timers) == 0 {
			r.running = false
			r.mu.Unlock()
			return
		}
		head := r.timers[0]
		now := r.Mono()
		if head.when <= now {
			heap.Pop(&r.timers)
			r.mu.Unlock()
			head.f()
			continue
		}
		wait := head.when - now
		r.mu.Unlock()
		sleep.Reset(wait)
		select {
		case <-sleep.C:
		case <-r.kick:
		}
	}
}

// Go runs fn on a new goroutine labelled (for pprof) with the task name. The
// labels are set on the goroutine, not on ctx, so fn receives ctx unchanged.
func (r *Real) Go(ctx context.Context, name string, fn func(ctx context.Context)) {
	go func() {
		pprof.SetGoroutineLabels(pprof.WithLabels(ctx, pprof.Labels("task", name)))
		fn(ctx)
	}()
}

// NewWaiter returns a Waiter backed by a channel with one slot: the slot is
// the single permit, so extra Wakes before a Wait are absorbed.
func (r *Real) NewWaiter() Waiter { return realWaiter{ch: make(chan struct{}, 1)} }

type realWaiter struct{ ch chan struct{} }

func (w realWaiter) Wait() { <-w.ch }

func (w realWaiter) Wake() {
	select {
	case w.ch <- struct{}{}:
	default:
	}
}

type realTimer struct {
	r     *Real
	when  time.Duration
	seq   uint64
	f     func()
	index int // position in r.timers; -1 once fired or stopped
}

// Stop removes the timer if it has not been taken by the dispatcher yet.
func (t *realTimer) Stop() bool {
	t.r.mu.Lock()
	defer t.r.mu.Unlock()
	if t.index < 0 {
		return false
	}
	heap.Remove(&t.r.timers, t.index)
	return true
}

// timerHeap orders timers by deadline, then by registration sequence.
type timerHeap []*realTimer

func (h timerHeap) Len() int { return len(h) }
func (h timerHeap) Less(i, j int) bool {
	if h[i].when != h[j].when {
		return h[i].when < h[j].when
	}
	return h[i].seq < h[j].seq
}
func (h timerHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index = i
	h[j].index = j
}
func (h *timerHeap) Push(x any) {
	t := x.(*realTimer)
	t.index = len(*h)
	*h = append(*h, t)
}
func (h *timerHeap) Pop() any {
	old := *h
	t := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	t.index = -1
	return t
}
