package clock

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// Sleep blocks for d on c's Mono timeline or until ctx is done. It returns
// nil if the full duration passed (even if ctx became done at the same
// moment) and ctx's error otherwise. A ctx that is already done returns its
// error at once; d <= 0 returns at once.
func Sleep(ctx context.Context, c Clock, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if d <= 0 {
		return nil
	}
	w := c.NewWaiter()
	var fired atomic.Bool
	t := c.AfterFunc(d, func() {
		fired.Store(true)
		w.Wake()
	})
	defer t.Stop() // no-op once fired; tidies up after cancel or unwinding
	stop := OnDone(ctx, w.Wake)
	defer stop()
	for {
		if fired.Load() {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		w.Wait()
	}
}

// ChanTimer delivers the time of c.Now() on C once its duration has passed,
// like time.Timer. (It is not called Timer because Timer is the handle
// AfterFunc returns.) Use C.RecvCase in a Select; call Stop when the timer
// is no longer needed so it does not stay pending in the simulator.
//
// As with time.Timer since Go 1.23, once Stop or Reset returns no stale
// value from before the call can be received from C.
type ChanTimer struct {
	// C receives the firing time; it has capacity 1.
	C *Chan[time.Time]

	clk     Clock
	mu      sync.Mutex
	gen     uint64 // incremented by every Stop/Reset; stale callbacks see a mismatch
	pending Timer  // the armed AfterFunc, nil once fired or stopped
}

// NewTimer returns a ChanTimer that fires once after d.
func NewTimer(c Clock, d time.Duration) *ChanTimer {
	t := &ChanTimer{C: NewChan[time.Time](c, 1), clk: c}
	t.mu.Lock()
	t.armLocked(d)
	t.mu.Unlock()
	return t
}

// After returns a channel that receives the time after d. The underlying
// timer cannot be stopped early; prefer NewTimer where the wait may be
// abandoned.
func After(c Clock, d time.Duration) *Chan[time.Time] { return NewTimer(c, d).C }

func (t *ChanTimer) armLocked(d time.Duration) {
	t.gen++
	gen := t.gen
	t.pending = t.clk.AfterFunc(d, func() {
		t.mu.Lock()
		defer t.mu.Unlock()
		if t.gen != gen {
			return
		}
		t.pending = nil
		t.C.TrySend(t.clk.Now())
	})
}

// stopLocked disarms the timer and drains C. It reports whether a firing
// was prevented: the timer was pending, or it had fired but its value had
// not been received yet.
func (t *ChanTimer) stopLocked() bool {
	t.gen++
	active := false
	if t.pending != nil {
		t.pending.Stop() // a callback that already started sees the new gen
		t.pending = nil
		active = true
	}
	if _, _, ready := t.C.TryRecv(); ready {
		active = true
	}
	return active
}

// Stop prevents the timer from firing and discards an unreceived value. It
// reports whether that prevented a delivery.
func (t *ChanTimer) Stop() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.stopLocked()
}

// Reset stops the timer (as Stop) and re-arms it to fire after d. It
// returns what Stop would have returned.
func (t *ChanTimer) Reset(d time.Duration) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	active := t.stopLocked()
	t.armLocked(d)
	return active
}

// Ticker delivers c.Now() on C every period, like time.Ticker. Ticks are
// scheduled on the Mono timeline from the start time, so they do not drift;
// if the receiver is slow, ticks are dropped (C holds one) rather than
// queued.
type Ticker struct {
	// C receives tick times; it has capacity 1.
	C *Chan[time.Time]

	clk     Clock
	mu      sync.Mutex
	gen     uint64
	period  time.Duration
	next    time.Duration // Mono time of the next tick
	pending Timer
}

// NewTicker returns a running Ticker. It panics if period <= 0, as
// time.NewTicker does.
func NewTicker(c Clock, period time.Duration) *Ticker {
	if period <= 0 {
		panic(fmt.Sprintf("clock: NewTicker period %v, must be > 0", period))
	}
	t := &Ticker{C: NewChan[time.Time](c, 1), clk: c}
	t.mu.Lock()
	t.startLocked(period)
	t.mu.Unlock()
	return t
}

func (t *Ticker) startLocked(period time.Duration) {
	t.gen++
	t.period = period
	t.next = t.clk.Mono() + period
	t.armLocked(period)
}

func (t *Ticker) armLocked(d time.Duration) {
	gen := t.gen
	t.pending = t.clk.AfterFunc(d, func() { t.tick(gen) })
}

func (t *Ticker) tick(gen uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.gen != gen {
		return
	}
	t.C.TrySend(t.clk.Now())
	now := t.clk.Mono()
	t.next += t.period
	if t.next <= now { // fell behind: skip the missed ticks
		t.next = now + t.period - (now-t.next)%t.period
	}
	t.armLocked(t.next - now)
}

// Stop stops further ticks and discards an unreceived tick.
func (t *Ticker) Stop() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.stopLocked()
}

func (t *Ticker) stopLocked() {
	t.gen++
	if t.pending != nil {
		t.pending.Stop()
		t.pending = nil
	}
	t.C.TryRecv()
}

// Reset stops the ticker and restarts it with a new period, the next tick
// one period from now. It panics if period <= 0.
func (t *Ticker) Reset(period time.Duration) {
	if period <= 0 {
		panic(fmt.Sprintf("clock: Ticker.Reset period %v, must be > 0", period))
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.stopLocked()
	t.startLocked(period)
}
