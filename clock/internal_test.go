package clock

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// These tests reach into unexported state (queue lengths) to sequence real
// goroutines deterministically, or check real-mode-only behaviour (interop
// with the standard library's contexts), so they are not in clocktest.

var bg = context.Background()

// waitUntil polls cond with short real sleeps; it is only for sequencing
// real goroutines in tests.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(100 * time.Microsecond)
	}
}

func (m *Mutex) queued() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.queue.len()
}

func TestMutexFIFO(t *testing.T) {
	c := NewReal()
	m := NewMutex(c)
	_ = m.Lock(bg)
	var mu sync.Mutex
	var order []int
	wg := NewWaitGroup(c)
	const n = 5
	wg.Add(n)
	for i := range n {
		c.Go(bg, fmt.Sprint("locker-", i), func(context.Context) {
			defer wg.Done()
			_ = m.Lock(bg)
			mu.Lock()
			order = append(order, i)
			mu.Unlock()
			m.Unlock()
		})
		waitUntil(t, fmt.Sprintf("locker %d queued", i), func() bool { return m.queued() == i+1 })
	}
	if m.TryLock() {
		t.Fatalf("TryLock barged ahead of queued waiters")
	}
	m.Unlock()
	_ = wg.Wait(bg)
	if want := []int{0, 1, 2, 3, 4}; !slices.Equal(order, want) {
		t.Fatalf("lock order %v, want FIFO %v", order, want)
	}
}

func (s *Semaphore) queued() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.queue.len()
}

func TestSemaphoreFIFOAndAbandon(t *testing.T) {
	c := NewReal()
	s := NewSemaphore(c, 4)
	if !s.TryAcquire(3) {
		t.Fatal("TryAcquire(3) of 4 failed")
	}
	// A big request queues; a small one behind it must wait even though it
	// would fit (no starvation of the big one).
	bigCtx, cancelBig := WithCancel(bg)
	bigErr := make(chan error, 1)
	c.Go(bg, "big", func(context.Context) { bigErr <- s.Acquire(bigCtx, 4) })
	waitUntil(t, "big queued", func() bool { return s.queued() == 1 })
	smallErr := make(chan error, 1)
	c.Go(bg, "small", func(context.Context) { smallErr <- s.Acquire(bg, 1) })
	waitUntil(t, "small queued", func() bool { return s.queued() == 2 })
	if s.TryAcquire(1) {
		t.Fatal("TryAcquire jumped the queue")
	}
	// Abandoning the head must serve the small request behind it.
	cancelBig()
	if err := <-bigErr; !errors.Is(err, context.Canceled) {
		t.Fatalf("big Acquire = %v, want Canceled", err)
	}
	if err := <-smallErr; err != nil {
		t.Fatalf("small Acquire = %v", err)
	}
	s.Release(4)
	if !s.TryAcquire(4) {
		t.Fatal("semaphore did not return to full size")
	}
}

func TestCondSignalNotLostToCancel(t *testing.T) {
	// A waiter that is signalled and cancelled "at once" reports success, so
	// the signal is never swallowed by a waiter that then reports an error.
	c := NewReal()
	m := NewMutex(c)
	cond := NewCond(m)
	for range 200 {
		ctx, cancel := WithCancel(bg)
		res := make(chan error, 1)
		_ = m.Lock(bg)
		c.Go(bg, "waiter", func(context.Context) {
			_ = m.Lock(bg)
			res <- cond.Wait(ctx)
			m.Unlock()
		})
		m.Unlock()
		waitUntil(t, "waiter parked", func() bool {
			cond.mu.Lock()
			defer cond.mu.Unlock()
			return cond.queue.len() == 1
		})
		cond.Signal()
		cancel()
		if err := <-res; err != nil {
			t.Fatalf("signalled waiter returned %v", err)
		}
	}
}

func TestStdlibChildOfOwnContextCancelsSynchronously(t *testing.T) {
	parent, cancel := WithCancel(bg)
	child, cancelChild := context.WithCancel(parent)
	defer cancelChild()
	var afterRan sync.WaitGroup
	afterRan.Add(1)
	context.AfterFunc(parent, afterRan.Done)
	cancel()
	// No goroutine hop: the standard library used our AfterFunc method.
	if !errors.Is(child.Err(), context.Canceled) {
		t.Fatalf("stdlib child Err right after cancel = %v, want Canceled", child.Err())
	}
	afterRan.Wait() // context.AfterFunc runs f (on its own goroutine)
	select {
	case <-child.Done():
	default:
		t.Fatal("stdlib child Done not closed")
	}
}

func TestStdlibDeadlineChild(t *testing.T) {
	c := NewReal()
	parent, cancel := WithTimeout(c, bg, time.Hour)
	defer cancel()
	child, cancelChild := context.WithTimeout(parent, time.Millisecond)
	defer cancelChild()
	<-child.Done()
	if !errors.Is(child.Err(), context.DeadlineExceeded) || parent.Err() != nil {
		t.Fatalf("child %v parent %v", child.Err(), parent.Err())
	}
	pdl, _ := parent.Deadline()
	if cdl, _ := child.Deadline(); !cdl.Before(pdl) {
		t.Fatalf("child deadline %v not before parent's %v", cdl, pdl)
	}
}

func TestOwnCancelCtxLookup(t *testing.T) {
	ours, cancel := WithCancel(bg)
	defer cancel()
	stdChild, cancelStd := context.WithCancel(ours)
	defer cancelStd()
	tests := []struct {
		name string
		ctx  context.Context
		want *cancelCtx // nil: must not be treated as ours
	}{
		{"direct", ours, ours.(*cancelCtx)},
		{"WithValue wrapper", context.WithValue(ours, testCtxKey{}, 1), ours.(*cancelCtx)},
		{"stdlib cancel in between", context.WithValue(stdChild, testCtxKey{}, 1), nil},
		{"WithoutCancel", context.WithoutCancel(ours), nil},
		{"Background", bg, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := ownCancelCtx(tc.ctx); got != tc.want {
				t.Fatalf("ownCancelCtx = %p, want %p", got, tc.want)
			}
		})
	}
}

func TestOnDoneForeignAndWithoutCancel(t *testing.T) {
	c := NewReal()
	// A foreign (stdlib) context still wakes a Select in real mode.
	std, cancelStd := context.WithCancel(bg)
	ch := NewChan[int](c, 1)
	done := make(chan int, 1)
	go func() {
		var v int
		done <- Select(c, ch.RecvCase(&v), DoneCase(std))
	}()
	time.Sleep(time.Millisecond)
	cancelStd()
	if i := <-done; i != 1 {
		t.Fatalf("Select on foreign ctx = %d, want 1", i)
	}
	// WithoutCancel of ours never fires, even when ours is cancelled.
	ours, cancel := WithCancel(bg)
	fired := make(chan struct{}, 1)
	stop := OnDone(context.WithoutCancel(ours), func() { fired <- struct{}{} })
	cancel()
	time.Sleep(time.Millisecond)
	select {
	case <-fired:
		t.Fatal("OnDone(WithoutCancel(ctx)) fired")
	default:
	}
	if stop() {
		t.Fatal("stop of a never-firing OnDone returned true")
	}
}

func TestContextDoneAndString(t *testing.T) {
	ctx, cancel := WithCancel(bg)
	d := ctx.Done()
	select {
	case <-d:
		t.Fatal("Done closed before cancel")
	default:
	}
	cancel()
	<-d
	if ctx.Done() != d {
		t.Fatal("Done returned a different channel after cancel")
	}
	if s := fmt.Sprint(ctx); s != "context.Background.clock.WithCancel" {
		t.Fatalf("String = %q", s)
	}
	if (func() (r any) {
		defer func() { r = recover() }()
		//lint:ignore SA1012 deliberately checks that a nil parent panics
		WithCancel(nil)
		return nil
	})() == nil {
		t.Fatal("WithCancel(nil) did not panic")
	}
}

// manualClock is a Clock whose time moves only when the test says so; its
// timers fire from fire(), in deadline order. It checks arithmetic (ticker
// catch-up) that real time cannot pin down.
type manualClock struct {
	*Real
	now    time.Duration
	timers []*manualTimer
}

type manualTimer struct {
	when    time.Duration
	f       func()
	stopped bool
}

func (t *manualTimer) Stop() bool { was := !t.stopped; t.stopped = true; return was }

func (m *manualClock) Mono() time.Duration { return m.now }

func (m *manualClock) AfterFunc(d time.Duration, f func()) Timer {
	t := &manualTimer{when: m.now + max(d, 0), f: f}
	m.timers = append(m.timers, t)
	return t
}

// jump sets the time to at and fires every due timer, earliest first.
func (m *manualClock) jump(at time.Duration) {
	m.now = at
	for {
		slices.SortStableFunc(m.timers, func(a, b *manualTimer) int { return int(a.when - b.when) })
		if len(m.timers) == 0 || m.timers[0].when > m.now {
			return
		}
		t := m.timers[0]
		m.timers = m.timers[1:]
		if !t.stopped {
			t.stopped = true
			t.f()
		}
	}
}

func TestTickerSchedule(t *testing.T) {
	const p = 10 * time.Millisecond
	tests := []struct {
		name     string
		jumps    []time.Duration // fire at these times in turn
		wantNext time.Duration
		wantLen  int
	}{
		{"on time", []time.Duration{p, 2 * p}, 3 * p, 1},
		{"late but within a period keeps the phase", []time.Duration{p + 3*time.Millisecond}, 2 * p, 1},
		{"missed ticks are skipped, not queued", []time.Duration{5*p + 5*time.Millisecond}, 6 * p, 1},
		{"exactly on a later tick", []time.Duration{3 * p}, 4 * p, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := &manualClock{Real: NewReal()}
			tk := NewTicker(m, p)
			for _, at := range tc.jumps {
				m.jump(at)
			}
			tk.mu.Lock()
			next := tk.next
			tk.mu.Unlock()
			if next != tc.wantNext {
				t.Fatalf("next tick at %v, want %v", next, tc.wantNext)
			}
			if n := tk.C.Len(); n != tc.wantLen {
				t.Fatalf("%d ticks buffered, want %d", n, tc.wantLen)
			}
			pending := 0
			for _, tm := range m.timers {
				if !tm.stopped {
					pending++
					if tm.when != tc.wantNext {
						t.Fatalf("armed for %v, want %v", tm.when, tc.wantNext)
					}
				}
			}
			if pending != 1 {
				t.Fatalf("%d timers armed, want 1", pending)
			}
			tk.Stop()
			if tk.C.Len() != 0 {
				t.Fatal("Stop left a tick buffered")
			}
		})
	}
}

func TestRealTimerStopMany(t *testing.T) {
	c := NewReal()
	var mu sync.Mutex
	var fired []int
	timers := make([]Timer, 100)
	for i := range timers {
		timers[i] = c.AfterFunc(20*time.Millisecond+time.Duration(i%10)*100*time.Microsecond, func() {
			mu.Lock()
			fired = append(fired, i)
			mu.Unlock()
		})
	}
	for i := 0; i < len(timers); i += 2 {
		if !timers[i].Stop() {
			t.Fatalf("Stop of pending timer %d returned false", i)
		}
	}
	waitUntil(t, "odd timers fired", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(fired) == 50
	})
	mu.Lock()
	defer mu.Unlock()
	for k, i := range fired {
		if i%2 == 0 {
			t.Fatalf("stopped timer %d fired", i)
		}
		if k > 0 {
			prev := fired[k-1]
			pw, iw := timers[prev].(*realTimer).when, timers[i].(*realTimer).when
			if pw > iw || (pw == iw && prev > i) {
				t.Fatalf("timer %d (due %v) fired before %d (due %v): not in (deadline, registration) order", prev, pw, i, iw)
			}
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.timers) != 0 {
		t.Fatalf("%d timers left in heap", len(c.timers))
	}
}

// TestSelectStress moves many items through a ring of Chans with Selects
// that also watch a ctx; it must neither lose an item nor lose a wake-up
// (a lost wake-up hangs it).
func TestSelectStress(t *testing.T) {
	c := NewReal()
	const stages, items = 4, 2000
	chans := make([]*Chan[int], stages+1)
	for i := range chans {
		chans[i] = NewChan[int](c, 1+i%2)
	}
	ctx, cancel := WithCancel(bg)
	defer cancel()
	g := NewGroup(c, ctx)
	for s := range stages {
		for w := range 2 { // two workers per stage compete for items
			g.Go(fmt.Sprintf("stage-%d-%d", s, w), func(ctx context.Context) error {
				in, out := chans[s], chans[s+1]
				for {
					var v int
					var ok bool
					if Select(c, in.RecvCaseOK(&v, &ok), DoneCase(ctx)) == 1 || !ok {
						return nil
					}
					if Select(c, out.SendCase(v+1), DoneCase(ctx)) == 1 {
						return nil
					}
				}
			})
		}
	}
	g.Go("source", func(ctx context.Context) error {
		for i := range items {
			if err := chans[0].Send(ctx, i*10); err != nil {
				return err
			}
		}
		return nil
	})
	sum := 0
	for range items {
		v, ok, err := chans[stages].Recv(bg)
		if err != nil || !ok {
			t.Fatalf("sink Recv: %v %v", ok, err)
		}
		sum += v
	}
	if want := items*(items-1)/2*10 + items*stages; sum != want {
		t.Fatalf("sum %d, want %d", sum, want)
	}
	if err := g.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}
}

// killClock is a Real clock whose next `kill` Waits to return unwind their
// task with runtime.Goexit, as the simulator does to a crashed node's tasks.
type killClock struct {
	*Real
	kill atomic.Int64
}

type killWaiter struct {
	Waiter
	kc *killClock
}

func (kc *killClock) NewWaiter() Waiter { return killWaiter{kc.Real.NewWaiter(), kc} }

func (w killWaiter) Wait() {
	w.Waiter.Wait()
	if w.kc.kill.Add(-1) >= 0 {
		runtime.Goexit()
	}
	w.kc.kill.Add(1)
}

// doomed runs fn on a goroutine that is expected to be unwound inside a
// Wait; the returned channel closes when it has gone.
func doomed(t *testing.T, what string, fn func()) <-chan struct{} {
	gone := make(chan struct{})
	go func() {
		defer close(gone)
		fn()
		t.Errorf("%s returned in a task that should have been unwound", what)
	}()
	return gone
}

func TestUnwindInsideWaitLeavesPrimitivesUsable(t *testing.T) {
	t.Run("Mutex granted to a dying waiter passes on", func(t *testing.T) {
		kc := &killClock{Real: NewReal()}
		m := NewMutex(kc)
		_ = m.Lock(bg)
		gone := doomed(t, "Lock", func() { _ = m.Lock(bg) })
		waitUntil(t, "queued", func() bool { return m.queued() == 1 })
		kc.kill.Store(1)
		m.Unlock() // hands the lock to the doomed task
		<-gone
		if !m.TryLock() {
			t.Fatal("lock lost with the unwound task")
		}
	})
	t.Run("Mutex waiter unwound while queued leaves the queue", func(t *testing.T) {
		kc := &killClock{Real: NewReal()}
		m := NewMutex(kc)
		_ = m.Lock(bg)
		ctx, cancel := WithCancel(bg)
		gone := doomed(t, "Lock", func() { _ = m.Lock(ctx) })
		waitUntil(t, "queued", func() bool { return m.queued() == 1 })
		kc.kill.Store(1)
		cancel() // wakes it; it unwinds instead of returning
		<-gone
		if m.queued() != 0 {
			t.Fatal("unwound waiter left in the queue")
		}
		m.Unlock()
		if !m.TryLock() {
			t.Fatal("Mutex not free")
		}
	})
	t.Run("Semaphore units granted to a dying waiter are returned", func(t *testing.T) {
		kc := &killClock{Real: NewReal()}
		s := NewSemaphore(kc, 2)
		_ = s.Acquire(bg, 2)
		gone := doomed(t, "Acquire", func() { _ = s.Acquire(bg, 2) })
		waitUntil(t, "queued", func() bool { return s.queued() == 1 })
		kc.kill.Store(1)
		s.Release(2)
		<-gone
		if !s.TryAcquire(2) {
			t.Fatal("units lost with the unwound task")
		}
	})
	t.Run("Cond signal to a dying waiter goes to the next", func(t *testing.T) {
		kc := &killClock{Real: NewReal()}
		m := NewMutex(kc)
		cond := NewCond(m)
		condQueued := func() int {
			cond.mu.Lock()
			defer cond.mu.Unlock()
			return cond.queue.len()
		}
		gone := doomed(t, "Cond.Wait", func() { _ = m.Lock(bg); _ = cond.Wait(bg) })
		waitUntil(t, "first waiter", func() bool { return condQueued() == 1 })
		second := make(chan error, 1)
		go func() {
			_ = m.Lock(bg)
			second <- cond.Wait(bg)
			m.Unlock()
		}()
		waitUntil(t, "second waiter", func() bool { return condQueued() == 2 })
		kc.kill.Store(1)
		cond.Signal() // reaches the first (doomed) waiter only
		<-gone
		if err := <-second; err != nil {
			t.Fatalf("second waiter: %v", err)
		}
	})
	t.Run("Chan receiver unwound leaves no registration", func(t *testing.T) {
		kc := &killClock{Real: NewReal()}
		ch := NewChan[int](kc, 1)
		ctx, cancel := WithCancel(bg)
		gone := doomed(t, "Recv", func() { _, _, _ = ch.Recv(ctx) })
		waitUntil(t, "receiver registered", func() bool {
			ch.mu.Lock()
			defer ch.mu.Unlock()
			return ch.recvq.len() == 1
		})
		kc.kill.Store(1)
		cancel()
		<-gone
		ch.mu.Lock()
		defer ch.mu.Unlock()
		if ch.recvq.len() != 0 {
			t.Fatal("unwound receiver still registered")
		}
	})
}

func TestSelectSameCaseTwiceLeavesNoRegistration(t *testing.T) {
	c := NewReal()
	ch := NewChan[int](c, 1)
	ctx, cancel := WithCancel(bg)
	rc, dc := ch.RecvCase(nil), DoneCase(ctx)
	go func() {
		time.Sleep(time.Millisecond)
		cancel()
	}()
	if i := Select(c, rc, rc, dc, dc); i != 2 {
		t.Fatalf("Select = %d, want 2", i)
	}
	ch.mu.Lock()
	n := ch.recvq.len()
	ch.mu.Unlock()
	cc := ctx.(*cancelCtx)
	cc.mu.Lock()
	m := cc.callbacks.len()
	cc.mu.Unlock()
	if n != 0 || m != 0 {
		t.Fatalf("registrations left: %d in Chan, %d on ctx", n, m)
	}
}

// testCtxKey is a private context key for the OnDone lookup tests.
type testCtxKey struct{}
