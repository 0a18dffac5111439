package clock

import (
	"context"
	"sync"
)

// Mutex is a FIFO-fair mutual-exclusion lock whose waits go through a Clock,
// so a task may hold it across blocking calls (disk, network, Sleep) and the
// simulator still sees every waiter. Unlock hands the lock directly to the
// longest waiter, so there is no barging and no starvation.
//
// Unlike sync.Mutex it must be created with NewMutex. It is not tied to a
// task: any task may Unlock.
type Mutex struct {
	clk    Clock
	mu     sync.Mutex
	locked bool
	queue  dlist[*grant]
}

// grant is one blocked acquirer: Unlock/Release set granted and wake w.
type grant struct {
	w       Waiter
	n       int64 // units wanted (Semaphore only)
	granted bool
}

// NewMutex returns an unlocked Mutex.
func NewMutex(c Clock) *Mutex {
	if c == nil {
		panic("clock: NewMutex with nil Clock")
	}
	return &Mutex{clk: c}
}

// Lock acquires m, waiting behind earlier callers. It returns ctx's error if
// ctx is done before the lock is granted, and then does not hold m. If the
// lock is free, Lock succeeds even when ctx is done.
func (m *Mutex) Lock(ctx context.Context) error {
	m.mu.Lock()
	if !m.locked && m.queue.len() == 0 {
		m.locked = true
		m.mu.Unlock()
		return nil
	}
	if err := ctx.Err(); err != nil {
		m.mu.Unlock()
		return err
	}
	g := &grant{w: m.clk.NewWaiter()}
	n := m.queue.pushBack(g)
	m.mu.Unlock()
	return waitGrant(ctx, &m.mu, &m.queue, n, func(granted bool) {
		if granted {
			m.unlockLocked()
		}
	})
}

// waitGrant parks until g is granted (nil) or ctx is done (its error, after
// leaving the queue). A grant that races with cancellation wins: the caller
// then owns what was granted.
//
// abandon, if set, runs under mu whenever the waiter leaves without taking
// what it waited for: granted is true only if something was granted to it
// that it will never use and must be passed on. That happens when the task
// is unwound inside Wait (the simulator kills a crashed node's tasks with
// runtime.Goexit there); the deferred clean-up keeps the primitive usable by
// everyone else.
func waitGrant(ctx context.Context, mu *sync.Mutex, q *dlist[*grant], n *dnode[*grant], abandon func(granted bool)) error {
	g := n.v
	stop := OnDone(ctx, g.w.Wake)
	returned := false
	defer func() {
		stop()
		if returned {
			return
		}
		mu.Lock()
		removed := q.remove(n)
		if abandon != nil {
			abandon(!removed && g.granted)
		}
		mu.Unlock()
	}()
	for {
		mu.Lock()
		if g.granted {
			mu.Unlock()
			returned = true
			return nil
		}
		if err := ctx.Err(); err != nil {
			q.remove(n)
			if abandon != nil {
				abandon(false)
			}
			mu.Unlock()
			returned = true
			return err
		}
		mu.Unlock()
		g.w.Wait()
	}
}

// TryLock acquires m if it is free and nobody is queued, without blocking.
func (m *Mutex) TryLock() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.locked || m.queue.len() > 0 {
		return false
	}
	m.locked = true
	return true
}

// Unlock releases m, handing it to the first waiter if there is one. It
// panics if m is not locked.
func (m *Mutex) Unlock() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.locked {
		panic("clock: unlock of unlocked Mutex")
	}
	m.unlockLocked()
}

func (m *Mutex) unlockLocked() {
	if n := m.queue.front(); n != nil {
		m.queue.remove(n)
		n.v.granted = true // m stays locked: ownership passes to the waiter
		n.v.w.Wake()
		return
	}
	m.locked = false
}

// Cond is a condition variable tied to a Mutex. Waiters are signalled in
// FIFO order. A signal delivered to a waiter whose ctx ends at the same
// time is not lost: that Wait returns nil.
type Cond struct {
	// L is held while checking the condition and across Wait's return.
	L *Mutex

	mu    sync.Mutex
	queue dlist[*grant]
}

// NewCond returns a Cond using l.
func NewCond(l *Mutex) *Cond {
	if l == nil {
		panic("clock: NewCond with nil Mutex")
	}
	return &Cond{L: l}
}

// Wait atomically unlocks c.L and parks until Signal/Broadcast or until ctx
// is done, then re-locks c.L before returning — also when it returns ctx's
// error, so callers can always `defer c.L.Unlock()`. As with sync.Cond,
// re-check the condition in a loop.
func (c *Cond) Wait(ctx context.Context) error {
	g := &grant{w: c.L.clk.NewWaiter()}
	c.mu.Lock()
	n := c.queue.pushBack(g)
	c.mu.Unlock()
	c.L.Unlock()
	err := waitGrant(ctx, &c.mu, &c.queue, n, func(granted bool) {
		if granted { // a signal meant for a waiter that is gone goes to the next
			c.signalLocked()
		}
	})
	// Re-lock without ctx: Wait's contract is to return holding L.
	_ = c.L.Lock(context.Background())
	return err
}

// Signal wakes the longest-waiting task, if any.
func (c *Cond) Signal() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.signalLocked()
}

func (c *Cond) signalLocked() {
	if n := c.queue.front(); n != nil {
		c.queue.remove(n)
		n.v.granted = true
		n.v.w.Wake()
	}
}

// Broadcast wakes every waiting task.
func (c *Cond) Broadcast() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, g := range c.queue.drain() {
		g.granted = true
		g.w.Wake()
	}
}
