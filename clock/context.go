package clock

import (
	"context"
	"sync"
	"time"
)

// WithCancel returns a child of parent that is done when the returned
// CancelFunc is called or parent is done, whichever is first. Unlike
// context.WithCancel it notifies waiters synchronously (see OnDone), which
// the simulator needs: the CancelFunc runs every OnDone callback of the
// context and its descendants before it returns, so do not call it while
// holding a lock that such a callback takes. Call the CancelFunc when done
// to release resources.
func WithCancel(parent context.Context) (context.Context, context.CancelFunc) {
	cc := newCancelCtx(parent, "WithCancel")
	return cc, func() { cc.cancel(context.Canceled) }
}

// WithTimeout returns a child of parent that is done with
// context.DeadlineExceeded once d has passed on c's Mono timeline, or
// earlier if cancelled or if parent is done. d <= 0 gives a context that is
// already done. The timer is stopped by the CancelFunc, which callers must
// call to release it (otherwise it stays pending until it fires).
func WithTimeout(c Clock, parent context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	return withDeadline(c, parent, c.Now().Add(d), d, "WithTimeout")
}

// WithDeadline is WithTimeout with the deadline given as a wall time of c:
// the timer is armed for deadline.Sub(c.Now()), so in the simulator a node's
// clock offset and drift affect it as they would in production.
func WithDeadline(c Clock, parent context.Context, deadline time.Time) (context.Context, context.CancelFunc) {
	return withDeadline(c, parent, deadline, deadline.Sub(c.Now()), "WithDeadline")
}

func withDeadline(c Clock, parent context.Context, deadline time.Time, d time.Duration, name string) (context.Context, context.CancelFunc) {
	cc := newCancelCtx(parent, name)
	if pd, ok := parent.Deadline(); !ok || deadline.Before(pd) {
		cc.deadline, cc.hasDeadline = deadline, true
	}
	cancel := func() { cc.cancel(context.Canceled) }
	if cc.Err() != nil {
		return cc, cancel
	}
	if d <= 0 {
		cc.cancel(context.DeadlineExceeded)
		return cc, cancel
	}
	t := c.AfterFunc(d, func() { cc.cancel(context.DeadlineExceeded) })
	cc.mu.Lock()
	if cc.err != nil {
		cc.mu.Unlock()
		t.Stop()
		return cc, cancel
	}
	cc.timer = t
	cc.mu.Unlock()
	return cc, cancel
}

// OnDone arranges for f to be called once ctx is done and returns a stop
// function that cancels the call and reports whether it did (like
// context.AfterFunc). f must not block, and runs on whichever task or timer
// callback cancels ctx, possibly while that caller is inside this package;
// it may take the caller's own locks only if cancellers never hold them.
//
// For contexts made by this package, including ones reached through wrappers
// that share their Done channel (context.WithValue), f is called
// synchronously by whoever cancels the context (a CancelFunc or a timer
// callback), and synchronously inside OnDone if ctx is already done. No
// goroutine is involved, which is what makes cancellation deterministic in
// the simulator.
//
// A ctx whose Done() is nil (context.Background, context.TODO,
// context.WithoutCancel) never fires. Any other context falls back to
// context.AfterFunc, which calls f on a new goroutine: that is fine in real
// mode but invisible to the simulator's scheduler, so IN THE SIMULATOR ONLY
// CONTEXTS FROM THIS PACKAGE (and Background/TODO/WithValue wrappers) MAY BE
// USED with the blocking primitives of this package.
func OnDone(ctx context.Context, f func()) (stop func() bool) {
	if cc := ownCancelCtx(ctx); cc != nil {
		return cc.onDone(f, true)
	}
	if ctx.Done() == nil {
		return func() bool { return false }
	}
	return context.AfterFunc(ctx, f)
}

// ownCancelCtx returns the context of this package that decides when ctx is
// done, or nil if ctx's cancellation is not (only) controlled by one. As in
// the standard library, the nearest ancestor found through Value is only
// trusted if ctx reports the very same Done channel: an intermediate foreign
// cancellable context (or WithoutCancel) would otherwise be skipped over.
func ownCancelCtx(ctx context.Context) *cancelCtx {
	if cc, ok := ctx.(*cancelCtx); ok {
		return cc
	}
	cc, ok := ctx.Value(cancelCtxKey{}).(*cancelCtx)
	if !ok {
		return nil
	}
	if d := ctx.Done(); d == nil || d != cc.Done() {
		return nil
	}
	return cc
}

// cancelCtxKey is the private Value key under which a cancelCtx returns
// itself, so it can be found through wrapping contexts.
type cancelCtxKey struct{}

// cancelCtx is the context type behind WithCancel/WithTimeout/WithDeadline.
type cancelCtx struct {
	parent context.Context
	name   string

	deadline    time.Time // valid if hasDeadline; already min'ed with parent's
	hasDeadline bool

	mu         sync.Mutex
	done       chan struct{} // created lazily by Done
	err        error
	callbacks  dlist[func()]
	timer      Timer       // pending deadline timer, if any
	stopParent func() bool // unregisters from parent, if registered
}

var _ interface {
	AfterFunc(func()) func() bool
} = (*cancelCtx)(nil)

func newCancelCtx(parent context.Context, name string) *cancelCtx {
	if parent == nil {
		panic("clock: cannot create context from nil parent")
	}
	cc := &cancelCtx{parent: parent, name: name}
	if err := parent.Err(); err != nil {
		cc.err = err
		return cc
	}
	stop := OnDone(parent, func() { cc.cancel(parent.Err()) })
	cc.mu.Lock()
	if cc.err == nil {
		cc.stopParent = stop
		cc.mu.Unlock()
	} else {
		cc.mu.Unlock()
		stop()
	}
	return cc
}

// cancel marks the context done with err (first call wins), then, outside
// the mutex, stops its timer, leaves its parent and runs the callbacks in
// registration order. Running them synchronously here is the point of this
// type: a waiter blocked on the context is woken before cancel returns.
func (cc *cancelCtx) cancel(err error) {
	cc.mu.Lock()
	if cc.err != nil {
		cc.mu.Unlock()
		return
	}
	cc.err = err
	if cc.done != nil {
		close(cc.done)
	}
	callbacks := cc.callbacks.drain()
	t, stopParent := cc.timer, cc.stopParent
	cc.timer, cc.stopParent = nil, nil
	cc.mu.Unlock()
	if t != nil {
		t.Stop()
	}
	if stopParent != nil {
		stopParent()
	}
	for _, f := range callbacks {
		f()
	}
}

// onDone registers f. If the context is already done, f runs at once:
// synchronously when sync is set, else on a new goroutine.
func (cc *cancelCtx) onDone(f func(), sync bool) func() bool {
	cc.mu.Lock()
	if cc.err != nil {
		cc.mu.Unlock()
		if sync {
			f()
		} else {
			go f()
		}
		return func() bool { return false }
	}
	n := cc.callbacks.pushBack(f)
	cc.mu.Unlock()
	return func() bool {
		cc.mu.Lock()
		defer cc.mu.Unlock()
		return cc.callbacks.remove(n)
	}
}

// AfterFunc lets the standard library's context.WithCancel/WithTimeout/
// AfterFunc, given one of our contexts as parent, hook into cancellation
// without a goroutine: f runs synchronously on cancel. If the context is
// already done f runs on a new goroutine, as context.AfterFunc specifies
// (the standard library calls this while holding its own child's lock, so
// a synchronous call could deadlock).
func (cc *cancelCtx) AfterFunc(f func()) (stop func() bool) { return cc.onDone(f, false) }

func (cc *cancelCtx) Deadline() (time.Time, bool) {
	if cc.hasDeadline {
		return cc.deadline, true
	}
	return cc.parent.Deadline()
}

// Done returns a channel closed when the context is done. It is created on
// first use: code in this package waits through OnDone and never needs it.
func (cc *cancelCtx) Done() <-chan struct{} {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if cc.done == nil {
		cc.done = make(chan struct{})
		if cc.err != nil {
			close(cc.done)
		}
	}
	return cc.done
}

func (cc *cancelCtx) Err() error {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	return cc.err
}

func (cc *cancelCtx) Value(key any) any {
	if _, ok := key.(cancelCtxKey); ok {
		return cc
	}
	return cc.parent.Value(key)
}

func (cc *cancelCtx) String() string {
	if s, ok := cc.parent.(interface{ String() string }); ok {
		return s.String() + ".clock." + cc.name
	}
	return "clock." + cc.name
}
