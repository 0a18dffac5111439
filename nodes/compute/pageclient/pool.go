package pageclient

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/stratadb/strata/clock"
	"github.com/stratadb/strata/engine/shard"
	"github.com/stratadb/strata/net"
	"github.com/stratadb/strata/nodes/pageserver/pageapi"
)

// errPoolClosed: the pool was closed (its shard left the map, or the client
// closed) between an attempt choosing it and using it. Unavailable, so the
// attempt is retried on the current map.
var errPoolClosed = errors.New("pageclient: shard pool closed")

// poolKind selects a shard pool's normal or bulk half.
type poolKind int

const (
	normalPool poolKind = iota
	bulkPool
)

func (k poolKind) String() string {
	if k == bulkPool {
		return "bulk"
	}
	return "normal"
}

// connEntry is one connection of a pool and the clients (streams and unary
// calls) it carries.
type connEntry struct {
	conn      net.Conn
	clients   int
	idleSince time.Duration // Mono when clients last dropped to 0
}

// shardPool is everything the client holds for one shard at one address:
// per kind (normal, bulk) a set of connections, each carrying up to
// ClientsPerConn (BulkClientsPerConn) clients, and a set of GetPages
// streams, each holding one client and up to InflightPerStream requests.
// Unary calls lease a client of the normal connections for their duration.
//
// Everything below mu is guarded by it. mu is a sync.Mutex, never held
// across a wait (in the simulator a task never parks holding it): every
// request takes it twice, and the clock package's FIFO mutex would hand it
// from task to task in a convoy under load. A caller that finds no room
// parks on a Waiter it registers in waiters under mu; whatever frees a
// stream slot, a client or a stream opening wakes them all.
type shardPool struct {
	c      *Client
	key    string
	index  shard.ShardIndex
	addr   string
	target pageapi.Target

	mu      sync.Mutex
	waiters []*poolWaiter
	closed  atomic.Bool // written under mu; read by the map update without it

	conns   [2][]*connEntry
	streams [2][]*stream
	opening [2]int // streams being opened (counted against the limit)
}

func newShardPool(c *Client, key string, idx shard.ShardIndex, addr string) *shardPool {
	return &shardPool{c: c, key: key, index: idx, addr: addr,
		target: pageapi.Target{Shard: shard.TenantShardID{TenantID: c.cfg.Tenant, Shard: idx}, Timeline: c.cfg.Timeline}}
}

// poolWaiter is a task parked until the pool changes.
type poolWaiter struct{ w clock.Waiter }

// waitLocked parks the caller (mu held) until the pool changes or ctx ends
// and returns with mu held again: ctx's error, or nil (the caller re-checks
// what it waits for; a wake-up may be spurious).
func (p *shardPool) waitLocked(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	pw := &poolWaiter{w: p.c.clk.NewWaiter()}
	p.waiters = append(p.waiters, pw)
	p.mu.Unlock()
	stop := clock.OnDone(ctx, pw.w.Wake)
	pw.w.Wait()
	stop()
	p.mu.Lock()
	if i := slices.Index(p.waiters, pw); i >= 0 {
		p.waiters = slices.Delete(p.waiters, i, i+1)
	}
	return ctx.Err()
}

// wakeLocked wakes every parked caller.
func (p *shardPool) wakeLocked() {
	for _, pw := range p.waiters {
		pw.w.Wake()
	}
	clear(p.waiters)
	p.waiters = p.waiters[:0]
}

func (p *shardPool) limits(k poolKind) (perConn, streams int) {
	if k == bulkPool {
		return p.c.cfg.BulkClientsPerConn, p.c.cfg.BulkStreamsPerShard
	}
	return p.c.cfg.ClientsPerConn, p.c.cfg.StreamsPerShard
}

func (p *shardPool) closedErr() error {
	return net.Wrap(net.Unavailable, fmt.Errorf("%w: shard %s at %s", errPoolClosed, p.index, p.addr))
}

// leaseConnLocked takes a client slot on a connection of kind k: the first
// connection with room, else a new one while under MaxConnsPerShard. It
// returns nil (and no error) when every connection is full and no more may
// be dialled.
func (p *shardPool) leaseConnLocked(ctx context.Context, k poolKind) (*connEntry, error) {
	perConn, _ := p.limits(k)
	for _, e := range p.conns[k] {
		if e.clients < perConn {
			e.clients++
			return e, nil
		}
	}
	if len(p.conns[k]) >= p.c.cfg.MaxConnsPerShard {
		return nil, nil
	}
	conn, err := p.c.net.Dial(ctx, p.addr)
	if err != nil {
		return nil, err
	}
	e := &connEntry{conn: conn, clients: 1}
	p.conns[k] = append(p.conns[k], e)
	p.c.m.conns.WithLabelValues(k.String()).Inc()
	return e, nil
}

func (p *shardPool) releaseConnLocked(e *connEntry) { p.releaseConnAtLocked(e, p.c.clk.Mono()) }

// releaseConnAtLocked gives back a client slot last used at "at": a
// connection left without clients is idle since its last client's last
// use, so a stream and its connection reaped together go in one pass.
func (p *shardPool) releaseConnAtLocked(e *connEntry, at time.Duration) {
	e.clients--
	if e.clients == 0 {
		e.idleSince = at
	}
}

// acquireStream returns a GetPages stream of kind k with a request slot
// taken for the caller (released when the answer arrives or the stream
// breaks). Preference: an idle stream; else a new stream while under the
// stream limit (Neon's one-request-per-stream shape); else the least loaded
// stream with room (pipelining); else wait.
func (p *shardPool) acquireStream(ctx context.Context, k poolKind) (*stream, error) {
	p.mu.Lock()
	for {
		if p.closed.Load() {
			p.mu.Unlock()
			return nil, p.closedErr()
		}
		var best *stream
		for _, s := range p.streams[k] {
			if s.inflight == 0 {
				best = s
				break
			}
		}
		_, maxStreams := p.limits(k)
		if best == nil && len(p.streams[k])+p.opening[k] < maxStreams {
			e, err := p.leaseConnLocked(ctx, k)
			if err != nil {
				p.mu.Unlock()
				return nil, err
			}
			if e != nil {
				return p.openStreamLocked(k, e)
			}
		}
		if best == nil {
			for _, s := range p.streams[k] {
				if s.inflight < p.c.cfg.InflightPerStream && (best == nil || s.inflight < best.inflight) {
					best = s
				}
			}
		}
		if best != nil {
			best.inflight++
			p.mu.Unlock()
			return best, nil
		}
		if err := p.waitLocked(ctx); err != nil {
			p.mu.Unlock()
			return nil, err
		}
	}
}

// openStreamLocked opens a stream on e (whose client slot is taken) with mu
// held, and returns it with one request slot taken, mu released. The
// stream is published, and its receiver started, only once it is open, so
// a receiver never breaks a stream the pool does not list.
func (p *shardPool) openStreamLocked(k poolKind, e *connEntry) (*stream, error) {
	p.opening[k]++
	p.mu.Unlock()
	s, err := p.c.openStream(p, k, e)
	p.mu.Lock()
	p.opening[k]--
	if err == nil && p.closed.Load() {
		err = p.closedErr()
		defer s.cancel() // after Unlock: cancelling runs callbacks
	}
	if err != nil {
		p.releaseConnLocked(e)
		p.wakeLocked()
		p.mu.Unlock()
		return nil, err
	}
	s.inflight = 1
	p.streams[k] = append(p.streams[k], s)
	p.c.m.streams.WithLabelValues(k.String()).Inc()
	p.c.startReceiver(s)
	p.mu.Unlock()
	return s, nil
}

// releaseSlots gives back n request slots of s.
func (p *shardPool) releaseSlots(s *stream, n int) {
	p.mu.Lock()
	s.inflight -= n
	if s.inflight == 0 {
		s.idleSince = p.c.clk.Mono()
	}
	p.wakeLocked()
	p.mu.Unlock()
}

// remove drops a broken stream from the pool (once) and gives back its
// client slot and n request slots.
func (p *shardPool) remove(s *stream, n int) {
	p.mu.Lock()
	s.inflight -= n
	p.removeLocked(s)
	p.wakeLocked()
	p.mu.Unlock()
}

func (p *shardPool) removeLocked(s *stream) {
	if s.removed {
		return
	}
	s.removed = true
	if i := slices.Index(p.streams[s.kind], s); i >= 0 {
		p.streams[s.kind] = slices.Delete(p.streams[s.kind], i, i+1)
	}
	at := p.c.clk.Mono()
	if s.inflight <= 0 {
		at = s.idleSince
	}
	p.releaseConnAtLocked(s.conn, at)
	p.c.m.streams.WithLabelValues(s.kind.String()).Dec()
}

// leaseClient takes a client slot on a normal connection for a unary call;
// release gives it back.
func (p *shardPool) leaseClient(ctx context.Context) (conn net.Conn, release func(), err error) {
	p.mu.Lock()
	for {
		if p.closed.Load() {
			p.mu.Unlock()
			return nil, nil, p.closedErr()
		}
		e, err := p.leaseConnLocked(ctx, normalPool)
		if err != nil {
			p.mu.Unlock()
			return nil, nil, err
		}
		if e != nil {
			p.mu.Unlock()
			return e.conn, func() {
				p.mu.Lock()
				p.releaseConnLocked(e)
				p.wakeLocked()
				p.mu.Unlock()
			}, nil
		}
		if err := p.waitLocked(ctx); err != nil {
			p.mu.Unlock()
			return nil, nil, err
		}
	}
}

// reap closes the streams and connections idle for IdleTimeout (all idle
// ones when retired: the shard left the map), and closes the pool itself
// when retired and empty (or when force: the client is closing, and every
// stream goes, busy or not). It reports whether the pool is closed.
func (p *shardPool) reap(now time.Duration, retired, force bool) bool {
	p.mu.Lock()
	idle := p.c.cfg.IdleTimeout
	var streams []*stream
	var conns []net.Conn
	for k := range p.streams {
		for _, s := range slices.Clone(p.streams[k]) {
			if force || s.inflight == 0 && (retired || now-s.idleSince >= idle) {
				p.removeLocked(s)
				streams = append(streams, s)
			}
		}
	}
	for k := range p.conns {
		keep := p.conns[k][:0]
		for _, e := range p.conns[k] {
			if force || e.clients == 0 && (retired || now-e.idleSince >= idle) {
				conns = append(conns, e.conn)
				p.c.m.conns.WithLabelValues(poolKind(k).String()).Dec()
				continue
			}
			keep = append(keep, e)
		}
		clear(p.conns[k][len(keep):])
		p.conns[k] = keep
	}
	empty := len(p.streams[0])+len(p.streams[1])+len(p.conns[0])+len(p.conns[1])+p.opening[0]+p.opening[1] == 0
	if force || retired && empty {
		p.closed.Store(true)
		p.wakeLocked()
	}
	closed := p.closed.Load()
	p.mu.Unlock()
	why := "idle"
	if force {
		why = "client closed"
	}
	for _, s := range streams {
		s.fail(net.Errorf(net.Unavailable, "pageclient: stream to shard %s at %s closed: %s", p.index, p.addr, why))
	}
	for _, c := range conns {
		_ = c.Close()
	}
	return closed
}

// counts is the pool's size for tests and logs: connections and streams
// per kind, and request slots in use.
type poolCounts struct {
	Conns, Streams [2]int
	Inflight       int
	MaxInflight    int // the most in flight on one stream now
}

func (p *shardPool) counts() poolCounts {
	p.mu.Lock()
	defer p.mu.Unlock()
	var c poolCounts
	for k := range 2 {
		c.Conns[k], c.Streams[k] = len(p.conns[k]), len(p.streams[k])
		for _, s := range p.streams[k] {
			c.Inflight += s.inflight
			c.MaxInflight = max(c.MaxInflight, s.inflight)
		}
	}
	return c
}
