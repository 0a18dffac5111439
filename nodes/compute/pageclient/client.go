package pageclient

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"

	"github.com/stratadb/strata/clock"
	"github.com/stratadb/strata/engine/invariants"
	"github.com/stratadb/strata/engine/keys"
	"github.com/stratadb/strata/engine/lsn"
	"github.com/stratadb/strata/engine/shard"
	"github.com/stratadb/strata/net"
	"github.com/stratadb/strata/nodes/node"
	"github.com/stratadb/strata/nodes/pageserver/pageapi"
)

// ErrClosed is wrapped by the error of a call on a closed Client.
var ErrClosed = errors.New("pageclient: client closed")

// errNotRun stands for a part whose task never started (the call ended
// first).
var errNotRun = errors.New("pageclient: part not sent: the call ended")

// ReadLSN is the LSN a read is served at: Request, or any LSN up to it at
// or above NotModifiedSince when that is set (0 = unset).
type ReadLSN struct {
	Request, NotModifiedSince lsn.LSN
}

// Request is a GetPages request: blocks of one relation fork, at one LSN.
// The blocks may belong to any shards; the answer is in request order.
type Request struct {
	Rel    keys.RelTag
	Blocks []uint32
	LSN    ReadLSN
	// Class is sent as is; 0 (UNKNOWN) is sent as NORMAL.
	Class pageapi.GetPageClass
}

// Stats are running totals, for callers that print them.
type Stats struct {
	Requests, Retries, MapUpdates int64
}

// routing is one shard map and the pool of each of its shards. An attempt
// loads the current routing once and uses it throughout, so a map swapped
// meanwhile affects only later attempts.
type routing struct {
	m     ShardMap
	pools []*shardPool
}

// Client is the compute's page client. Safe for concurrent use.
type Client struct {
	cfg   Config
	clk   clock.Clock
	net   net.Network
	log   *slog.Logger
	m     *metrics
	group *clock.Group // receivers and the reaper

	rngMu sync.Mutex
	rng   *rand.Rand

	route  atomic.Pointer[routing]
	nextID atomic.Uint64

	// mu orders map updates, the reaper and Close; attempts never take it.
	mu     *clock.Mutex
	pools  []*shardPool // every open pool, in creation order
	byKey  map[string]*shardPool
	closed atomic.Bool // written under mu

	requests, retries, updates atomic.Int64
}

// New starts a client for cfg's tenant and timeline with shard map m. It
// uses env's clock, network, random source (for back-off jitter; a source
// seeded from it), log and metrics registry (its collectors are registered
// there; nil: not registered). Close releases it.
func New(env node.Env, cfg Config, m ShardMap) (*Client, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	var reg prometheus.Registerer
	if env.Metrics != nil {
		reg = env.Metrics
	}
	met, err := newMetrics(reg)
	if err != nil {
		return nil, err
	}
	log := env.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c := &Client{cfg: cfg, clk: env.Clock, net: env.Net, log: log.With("component", "pageclient"), m: met,
		group: clock.NewGroup(env.Clock, context.Background()),
		rng:   rand.New(rand.NewPCG(env.Rand.Uint64(), env.Rand.Uint64())),
		mu:    clock.NewMutex(env.Clock), byKey: map[string]*shardPool{}}
	_ = c.mu.Lock(context.Background())
	c.installLocked(m.clone())
	c.mu.Unlock()
	c.group.Go("pageclient reaper", c.reapLoop)
	return c, nil
}

// ShardMap returns the current shard map.
func (c *Client) ShardMap() ShardMap { return c.route.Load().m.clone() }

// Stats returns the running totals.
func (c *Client) Stats() Stats {
	return Stats{Requests: c.requests.Load(), Retries: c.retries.Load(), MapUpdates: c.updates.Load()}
}

// UpdateShardMap swaps in next if it may replace the current map
// (ShardMap.CheckUpdate): requests in flight finish on the old map, and
// every attempt that starts afterwards — retries included — routes by the
// new one. A refused map leaves the current one in place.
func (c *Client) UpdateShardMap(next ShardMap) error {
	_ = c.mu.Lock(context.Background())
	defer c.mu.Unlock()
	if c.closed.Load() {
		return ErrClosed
	}
	cur := c.route.Load().m
	if err := cur.CheckUpdate(next); err != nil {
		c.m.mapUpdates.WithLabelValues("refused").Inc()
		c.log.Warn("pageclient: shard map update refused", "from", cur.String(), "to", next.String(), "err", err)
		return err
	}
	c.installLocked(next.clone())
	// The pools of shards that left the map close now if idle (else at a
	// later pass, once their requests are done).
	c.reapLocked(false)
	c.updates.Add(1)
	c.m.mapUpdates.WithLabelValues("applied").Inc()
	c.log.Info("pageclient: shard map updated", "from", cur.String(), "to", next.String())
	return nil
}

// installLocked makes m current, reusing the open pool of every shard
// whose index and address are unchanged.
func (c *Client) installLocked(m ShardMap) {
	r := &routing{m: m, pools: make([]*shardPool, m.Shards())}
	for n := range r.pools {
		idx := m.Index(shard.ShardNumber(n))
		key := idx.String() + "@" + m.Addrs[n]
		p := c.byKey[key]
		if p == nil || p.closed.Load() {
			p = newShardPool(c, key, idx, m.Addrs[n])
			c.byKey[key] = p
			c.pools = append(c.pools, p)
		}
		r.pools[n] = p
	}
	c.route.Store(r)
	c.m.shardCount.Set(float64(m.Count))
}

// reapLoop closes idle streams and connections, and the pools of shards
// that left the map once they are idle, every quarter of IdleTimeout.
func (c *Client) reapLoop(ctx context.Context) error {
	every := max(c.cfg.IdleTimeout/4, time.Millisecond)
	for clock.Sleep(ctx, c.clk, every) == nil {
		c.reap(false)
	}
	return nil
}

func (c *Client) reap(force bool) {
	_ = c.mu.Lock(context.Background())
	defer c.mu.Unlock()
	c.reapLocked(force)
}

func (c *Client) reapLocked(force bool) {
	cur := c.route.Load()
	now := c.clk.Mono()
	keep := c.pools[:0]
	for _, p := range c.pools {
		current := false
		for _, q := range cur.pools {
			current = current || q == p
		}
		if p.reap(now, !current, force) {
			if c.byKey[p.key] == p {
				delete(c.byKey, p.key)
			}
			continue
		}
		keep = append(keep, p)
	}
	clear(c.pools[len(keep):])
	c.pools = keep
}

// Close fails every request in flight, closes every stream and connection
// and stops the client's tasks. Calls after Close fail with ErrClosed.
func (c *Client) Close() error {
	_ = c.mu.Lock(context.Background())
	if c.closed.Load() {
		c.mu.Unlock()
		return nil
	}
	c.closed.Store(true)
	c.mu.Unlock()
	c.group.Cancel()
	c.reap(true)
	return c.group.Wait()
}

func (c *Client) isClosed() bool { return c.closed.Load() }

// GetPages reads req's blocks and returns their images in request order.
// Blocks are split by owner shard and the parts sent in parallel; a part
// that fails retryably is retried on its own (on the map current then,
// which may split it further). The error is a *net.Status: Internal for a
// wrong answer (never retried), the pageserver's code for a refusal
// (NotFound, InvalidArgument, …), DeadlineExceeded when the call timed out.
func (c *Client) GetPages(ctx context.Context, req Request) ([][]byte, error) {
	const method = "GetPages"
	start := c.clk.Mono()
	out, err := c.getPages(ctx, req)
	c.observe(method, start, err)
	if err == nil {
		c.m.pages.Add(float64(len(out)))
	}
	return out, err
}

func (c *Client) getPages(ctx context.Context, req Request) ([][]byte, error) {
	n := len(req.Blocks)
	if n == 0 {
		return nil, net.Errorf(net.InvalidArgument, "pageclient: GetPages with no blocks")
	}
	if c.isClosed() {
		return nil, net.Wrap(net.FailedPrecondition, ErrClosed)
	}
	if req.Class == pageapi.GetPageClass_GET_PAGE_CLASS_UNKNOWN {
		req.Class = pageapi.GetPageClass_GET_PAGE_CLASS_NORMAL
	}
	cctx, cancel := clock.WithTimeout(c.clk, ctx, c.cfg.CallTimeout)
	defer cancel()
	out := make([][]byte, n)
	filled := make([]bool, n)
	positions := make([]int, n)
	for i := range positions {
		positions[i] = i
	}
	if err := c.fetch(cctx, &req, positions, out, filled, 0); err != nil {
		return nil, c.callErr(ctx, cctx, "GetPages", err)
	}
	if err := checkFilled(filled); err != nil {
		return nil, err
	}
	return out, nil
}

// fetch reads the request's blocks at positions: it splits them by owner
// under the current map and fetches the parts, in parallel when several.
func (c *Client) fetch(ctx context.Context, req *Request, positions []int, out [][]byte, filled []bool, attempt int) error {
	r := c.route.Load()
	blocks := req.Blocks
	if len(positions) != len(req.Blocks) {
		blocks = make([]uint32, len(positions))
		for i, at := range positions {
			blocks[i] = req.Blocks[at]
		}
	}
	parts := Split(r.m, req.Rel, blocks, c.cfg.MaxBlocksPerRequest)
	if invariants.Enabled {
		if err := checkParts(len(blocks), blocks, parts); err != nil {
			return err
		}
	}
	next := 0
	for i := range parts {
		for j, at := range parts[i].Positions {
			if c.cfg.Bugs.ReassembleOutOfOrder {
				at, next = next, next+1 // the planted bug: concatenated in part order
			}
			parts[i].Positions[j] = positions[at]
		}
	}
	if len(parts) == 1 {
		return c.fetchPart(ctx, r, req, parts[0], out, filled, attempt)
	}
	errs := make([]error, len(parts))
	g := clock.NewGroup(c.clk, ctx)
	for i := range parts {
		errs[i] = errNotRun
		g.Go("pageclient GetPages part", func(ctx context.Context) error {
			errs[i] = c.fetchPart(ctx, r, req, parts[i], out, filled, attempt)
			return nil
		})
	}
	_ = g.Wait()
	g.Cancel()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// fetchPart fetches one part, retrying what may heal after a jittered
// back-off, on the map current at the retry.
func (c *Client) fetchPart(ctx context.Context, r *routing, req *Request, p Part, out [][]byte, filled []bool, attempt int) error {
	pages, err := c.attemptPart(ctx, r, req, p, attempt)
	if err == nil {
		return place(out, filled, p, pages)
	}
	if !c.shouldRetry(ctx, err, attempt) {
		return err
	}
	c.countRetry("GetPages", err, attempt)
	if c.backoff(ctx, attempt) != nil {
		return err
	}
	return c.fetch(ctx, req, p.Positions, out, filled, attempt+1)
}

// attemptPart sends one part once, on a stream of its shard's pool in r.
func (c *Client) attemptPart(ctx context.Context, r *routing, req *Request, p Part, attempt int) ([]*pageapi.Page, error) {
	pool := r.pools[p.Shard]
	actx, cancel := clock.WithTimeout(c.clk, ctx, c.cfg.AttemptTimeout)
	defer cancel()
	kind := normalPool
	if len(p.Blocks) >= c.cfg.BulkThreshold {
		kind = bulkPool
	}
	s, err := pool.acquireStream(actx, kind)
	if err != nil {
		return nil, c.attemptErr(ctx, actx, pool, err)
	}
	gr := &pageapi.GetPageRequest{
		RequestId:    &pageapi.RequestID{Id: c.nextID.Add(1), Attempt: uint32(attempt)},
		RequestClass: req.Class,
		ReadLsn:      &pageapi.ReadLsn{RequestLsn: uint64(req.LSN.Request), NotModifiedSinceLsn: uint64(req.LSN.NotModifiedSince)},
		Rel:          relProto(req.Rel),
		BlockNumber:  p.Blocks,
	}
	resp, err := s.roundTrip(actx, gr)
	if err != nil {
		return nil, c.attemptErr(ctx, actx, pool, err)
	}
	if resp.StatusCode != pageapi.GetPageStatusCode_GET_PAGE_STATUS_CODE_OK {
		code := pageapi.CodeOfResponse(resp.StatusCode)
		return nil, net.Errorf(code, "pageclient: %s (shard %s) answered %s: %s", pool.addr, pool.index,
			strings.TrimPrefix(resp.StatusCode.String(), "GET_PAGE_STATUS_CODE_"), resp.Reason)
	}
	if resp.Rel != nil && !proto.Equal(resp.Rel, gr.Rel) {
		return nil, badResponse("%s (shard %s) answered for relation %v, asked %v", pool.addr, pool.index, resp.Rel, gr.Rel)
	}
	return resp.Page, nil
}

func relProto(rel keys.RelTag) *pageapi.RelTag {
	return &pageapi.RelTag{SpcOid: rel.SpcNode, DbOid: rel.DbNode, RelNumber: rel.RelNode, ForkNumber: uint32(rel.ForkNum)}
}

// attemptErr names an attempt's failure: its own timeout is
// DeadlineExceeded (retryable while the call goes on); anything else is the
// error as it came (a *net.Status from the transport or the pool).
func (c *Client) attemptErr(ctx, actx context.Context, p *shardPool, err error) error {
	if ctx.Err() == nil && actx.Err() != nil {
		return net.Errorf(net.DeadlineExceeded, "pageclient: attempt to %s (shard %s) timed out after %v", p.addr, p.index, c.cfg.AttemptTimeout)
	}
	if ctx.Err() != nil && !isStatus(err) {
		return net.Wrap(net.Canceled, err)
	}
	return err
}

func isStatus(err error) bool {
	var st *net.Status
	return errors.As(err, &st)
}

// callErr is the error a call returns: when the caller's context ended,
// its error's code; when the call timed out, DeadlineExceeded naming the
// last failure; otherwise the failure itself.
func (c *Client) callErr(parent, cctx context.Context, method string, err error) error {
	switch {
	case parent.Err() != nil:
		code := net.Canceled
		if errors.Is(parent.Err(), context.DeadlineExceeded) {
			code = net.DeadlineExceeded
		}
		return net.Errorf(code, "pageclient: %s: %w (last failure: %v)", method, parent.Err(), err)
	case cctx.Err() != nil:
		return net.Errorf(net.DeadlineExceeded, "pageclient: %s gave up after %v: %v", method, c.cfg.CallTimeout, err)
	case !isStatus(err):
		return net.Wrap(net.Internal, err)
	}
	return err
}

// shouldRetry: the call goes on, the code is one that may heal
// (Unavailable, Aborted, Canceled, DeadlineExceeded, ResourceExhausted —
// never Internal, InvalidArgument, NotFound, PermissionDenied, …), attempts
// remain and the client is open.
func (c *Client) shouldRetry(ctx context.Context, err error, attempt int) bool {
	retryable := net.Retryable(err) || (c.cfg.Bugs.RetryInternal && net.CodeOf(err) == net.Internal)
	return ctx.Err() == nil && retryable && attempt+1 < c.cfg.MaxAttempts && !c.isClosed()
}

func (c *Client) countRetry(method string, err error, attempt int) {
	c.retries.Add(1)
	c.m.retries.WithLabelValues(method, net.CodeOf(err).String()).Inc()
	c.log.Debug("pageclient: retrying", "method", method, "attempt", attempt+1, "err", err)
}

// Backoff returns the pause before retry attempt+1: BackoffBase doubled
// attempt times, capped at BackoffMax, of which a random half is jitter
// (so never less than half the step, never more than the step).
func Backoff(base, maxD time.Duration, attempt int, rng *rand.Rand) time.Duration {
	d := base
	for i := 0; i < attempt && d < maxD; i++ {
		d *= 2
	}
	d = min(d, maxD)
	half := d / 2
	return d - half + time.Duration(rng.Int64N(int64(half)+1))
}

func (c *Client) backoff(ctx context.Context, attempt int) error {
	c.rngMu.Lock()
	d := Backoff(c.cfg.BackoffBase, c.cfg.BackoffMax, attempt, c.rng)
	c.rngMu.Unlock()
	return clock.Sleep(ctx, c.clk, d)
}

func (c *Client) observe(method string, start time.Duration, err error) {
	c.requests.Add(1)
	c.m.requests.WithLabelValues(method, net.CodeOf(err).String()).Inc()
	c.m.latency.WithLabelValues(method).Observe((c.clk.Mono() - start).Seconds())
}

// GetRelSize answers rel's size in blocks at "at" (shard 0); with
// allowMissing a relation that does not exist answers missing instead of
// NotFound.
func (c *Client) GetRelSize(ctx context.Context, rel keys.RelTag, at ReadLSN, allowMissing bool) (blocks uint32, missing bool, err error) {
	resp, err := callUnary[*pageapi.GetRelSizeResponse](ctx, c, "GetRelSize", pageapi.PageService_GetRelSize_FullMethodName,
		&pageapi.GetRelSizeRequest{ReadLsn: readLSNProto(at), Rel: relProto(rel), AllowMissing: allowMissing})
	if err != nil {
		return 0, false, err
	}
	return resp.NumBlocks, resp.Missing, nil
}

// GetDbSize answers a database's total size in bytes at "at" (shard 0).
func (c *Client) GetDbSize(ctx context.Context, dbOID uint32, at ReadLSN) (uint64, error) {
	resp, err := callUnary[*pageapi.GetDbSizeResponse](ctx, c, "GetDbSize", pageapi.PageService_GetDbSize_FullMethodName,
		&pageapi.GetDbSizeRequest{ReadLsn: readLSNProto(at), DbOid: dbOID})
	if err != nil {
		return 0, err
	}
	return resp.NumBytes, nil
}

// GetSlruSegment answers one SLRU segment at "at" (shard 0).
func (c *Client) GetSlruSegment(ctx context.Context, kind, segno uint32, at ReadLSN) ([]byte, error) {
	resp, err := callUnary[*pageapi.GetSlruSegmentResponse](ctx, c, "GetSlruSegment", pageapi.PageService_GetSlruSegment_FullMethodName,
		&pageapi.GetSlruSegmentRequest{ReadLsn: readLSNProto(at), Kind: kind, Segno: segno})
	if err != nil {
		return nil, err
	}
	return resp.Segment, nil
}

func readLSNProto(at ReadLSN) *pageapi.ReadLsn {
	return &pageapi.ReadLsn{RequestLsn: uint64(at.Request), NotModifiedSinceLsn: uint64(at.NotModifiedSince)}
}

// callUnary makes a unary call to shard 0 of the current map, with the
// same attempt timeout, retries and back-off as GetPages.
func callUnary[Resp proto.Message](ctx context.Context, c *Client, method, fullMethod string, req proto.Message) (Resp, error) {
	start := c.clk.Mono()
	var zero Resp
	if c.isClosed() {
		err := net.Wrap(net.FailedPrecondition, ErrClosed)
		c.observe(method, start, err)
		return zero, err
	}
	cctx, cancel := clock.WithTimeout(c.clk, ctx, c.cfg.CallTimeout)
	defer cancel()
	for attempt := 0; ; attempt++ {
		pool := c.route.Load().pools[0]
		resp, err := func() (Resp, error) {
			actx, cancel := clock.WithTimeout(c.clk, cctx, c.cfg.AttemptTimeout)
			defer cancel()
			conn, release, err := pool.leaseClient(actx)
			if err != nil {
				return zero, c.attemptErr(cctx, actx, pool, err)
			}
			defer release()
			resp, err := net.CallProto[Resp](pageapi.WithTarget(actx, pool.target, c.cfg.Token), conn, fullMethod, req)
			if err != nil {
				return zero, c.attemptErr(cctx, actx, pool, err)
			}
			return resp, nil
		}()
		if err == nil {
			c.observe(method, start, nil)
			return resp, nil
		}
		if !c.shouldRetry(cctx, err, attempt) {
			err = c.callErr(ctx, cctx, method, err)
			c.observe(method, start, err)
			return zero, err
		}
		c.countRetry(method, err, attempt)
		if c.backoff(cctx, attempt) != nil {
			err = c.callErr(ctx, cctx, method, err)
			c.observe(method, start, err)
			return zero, err
		}
	}
}

// String describes the client for logs.
func (c *Client) String() string {
	return fmt.Sprintf("pageclient(%s/%s, %s)", c.cfg.Tenant, c.cfg.Timeline, c.route.Load().m)
}
