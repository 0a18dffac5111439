package clock

import (
	"context"
	"fmt"
	"sync"
)

// Chan is a bounded FIFO channel whose blocking operations wait through a
// Clock, so the simulator sees every wait.
//
// A Chan is always buffered (capacity >= 1). An unbuffered channel is a
// rendezvous: a send can only commit together with a receive, which inside
// a Select means committing two parties' cases at once across two selects.
// With a buffer every commit touches exactly one Chan under its own mutex,
// which keeps Select a simple register/check/wait loop. Use capacity 1 where
// a Go program would use an unbuffered channel for signalling.
//
// Sending on a closed Chan panics, as it does in Go: closing is the sender's
// job, and a send after close is a programming error, not a runtime
// condition to handle. Closing twice panics too. Receivers drain what was
// buffered before they see ok == false.
//
// Every state change wakes all tasks blocked on that side of the Chan (they
// re-check and the losers park again). That is simple and loses no wake-up
// when a woken Select picks another case; it costs O(waiters) per operation,
// which is fine for the handful of waiters a Chan has in practice.
type Chan[T any] struct {
	clk Clock

	capacity int

	mu     sync.Mutex
	buf    []T // ring buffer; grows by doubling up to capacity
	head   int
	n      int
	closed bool
	recvq  dlist[Waiter] // waiters interested in "an item or close"
	sendq  dlist[Waiter] // waiters interested in "a free slot or close"
}

// NewChan returns an open Chan holding at most capacity items. It panics if
// capacity < 1 (see the type's doc for why there is no unbuffered Chan) or
// if c is nil.
func NewChan[T any](c Clock, capacity int) *Chan[T] {
	if c == nil {
		panic("clock: NewChan with nil Clock")
	}
	if capacity < 1 {
		panic(fmt.Sprintf("clock: NewChan capacity %d, must be >= 1", capacity))
	}
	// Start small so a generous limit costs nothing until it is used.
	return &Chan[T]{clk: c, capacity: capacity, buf: make([]T, min(capacity, 8))}
}

// Send appends v, blocking while the Chan is full. It returns ctx's error if
// ctx is done first. When there is room, Send succeeds even if ctx is
// already done (the first-ready rule of Select). It panics if the Chan is
// closed.
func (ch *Chan[T]) Send(ctx context.Context, v T) error {
	ch.mu.Lock()
	if ch.sendLocked(v) {
		ch.mu.Unlock()
		return nil
	}
	ch.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return err
	}
	// The same register/check/wait loop as Select, specialised to one Chan
	// and a ctx so the common blocking path allocates little.
	w := ch.clk.NewWaiter()
	stop := OnDone(ctx, w.Wake)
	defer stop()
	ch.mu.Lock()
	node := ch.sendq.pushBack(w)
	defer func() { // also when unwound inside Wait (see waitGrant)
		ch.mu.Lock()
		ch.sendq.remove(node)
		ch.mu.Unlock()
	}()
	for {
		if ch.sendLocked(v) { // panics (after unlocking) if closed
			ch.mu.Unlock()
			return nil
		}
		ch.mu.Unlock()
		if err := ctx.Err(); err != nil {
			return err
		}
		w.Wait()
		ch.mu.Lock()
	}
}

// Recv removes and returns the oldest item, blocking while the Chan is empty
// and open. ok is false once the Chan is closed and drained. err is ctx's
// error if ctx is done first; a ready item wins over a done ctx.
func (ch *Chan[T]) Recv(ctx context.Context) (v T, ok bool, err error) {
	ch.mu.Lock()
	if v, ok, ready := ch.recvLocked(); ready {
		ch.mu.Unlock()
		return v, ok, nil
	}
	ch.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return v, false, err
	}
	w := ch.clk.NewWaiter()
	stop := OnDone(ctx, w.Wake)
	defer stop()
	ch.mu.Lock()
	node := ch.recvq.pushBack(w)
	defer func() { // also when unwound inside Wait (see waitGrant)
		ch.mu.Lock()
		ch.recvq.remove(node)
		ch.mu.Unlock()
	}()
	for {
		if v, ok, ready := ch.recvLocked(); ready {
			ch.mu.Unlock()
			return v, ok, nil
		}
		ch.mu.Unlock()
		if err := ctx.Err(); err != nil {
			return v, false, err
		}
		w.Wait()
		ch.mu.Lock()
	}
}

// TrySend appends v if there is room and reports whether it did. It never
// blocks, so it may be called from an AfterFunc callback. It panics if the
// Chan is closed.
func (ch *Chan[T]) TrySend(v T) bool {
	ch.mu.Lock()
	sent := ch.sendLocked(v)
	ch.mu.Unlock()
	return sent
}

// sendLocked appends v if there is room. On a closed Chan it unlocks ch.mu
// and panics, so a recovered panic does not leave the Chan locked.
func (ch *Chan[T]) sendLocked(v T) bool {
	if ch.closed {
		ch.mu.Unlock()
		panic("clock: send on closed Chan")
	}
	if ch.n == ch.capacity {
		return false
	}
	if ch.n == len(ch.buf) {
		grown := make([]T, min(2*len(ch.buf), ch.capacity))
		k := copy(grown, ch.buf[ch.head:])
		copy(grown[k:], ch.buf[:ch.head])
		ch.buf, ch.head = grown, 0
	}
	ch.buf[(ch.head+ch.n)%len(ch.buf)] = v
	ch.n++
	wakeAll(&ch.recvq)
	return true
}

// TryRecv never blocks. ready reports whether a receive would not have
// blocked: either an item was taken (ok == true, v set) or the Chan is
// closed and drained (ok == false). ready == false means empty and open.
func (ch *Chan[T]) TryRecv() (v T, ok, ready bool) {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	return ch.recvLocked()
}

func (ch *Chan[T]) recvLocked() (v T, ok, ready bool) {
	if ch.n > 0 {
		var zero T
		v = ch.buf[ch.head]
		ch.buf[ch.head] = zero // drop the reference for the GC
		ch.head = (ch.head + 1) % len(ch.buf)
		ch.n--
		wakeAll(&ch.sendq)
		return v, true, true
	}
	return v, false, ch.closed
}

// Close marks the Chan closed and wakes every waiter. Buffered items can
// still be received. It panics if the Chan is already closed.
func (ch *Chan[T]) Close() {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	if ch.closed {
		panic("clock: close of closed Chan")
	}
	ch.closed = true
	wakeAll(&ch.recvq)
	wakeAll(&ch.sendq)
}

// Len returns the number of buffered items.
func (ch *Chan[T]) Len() int {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	return ch.n
}

// Cap returns the capacity given to NewChan.
func (ch *Chan[T]) Cap() int { return ch.capacity }

// RecvCase is a Select case that receives into *dst (dst may be nil to
// discard). It is ready when an item is buffered or the Chan is closed; on a
// closed, drained Chan it commits by setting *dst to the zero value.
func (ch *Chan[T]) RecvCase(dst *T) Case { return Case{op: &recvCase[T]{ch: ch, dst: dst}} }

// RecvCaseOK is RecvCase that also stores into *ok (which may be nil)
// whether an item was received (false: closed and drained).
func (ch *Chan[T]) RecvCaseOK(dst *T, ok *bool) Case {
	return Case{op: &recvCase[T]{ch: ch, dst: dst, ok: ok}}
}

// SendCase is a Select case that sends v. It is ready when the Chan has a
// free slot; committing it on a closed Chan panics, as Send does.
func (ch *Chan[T]) SendCase(v T) Case { return Case{op: &sendCase[T]{ch: ch, v: v}} }

type recvCase[T any] struct {
	ch   *Chan[T]
	dst  *T
	ok   *bool
	node *dnode[Waiter] // registration in ch.recvq, if any
}

func (c *recvCase[T]) try() bool {
	v, ok, ready := c.ch.TryRecv()
	if !ready {
		return false
	}
	if c.dst != nil {
		*c.dst = v
	}
	if c.ok != nil {
		*c.ok = ok
	}
	return true
}

func (c *recvCase[T]) register(w Waiter) { c.ch.register(&c.ch.recvq, &c.node, w) }

func (c *recvCase[T]) unregister() { c.ch.unregister(&c.ch.recvq, &c.node) }

type sendCase[T any] struct {
	ch   *Chan[T]
	v    T
	node *dnode[Waiter] // registration in ch.sendq, if any
}

func (c *sendCase[T]) try() bool { return c.ch.TrySend(c.v) }

func (c *sendCase[T]) register(w Waiter) { c.ch.register(&c.ch.sendq, &c.node, w) }

func (c *sendCase[T]) unregister() { c.ch.unregister(&c.ch.sendq, &c.node) }

// register adds w to q unless *node already holds a registration (the same
// Case listed twice in one Select).
func (ch *Chan[T]) register(q *dlist[Waiter], node **dnode[Waiter], w Waiter) {
	if *node != nil {
		return
	}
	ch.mu.Lock()
	*node = q.pushBack(w)
	ch.mu.Unlock()
}

func (ch *Chan[T]) unregister(q *dlist[Waiter], node **dnode[Waiter]) {
	if *node == nil {
		return
	}
	ch.mu.Lock()
	q.remove(*node)
	ch.mu.Unlock()
	*node = nil
}
