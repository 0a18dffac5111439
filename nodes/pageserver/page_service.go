package pageserver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/stratadb/strata/clock"
	"github.com/stratadb/strata/engine/keys"
	"github.com/stratadb/strata/engine/layer"
	"github.com/stratadb/strata/engine/lsn"
	"github.com/stratadb/strata/engine/shard"
	"github.com/stratadb/strata/engine/timeline"
	"github.com/stratadb/strata/engine/walrec"
	"github.com/stratadb/strata/net"
	"github.com/stratadb/strata/net/jwtauth"
	"github.com/stratadb/strata/nodes/pageserver/pageapi"
)

// Errors of the page service; StatusOf maps them (and the timeline's) to
// net codes at the handler boundary.
var (
	// ErrBadRequest: a request that can never succeed as sent.
	ErrBadRequest = errors.New("pageserver: invalid request")
	// ErrWrongShard: a key the addressed shard does not own.
	ErrWrongShard = errors.New("pageserver: key belongs to another shard")
	// ErrNotShard0: a request only shard 0 serves, sent to another shard.
	ErrNotShard0 = errors.New("pageserver: only shard 0 serves this request")
	// ErrUnknownTenant: no such tenant shard is attached here.
	ErrUnknownTenant = errors.New("pageserver: tenant shard not attached here")
	// ErrUnknownTimeline: the tenant has no such timeline.
	ErrUnknownTimeline = errors.New("pageserver: no such timeline")
	// ErrShuttingDown: the node, tenant or timeline is shutting down.
	ErrShuttingDown = errors.New("pageserver: shutting down")
	// ErrWaitLSNTimeout: ingest did not reach the requested LSN in time.
	ErrWaitLSNTimeout = errors.New("pageserver: timed out waiting for WAL")
	// ErrBusy: a named limit refused the request (retry later).
	ErrBusy = errors.New("pageserver: too busy")
)

// StatusOf maps an error of the page path to the net.Status a client sees.
func StatusOf(err error) error {
	if err == nil {
		return nil
	}
	var st *net.Status
	switch {
	case errors.As(err, &st):
		return err
	case errors.Is(err, jwtauth.ErrNoToken), errors.Is(err, jwtauth.ErrBadToken), errors.Is(err, jwtauth.ErrForbidden):
		return jwtauth.StatusOf(err)
	case errors.Is(err, ErrBadRequest), errors.Is(err, ErrWrongShard), errors.Is(err, ErrNotShard0),
		errors.Is(err, pageapi.ErrBadHeader), errors.Is(err, timeline.ErrInvalidLSN):
		return net.Wrap(net.InvalidArgument, err)
	case errors.Is(err, timeline.ErrBelowGCCutoff):
		return net.Wrap(net.FailedPrecondition, err)
	case errors.Is(err, timeline.ErrNotFound), errors.Is(err, ErrUnknownTenant), errors.Is(err, ErrUnknownTimeline):
		return net.Wrap(net.NotFound, err)
	case errors.Is(err, ErrShuttingDown), errors.Is(err, ErrShardSplit), errors.Is(err, ErrChildrenNotLocal), errors.Is(err, ErrAttaching):
		return net.Wrap(net.Unavailable, err)
	case errors.Is(err, ErrBusy):
		return net.Wrap(net.ResourceExhausted, err)
	case errors.Is(err, timeline.ErrLayerDownload) && !errors.Is(err, timeline.ErrCorrupt) && !errors.Is(err, layer.ErrCorrupt):
		// A layer the read needs could not be downloaded now (object
		// storage failing through the retries, the attachment stopping):
		// the client may retry. A corrupt download stays Internal.
		return net.Wrap(net.Unavailable, err)
	case errors.Is(err, context.Canceled):
		return net.Wrap(net.Canceled, err)
	case errors.Is(err, context.DeadlineExceeded):
		return net.Wrap(net.DeadlineExceeded, err)
	default: // incl. ErrWaitLSNTimeout: Neon reports it as an internal error
		return net.Wrap(net.Internal, err)
	}
}

// Timeline is what the page service needs of one attached timeline of one
// shard. The tenant manager implements it over engine/timeline.
type Timeline interface {
	// Shard is the identity of the shard the timeline belongs to.
	Shard() shard.ShardIdentity
	// LastRecordLSN is the newest ingested LSN.
	LastRecordLSN() lsn.LSN
	// WaitLSN returns once ingest has reached l, or fails with ctx's error
	// or ErrShuttingDown.
	WaitLSN(ctx context.Context, l lsn.LSN) error
	// AppendPage appends the page of key as of at to dst.
	AppendPage(dst []byte, key keys.Key, at lsn.LSN) ([]byte, error)
	// RelSize returns rel's size in blocks as of at (timeline.ErrNotFound
	// if the relation does not exist there).
	RelSize(rel keys.RelTag, at lsn.LSN) (uint32, error)
	// Lease keeps what reads at l need from GC for a while, and says how
	// long (timeline.ErrBelowGCCutoff at 0 or below the cutoff).
	Lease(ctx context.Context, l lsn.LSN) (time.Duration, error)
}

// Resolver finds the timeline a call is addressed to: ErrUnknownTenant,
// ErrUnknownTimeline, or ErrShuttingDown when it cannot.
type Resolver interface {
	Resolve(t pageapi.Target) (Timeline, error)
}

// PageServiceConfig are the page service's limits. Zero fields take the
// defaults named beside them; Validate rejects negative ones.
type PageServiceConfig struct {
	// MaxBlocksPerRequest bounds the blocks one GetPageRequest may name
	// (and so a response's size: 8 KiB a block). Default 256.
	MaxBlocksPerRequest int
	// MaxInflightPerStream bounds the requests a GetPages stream has
	// received and not yet answered; a client pipelining more waits for
	// answers. Default 64.
	MaxInflightPerStream int
	// MaxStreams bounds the streams (GetPages and GetBaseBackup) open on
	// the node at once; one more is refused with ResourceExhausted. (In real mode gRPC also
	// bounds streams per connection, grpcx.Options.MaxConcurrentStreams.)
	// Default 1024.
	MaxStreams int
	// WaitLSNTimeout bounds how long a read above the last ingested LSN
	// waits for ingest before it fails (INTERNAL_ERROR). Default 10s.
	WaitLSNTimeout time.Duration
}

// Defaults of PageServiceConfig.
const (
	DefaultMaxBlocksPerRequest  = 256
	DefaultMaxInflightPerStream = 64
	DefaultMaxStreams           = 1024
	DefaultWaitLSNTimeout       = 10 * time.Second
	// maxBlocksPerMessage keeps a response within net.MaxMessageBytes with
	// room for framing.
	maxBlocksPerMessage = net.MaxMessageBytes/walrec.PageSize - 8
)

// ErrConfig reports an invalid configuration.
var ErrConfig = errors.New("pageserver: invalid config")

func (c PageServiceConfig) withDefaults() PageServiceConfig {
	if c.MaxBlocksPerRequest == 0 {
		c.MaxBlocksPerRequest = DefaultMaxBlocksPerRequest
	}
	if c.MaxInflightPerStream == 0 {
		c.MaxInflightPerStream = DefaultMaxInflightPerStream
	}
	if c.MaxStreams == 0 {
		c.MaxStreams = DefaultMaxStreams
	}
	if c.WaitLSNTimeout == 0 {
		c.WaitLSNTimeout = DefaultWaitLSNTimeout
	}
	return c
}

// Validate reports a configuration the page service cannot use.
func (c PageServiceConfig) Validate() error {
	c = c.withDefaults()
	switch {
	case c.MaxBlocksPerRequest < 1 || c.MaxBlocksPerRequest > maxBlocksPerMessage:
		return fmt.Errorf("%w: MaxBlocksPerRequest %d not in [1, %d]", ErrConfig, c.MaxBlocksPerRequest, maxBlocksPerMessage)
	case c.MaxInflightPerStream < 1:
		return fmt.Errorf("%w: MaxInflightPerStream %d < 1", ErrConfig, c.MaxInflightPerStream)
	case c.MaxStreams < 1:
		return fmt.Errorf("%w: MaxStreams %d < 1", ErrConfig, c.MaxStreams)
	case c.WaitLSNTimeout < 0:
		return fmt.Errorf("%w: WaitLSNTimeout %v < 0", ErrConfig, c.WaitLSNTimeout)
	}
	return nil
}

// PageService serves pageapi.PageService on a net.Mux.
type PageService struct {
	clk      clock.Clock
	log      *slog.Logger
	cfg      PageServiceConfig
	resolver Resolver
	auth     *jwtauth.Verifier // nil: tokens are not checked
	tasks    *taskRegistry
	bugs     Bugs

	streams  *clock.Semaphore
	draining atomic.Bool // new calls are refused Unavailable

	requests *prometheus.CounterVec // by method and code
	pages    prometheus.Counter
	routed   prometheus.Counter   // GetPage requests for a split parent, served by its children
	latency  prometheus.Histogram // one GetPage request, receive to send
}

// newPageService builds the service; auth nil turns token checks off. Its
// streams run as tasks of the registry; its metrics are registered on reg.
func newPageService(clk clock.Clock, log *slog.Logger, reg prometheus.Registerer, tasks *taskRegistry, cfg PageServiceConfig, r Resolver, auth *jwtauth.Verifier) (*PageService, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	ps := &PageService{
		clk: clk, log: log, cfg: cfg, resolver: r, auth: auth, tasks: tasks,
		streams: clock.NewSemaphore(clk, int64(cfg.MaxStreams)),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "strata_pageserver_page_requests_total",
			Help: "Page service requests by method and status code.",
		}, []string{"method", "code"}),
		pages: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "strata_pageserver_pages_served_total",
			Help: "Pages returned by GetPages.",
		}),
		routed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "strata_pageserver_routed_requests_total",
			Help: "GetPage requests addressed to a split parent shard, served by its local children.",
		}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "strata_pageserver_getpage_seconds",
			Help:    "GetPage request latency on the server, from receipt to answer.",
			Buckets: prometheus.ExponentialBuckets(20e-6, 2, 18),
		}),
	}
	for _, c := range []prometheus.Collector{ps.requests, ps.pages, ps.routed, ps.latency} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("pageserver: register metrics: %w", err)
		}
	}
	return ps, nil
}

// Register adds the service's methods to m.
func (ps *PageService) Register(m *net.Mux) {
	net.HandleStreamProto(m, pageapi.PageService_GetPages_FullMethodName, ps.getPages)
	net.HandleUnary(m, pageapi.PageService_GetRelSize_FullMethodName, ps.getRelSize)
	net.HandleUnary(m, pageapi.PageService_LeaseLsn_FullMethodName, ps.leaseLSN)
	net.HandleUnary(m, pageapi.PageService_GetDbSize_FullMethodName, ps.getDbSize)
	net.HandleUnary(m, pageapi.PageService_GetSlruSegment_FullMethodName, ps.getSlruSegment)
	net.HandleStreamProto(m, pageapi.PageService_GetBaseBackup_FullMethodName, ps.getBaseBackup)
}

// leaseLSN grants an LSN lease: GC keeps what reads at the LSN need until
// the answer's expiry (wall time).
func (ps *PageService) leaseLSN(ctx context.Context, req *pageapi.LeaseLsnRequest) (*pageapi.LeaseLsnResponse, error) {
	resp, err := func() (*pageapi.LeaseLsnResponse, error) {
		_, tl, err := ps.open(ctx)
		if err != nil {
			return nil, err
		}
		d, err := tl.Lease(ctx, lsn.LSN(req.Lsn))
		if err != nil {
			return nil, err
		}
		return &pageapi.LeaseLsnResponse{Expires: timestamppb.New(ps.clk.Now().Add(d))}, nil
	}()
	err = StatusOf(err)
	ps.count("LeaseLsn", net.CodeOf(err))
	return resp, err
}

// drain makes the service refuse new calls with Unavailable (shutdown's
// first step); calls already running go on.
func (ps *PageService) drain() { ps.draining.Store(true) }

// open authenticates a call and resolves the timeline it addresses.
func (ps *PageService) open(ctx context.Context) (pageapi.Target, Timeline, error) {
	if ps.draining.Load() {
		return pageapi.Target{}, nil, fmt.Errorf("%w: not accepting new requests", ErrShuttingDown)
	}
	md := net.IncomingMetadata(ctx)
	t, err := pageapi.ParseTarget(md)
	if err != nil {
		return t, nil, err
	}
	if ps.auth != nil {
		h, _ := md.Get(pageapi.HeaderAuthorization)
		c, err := ps.auth.VerifyHeader(h)
		if err == nil {
			err = jwtauth.Authorize(c, jwtauth.ScopeTenant, t.Shard.TenantID.String())
		}
		if err != nil {
			return t, nil, err
		}
	}
	tl, err := ps.resolver.Resolve(t)
	if err != nil {
		return t, nil, err
	}
	if id := tl.Shard(); id.Index() != t.Shard.Shard {
		return t, nil, fmt.Errorf("%w: addressed shard %s, timeline belongs to %s", ErrBadRequest, t.Shard.Shard, id.Index())
	}
	return t, tl, nil
}

// readLSN validates a ReadLsn and waits until the timeline can answer it;
// it returns the LSN to read at. With not_modified_since set, the page is
// known not to have changed since it, so ingest need only reach that LSN and
// any LSN up to request_lsn gives the same page: read at the newest ingested
// one within the range.
func (ps *PageService) readLSN(ctx context.Context, tl Timeline, r *pageapi.ReadLsn) (lsn.LSN, error) {
	if r == nil || r.RequestLsn == 0 {
		return 0, fmt.Errorf("%w: request_lsn is 0", ErrBadRequest)
	}
	req, nms := lsn.LSN(r.RequestLsn), lsn.LSN(r.NotModifiedSinceLsn)
	if nms > req {
		return 0, fmt.Errorf("%w: not_modified_since_lsn %s above request_lsn %s", ErrBadRequest, nms, req)
	}
	wait := req
	if nms != 0 {
		wait = nms
	}
	if ps.bugs.NoWaitForIngest {
		wait = min(wait, tl.LastRecordLSN())
	}
	// Already ingested (the common case): WaitLSN returns at once, so skip
	// the timeout's timer and context, which cost as much as a page copy.
	var err error
	if tl.LastRecordLSN() >= wait {
		err = tl.WaitLSN(ctx, wait)
	} else {
		wctx, cancel := clock.WithTimeout(ps.clk, ctx, ps.cfg.WaitLSNTimeout)
		err = tl.WaitLSN(wctx, wait)
		cancel()
	}
	if err != nil {
		if ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
			return 0, fmt.Errorf("%w: LSN %s not ingested within %v (ingested %s)", ErrWaitLSNTimeout, wait, ps.cfg.WaitLSNTimeout, tl.LastRecordLSN())
		}
		return 0, err
	}
	if nms != 0 || ps.bugs.NoWaitForIngest {
		return min(req, tl.LastRecordLSN()), nil
	}
	return req, nil
}

func relTag(r *pageapi.RelTag) (keys.RelTag, error) {
	if r == nil {
		return keys.RelTag{}, fmt.Errorf("%w: rel is missing", ErrBadRequest)
	}
	if r.ForkNumber > 255 {
		return keys.RelTag{}, fmt.Errorf("%w: fork_number %d", ErrBadRequest, r.ForkNumber)
	}
	return keys.RelTag{SpcNode: r.SpcOid, DbNode: r.DbOid, RelNode: r.RelNumber, ForkNum: uint8(r.ForkNumber)}, nil
}

// getPages serves one GetPages stream. A receiver task reads requests into
// a queue bounded by MaxInflightPerStream (so a client may pipeline that
// many); this task answers them in order.
func (ps *PageService) getPages(ctx context.Context, st *net.ServerStreamOf[*pageapi.GetPageRequest, *pageapi.GetPageResponse]) error {
	const method = "GetPages"
	if !ps.streams.TryAcquire(1) {
		ps.count(method, net.ResourceExhausted)
		return net.Errorf(net.ResourceExhausted, "pageserver: %d GetPages streams open, limit %d", ps.cfg.MaxStreams, ps.cfg.MaxStreams)
	}
	defer ps.streams.Release(1)
	target, tl, err := ps.open(ctx)
	if err != nil {
		err = StatusOf(err)
		ps.count(method, net.CodeOf(err))
		return err
	}
	// The stream is a task of its timeline: shutting the timeline (or its
	// tenant, or the node) down cancels ctx and so ends the stream.
	caller := ctx
	ctx, done := ps.tasks.register(ctx, taskPageStream, timelineScope(target.Shard, target.Timeline), "GetPages "+target.Shard.String())
	defer done()
	routed, _ := tl.(*routedTimeline)
	if routed != nil {
		// Served by a split parent's children (route.go): the stream is a
		// task of each of them too, so that any of them shutting down
		// (moved away, detached) ends it and the client re-resolves.
		for _, sc := range routed.scopes {
			var d func()
			ctx, d = ps.tasks.register(ctx, taskPageStream, sc, "GetPages "+target.Shard.String()+" routed")
			defer d()
		}
	}
	queue := clock.NewChan[*pageapi.GetPageRequest](ps.clk, ps.cfg.MaxInflightPerStream)
	var recvMu sync.Mutex
	var recvErr error
	// The receiver ends when the client half-closes or the stream breaks
	// (which returning from this handler also causes), so it never outlives
	// the stream.
	ps.tasks.spawn(ctx, taskPageRecv, timelineScope(target.Shard, target.Timeline), "GetPages recv "+target.Shard.String(), func(ctx context.Context) {
		defer queue.Close()
		for {
			req, err := st.Recv()
			if err != nil {
				if err != io.EOF {
					recvMu.Lock()
					recvErr = err
					recvMu.Unlock()
				}
				return
			}
			if err := queue.Send(ctx, req); err != nil {
				return
			}
		}
	})
	for {
		req, ok, err := queue.Recv(ctx)
		if err == nil && !ok && ctx.Err() != nil {
			// The receiver stopped because the stream's task was
			// cancelled, not because the client half-closed.
			err = ctx.Err()
		}
		if err != nil {
			if ps.draining.Load() {
				return net.Errorf(net.Unavailable, "pageserver: shutting down")
			}
			if caller.Err() == nil {
				// Not the client's doing: the shard (or a child serving it)
				// shut down — split, detached, moved. The client retries,
				// on its new shard map if there is one.
				return net.Errorf(net.Unavailable, "pageserver: %s shut down under the stream", target.Shard)
			}
			return StatusOf(err)
		}
		if !ok {
			recvMu.Lock()
			defer recvMu.Unlock()
			return recvErr
		}
		start := ps.clk.Mono()
		resp, err := ps.getPage(ctx, tl, req)
		if routed != nil {
			ps.routed.Inc()
		}
		if err != nil { // ends the stream
			ps.count(method, net.CodeOf(err))
			return err
		}
		if err := st.Send(resp); err != nil {
			return err
		}
		ps.latency.Observe((ps.clk.Mono() - start).Seconds())
		ps.count(method, pageapi.CodeOfResponse(resp.StatusCode))
	}
}

// getPage answers one request. A failure of the request travels in the
// response; a non-nil error ends the stream.
func (ps *PageService) getPage(ctx context.Context, tl Timeline, req *pageapi.GetPageRequest) (*pageapi.GetPageResponse, error) {
	resp := &pageapi.GetPageResponse{RequestId: req.RequestId}
	pages, err := ps.readPages(ctx, tl, req)
	if err == nil {
		resp.StatusCode = pageapi.GetPageStatusCode_GET_PAGE_STATUS_CODE_OK
		resp.Rel = req.Rel
		resp.Page = pages
		ps.pages.Add(float64(len(pages)))
		return resp, nil
	}
	st := StatusOf(err)
	code, ends := pageapi.ResponseStatus(net.CodeOf(st))
	if ends {
		return nil, st
	}
	resp.StatusCode = code
	resp.Reason = err.Error()
	return resp, nil
}

func (ps *PageService) readPages(ctx context.Context, tl Timeline, req *pageapi.GetPageRequest) ([]*pageapi.Page, error) {
	rel, err := relTag(req.Rel)
	if err != nil {
		return nil, err
	}
	n := len(req.BlockNumber)
	if n == 0 {
		return nil, fmt.Errorf("%w: no block_number", ErrBadRequest)
	}
	if n > ps.cfg.MaxBlocksPerRequest {
		return nil, fmt.Errorf("%w: %d blocks, limit %d", ErrBadRequest, n, ps.cfg.MaxBlocksPerRequest)
	}
	id := tl.Shard()
	check := !id.IsUnsharded() && !ps.bugs.ServeOtherShards
	if st, ok := tl.(*shardTimeline); ok && st.fromSplit && ps.bugs.ChildServesUnownedKey {
		check = false
	}
	for _, blk := range req.BlockNumber {
		if k := keys.RelBlockKey(rel, blk); check {
			if owner := id.ShardOf(k); owner != id.Number {
				return nil, fmt.Errorf("%w: block %d of %v is on shard %s, not %s", ErrWrongShard, blk, rel,
					shard.ShardIndex{Number: owner, Count: id.Count}, id.Index())
			}
		}
	}
	at, err := ps.readLSN(ctx, tl, req.ReadLsn)
	if err != nil {
		return nil, err
	}
	// A page each, appended to nil: append allocates it without zeroing
	// what it copies, where one make of n pages would clear them all first
	// (and, past 32 KiB, take a large-object allocation).
	pages := make([]*pageapi.Page, n)
	for i, blk := range req.BlockNumber {
		img, err := tl.AppendPage(nil, keys.RelBlockKey(rel, blk), at)
		if err != nil {
			return nil, fmt.Errorf("block %d of %v at %s: %w", blk, rel, at, err)
		}
		pages[i] = &pageapi.Page{BlockNumber: blk, Image: img}
	}
	return pages, nil
}

// getRelSize answers a relation's size (shard 0 only).
func (ps *PageService) getRelSize(ctx context.Context, req *pageapi.GetRelSizeRequest) (*pageapi.GetRelSizeResponse, error) {
	resp, err := ps.relSize(ctx, req)
	err = StatusOf(err)
	ps.count("GetRelSize", net.CodeOf(err))
	return resp, err
}

func (ps *PageService) relSize(ctx context.Context, req *pageapi.GetRelSizeRequest) (*pageapi.GetRelSizeResponse, error) {
	_, tl, err := ps.open(ctx)
	if err != nil {
		return nil, err
	}
	if tl.Shard().Number != 0 {
		return nil, fmt.Errorf("%w: GetRelSize sent to shard %s", ErrNotShard0, tl.Shard().Index())
	}
	rel, err := relTag(req.Rel)
	if err != nil {
		return nil, err
	}
	at, err := ps.readLSN(ctx, tl, req.ReadLsn)
	if err != nil {
		return nil, err
	}
	n, err := tl.RelSize(rel, at)
	switch {
	case err == nil:
		return &pageapi.GetRelSizeResponse{NumBlocks: n}, nil
	case errors.Is(err, timeline.ErrNotFound) && req.AllowMissing:
		return &pageapi.GetRelSizeResponse{Missing: true}, nil
	default:
		return nil, err
	}
}

func (ps *PageService) count(method string, c net.Code) {
	ps.requests.WithLabelValues(method, c.String()).Inc()
}
