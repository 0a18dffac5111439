package clock

import (
	"context"
	"errors"
	"fmt"
	"sync"
)

// WaitGroup waits for a set of tasks to finish, like sync.WaitGroup, but its
// Wait goes through a Clock and honours a ctx.
type WaitGroup struct {
	clk     Clock
	mu      sync.Mutex
	n       int
	waiters dlist[*grant]
}

// NewWaitGroup returns a WaitGroup with a zero counter.
func NewWaitGroup(c Clock) *WaitGroup {
	if c == nil {
		panic("clock: NewWaitGroup with nil Clock")
	}
	return &WaitGroup{clk: c}
}

// Add adds delta to the counter. When it reaches zero every current waiter
// is released. It panics if the counter goes negative. Add never blocks, so
// Done may be called from an AfterFunc callback.
func (wg *WaitGroup) Add(delta int) {
	wg.mu.Lock()
	defer wg.mu.Unlock()
	wg.n += delta
	if wg.n < 0 {
		panic("clock: negative WaitGroup counter")
	}
	if wg.n == 0 {
		for _, g := range wg.waiters.drain() {
			g.granted = true
			g.w.Wake()
		}
	}
}

// Done decrements the counter by one.
func (wg *WaitGroup) Done() { wg.Add(-1) }

// Wait blocks until the counter is zero (nil) or ctx is done (its error).
func (wg *WaitGroup) Wait(ctx context.Context) error {
	wg.mu.Lock()
	if wg.n == 0 {
		wg.mu.Unlock()
		return nil
	}
	g := &grant{w: wg.clk.NewWaiter()}
	n := wg.waiters.pushBack(g)
	wg.mu.Unlock()
	return waitGrant(ctx, &wg.mu, &wg.waiters, n, nil)
}

// ErrSemaphoreSize is returned by Semaphore.Acquire when asked for more
// units than the semaphore has in total, which could never succeed.
var ErrSemaphoreSize = errors.New("clock: acquire exceeds semaphore size")

// Semaphore is a weighted FIFO semaphore: a request waits until its units
// are free AND every earlier request has been served, so a large request is
// not starved by a stream of small ones.
type Semaphore struct {
	clk   Clock
	size  int64
	mu    sync.Mutex
	used  int64
	queue dlist[*grant]
}

// NewSemaphore returns a Semaphore with size units, all free. It panics if
// size < 1.
func NewSemaphore(c Clock, size int64) *Semaphore {
	if c == nil {
		panic("clock: NewSemaphore with nil Clock")
	}
	if size < 1 {
		panic(fmt.Sprintf("clock: NewSemaphore size %d, must be >= 1", size))
	}
	return &Semaphore{clk: c, size: size}
}

// Acquire takes n units, waiting in FIFO order. It returns ctx's error if
// ctx is done first (holding nothing), and ErrSemaphoreSize if n exceeds the
// size. n <= 0 returns nil at once.
func (s *Semaphore) Acquire(ctx context.Context, n int64) error {
	if n <= 0 {
		return nil
	}
	if n > s.size {
		return fmt.Errorf("%w: %d > %d", ErrSemaphoreSize, n, s.size)
	}
	s.mu.Lock()
	if s.queue.len() == 0 && s.size-s.used >= n {
		s.used += n
		s.mu.Unlock()
		return nil
	}
	if err := ctx.Err(); err != nil {
		s.mu.Unlock()
		return err
	}
	g := &grant{w: s.clk.NewWaiter(), n: n}
	node := s.queue.pushBack(g)
	s.mu.Unlock()
	return waitGrant(ctx, &s.mu, &s.queue, node, func(granted bool) {
		if granted {
			s.used -= n
		}
		// A request leaving the head may have been blocking smaller ones.
		s.grantLocked()
	})
}

// TryAcquire takes n units if they are free and nobody is queued.
func (s *Semaphore) TryAcquire(n int64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n <= 0 {
		return true
	}
	if s.queue.len() > 0 || s.size-s.used < n {
		return false
	}
	s.used += n
	return true
}

// Release returns n units. It panics if more are released than held.
func (s *Semaphore) Release(n int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.used -= n
	if s.used < 0 {
		panic("clock: Semaphore released more than acquired")
	}
	s.grantLocked()
}

// grantLocked serves queued requests in order while they fit.
func (s *Semaphore) grantLocked() {
	for {
		n := s.queue.front()
		if n == nil || s.size-s.used < n.v.n {
			return
		}
		s.queue.remove(n)
		s.used += n.v.n
		n.v.granted = true
		n.v.w.Wake()
	}
}
