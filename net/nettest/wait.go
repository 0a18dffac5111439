package nettest

import (
	"context"
	"sync"
	"time"

	"github.com/stratadb/strata/clock"
)

// The helpers here block only through the clock package, so a simulator's
// scheduler sees every wait.

// waitCtx blocks until ctx is done or max has passed; it reports whether ctx
// ended.
func waitCtx(clk clock.Clock, ctx context.Context, max time.Duration) bool {
	return clock.Sleep(ctx, clk, max) != nil
}

// event is a one-shot flag a task can wait on with a bound.
type event struct {
	clk  clock.Clock
	mu   sync.Mutex
	set  bool
	wait []clock.Waiter
}

func newEvent(clk clock.Clock) *event { return &event{clk: clk} }

func (e *event) Set() {
	e.mu.Lock()
	e.set = true
	ws := e.wait
	e.wait = nil
	e.mu.Unlock()
	for _, w := range ws {
		w.Wake()
	}
}

// Wait blocks until Set or until max has passed; it reports whether Set.
func (e *event) Wait(max time.Duration) bool {
	w := e.clk.NewWaiter()
	deadline := e.clk.Mono() + max
	t := e.clk.AfterFunc(max, w.Wake)
	defer t.Stop()
	e.mu.Lock()
	e.wait = append(e.wait, w)
	e.mu.Unlock()
	for {
		e.mu.Lock()
		set := e.set
		e.mu.Unlock()
		if set {
			return true
		}
		if e.clk.Mono() >= deadline {
			return false
		}
		w.Wait()
	}
}
