package clocktest

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stratadb/strata/clock"
)

// Harness adapts a Clock implementation to the suite.
type Harness interface {
	// Run runs body as a task of the implementation, passing its Clock, and
	// returns when body has returned. Tasks body starts with c.Go are
	// joined by body itself.
	Run(t *testing.T, body func(c clock.Clock))
}

// RealHarness runs each body on a goroutine with a fresh clock.NewReal()
// and fails the test if the body has not returned within Timeout (default
// 10s), which catches lost wake-ups instead of hanging the test binary.
type RealHarness struct {
	Timeout time.Duration
}

// Run implements Harness.
func (h RealHarness) Run(t *testing.T, body func(c clock.Clock)) {
	t.Helper()
	timeout := h.Timeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		body(clock.NewReal())
	}()
	select {
	case <-done:
	case <-time.After(timeout):
		t.Fatalf("test body did not return within %v (lost wake-up or deadlock?)", timeout)
	}
}

// unit is the base duration of the suite: small so the real run is quick,
// large enough that real scheduling noise does not reorder events that are
// several units apart.
const unit = 2 * time.Millisecond

type test struct {
	name string
	body func(t *testing.T, c clock.Clock)
}

// Run runs the whole suite against h, one subtest per behaviour.
func Run(t *testing.T, h Harness) {
	tests := []test{
		{"MonoNow", testMonoNow},
		{"AfterFuncOrder", testAfterFuncOrder},
		{"AfterFuncZeroIsAsync", testAfterFuncZeroIsAsync},
		{"AfterFuncStop", testAfterFuncStop},
		{"AfterFuncNested", testAfterFuncNested},
		{"GoRunsTasks", testGoRunsTasks},
		{"WaiterPermits", testWaiterPermits},
		{"ChanFIFOAndClose", testChanFIFOAndClose},
		{"ChanCapacityBlocks", testChanCapacityBlocks},
		{"ChanSendOnClosedPanics", testChanSendOnClosedPanics},
		{"ChanCloseWakesAll", testChanCloseWakesAll},
		{"ChanRecvTimeout", testChanRecvTimeout},
		{"SelectFirstReady", testSelectFirstReady},
		{"SelectBlocksUntilReady", testSelectBlocksUntilReady},
		{"SelectSendCase", testSelectSendCase},
		{"SelectCancelWakes", testSelectCancelWakes},
		{"ContextTimeout", testContextTimeout},
		{"ContextTree", testContextTree},
		{"OnDone", testOnDone},
		{"Sleep", testSleep},
		{"Timer", testTimer},
		{"Ticker", testTicker},
		{"MutexExclusion", testMutexExclusion},
		{"MutexCancel", testMutexCancel},
		{"Cond", testCond},
		{"WaitGroup", testWaitGroup},
		{"Semaphore", testSemaphore},
		{"GroupStop", testGroupStop},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h.Run(t, func(c clock.Clock) { tc.body(t, c) })
		})
	}
}

var bg = context.Background()

// spawn starts n tasks running fn(i) and returns a function that waits for
// all of them.
func spawn(c clock.Clock, name string, n int, fn func(i int)) (join func()) {
	wg := clock.NewWaitGroup(c)
	wg.Add(n)
	for i := range n {
		c.Go(bg, fmt.Sprintf("%s-%d", name, i), func(context.Context) {
			defer wg.Done()
			fn(i)
		})
	}
	return func() { _ = wg.Wait(bg) }
}

// recorder collects events from tasks and callbacks.
type recorder struct {
	mu     sync.Mutex
	events []string
}

func (r *recorder) add(s string) {
	r.mu.Lock()
	r.events = append(r.events, s)
	r.mu.Unlock()
}

func (r *recorder) get() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.events)
}

func testMonoNow(t *testing.T, c clock.Clock) {
	if c.Now().IsZero() {
		t.Errorf("Now() is the zero time")
	}
	prev := c.Mono()
	for range 100 {
		m := c.Mono()
		if m < prev {
			t.Errorf("Mono went backwards: %v after %v", m, prev)
			return
		}
		prev = m
	}
	start := c.Mono()
	if err := clock.Sleep(bg, c, 3*unit); err != nil {
		t.Errorf("Sleep: %v", err)
	}
	if got := c.Mono() - start; got < 3*unit {
		t.Errorf("Mono advanced %v across Sleep(%v)", got, 3*unit)
	}
}

func testAfterFuncOrder(t *testing.T, c clock.Clock) {
	var r recorder
	wg := clock.NewWaitGroup(c)
	wg.Add(5)
	at := func(d time.Duration, name string) {
		c.AfterFunc(d, func() { r.add(name); wg.Done() })
	}
	at(10*unit, "late")
	at(2*unit, "tie-1")
	at(2*unit, "tie-2")
	at(0, "now")
	at(2*unit, "tie-3")
	if err := wg.Wait(bg); err != nil {
		t.Errorf("Wait: %v", err)
	}
	want := []string{"now", "tie-1", "tie-2", "tie-3", "late"}
	if got := r.get(); !slices.Equal(got, want) {
		t.Errorf("firing order %v, want %v (earliest deadline first, ties in registration order)", got, want)
	}
}

func testAfterFuncZeroIsAsync(t *testing.T, c clock.Clock) {
	var ran atomic.Bool
	w := c.NewWaiter()
	c.AfterFunc(0, func() { ran.Store(true); w.Wake() })
	if ran.Load() {
		t.Errorf("AfterFunc(0) ran its callback synchronously")
	}
	for !ran.Load() {
		w.Wait()
	}
	c.AfterFunc(-time.Second, func() { ran.Store(false); w.Wake() })
	for ran.Load() {
		w.Wait()
	}
}

func testAfterFuncStop(t *testing.T, c clock.Clock) {
	var fired atomic.Bool
	tm := c.AfterFunc(2*unit, func() { fired.Store(true) })
	if !tm.Stop() {
		t.Errorf("Stop of a pending timer returned false")
	}
	if tm.Stop() {
		t.Errorf("second Stop returned true")
	}
	w := c.NewWaiter()
	done := c.AfterFunc(unit, w.Wake)
	w.Wait()
	if done.Stop() {
		t.Errorf("Stop of a fired timer returned true")
	}
	// A "never" duration must not overflow into the past.
	var neverFired atomic.Bool
	never := c.AfterFunc(math.MaxInt64, func() { neverFired.Store(true) })
	_ = clock.Sleep(bg, c, 4*unit)
	if fired.Load() {
		t.Errorf("stopped timer fired")
	}
	if neverFired.Load() || !never.Stop() {
		t.Errorf("AfterFunc(math.MaxInt64) fired: now+d overflowed; saturate the deadline at math.MaxInt64")
	}
	ctx, cancel := clock.WithTimeout(c, bg, math.MaxInt64)
	defer cancel()
	if ctx.Err() != nil {
		t.Errorf("WithTimeout(math.MaxInt64) is done: %v", ctx.Err())
	}
}

func testAfterFuncNested(t *testing.T, c clock.Clock) {
	var r recorder
	wg := clock.NewWaitGroup(c)
	wg.Add(2)
	// Every start time is read BEFORE the timer or task that ends the wait
	// is created: in real time, reading it after would shorten the interval.
	start := c.Mono()
	c.AfterFunc(unit, func() {
		r.add("outer")
		c.AfterFunc(unit, func() { r.add("inner"); wg.Done() })
		wg.Done()
	})
	_ = wg.Wait(bg)
	if got, want := r.get(), []string{"outer", "inner"}; !slices.Equal(got, want) {
		t.Errorf("events %v, want %v", got, want)
	}
	if el := c.Mono() - start; el < 2*unit {
		t.Errorf("nested timers done after %v, want >= %v", el, 2*unit)
	}
}

type ctxKey struct{}

func testGoRunsTasks(t *testing.T, c clock.Clock) {
	ctx := context.WithValue(bg, ctxKey{}, "v")
	var r recorder
	wg := clock.NewWaitGroup(c)
	wg.Add(3)
	for i := range 3 {
		c.Go(ctx, fmt.Sprintf("task-%d", i), func(ctx context.Context) {
			defer wg.Done()
			if ctx.Value(ctxKey{}) != "v" {
				t.Errorf("task %d did not receive its ctx", i)
			}
			r.add(fmt.Sprint(i))
		})
	}
	_ = wg.Wait(bg)
	got := r.get()
	slices.Sort(got)
	if want := []string{"0", "1", "2"}; !slices.Equal(got, want) {
		t.Errorf("tasks ran %v, want %v", got, want)
	}
}

func testWaiterPermits(t *testing.T, c clock.Clock) {
	w := c.NewWaiter()
	// A permit granted before Wait is kept; extra Wakes are absorbed.
	w.Wake()
	w.Wake()
	w.Wait()
	// The same Waiter serves repeated cycles, woken by a task or a timer.
	for i := range 3 {
		var woke atomic.Bool
		if i%2 == 0 {
			c.Go(bg, "waker", func(context.Context) { woke.Store(true); w.Wake() })
		} else {
			c.AfterFunc(unit, func() { woke.Store(true); w.Wake() })
		}
		for !woke.Load() { // spurious returns are allowed
			w.Wait()
		}
	}
}

func testChanFIFOAndClose(t *testing.T, c clock.Clock) {
	ch := clock.NewChan[int](c, 4)
	if ch.Cap() != 4 {
		t.Errorf("Cap = %d, want 4", ch.Cap())
	}
	if _, _, ready := ch.TryRecv(); ready {
		t.Errorf("TryRecv on empty open Chan reported ready")
	}
	for i := range 4 {
		if err := ch.Send(bg, i); err != nil {
			t.Errorf("Send(%d): %v", i, err)
		}
	}
	if ch.Len() != 4 {
		t.Errorf("Len = %d, want 4", ch.Len())
	}
	if ch.TrySend(99) {
		t.Errorf("TrySend on a full Chan succeeded")
	}
	v, ok, ready := ch.TryRecv()
	if v != 0 || !ok || !ready {
		t.Errorf("TryRecv = %v,%v,%v, want 0,true,true", v, ok, ready)
	}
	ch.Close()
	for i := 1; i < 4; i++ {
		v, ok, err := ch.Recv(bg)
		if v != i || !ok || err != nil {
			t.Errorf("Recv after close = %v,%v,%v, want %d,true,nil (drain before closed)", v, ok, err, i)
		}
	}
	if v, ok, err := ch.Recv(bg); v != 0 || ok || err != nil {
		t.Errorf("Recv on closed drained Chan = %v,%v,%v, want 0,false,nil", v, ok, err)
	}
	if _, ok, ready := ch.TryRecv(); ok || !ready {
		t.Errorf("TryRecv on closed drained Chan: ok=%v ready=%v, want false,true", ok, ready)
	}
}

func testChanCapacityBlocks(t *testing.T, c clock.Clock) {
	const n = 20
	ch := clock.NewChan[int](c, 2)
	var maxLen atomic.Int64
	join := spawn(c, "producer", 1, func(int) {
		for i := range n {
			if err := ch.Send(bg, i); err != nil {
				t.Errorf("Send: %v", err)
				return
			}
			if l := int64(ch.Len()); l > maxLen.Load() {
				maxLen.Store(l)
			}
		}
		ch.Close()
	})
	var got []int
	for {
		if len(got)%5 == 0 {
			_ = clock.Sleep(bg, c, unit/2) // let the producer fill up
		}
		v, ok, err := ch.Recv(bg)
		if err != nil {
			t.Errorf("Recv: %v", err)
			break
		}
		if !ok {
			break
		}
		got = append(got, v)
	}
	join()
	for i, v := range got {
		if v != i {
			t.Errorf("received %v, want 0..%d in order", got, n-1)
			break
		}
	}
	if len(got) != n {
		t.Errorf("received %d items, want %d", len(got), n)
	}
	if m := maxLen.Load(); m > 2 {
		t.Errorf("Len reached %d on a capacity-2 Chan", m)
	}
}

func testChanSendOnClosedPanics(t *testing.T, c clock.Clock) {
	expectPanic := func(name string, f func()) {
		defer func() {
			if recover() == nil {
				t.Errorf("%s did not panic", name)
			}
		}()
		f()
	}
	ch := clock.NewChan[int](c, 1)
	ch.Close()
	expectPanic("Send on closed", func() { _ = ch.Send(bg, 1) })
	expectPanic("TrySend on closed", func() { ch.TrySend(1) })
	expectPanic("Select SendCase on closed", func() { clock.Select(c, ch.SendCase(1)) })
	expectPanic("double Close", ch.Close)
	expectPanic("capacity 0", func() { clock.NewChan[int](c, 0) })
}

func testChanCloseWakesAll(t *testing.T, c clock.Clock) {
	ch := clock.NewChan[int](c, 1)
	var closedSeen atomic.Int64
	join := spawn(c, "receiver", 3, func(int) {
		_, ok, err := ch.Recv(bg)
		if err != nil || ok {
			t.Errorf("Recv = ok %v err %v, want closed", ok, err)
			return
		}
		closedSeen.Add(1)
	})
	_ = clock.Sleep(bg, c, unit)
	ch.Close()
	join()
	if n := closedSeen.Load(); n != 3 {
		t.Errorf("%d receivers saw the close, want 3", n)
	}
}

func testChanRecvTimeout(t *testing.T, c clock.Clock) {
	ch := clock.NewChan[int](c, 1)
	start := c.Mono() // before WithTimeout, so elapsed >= timeout holds in real time too
	ctx, cancel := clock.WithTimeout(c, bg, 2*unit)
	defer cancel()
	if _, _, err := ch.Recv(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Recv with timeout on empty Chan: err %v, want DeadlineExceeded", err)
	}
	if el := c.Mono() - start; el < 2*unit {
		t.Errorf("Recv timed out after %v, want >= %v", el, 2*unit)
	}
	full := clock.NewChan[int](c, 1)
	full.TrySend(1)
	cctx, ccancel := clock.WithCancel(bg)
	ccancel()
	if err := full.Send(cctx, 2); !errors.Is(err, context.Canceled) {
		t.Errorf("Send on full Chan with cancelled ctx: %v, want Canceled", err)
	}
	// A ready operation wins over a done ctx.
	if v, ok, err := full.Recv(cctx); v != 1 || !ok || err != nil {
		t.Errorf("Recv of buffered item with cancelled ctx = %v,%v,%v, want 1,true,nil", v, ok, err)
	}
}

func testSelectFirstReady(t *testing.T, c clock.Clock) {
	a := clock.NewChan[string](c, 2)
	b := clock.NewChan[string](c, 2)
	a.TrySend("a")
	b.TrySend("b")
	var got string
	if i := clock.Select(c, a.RecvCase(&got), b.RecvCase(&got)); i != 0 || got != "a" {
		t.Errorf("Select = %d (%q), want 0 (a): first ready in argument order", i, got)
	}
	if b.Len() != 1 {
		t.Errorf("Select consumed from a case it did not choose")
	}
	a.TrySend("a2")
	if i := clock.Select(c, b.RecvCase(&got), a.RecvCase(&got)); i != 0 || got != "b" {
		t.Errorf("Select = %d (%q), want 0 (b)", i, got)
	}
	if a.Len() != 1 {
		t.Errorf("Select consumed from a case it did not choose")
	}
	// A zero Case is never ready; a non-ready case is skipped.
	var ok bool
	if i := clock.Select(c, clock.Case{}, b.RecvCase(&got), a.RecvCaseOK(&got, &ok)); i != 2 || got != "a2" || !ok {
		t.Errorf("Select = %d (%q, %v), want 2 (a2, true)", i, got, ok)
	}
	if i := clock.TrySelect(a.RecvCase(&got), b.RecvCase(&got), clock.Case{}); i != -1 {
		t.Errorf("TrySelect with nothing ready = %d, want -1", i)
	}
	// Done wins when listed first and ready.
	ctx, cancel := clock.WithCancel(bg)
	cancel()
	a.TrySend("x")
	if i := clock.Select(c, clock.DoneCase(ctx), a.RecvCase(&got)); i != 0 || a.Len() != 1 {
		t.Errorf("Select(done, ready recv) = %d, want 0 without consuming", i)
	}
	if i := clock.TrySelect(clock.DoneCase(bg)); i != -1 {
		t.Errorf("DoneCase(Background) was ready")
	}
}

func testSelectBlocksUntilReady(t *testing.T, c clock.Clock) {
	a := clock.NewChan[int](c, 1)
	b := clock.NewChan[int](c, 1)
	start := c.Mono()
	join := spawn(c, "sender", 1, func(int) {
		_ = clock.Sleep(bg, c, 2*unit)
		b.TrySend(7)
	})
	var got int
	i := clock.Select(c, a.RecvCase(&got), b.RecvCase(&got))
	if i != 1 || got != 7 {
		t.Errorf("Select = %d (%d), want 1 (7)", i, got)
	}
	if el := c.Mono() - start; el < 2*unit {
		t.Errorf("Select returned after %v, before the send at %v", el, 2*unit)
	}
	join()
}

func testSelectSendCase(t *testing.T, c clock.Clock) {
	ch := clock.NewChan[int](c, 1)
	ch.TrySend(1)
	if i := clock.TrySelect(ch.SendCase(2)); i != -1 {
		t.Errorf("SendCase on full Chan was ready")
	}
	join := spawn(c, "receiver", 1, func(int) {
		_ = clock.Sleep(bg, c, unit)
		if v, _, _ := ch.Recv(bg); v != 1 {
			t.Errorf("received %d, want 1", v)
		}
	})
	if i := clock.Select(c, ch.SendCase(2)); i != 0 {
		t.Errorf("Select(SendCase) = %d", i)
	}
	join()
	if v, ok, _ := ch.TryRecv(); v != 2 || !ok {
		t.Errorf("after SendCase, TryRecv = %d,%v, want 2,true", v, ok)
	}
}

func testSelectCancelWakes(t *testing.T, c clock.Clock) {
	ch := clock.NewChan[int](c, 1)
	ctx, cancel := clock.WithCancel(bg)
	// A WithValue wrapper must be woken synchronously too.
	vctx := context.WithValue(ctx, ctxKey{}, 1)
	var idx [2]atomic.Int64
	join := spawn(c, "selector", 2, func(i int) {
		cx := ctx
		if i == 1 {
			cx = vctx
		}
		var v int
		idx[i].Store(int64(clock.Select(c, ch.RecvCase(&v), clock.DoneCase(cx))))
	})
	_ = clock.Sleep(bg, c, unit)
	cancel()
	join()
	for i := range idx {
		if got := idx[i].Load(); got != 1 {
			t.Errorf("selector %d chose %d, want 1 (done)", i, got)
		}
	}
	if !errors.Is(ctx.Err(), context.Canceled) || !errors.Is(vctx.Err(), context.Canceled) {
		t.Errorf("Err after cancel = %v / %v, want Canceled", ctx.Err(), vctx.Err())
	}
}

func testContextTimeout(t *testing.T, c clock.Clock) {
	start := c.Mono()
	ctx, cancel := clock.WithTimeout(c, bg, 3*unit)
	defer cancel()
	if ctx.Err() != nil {
		t.Errorf("fresh WithTimeout ctx already done: %v", ctx.Err())
	}
	if dl, ok := ctx.Deadline(); !ok || dl.Before(c.Now()) {
		t.Errorf("Deadline = %v,%v, want a future deadline", dl, ok)
	}
	clock.Select(c, clock.DoneCase(ctx))
	if el := c.Mono() - start; el < 3*unit {
		t.Errorf("WithTimeout(%v) fired after %v", 3*unit, el)
	}
	if !errors.Is(ctx.Err(), context.DeadlineExceeded) {
		t.Errorf("Err = %v, want DeadlineExceeded", ctx.Err())
	}
	// Cancelling first stops the timer: the error stays Canceled.
	ctx2, cancel2 := clock.WithTimeout(c, bg, unit)
	cancel2()
	_ = clock.Sleep(bg, c, 2*unit)
	if !errors.Is(ctx2.Err(), context.Canceled) {
		t.Errorf("Err after early cancel = %v, want Canceled", ctx2.Err())
	}
	// Non-positive durations are done at once.
	ctx3, cancel3 := clock.WithTimeout(c, bg, 0)
	defer cancel3()
	if !errors.Is(ctx3.Err(), context.DeadlineExceeded) {
		t.Errorf("WithTimeout(0).Err = %v, want DeadlineExceeded", ctx3.Err())
	}
	// WithDeadline in the past is done at once; in the future, it fires.
	ctx4, cancel4 := clock.WithDeadline(c, bg, c.Now().Add(-time.Second))
	defer cancel4()
	if !errors.Is(ctx4.Err(), context.DeadlineExceeded) {
		t.Errorf("past WithDeadline.Err = %v, want DeadlineExceeded", ctx4.Err())
	}
	ctx5, cancel5 := clock.WithDeadline(c, bg, c.Now().Add(2*unit))
	defer cancel5()
	clock.Select(c, clock.DoneCase(ctx5))
	if !errors.Is(ctx5.Err(), context.DeadlineExceeded) {
		t.Errorf("WithDeadline.Err = %v, want DeadlineExceeded", ctx5.Err())
	}
}

func testContextTree(t *testing.T, c clock.Clock) {
	start := c.Mono()
	parent, cancelParent := clock.WithTimeout(c, bg, 2*unit)
	defer cancelParent()
	child, cancelChild := clock.WithTimeout(c, parent, time.Hour)
	defer cancelChild()
	pdl, _ := parent.Deadline()
	if cdl, ok := child.Deadline(); !ok || !cdl.Equal(pdl) {
		t.Errorf("child Deadline = %v,%v, want the parent's earlier %v", cdl, ok, pdl)
	}
	grandchild, cancelGrandchild := clock.WithCancel(context.WithValue(child, ctxKey{}, 1))
	defer cancelGrandchild()
	clock.Select(c, clock.DoneCase(grandchild))
	if el := c.Mono() - start; el < 2*unit {
		t.Errorf("grandchild done after %v, want >= %v", el, 2*unit)
	}
	for _, ctx := range []context.Context{child, grandchild} {
		if !errors.Is(ctx.Err(), context.DeadlineExceeded) {
			t.Errorf("%v: Err = %v, want the parent's DeadlineExceeded", ctx, ctx.Err())
		}
	}
	// Cancelling a child leaves the parent alone; a child of a done parent
	// is born done.
	p2, c2 := clock.WithCancel(bg)
	ch2, cc2 := clock.WithCancel(p2)
	cc2()
	if p2.Err() != nil {
		t.Errorf("cancelling the child cancelled the parent")
	}
	if !errors.Is(ch2.Err(), context.Canceled) {
		t.Errorf("child Err = %v, want Canceled", ch2.Err())
	}
	c2()
	born, cb := clock.WithCancel(p2)
	defer cb()
	if !errors.Is(born.Err(), context.Canceled) {
		t.Errorf("child of cancelled parent: Err = %v, want Canceled", born.Err())
	}
	// Done() is a real channel that is closed once done.
	select {
	case <-born.Done():
	default:
		t.Errorf("Done() of a cancelled ctx is not closed")
	}
}

func testOnDone(t *testing.T, c clock.Clock) {
	var r recorder
	ctx, cancel := clock.WithCancel(bg)
	clock.OnDone(ctx, func() { r.add("first") })
	stop := clock.OnDone(ctx, func() { r.add("stopped") })
	clock.OnDone(context.WithValue(ctx, ctxKey{}, 1), func() { r.add("wrapped") })
	if !stop() {
		t.Errorf("stop before cancel returned false")
	}
	cancel()
	// Synchronous: the callbacks have run by the time cancel returns.
	if got, want := r.get(), []string{"first", "wrapped"}; !slices.Equal(got, want) {
		t.Errorf("callbacks after cancel: %v, want %v (synchronous, in order)", got, want)
	}
	if stop() {
		t.Errorf("stop after cancel returned true")
	}
	clock.OnDone(ctx, func() { r.add("late") })
	if got := r.get(); len(got) != 3 || got[2] != "late" {
		t.Errorf("OnDone on a done ctx did not run synchronously: %v", got)
	}
	neverStop := clock.OnDone(bg, func() { t.Errorf("OnDone(Background) fired") })
	if neverStop() {
		t.Errorf("stop for Background returned true")
	}
}

func testSleep(t *testing.T, c clock.Clock) {
	for _, d := range []time.Duration{unit, 3 * unit} {
		start := c.Mono()
		if err := clock.Sleep(bg, c, d); err != nil {
			t.Errorf("Sleep(%v): %v", d, err)
		}
		if el := c.Mono() - start; el < d {
			t.Errorf("Sleep(%v) returned after %v", d, el)
		}
	}
	if err := clock.Sleep(bg, c, 0); err != nil {
		t.Errorf("Sleep(0): %v", err)
	}
	done, cancel := clock.WithCancel(bg)
	cancel()
	if err := clock.Sleep(done, c, time.Hour); !errors.Is(err, context.Canceled) {
		t.Errorf("Sleep with done ctx: %v, want Canceled", err)
	}
	ctx, cancel2 := clock.WithCancel(bg)
	start := c.Mono()
	join := spawn(c, "canceller", 1, func(int) {
		_ = clock.Sleep(bg, c, unit)
		cancel2()
	})
	if err := clock.Sleep(ctx, c, time.Hour); !errors.Is(err, context.Canceled) {
		t.Errorf("interrupted Sleep: %v, want Canceled", err)
	}
	if el := c.Mono() - start; el < unit {
		t.Errorf("Sleep interrupted after %v, before the cancel at %v", el, unit)
	}
	join()
}

func testTimer(t *testing.T, c clock.Clock) {
	start := c.Mono()
	tm := clock.NewTimer(c, 2*unit)
	if _, ok, err := tm.C.Recv(bg); !ok || err != nil {
		t.Errorf("Timer Recv: ok %v err %v", ok, err)
	}
	if el := c.Mono() - start; el < 2*unit {
		t.Errorf("Timer fired after %v, want >= %v", el, 2*unit)
	}
	if tm.Stop() {
		t.Errorf("Stop of a fired and received timer returned true")
	}
	// Stop before firing: nothing is ever delivered.
	tm2 := clock.NewTimer(c, unit)
	if !tm2.Stop() {
		t.Errorf("Stop of a pending timer returned false")
	}
	_ = clock.Sleep(bg, c, 3*unit)
	if _, _, ready := tm2.C.TryRecv(); ready {
		t.Errorf("stopped timer delivered a value")
	}
	// Reset re-arms a stopped timer.
	start = c.Mono()
	if tm2.Reset(unit) {
		t.Errorf("Reset of a stopped timer returned true")
	}
	var at time.Time
	if i := clock.Select(c, tm2.C.RecvCase(&at)); i != 0 || at.IsZero() {
		t.Errorf("Select on reset timer = %d, %v", i, at)
	}
	if el := c.Mono() - start; el < unit {
		t.Errorf("reset timer fired after %v, want >= %v", el, unit)
	}
	// A fired but unreceived value is discarded by Stop.
	tm3 := clock.NewTimer(c, 0)
	_ = clock.Sleep(bg, c, unit)
	if !tm3.Stop() {
		t.Errorf("Stop of a fired, unreceived timer returned false")
	}
	if _, _, ready := tm3.C.TryRecv(); ready {
		t.Errorf("stale value received after Stop")
	}
	if _, _, err := clock.After(c, unit).Recv(bg); err != nil {
		t.Errorf("After: %v", err)
	}
}

func testTicker(t *testing.T, c clock.Clock) {
	start := c.Mono()
	tk := clock.NewTicker(c, unit)
	defer tk.Stop()
	for i := range 3 {
		if _, ok, err := tk.C.Recv(bg); !ok || err != nil {
			t.Errorf("tick %d: ok %v err %v", i, ok, err)
			return
		}
	}
	if el := c.Mono() - start; el < 3*unit {
		t.Errorf("3 ticks of %v after %v", unit, el)
	}
	tk.Stop()
	_ = clock.Sleep(bg, c, 3*unit)
	if _, _, ready := tk.C.TryRecv(); ready {
		t.Errorf("stopped Ticker ticked")
	}
	tk.Reset(unit)
	if _, _, err := tk.C.Recv(bg); err != nil {
		t.Errorf("tick after Reset: %v", err)
	}
}

func testMutexExclusion(t *testing.T, c clock.Clock) {
	m := clock.NewMutex(c)
	var holders, maxHolders atomic.Int64
	counter := 0
	join := spawn(c, "locker", 4, func(int) {
		for range 3 {
			if err := m.Lock(bg); err != nil {
				t.Errorf("Lock: %v", err)
				return
			}
			if h := holders.Add(1); h > maxHolders.Load() {
				maxHolders.Store(h)
			}
			v := counter
			_ = clock.Sleep(bg, c, unit/4) // hold across a blocking call
			counter = v + 1
			holders.Add(-1)
			m.Unlock()
		}
	})
	join()
	if counter != 12 {
		t.Errorf("counter = %d, want 12 (lost updates: no exclusion)", counter)
	}
	if h := maxHolders.Load(); h != 1 {
		t.Errorf("%d holders at once", h)
	}
	if !m.TryLock() {
		t.Errorf("TryLock of a free Mutex failed")
	}
	if m.TryLock() {
		t.Errorf("TryLock of a held Mutex succeeded")
	}
	m.Unlock()
}

func testMutexCancel(t *testing.T, c clock.Clock) {
	m := clock.NewMutex(c)
	_ = m.Lock(bg)
	start := c.Mono()
	ctx, cancel := clock.WithTimeout(c, bg, 2*unit)
	defer cancel()
	var lockErr error
	join := spawn(c, "waiter", 1, func(int) { lockErr = m.Lock(ctx) })
	join()
	if !errors.Is(lockErr, context.DeadlineExceeded) {
		t.Errorf("Lock with timeout on a held Mutex: %v, want DeadlineExceeded", lockErr)
	}
	if el := c.Mono() - start; el < 2*unit {
		t.Errorf("Lock gave up after %v, want >= %v", el, 2*unit)
	}
	// The abandoned waiter must not have been left in line.
	m.Unlock()
	if !m.TryLock() {
		t.Errorf("Mutex not free after its only holder unlocked")
	}
	m.Unlock()
}

func testCond(t *testing.T, c clock.Clock) {
	m := clock.NewMutex(c)
	cond := clock.NewCond(m)
	var queue []int
	var got []int
	join := spawn(c, "consumer", 1, func(int) {
		_ = m.Lock(bg)
		defer m.Unlock()
		for len(got) < 3 {
			for len(queue) == 0 {
				if err := cond.Wait(bg); err != nil {
					t.Errorf("Cond.Wait: %v", err)
					return
				}
			}
			got = append(got, queue[0])
			queue = queue[1:]
		}
	})
	for i := range 3 {
		_ = clock.Sleep(bg, c, unit/2)
		_ = m.Lock(bg)
		queue = append(queue, i)
		cond.Signal()
		m.Unlock()
	}
	join()
	if !slices.Equal(got, []int{0, 1, 2}) {
		t.Errorf("consumer got %v, want [0 1 2]", got)
	}
	// Broadcast releases every waiter.
	released := 0
	ready := false
	join = spawn(c, "waiter", 3, func(int) {
		_ = m.Lock(bg)
		defer m.Unlock()
		for !ready {
			_ = cond.Wait(bg)
		}
		released++
	})
	_ = clock.Sleep(bg, c, unit)
	_ = m.Lock(bg)
	ready = true
	cond.Broadcast()
	m.Unlock()
	join()
	if released != 3 {
		t.Errorf("Broadcast released %d waiters, want 3", released)
	}
	// A cancelled Wait returns the error and still holds the lock.
	ctx, cancel := clock.WithTimeout(c, bg, unit)
	defer cancel()
	_ = m.Lock(bg)
	if err := cond.Wait(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Cond.Wait with timeout: %v, want DeadlineExceeded", err)
	}
	if m.TryLock() {
		t.Errorf("Cond.Wait returned without holding the lock")
	}
	m.Unlock()
}

func testWaitGroup(t *testing.T, c clock.Clock) {
	wg := clock.NewWaitGroup(c)
	if err := wg.Wait(bg); err != nil {
		t.Errorf("Wait on zero counter: %v", err)
	}
	var finished atomic.Int64
	gate := clock.NewChan[struct{}](c, 1) // workers cannot finish before it closes
	wg.Add(3)
	for i := range 3 {
		c.Go(bg, fmt.Sprintf("worker-%d", i), func(context.Context) {
			_, _, _ = gate.Recv(bg)
			_ = clock.Sleep(bg, c, time.Duration(i+1)*unit/2)
			finished.Add(1)
			wg.Done()
		})
	}
	ctx, cancel := clock.WithTimeout(c, bg, unit)
	defer cancel()
	if err := wg.Wait(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Wait with timeout on a non-zero counter: %v, want DeadlineExceeded", err)
	}
	gate.Close()
	if err := wg.Wait(bg); err != nil {
		t.Errorf("Wait: %v", err)
	}
	if n := finished.Load(); n != 3 {
		t.Errorf("Wait returned with %d of 3 workers finished", n)
	}
	func() {
		defer func() {
			if recover() == nil {
				t.Errorf("negative counter did not panic")
			}
		}()
		wg.Done()
	}()
}

func testSemaphore(t *testing.T, c clock.Clock) {
	s := clock.NewSemaphore(c, 2)
	var inside, maxInside atomic.Int64
	join := spawn(c, "user", 5, func(int) {
		if err := s.Acquire(bg, 1); err != nil {
			t.Errorf("Acquire: %v", err)
			return
		}
		if n := inside.Add(1); n > maxInside.Load() {
			maxInside.Store(n)
		}
		_ = clock.Sleep(bg, c, unit/2)
		inside.Add(-1)
		s.Release(1)
	})
	join()
	if m := maxInside.Load(); m < 1 || m > 2 {
		t.Errorf("%d holders at once on a size-2 Semaphore, want 1 or 2", m)
	}
	if err := s.Acquire(bg, 3); !errors.Is(err, clock.ErrSemaphoreSize) {
		t.Errorf("Acquire(3) of size 2: %v, want ErrSemaphoreSize", err)
	}
	if !s.TryAcquire(2) || s.TryAcquire(1) {
		t.Errorf("TryAcquire did not respect the size")
	}
	ctx, cancel := clock.WithTimeout(c, bg, unit)
	defer cancel()
	if err := s.Acquire(ctx, 1); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Acquire on exhausted Semaphore: %v, want DeadlineExceeded", err)
	}
	s.Release(2)
	if !s.TryAcquire(2) {
		t.Errorf("units not returned by Release or abandoned request left queued")
	}
	s.Release(2)
}

var errTask = errors.New("clocktest: task failed")

func testGroupStop(t *testing.T, c clock.Clock) {
	g := clock.NewGroup(c, bg)
	var running atomic.Int64
	started := clock.NewWaitGroup(c)
	started.Add(3)
	failed := clock.NewChan[struct{}](c, 1)
	for i := range 3 {
		g.Go(fmt.Sprintf("loop-%d", i), func(ctx context.Context) error {
			running.Add(1)
			defer running.Add(-1)
			started.Done()
			for {
				if err := clock.Sleep(ctx, c, unit/2); err != nil {
					return err
				}
			}
		})
	}
	g.Go("failer", func(ctx context.Context) error {
		defer failed.Close()
		_ = clock.Sleep(ctx, c, unit)
		return errTask
	})
	_ = started.Wait(bg)
	_, _, _ = failed.Recv(bg)
	_ = clock.Sleep(bg, c, 2*unit) // the loops keep going after the failure
	if n := running.Load(); n != 3 {
		t.Errorf("%d loops running before Stop, want 3 (an error must not cancel siblings)", n)
	}
	err := g.Stop()
	if !errors.Is(err, errTask) {
		t.Errorf("Stop = %v, want the failing task's error", err)
	}
	if n := running.Load(); n != 0 {
		t.Errorf("%d tasks still running after Stop", n)
	}
	if g.Context().Err() == nil {
		t.Errorf("group context not done after Stop")
	}
	var ran atomic.Bool
	g.Go("late", func(context.Context) error { ran.Store(true); return nil })
	if err := g.Wait(); !errors.Is(err, errTask) {
		t.Errorf("Wait after Stop = %v", err)
	}
	_ = clock.Sleep(bg, c, unit)
	if ran.Load() {
		t.Errorf("task started after Stop ran")
	}
	// A clean group stops with nil.
	g2 := clock.NewGroup(c, bg)
	g2.Go("quick", func(context.Context) error { return nil })
	if err := g2.Wait(); err != nil {
		t.Errorf("Wait of clean group: %v", err)
	}
	// Cancelling the parent stops the tasks; their context.Canceled is the
	// normal way out and is not reported.
	parent, cancel := clock.WithCancel(bg)
	g3 := clock.NewGroup(c, parent)
	g3.Go("sleeper", func(ctx context.Context) error { return clock.Sleep(ctx, c, time.Hour) })
	_ = clock.Sleep(bg, c, unit)
	cancel()
	if err := g3.Wait(); err != nil {
		t.Errorf("Wait after parent cancel: %v, want nil", err)
	}
}
