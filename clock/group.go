package clock

import (
	"context"
	"errors"
	"fmt"
	"sync"
)

// Group is a set of named tasks that belong together (typically one node's
// long-running loops) and are stopped together. Tasks run via Clock.Go with
// the group's context, which is done when the parent is done or the group is
// cancelled. The first error a task returns is kept, wrapped with the task
// name; an error from a task does not cancel its siblings (call Cancel for
// that). context.Canceled returned after the group was cancelled is the
// normal way to stop and is not recorded.
type Group struct {
	clk    Clock
	ctx    context.Context
	cancel context.CancelFunc
	wg     *WaitGroup

	mu      sync.Mutex
	stopped bool // set by Cancel before cancelling, so Go can refuse under mu
	err     error
}

// NewGroup returns an empty Group whose context is a child of parent.
func NewGroup(c Clock, parent context.Context) *Group {
	ctx, cancel := WithCancel(parent)
	return &Group{clk: c, ctx: ctx, cancel: cancel, wg: NewWaitGroup(c)}
}

// Context returns the context the group's tasks receive.
func (g *Group) Context() context.Context { return g.ctx }

// Go starts fn as a task named name. If the group's context is already done
// (stopped or cancelled), fn is not started: this keeps Stop's promise that
// no task of the group runs after it returns.
func (g *Group) Go(name string, fn func(ctx context.Context) error) {
	g.mu.Lock()
	if g.stopped || g.ctx.Err() != nil {
		g.mu.Unlock()
		return
	}
	g.wg.Add(1)
	g.mu.Unlock()
	g.clk.Go(g.ctx, name, func(ctx context.Context) {
		defer g.wg.Done()
		err := fn(ctx)
		if err == nil || (errors.Is(err, context.Canceled) && ctx.Err() != nil) {
			return
		}
		g.mu.Lock()
		if g.err == nil {
			g.err = fmt.Errorf("task %s: %w", name, err)
		}
		g.mu.Unlock()
	})
}

// Cancel cancels the group's context without waiting. Safe from any task,
// including the group's own.
func (g *Group) Cancel() {
	g.mu.Lock() // orders Cancel against Go's check-and-Add
	g.stopped = true
	g.mu.Unlock()
	// Outside mu: cancellation runs OnDone callbacks synchronously.
	g.cancel()
}

// Wait blocks until every started task has returned and returns the first
// recorded error. It does not cancel anything. Calling it from one of the
// group's own tasks deadlocks, and so does waiting for tasks the Clock
// dropped (Go on a crashed incarnation's clock in the simulator starts
// nothing), so only the owner's live tasks should wait.
func (g *Group) Wait() error {
	_ = g.wg.Wait(context.Background()) // cannot fail: Background is never done
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.err
}

// Stop cancels the group and waits for all its tasks; it returns the first
// recorded error.
func (g *Group) Stop() error {
	g.Cancel()
	return g.Wait()
}
