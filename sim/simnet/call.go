package simnet

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"time"

	"github.com/stratadb/strata/clock"
	"github.com/stratadb/strata/net"
)

type itemKind uint8

const (
	// itemOpen is a call's first message (carrying the request of a unary
	// call); its arrival starts the handler.
	itemOpen itemKind = iota
	itemData
	// itemEnd is a direction's last message: CloseSend upstream, the
	// handler's result downstream.
	itemEnd
)

type item struct {
	kind itemKind
	data []byte
	err  *net.Status // itemEnd downstream: the handler's error, if any
}

// pipe is one direction of a call.
type pipe struct {
	from, to string
	// flights are the items sent and not yet handed to the receiver, in
	// send order. Each is delivered by its own timer, but only the arrived
	// prefix moves to queue, so order never depends on timer order (the
	// real clock's timers may fire a little out of order).
	flights []*flight
	queue   []item        // delivered, not yet received
	unread  int           // data items sent and not yet received: the window
	lastAt  time.Duration // latest scheduled delivery
	dead    bool          // lost a message: delivers nothing more
	ended   bool          // the sender sent itemEnd
	final   error         // sticky result once the receiver consumed itemEnd
}

type flight struct {
	it      item
	arrived bool
}

func (p *pipe) full(window int) bool { return p.unread >= window }

// call is one unary call or stream between a client endpoint and a listener.
type call struct {
	n      *Network
	id     uint64
	method string
	unary  bool
	from   string // client node
	to     string // server node
	lis    *listener
	conn   *conn
	up     pipe // client → server
	down   pipe // server → client

	err        *net.Status // broken: both sides fail with it
	clientErr  *net.Status // the client's context ended
	serverGone bool        // the server learned that the client went away
	clientDone bool
	serverDone bool
	finished   bool // both sides done; removed from the registry
	watched    bool

	srvCancel  context.CancelFunc
	stopClient func() bool
	waiters    []clock.Waiter
}

func (c *call) wakeLocked() {
	for _, w := range c.waiters {
		w.Wake()
	}
}

func (c *call) breakLocked(err error) {
	if c.err != nil || c.finished {
		return
	}
	c.err = net.ToStatus(err)
	c.n.pending = append(c.n.pending, c.srvCancel)
	c.wakeLocked()
	c.retireLocked()
}

// doneLocked records that one side is done with the call.
func (c *call) doneLocked(client bool) {
	if client {
		c.clientDone = true
	} else {
		c.serverDone = true
		c.n.pending = append(c.n.pending, c.srvCancel)
	}
	c.retireLocked()
}

// retireLocked drops the call from the registry once nothing can change it
// any more: it broke, or both sides are done (the client counts as done
// once its context ended). Blocked operations still see its final state.
func (c *call) retireLocked() {
	if c.finished {
		return
	}
	if c.err == nil && !((c.clientDone || c.clientErr != nil) && c.serverDone) {
		return
	}
	c.finished = true
	delete(c.n.calls, c.id)
	if stop := c.stopClient; stop != nil {
		c.stopClient = nil
		c.n.pending = append(c.n.pending, func() { stop() })
	}
}

// await blocks the calling task on clk until try, run under the lock,
// reports true. Everything that can satisfy try wakes the call's waiters.
func (n *Network) await(clk clock.Clock, c *call, try func() bool) {
	var w clock.Waiter
	for {
		n.mu.Lock()
		if try() {
			if w != nil {
				for i, x := range c.waiters {
					if x == w {
						c.waiters = append(c.waiters[:i], c.waiters[i+1:]...)
						break
					}
				}
			}
			n.unlock()
			return
		}
		if w == nil {
			w = clk.NewWaiter()
			c.waiters = append(c.waiters, w)
		}
		n.unlock()
		w.Wait()
	}
}

// sendLocked puts it on p, to be delivered after a drawn latency, or drops
// it if the link is cut.
func (n *Network) sendLocked(c *call, p *pipe, it item) {
	if n.cut[link{p.from, p.to}] {
		p.dead = true
	}
	if p.dead {
		n.watchLinkLocked(c)
		return
	}
	if it.kind == itemData {
		p.unread++
	}
	now := n.clk.Mono()
	at := max(now+n.latencyLocked(p.from, p.to), p.lastAt)
	p.lastAt = at
	fl := &flight{it: it}
	p.flights = append(p.flights, fl)
	n.clk.AfterFunc(at-now, func() { n.deliver(c, p, fl) })
}

func (n *Network) deliver(c *call, p *pipe, fl *flight) {
	n.mu.Lock()
	fl.arrived = true
	if c.err != nil || c.finished {
		n.unlock()
		return
	}
	if n.cut[link{p.from, p.to}] {
		p.dead = true
	}
	if p.dead {
		p.flights = nil
		n.watchLinkLocked(c)
		n.unlock()
		return
	}
	var sizes []int
	for len(p.flights) > 0 && p.flights[0].arrived {
		it := p.flights[0].it
		p.flights = p.flights[1:]
		p.queue = append(p.queue, it)
		sizes = append(sizes, len(it.data))
	}
	if len(sizes) > 0 {
		c.wakeLocked()
	}
	hook := n.opts.OnDeliver
	n.unlock()
	if hook != nil {
		for _, size := range sizes {
			hook(p.from, p.to, c.method, size)
		}
	}
}

func tooBig(what string, b []byte) error {
	if len(b) > net.MaxMessageBytes {
		return net.Errorf(net.ResourceExhausted, "simnet: %s is %d bytes, limit %d", what, len(b), net.MaxMessageBytes)
	}
	return nil
}

// start opens a call from cn: registers it, sends its first message and
// starts the handler task on the listener's node.
func (cn *conn) start(ctx context.Context, method string, unary bool, first []byte) (*call, error) {
	e, n := cn.e, cn.e.n
	if err := ctx.Err(); err != nil {
		return nil, net.ToStatus(err)
	}
	// Metadata travels with the call's opening, copied like the message
	// bytes so neither side can change the other's.
	md := net.OutgoingMetadata(ctx)
	if err := md.Validate(); err != nil {
		return nil, err
	}
	n.mu.Lock()
	if err := e.aliveLocked(); err != nil {
		n.unlock()
		return nil, err
	}
	if cn.closed {
		n.unlock()
		return nil, net.Errorf(net.Canceled, "simnet: connection closed")
	}
	l := n.listeners[cn.addr]
	if l == nil {
		n.unlock()
		return nil, net.Errorf(net.Unavailable, "simnet: connection refused: nobody listens on %s", cn.addr)
	}
	n.nextID++
	c := &call{
		n: n, id: n.nextID, method: method, unary: unary,
		from: e.id, to: l.node, lis: l, conn: cn,
		up:   pipe{from: e.id, to: l.node},
		down: pipe{from: l.node, to: e.id},
	}
	// The handler's context carries the caller's deadline, measured on the
	// server's clock from the time remaining now.
	var srvCtx context.Context
	if dl, ok := ctx.Deadline(); ok {
		srvCtx, c.srvCancel = clock.WithTimeout(l.clk, context.Background(), dl.Sub(e.clk.Now()))
	} else {
		srvCtx, c.srvCancel = clock.WithCancel(context.Background())
	}
	srvCtx = net.NewIncomingContext(srvCtx, md)
	n.calls[c.id] = c
	n.sendLocked(c, &c.up, item{kind: itemOpen, data: bytes.Clone(first)})
	n.unlock()

	stopClient := clock.OnDone(ctx, func() { n.clientCtxDone(c, ctx) })
	stopSrv := clock.OnDone(srvCtx, func() {
		n.mu.Lock()
		c.wakeLocked()
		n.unlock()
	})
	n.mu.Lock()
	if c.finished {
		n.pending = append(n.pending, func() { stopClient() })
	} else {
		c.stopClient = stopClient
	}
	n.unlock()
	l.clk.Go(srvCtx, fmt.Sprintf("simnet %s %s #%d", l.addr, method, c.id), func(ctx context.Context) {
		defer stopSrv()
		c.serve(ctx)
	})
	return c, nil
}

// clientCtxDone runs when the caller's context ends: the client side fails
// at once, and the server hears about it one latency later (an RST_STREAM),
// unless the link is cut.
func (n *Network) clientCtxDone(c *call, ctx context.Context) {
	n.mu.Lock()
	defer n.unlock()
	if c.clientDone || c.clientErr != nil {
		return
	}
	c.clientErr = net.ToStatus(ctx.Err())
	c.wakeLocked()
	c.retireLocked()
	if c.finished {
		return
	}
	if n.cut[link{c.from, c.to}] || c.up.dead {
		n.watchLinkLocked(c)
		return
	}
	n.clk.AfterFunc(n.latencyLocked(c.from, c.to), func() {
		n.mu.Lock()
		defer n.unlock()
		if c.serverDone || c.serverGone {
			return
		}
		c.serverGone = true
		n.pending = append(n.pending, c.srvCancel)
		c.wakeLocked()
	})
}

// serve is the handler task: wait for the call to arrive, run the handler,
// send its result.
func (c *call) serve(ctx context.Context) {
	n := c.n
	defer func() {
		n.mu.Lock()
		c.doneLocked(false)
		n.unlock()
	}()
	var open item
	var failed bool
	n.await(c.lis.clk, c, func() bool {
		if c.err != nil || c.serverGone || ctx.Err() != nil {
			failed = true
			return true
		}
		if len(c.up.queue) > 0 {
			open = c.up.queue[0]
			c.up.queue = c.up.queue[1:]
			return true
		}
		return false
	})
	if failed {
		return
	}
	var end item
	end.kind = itemEnd
	if c.unary {
		resp, err := c.lis.h.Unary(ctx, c.method, open.data)
		if err == nil {
			err = tooBig("response", resp)
		}
		if err != nil {
			end.err = net.ToStatus(err)
		} else {
			end.data = bytes.Clone(resp)
		}
	} else {
		if err := c.lis.h.Stream(ctx, c.method, &serverStream{c: c, ctx: ctx}); err != nil {
			end.err = net.ToStatus(err)
		}
	}
	n.mu.Lock()
	if c.err == nil && !c.down.ended {
		c.down.ended = true
		n.sendLocked(c, &c.down, end)
	}
	n.unlock()
}

// recv waits for the next item of p for one side of c.
func (c *call) recv(clk clock.Clock, p *pipe, client bool, ctx context.Context) (item, error) {
	var it item
	var err error
	c.n.await(clk, c, func() bool {
		switch {
		case p.final != nil:
			err = p.final
		case c.err != nil:
			err = c.err
		case client && c.clientErr != nil:
			err = c.clientErr
		case !client && c.serverGone:
			err = net.Errorf(net.Canceled, "simnet: call cancelled by the client")
		case !client && ctx.Err() != nil:
			err = net.ToStatus(ctx.Err())
		case len(p.queue) > 0:
			it = p.queue[0]
			p.queue = p.queue[1:]
			if it.kind == itemData {
				p.unread--
				c.wakeLocked() // window space for the sender
			}
		default:
			return false
		}
		return true
	})
	return it, err
}

// send waits for window space on p and sends data for one side of c.
func (c *call) send(clk clock.Clock, p *pipe, client bool, ctx context.Context, data []byte) error {
	if err := tooBig("message", data); err != nil {
		return err
	}
	var err error
	c.n.await(clk, c, func() bool {
		switch {
		case client && (c.err != nil || c.down.ended || c.down.final != nil):
			err = io.EOF // the stream ended; Recv says how
		case client && c.clientErr != nil:
			err = io.EOF
		case client && p.ended:
			err = net.Errorf(net.FailedPrecondition, "simnet: Send after CloseSend")
		case !client && c.err != nil:
			err = c.err
		case !client && c.serverGone:
			err = net.Errorf(net.Canceled, "simnet: call cancelled by the client")
		case !client && ctx.Err() != nil:
			err = net.ToStatus(ctx.Err())
		case !client && p.ended:
			err = net.Errorf(net.FailedPrecondition, "simnet: Send after the handler returned")
		case p.full(c.n.opts.StreamWindow):
			return false
		default:
			c.n.sendLocked(c, p, item{kind: itemData, data: bytes.Clone(data)})
		}
		return true
	})
	return err
}

// Call makes a unary call.
func (cn *conn) Call(ctx context.Context, method string, req []byte) ([]byte, error) {
	if err := tooBig("request", req); err != nil {
		return nil, err
	}
	c, err := cn.start(ctx, method, true, req)
	if err != nil {
		return nil, err
	}
	n := c.n
	defer func() {
		n.mu.Lock()
		c.doneLocked(true)
		n.unlock()
	}()
	it, err := c.recv(cn.e.clk, &c.down, true, ctx)
	if err != nil {
		return nil, err
	}
	if it.err != nil {
		return nil, it.err
	}
	if it.data == nil {
		return []byte{}, nil
	}
	return it.data, nil
}

// Stream opens a bidirectional stream.
func (cn *conn) Stream(ctx context.Context, method string) (net.ClientStream, error) {
	c, err := cn.start(ctx, method, false, nil)
	if err != nil {
		return nil, err
	}
	return &clientStream{c: c, ctx: ctx, clk: cn.e.clk}, nil
}

type clientStream struct {
	c   *call
	ctx context.Context
	clk clock.Clock
}

func (s *clientStream) Send(msg []byte) error {
	return s.c.send(s.clk, &s.c.up, true, s.ctx, msg)
}

func (s *clientStream) Recv() ([]byte, error) {
	c := s.c
	it, err := c.recv(s.clk, &c.down, true, s.ctx)
	if err == nil && it.kind == itemData {
		return it.data, nil
	}
	n := c.n
	n.mu.Lock()
	defer n.unlock()
	if err == nil { // itemEnd: the handler's result
		err = io.EOF
		if it.err != nil {
			err = it.err
		}
	}
	if c.down.final == nil {
		c.down.final = err
	}
	if !c.clientDone {
		c.doneLocked(true)
	}
	return nil, err
}

func (s *clientStream) CloseSend() error {
	c := s.c
	n := c.n
	n.mu.Lock()
	defer n.unlock()
	if c.up.ended || c.err != nil || c.clientErr != nil || c.clientDone {
		return nil
	}
	c.up.ended = true
	n.sendLocked(c, &c.up, item{kind: itemEnd})
	return nil
}

type serverStream struct {
	c   *call
	ctx context.Context
}

func (s *serverStream) Send(msg []byte) error {
	return s.c.send(s.c.lis.clk, &s.c.down, false, s.ctx, msg)
}

func (s *serverStream) Recv() ([]byte, error) {
	c := s.c
	it, err := c.recv(c.lis.clk, &c.up, false, s.ctx)
	if err != nil {
		return nil, err
	}
	if it.kind == itemEnd {
		c.n.mu.Lock()
		c.up.final = io.EOF
		c.n.unlock()
		return nil, io.EOF
	}
	return it.data, nil
}
