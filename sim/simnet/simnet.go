package simnet

import (
	"context"
	"math/rand/v2"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/stratadb/strata/clock"
	"github.com/stratadb/strata/net"
)

// Latency is a one-way delivery-latency distribution: Base, plus a uniform
// draw in [0, Jitter), plus, with probability TailProb, a uniform draw in
// [0, Tail) modelling the occasional stall (GC pause, retransmit).
type Latency struct {
	Base     time.Duration
	Jitter   time.Duration
	TailProb float64
	Tail     time.Duration
}

// DefaultLatency is a datacenter-like link: 200µs–500µs, with 1% of
// messages delayed up to 20ms more.
func DefaultLatency() Latency {
	return Latency{Base: 200 * time.Microsecond, Jitter: 300 * time.Microsecond, TailProb: 0.01, Tail: 20 * time.Millisecond}
}

// Options configure a Network. Zero fields take the defaults noted.
type Options struct {
	// Latency is every link's distribution unless SetLinkLatency overrides
	// it. The zero value means DefaultLatency().
	Latency Latency
	// StreamWindow bounds the messages in flight plus unread in one
	// direction of one call; a sender blocks beyond it. Default 64.
	StreamWindow int
	// DeadLinkTimeout is how long a call survives after its link started
	// dropping its messages (or while idle across a partition) before it
	// breaks with Unavailable: the keepalive timeout of a real transport.
	// Default 10s.
	DeadLinkTimeout time.Duration
	// OnDeliver, if set, is called for every message delivered (including
	// call openings and final statuses, with n the payload size). It runs
	// in a timer callback: it must not block. The simulator feeds it to
	// its trace hash.
	OnDeliver func(from, to, method string, n int)
}

// Limits on the options, so a typo cannot make a queue unbounded.
const (
	maxStreamWindow = 1 << 16
	firstPort       = 40000
)

func (o Options) withDefaults() Options {
	if o.Latency == (Latency{}) {
		o.Latency = DefaultLatency()
	}
	if o.StreamWindow <= 0 {
		o.StreamWindow = 64
	}
	o.StreamWindow = min(o.StreamWindow, maxStreamWindow)
	if o.DeadLinkTimeout <= 0 {
		o.DeadLinkTimeout = 10 * time.Second
	}
	return o
}

type link struct{ from, to string }

// Network is a simulated network. Its methods are safe for concurrent use
// (real-clock tests run tasks in parallel); under the simulator one task
// runs at a time anyway.
type Network struct {
	clk  clock.Clock
	opts Options

	mu        sync.Mutex
	rng       *rand.Rand
	nodes     map[string]*node
	listeners map[string]*listener // by address
	calls     map[uint64]*call     // live calls, iterated in id order
	cut       map[link]bool        // partitioned directions: cutHolds > 0
	cutHolds  map[link]int         // Partition calls and unreleased Cuts per direction
	slow      map[link]Latency     // per-direction latency overrides
	slowHolds map[link][]*slowHold // unreleased SlowLinks, latest last
	healEpoch uint64               // bumped by Heal, which voids older releases
	nextID    uint64
	nextPort  int
	// pending holds work to run right after the lock is released:
	// cancelling handler contexts runs their callbacks synchronously, and
	// some of those take the lock again.
	pending []func()
}

// unlock releases mu and then runs the pending work queued under it.
func (n *Network) unlock() {
	p := n.pending
	n.pending = nil
	n.mu.Unlock()
	for _, f := range p {
		f()
	}
}

type node struct {
	id    string
	epoch uint64
	lis   []*listener // in creation order
	conns []*conn     // in creation order
}

// New returns an empty network. clk drives message delivery (in the
// simulator, the world's clock, so deliveries survive node crashes); rng is
// the source of latency draws and is used only under the network's lock.
func New(clk clock.Clock, rng *rand.Rand, opts Options) *Network {
	return &Network{
		clk:       clk,
		opts:      opts.withDefaults(),
		rng:       rng,
		nodes:     map[string]*node{},
		listeners: map[string]*listener{},
		calls:     map[uint64]*call{},
		cut:       map[link]bool{},
		cutHolds:  map[link]int{},
		slow:      map[link]Latency{},
		slowHolds: map[link][]*slowHold{},
		nextPort:  firstPort,
	}
}

func (n *Network) nodeLocked(id string) *node {
	nd := n.nodes[id]
	if nd == nil {
		nd = &node{id: id}
		n.nodes[id] = nd
	}
	return nd
}

// Node returns node id's view of the network, whose handler tasks run on
// the network's clock. Use Endpoint to give a node its own clock.
func (n *Network) Node(id string) net.Network { return n.Endpoint(id, n.clk) }

// Endpoint returns node id's view for its current incarnation: handler tasks
// for its listeners are started with clk.Go and its calls block on clk.
// After CrashNode(id), views obtained earlier fail every operation with
// Unavailable.
func (n *Network) Endpoint(id string, clk clock.Clock) net.Network {
	n.mu.Lock()
	defer n.unlock()
	return &endpoint{n: n, id: id, clk: clk, epoch: n.nodeLocked(id).epoch}
}

// Partition cuts both directions between nodes a and b.
func (n *Network) Partition(a, b string) {
	n.PartitionOneWay(a, b)
	n.PartitionOneWay(b, a)
}

// PartitionOneWay drops everything sent from node from to node to, until
// Heal. Calls already open across the cut break after DeadLinkTimeout
// unless healed before.
func (n *Network) PartitionOneWay(from, to string) {
	n.mu.Lock()
	defer n.unlock()
	n.cutLocked(link{from, to})
}

func (n *Network) cutLocked(l link) {
	n.cutHolds[l]++
	n.cut[l] = true
	for _, c := range n.liveCallsLocked() {
		if (c.from == l.from && c.to == l.to) || (c.from == l.to && c.to == l.from) {
			n.watchLinkLocked(c)
		}
	}
}

// Cut is PartitionOneWay until release is called: a fault that ends on its
// own. Cuts are counted, so a direction cut by overlapping faults (or also
// by Partition) stays cut until the last of them ends; release ends only
// this one. Release is idempotent and does nothing after a Heal.
func (n *Network) Cut(from, to string) (release func()) {
	n.mu.Lock()
	defer n.unlock()
	l, epoch := link{from, to}, n.healEpoch
	n.cutLocked(l)
	done := false
	return func() {
		n.mu.Lock()
		defer n.unlock()
		if done || epoch != n.healEpoch {
			return
		}
		done = true
		if n.cutHolds[l]--; n.cutHolds[l] <= 0 {
			delete(n.cutHolds, l)
			delete(n.cut, l)
		}
	}
}

// slowHold is one SlowLink's latency.
type slowHold struct{ lat Latency }

// SlowLink is SetLinkLatency until release is called. Overlapping slow
// links of one direction stack: the latest unreleased one applies, and
// releasing one leaves the others (and SetLinkLatency's override, under
// them) in force. Release is idempotent and does nothing after a Heal.
func (n *Network) SlowLink(from, to string, lat Latency) (release func()) {
	n.mu.Lock()
	defer n.unlock()
	l, h := link{from, to}, &slowHold{lat}
	n.slowHolds[l] = append(n.slowHolds[l], h)
	return func() {
		n.mu.Lock()
		defer n.unlock()
		hs := n.slowHolds[l]
		if i := slices.Index(hs, h); i >= 0 {
			hs = slices.Delete(hs, i, i+1)
			if len(hs) == 0 {
				delete(n.slowHolds, l)
			} else {
				n.slowHolds[l] = hs
			}
		}
	}
}

// Heal removes every partition, cut and latency override.
func (n *Network) Heal() {
	n.mu.Lock()
	defer n.unlock()
	clear(n.cut)
	clear(n.cutHolds)
	clear(n.slow)
	clear(n.slowHolds)
	n.healEpoch++
}

// SetLinkLatency overrides the latency of the direction from → to.
func (n *Network) SetLinkLatency(from, to string, l Latency) {
	n.mu.Lock()
	defer n.unlock()
	n.slow[link{from, to}] = l
}

// BreakConnections breaks every open call to or from node id with
// Unavailable, as a reset TCP connection would. Conns stay usable: like
// gRPC channels they reconnect for the next call.
func (n *Network) BreakConnections(id string) {
	n.mu.Lock()
	defer n.unlock()
	for _, c := range n.liveCallsLocked() {
		if c.from == id || c.to == id {
			c.breakLocked(net.Errorf(net.Unavailable, "simnet: connection between %s and %s broken", c.from, c.to))
		}
	}
}

// CrashNode ends node id's incarnation on the network: its listeners close,
// its calls break, its Conns close, and its endpoints fail from now on. The
// next incarnation gets a fresh Endpoint and must Listen again.
func (n *Network) CrashNode(id string) {
	n.mu.Lock()
	defer n.unlock()
	nd := n.nodeLocked(id)
	nd.epoch++
	for _, l := range nd.lis {
		n.closeListenerLocked(l, "node "+id+" crashed")
	}
	nd.lis = nil
	for _, c := range nd.conns {
		c.closed = true
	}
	nd.conns = nil
	for _, c := range n.liveCallsLocked() {
		if c.from == id || c.to == id {
			c.breakLocked(net.Errorf(net.Unavailable, "simnet: node %s crashed", id))
		}
	}
}

// Listeners returns the addresses being served, sorted (for tests and
// status displays).
func (n *Network) Listeners() []string {
	n.mu.Lock()
	defer n.unlock()
	out := make([]string, 0, len(n.listeners))
	for a := range n.listeners {
		out = append(out, a)
	}
	sort.Strings(out)
	return out
}

// OpenCalls returns the number of calls still tracked (not yet finished on
// both sides, nor broken). Tests use it to prove nothing leaks.
func (n *Network) OpenCalls() int {
	n.mu.Lock()
	defer n.unlock()
	return len(n.calls)
}

// liveCallsLocked returns the open calls in id (creation) order.
func (n *Network) liveCallsLocked() []*call {
	ids := make([]uint64, 0, len(n.calls))
	for id := range n.calls {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	out := make([]*call, len(ids))
	for i, id := range ids {
		out[i] = n.calls[id]
	}
	return out
}

func (n *Network) latencyLocked(from, to string) time.Duration {
	l, ok := n.slow[link{from, to}]
	if hs := n.slowHolds[link{from, to}]; len(hs) > 0 {
		l, ok = hs[len(hs)-1].lat, true
	}
	if !ok {
		l = n.opts.Latency
	}
	d := l.Base
	if l.Jitter > 0 {
		d += time.Duration(n.rng.Int64N(int64(l.Jitter)))
	}
	if l.TailProb > 0 && l.Tail > 0 && n.rng.Float64() < l.TailProb {
		d += time.Duration(n.rng.Int64N(int64(l.Tail)))
	}
	return d
}

// watchLinkLocked arms the keepalive model for c: after DeadLinkTimeout, c
// breaks if one of its pipes lost a message or its link is still cut.
func (n *Network) watchLinkLocked(c *call) {
	if c.watched {
		return
	}
	c.watched = true
	n.clk.AfterFunc(n.opts.DeadLinkTimeout, func() {
		n.mu.Lock()
		defer n.unlock()
		c.watched = false
		if c.err != nil || c.finished {
			return
		}
		if c.up.dead || c.down.dead || n.cut[link{c.from, c.to}] || n.cut[link{c.to, c.from}] {
			c.breakLocked(net.Errorf(net.Unavailable, "simnet: link between %s and %s dead for %v", c.from, c.to, n.opts.DeadLinkTimeout))
		}
	})
}

func (n *Network) closeListenerLocked(l *listener, why string) {
	if l.closed {
		return
	}
	l.closed = true
	if n.listeners[l.addr] == l {
		delete(n.listeners, l.addr)
	}
	for _, c := range n.liveCallsLocked() {
		if c.lis == l {
			c.breakLocked(net.Errorf(net.Unavailable, "simnet: listener %s closed: %s", l.addr, why))
		}
	}
}

// splitAddr checks the "host:port" shape and returns the port.
func splitAddr(addr string) (host string, port int, err error) {
	i := strings.LastIndexByte(addr, ':')
	if i <= 0 {
		return "", 0, net.Errorf(net.InvalidArgument, "simnet: address %q is not host:port", addr)
	}
	port, perr := strconv.Atoi(addr[i+1:])
	if perr != nil || port < 0 || port > 65535 {
		return "", 0, net.Errorf(net.InvalidArgument, "simnet: address %q has a bad port", addr)
	}
	return addr[:i], port, nil
}

// endpoint is one node incarnation's view.
type endpoint struct {
	n     *Network
	id    string
	clk   clock.Clock
	epoch uint64
}

func (e *endpoint) aliveLocked() error {
	if e.n.nodeLocked(e.id).epoch != e.epoch {
		return net.Errorf(net.Unavailable, "simnet: node %s: this incarnation has ended", e.id)
	}
	return nil
}

// Listen serves h on addr. The address stays taken until the listener
// closes or its node crashes.
func (e *endpoint) Listen(addr string, h net.Handler) (net.Listener, error) {
	host, port, err := splitAddr(addr)
	if err != nil {
		return nil, err
	}
	n := e.n
	n.mu.Lock()
	defer n.unlock()
	if err := e.aliveLocked(); err != nil {
		return nil, err
	}
	if port == 0 {
		for n.listeners[host+":"+strconv.Itoa(n.nextPort)] != nil {
			n.nextPort++
		}
		addr = host + ":" + strconv.Itoa(n.nextPort)
		n.nextPort++
	}
	if n.listeners[addr] != nil {
		return nil, net.Errorf(net.AlreadyExists, "simnet: address %s already in use", addr)
	}
	l := &listener{n: n, node: e.id, addr: addr, h: h, clk: e.clk}
	n.listeners[addr] = l
	nd := n.nodeLocked(e.id)
	nd.lis = append(nd.lis, l)
	return l, nil
}

// Dial returns a connection to addr. Like a gRPC channel it is lazy: an
// address nobody serves makes each call fail Unavailable, and a listener
// that appears later is reached by later calls.
func (e *endpoint) Dial(ctx context.Context, addr string) (net.Conn, error) {
	if _, _, err := splitAddr(addr); err != nil {
		return nil, err
	}
	n := e.n
	n.mu.Lock()
	defer n.unlock()
	if err := e.aliveLocked(); err != nil {
		return nil, err
	}
	c := &conn{e: e, addr: addr}
	nd := n.nodeLocked(e.id)
	nd.conns = append(nd.conns, c)
	return c, nil
}

type listener struct {
	n      *Network
	node   string
	addr   string
	h      net.Handler
	clk    clock.Clock
	closed bool
}

func (l *listener) Addr() string { return l.addr }

func (l *listener) Close() error {
	l.n.mu.Lock()
	defer l.n.unlock()
	l.n.closeListenerLocked(l, "closed")
	nd := l.n.nodeLocked(l.node)
	for i, x := range nd.lis {
		if x == l {
			nd.lis = append(nd.lis[:i], nd.lis[i+1:]...)
			break
		}
	}
	return nil
}

type conn struct {
	e      *endpoint
	addr   string
	closed bool
}

func (c *conn) Close() error {
	n := c.e.n
	n.mu.Lock()
	defer n.unlock()
	if c.closed {
		return nil
	}
	c.closed = true
	for _, cl := range n.liveCallsLocked() {
		if cl.conn == c {
			cl.breakLocked(net.Errorf(net.Canceled, "simnet: connection closed"))
		}
	}
	nd := n.nodeLocked(c.e.id)
	for i, x := range nd.conns {
		if x == c {
			nd.conns = append(nd.conns[:i], nd.conns[i+1:]...)
			break
		}
	}
	return nil
}
