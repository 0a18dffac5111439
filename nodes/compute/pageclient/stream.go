package pageclient

import (
	"context"
	"io"
	"sync"
	"time"

	"github.com/stratadb/strata/clock"
	"github.com/stratadb/strata/net"
	"github.com/stratadb/strata/nodes/pageserver/pageapi"
)

type getPagesStream = net.ClientStreamOf[*pageapi.GetPageRequest, *pageapi.GetPageResponse]

// stream is one GetPages stream of a pool. Requests go out in the order
// their senders took sendMu and are queued in pending in that same order;
// the pageserver answers in order, so the receiver matches each response
// to the head of pending and checks its request id (id and attempt). A
// response that does not match is a protocol violation: the stream is
// broken and every request on it fails Internal.
type stream struct {
	p      *shardPool
	kind   poolKind
	conn   *connEntry
	st     *getPagesStream
	cancel context.CancelFunc
	sendMu *clock.Mutex // orders Send with the append to pending

	// Guarded by p.mu.
	inflight  int // request slots taken: pending plus those about to send
	idleSince time.Duration
	removed   bool

	mu      sync.Mutex // guards pending and err; never held across a wait
	pending []*pending
	err     error // set once the stream broke; later requests fail with it
}

// pending is a request sent (or being sent) and not yet answered.
type pending struct {
	id      uint64
	attempt uint32
	done    *clock.Chan[reply] // capacity 1: exactly one reply is sent
}

type reply struct {
	resp *pageapi.GetPageResponse
	err  error
}

// openStream opens a GetPages stream to p's shard on e. The stream lives
// until it breaks, is reaped or the client closes, so its context is the
// client's, not a caller's.
func (c *Client) openStream(p *shardPool, k poolKind, e *connEntry) (*stream, error) {
	sctx, cancel := clock.WithCancel(c.group.Context())
	st, err := net.StreamProto[*pageapi.GetPageRequest, *pageapi.GetPageResponse](pageapi.WithTarget(sctx, p.target, c.cfg.Token),
		e.conn, pageapi.PageService_GetPages_FullMethodName)
	if err != nil {
		cancel()
		return nil, err
	}
	return &stream{p: p, kind: k, conn: e, st: st, cancel: cancel, sendMu: clock.NewMutex(c.clk)}, nil
}

// startReceiver runs s's receiver as a task of the client.
func (c *Client) startReceiver(s *stream) {
	c.group.Go("pageclient GetPages recv", func(context.Context) error {
		s.receive()
		return nil
	})
}

// receive delivers responses to their requests until the stream ends.
func (s *stream) receive() {
	for {
		resp, err := s.st.Recv()
		if err != nil {
			if err == io.EOF {
				err = net.Errorf(net.Unavailable, "pageclient: %s (shard %s) ended the GetPages stream", s.p.addr, s.p.index)
			}
			s.fail(err)
			return
		}
		s.mu.Lock()
		if len(s.pending) == 0 {
			s.mu.Unlock()
			s.fail(badResponse("%s (shard %s) sent response %d with no request in flight", s.p.addr, s.p.index, resp.GetRequestId().GetId()))
			return
		}
		p := s.pending[0]
		s.pending[0] = nil
		s.pending = s.pending[1:]
		s.mu.Unlock()
		s.p.releaseSlots(s, 1)
		if id := resp.GetRequestId(); id.GetId() != p.id || id.GetAttempt() != p.attempt {
			err := badResponse("%s (shard %s) answered request %d attempt %d where request %d attempt %d was next (answers come in request order)",
				s.p.addr, s.p.index, id.GetId(), id.GetAttempt(), p.id, p.attempt)
			s.p.c.log.Warn("pageclient: GetPages stream answered out of order; closing it", "err", err)
			p.done.TrySend(reply{err: err})
			s.fail(err)
			return
		}
		p.done.TrySend(reply{resp: resp})
	}
}

// fail breaks the stream once: every request on it gets err, the pool
// forgets it and its context is cancelled (ending the receiver).
func (s *stream) fail(err error) {
	s.mu.Lock()
	if s.err != nil {
		s.mu.Unlock()
		return
	}
	s.err = err
	pend := s.pending
	s.pending = nil
	s.mu.Unlock()
	s.cancel()
	s.p.remove(s, len(pend))
	for _, p := range pend {
		p.done.TrySend(reply{err: err})
	}
}

// roundTrip sends req on s (the caller holds a request slot) and waits for
// its answer. When ctx ends first the stream is closed: the request may
// have been sent, and a stream whose request timed out is suspect.
func (s *stream) roundTrip(ctx context.Context, req *pageapi.GetPageRequest) (*pageapi.GetPageResponse, error) {
	p := &pending{id: req.GetRequestId().GetId(), attempt: req.GetRequestId().GetAttempt(), done: clock.NewChan[reply](s.p.c.clk, 1)}
	if err := s.sendMu.Lock(ctx); err != nil {
		s.p.releaseSlots(s, 1)
		return nil, err
	}
	s.mu.Lock()
	if err := s.err; err != nil {
		s.mu.Unlock()
		s.sendMu.Unlock()
		s.p.releaseSlots(s, 1)
		return nil, err
	}
	s.pending = append(s.pending, p)
	s.mu.Unlock()
	err := s.st.Send(req)
	s.sendMu.Unlock()
	// io.EOF: the stream has ended; the receiver reports how, to every
	// pending request, this one included.
	if err != nil && err != io.EOF {
		s.fail(err)
	}
	r, _, err := p.done.Recv(ctx)
	if err != nil {
		s.fail(net.Errorf(net.Unavailable, "pageclient: stream to %s (shard %s) closed: a request on it was abandoned (%v)", s.p.addr, s.p.index, err))
		return nil, err
	}
	return r.resp, r.err
}
