package sim

import (
	"container/heap"
	"context"
	"math"
	"time"

	"github.com/stratadb/strata/clock"
)

// wallEpoch is virtual time zero on every node's wall clock (before offset
// and drift). It is fixed so logs and wall timestamps are reproducible.
func wallEpoch() time.Time { return time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC) }

// simClock is the clock seam of one node incarnation (or of the world).
type simClock struct {
	inc *incarnation
}

var _ clock.Clock = (*simClock)(nil)

// Now is the node's wall clock: virtual time plus the node's offset and drift.
func (c *simClock) Now() time.Time {
	w := c.inc.w
	d := w.now
	if n := c.inc.node; n != nil {
		d += n.offset + time.Duration(float64(w.now)*n.drift)
	}
	return wallEpoch().Add(d)
}

// Mono is virtual time; it is shared by all nodes and never goes backwards.
func (c *simClock) Mono() time.Duration { return c.inc.w.now }

// AfterFunc registers f to run on the scheduler at now+d. Timers of an
// incarnation that has ended never fire.
func (c *simClock) AfterFunc(d time.Duration, f func()) clock.Timer {
	w := c.inc.w
	if d < 0 {
		d = 0
	}
	at := w.now + d
	if at < w.now {
		at = math.MaxInt64 // saturate: "never" must not wrap into the past
	}
	w.timerSeq++
	tm := &timer{w: w, at: at, seq: w.timerSeq, f: f, inc: c.inc}
	if c.inc.dead {
		tm.fired = true
		return tm
	}
	heap.Push(&w.timers, tm)
	return tm
}

// Go starts a task owned by this incarnation; on a dead incarnation it does
// nothing (the process that would run it is gone).
func (c *simClock) Go(ctx context.Context, name string, fn func(ctx context.Context)) {
	if c.inc.dead {
		return
	}
	c.inc.w.spawn(c.inc, name, ctx, fn)
}

// NewWaiter returns a parking primitive for the calling task.
func (c *simClock) NewWaiter() clock.Waiter { return &waiter{w: c.inc.w} }

// waiter is a binary semaphore starting at zero that parks the calling task.
type waiter struct {
	w      *World
	permit bool
	parked *task
}

func (wt *waiter) Wait() {
	if wt.permit {
		wt.permit = false
		return
	}
	t := wt.w.current
	if t == nil {
		panic(ErrNotInTask)
	}
	wt.parked = t
	t.waiter = wt
	t.park()
}

func (wt *waiter) Wake() {
	t := wt.parked
	if t == nil {
		wt.permit = true
		return
	}
	wt.parked = nil
	t.waiter = nil
	if t.killed || t.state != taskParked {
		return
	}
	t.state = taskRunnable
	wt.w.runnable = append(wt.w.runnable, t)
}

// timer is a pending AfterFunc.
type timer struct {
	w     *World
	at    time.Duration
	seq   uint64
	f     func()
	inc   *incarnation
	index int
	fired bool
}

func (tm *timer) Stop() bool {
	if tm.fired {
		return false
	}
	tm.fired = true
	heap.Remove(&tm.w.timers, tm.index)
	return true
}

// timerHeap orders timers by deadline, then registration order.
type timerHeap []*timer

func (h timerHeap) Len() int { return len(h) }
func (h timerHeap) Less(i, j int) bool {
	if h[i].at != h[j].at {
		return h[i].at < h[j].at
	}
	return h[i].seq < h[j].seq
}
func (h timerHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index = i
	h[j].index = j
}
func (h *timerHeap) Push(x any) {
	tm := x.(*timer)
	tm.index = len(*h)
	*h = append(*h, tm)
}
func (h *timerHeap) Pop() any {
	old := *h
	tm := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	tm.index = -1
	return tm
}

func (h *timerHeap) pop() *timer { return heap.Pop(h).(*timer) }
