package safekeeper

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/stratadb/strata/clock"
	"github.com/stratadb/strata/disk"
	"github.com/stratadb/strata/engine/lsn"
	"github.com/stratadb/strata/engine/skproto"
	"github.com/stratadb/strata/net"
	"github.com/stratadb/strata/nodes/broker/brokerapi"
	"github.com/stratadb/strata/nodes/node"
	"github.com/stratadb/strata/nodes/safekeeper/skapi"
	"github.com/stratadb/strata/nodes/safekeeper/walstore"
)

type metrics struct {
	appendBytes prometheus.Counter
	publishErrs prometheus.Counter
	corrupt     prometheus.Counter
	offloaded   prometheus.Counter
	offloadErrs prometheus.Counter
	timelines   prometheus.Gauge
	// WAL removal (remove.go).
	removedSegs  prometheus.Counter
	removedBytes prometheus.Counter
	horizon      *prometheus.GaugeVec
}

func newMetrics(reg *prometheus.Registry) metrics {
	m := metrics{
		appendBytes: prometheus.NewCounter(prometheus.CounterOpts{Name: "safekeeper_wal_written_bytes_total", Help: "WAL bytes written."}),
		corrupt:     prometheus.NewCounter(prometheus.CounterOpts{Name: "safekeeper_corrupt_timelines_total", Help: "Timelines refused because their files failed checks."}),
		offloaded:   prometheus.NewCounter(prometheus.CounterOpts{Name: "safekeeper_offloaded_segments_total", Help: "WAL segments uploaded to object storage."}),
		offloadErrs: prometheus.NewCounter(prometheus.CounterOpts{Name: "safekeeper_offload_errors_total", Help: "Failed segment upload attempts."}),
		timelines:   prometheus.NewGauge(prometheus.GaugeOpts{Name: "safekeeper_timelines", Help: "Timelines held."}),
		publishErrs: prometheus.NewCounter(prometheus.CounterOpts{Name: "safekeeper_broker_publish_errors_total",
			Help: "Broker publication rounds that failed (unreachable or refusing broker)."}),
		removedSegs: prometheus.NewCounter(prometheus.CounterOpts{Name: "safekeeper_wal_removed_segments_total",
			Help: "WAL segments removed below the removal horizon."}),
		removedBytes: prometheus.NewCounter(prometheus.CounterOpts{Name: "safekeeper_wal_removed_bytes_total",
			Help: "WAL bytes removed below the removal horizon."}),
		horizon: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "safekeeper_wal_removal_horizon_lsn",
			Help: "The removal horizon per timeline: WAL below it may be removed."}, []string{"tenant_id", "timeline_id"}),
	}
	if reg != nil {
		reg.MustRegister(m.appendBytes, m.corrupt, m.offloaded, m.offloadErrs, m.timelines, m.publishErrs,
			m.removedSegs, m.removedBytes, m.horizon)
	}
	return m
}

// Safekeeper is the WAL service of one node.
type Safekeeper struct {
	env     node.Env
	cfg     Config
	log     *slog.Logger
	metrics metrics

	// tlMu guards the timelines map only (short sections, no I/O).
	tlMu      sync.Mutex
	timelines map[tlKey]*timeline

	group         *clock.Group
	broker        *brokerapi.Client // nil without Config.BrokerAddr
	publishHealth publishHealth
	// startedAt is Clock.Mono at Start: no WAL is removed for
	// FeedbackExpiry after it.
	startedAt time.Duration
	lisMu     sync.Mutex
	listener  net.Listener
}

// New builds a safekeeper; Start loads its timelines and serves.
func New(env node.Env, cfg Config) (*Safekeeper, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Offload && env.Store == nil {
		return nil, errors.New("safekeeper: Offload needs env.Store")
	}
	sk := &Safekeeper{env: env, cfg: cfg, log: env.Log.With("component", "safekeeper", "node", cfg.NodeID),
		metrics: newMetrics(env.Metrics), timelines: map[tlKey]*timeline{}}
	if cfg.BrokerAddr != "" {
		sk.broker = brokerapi.NewClient(env.Net, env.Clock, cfg.BrokerAddr, cfg.CallTimeout)
	}
	return sk, nil
}

// Start loads every timeline on disk, starts serving and the background
// tasks (broker publication, offload). Corrupt timelines are reported and
// kept out of service; they do not stop the others.
func (sk *Safekeeper) Start(ctx context.Context) error {
	if err := sk.loadAll(); err != nil {
		return err
	}
	sk.group = clock.NewGroup(sk.env.Clock, ctx)
	l, err := sk.env.Net.Listen(sk.cfg.ListenAddr, sk.Mux())
	if err != nil {
		sk.group.Cancel()
		return fmt.Errorf("safekeeper: listen %s: %w", sk.cfg.ListenAddr, err)
	}
	sk.lisMu.Lock()
	sk.listener = l
	sk.lisMu.Unlock()
	if sk.cfg.BrokerAddr != "" {
		sk.group.Go("sk-publish", sk.publishLoop)
	}
	if sk.cfg.Offload {
		sk.group.Go("sk-offload", sk.offloadLoop)
	}
	sk.startedAt = sk.env.Clock.Mono()
	if sk.removalEnabled() {
		sk.group.Go("sk-remove-wal", sk.removeLoop)
	}
	sk.log.Info("safekeeper serving", "addr", l.Addr(), "timelines", len(sk.timelines))
	return nil
}

// Addr is the bound address (after Start).
func (sk *Safekeeper) Addr() string {
	sk.lisMu.Lock()
	defer sk.lisMu.Unlock()
	if sk.listener == nil {
		return ""
	}
	return sk.listener.Addr()
}

// drainer is implemented by listeners that can stop accepting calls and
// wait for in-flight ones (net/grpcx).
type drainer interface {
	Drain(ctx context.Context) error
}

// Drain is the graceful stop: no new calls, in-flight calls finish (until
// ctx ends), then Stop.
func (sk *Safekeeper) Drain(ctx context.Context) error {
	sk.lisMu.Lock()
	l := sk.listener
	sk.lisMu.Unlock()
	if d, ok := l.(drainer); ok {
		_ = d.Drain(ctx)
	}
	return sk.Stop(ctx)
}

// Stop stops serving and the background tasks, then persists each
// timeline's commit LSN so the next start scans little. ctx is unused for
// locking (the sections are short) so any context may be passed.
func (sk *Safekeeper) Stop(_ context.Context) error {
	ctx := context.Background()
	sk.lisMu.Lock()
	l := sk.listener
	sk.listener = nil
	sk.lisMu.Unlock()
	if l != nil {
		_ = l.Close()
	}
	var err error
	if sk.group != nil {
		err = sk.group.Stop()
	}
	if sk.broker != nil {
		_ = sk.broker.Close()
	}
	for _, tl := range sk.sortedTimelines() {
		if lerr := tl.mu.Lock(ctx); lerr != nil {
			return lerr
		}
		if tl.acc != nil {
			if serr := tl.store.Sync(); serr == nil {
				_ = tl.store.PersistControl(tl.control(tl.acc.State()))
			}
		}
		tl.unload()
		tl.stopped = true
		tl.mu.Unlock()
	}
	return err
}

func (sk *Safekeeper) loadAll() error {
	tenants, err := sk.env.Disk.ReadDir("timelines")
	if errors.Is(err, disk.ErrNotExist) {
		return disk.MkdirAllDurable(sk.env.Disk, "timelines")
	}
	if err != nil {
		return fmt.Errorf("safekeeper: list timelines: %w", err)
	}
	for _, te := range tenants {
		tls, err := sk.env.Disk.ReadDir("timelines/" + te.Name())
		if err != nil {
			return fmt.Errorf("safekeeper: list tenant %s: %w", te.Name(), err)
		}
		for _, e := range tls {
			key := tlKey{te.Name(), e.Name()}
			ok, err := walstore.Exists(sk.env.Disk, key.dir())
			if err != nil {
				return err
			}
			if !ok {
				continue // a creation that crashed before its control file
			}
			// A timeline that fails to load for an I/O error stays
			// unloaded and is loaded again on first use.
			tl := sk.newTimeline(key)
			if err := tl.load(); errors.Is(err, walstore.ErrCorrupt) {
				tl.markBroken(err)
			} else if err != nil {
				sk.log.Warn("timeline not loaded", "tenant", key.tenant, "timeline", key.timeline, "err", err)
			}
			sk.timelines[key] = tl
		}
	}
	sk.metrics.timelines.Set(float64(len(sk.timelines)))
	return nil
}

func (sk *Safekeeper) sortedTimelines() []*timeline {
	sk.tlMu.Lock()
	defer sk.tlMu.Unlock()
	keys := slices.SortedFunc(maps.Keys(sk.timelines), func(a, b tlKey) int {
		return cmp.Or(cmp.Compare(a.tenant, b.tenant), cmp.Compare(a.timeline, b.timeline))
	})
	out := make([]*timeline, len(keys))
	for i, k := range keys {
		out[i] = sk.timelines[k]
	}
	return out
}

func (sk *Safekeeper) lookup(tenant, timeline string) (*timeline, error) {
	if err := checkID("tenant", tenant); err != nil {
		return nil, err
	}
	if err := checkID("timeline", timeline); err != nil {
		return nil, err
	}
	sk.tlMu.Lock()
	defer sk.tlMu.Unlock()
	tl, ok := sk.timelines[tlKey{tenant, timeline}]
	if !ok {
		return nil, fmt.Errorf("%w: %s/%s", ErrNoTimeline, tenant, timeline)
	}
	return tl, nil
}

// getOrCreate returns the timeline, creating it on first greeting (or
// finishing a creation that an error or crash interrupted before its
// control file was durable).
func (sk *Safekeeper) getOrCreate(ctx context.Context, g skproto.Greeting) (*timeline, error) {
	if _, err := sk.lookup(g.TenantID, g.TimelineID); err != nil && !errors.Is(err, ErrNoTimeline) {
		return nil, err
	}
	key := tlKey{g.TenantID, g.TimelineID}
	sk.tlMu.Lock()
	tl, ok := sk.timelines[key]
	if !ok {
		if len(sk.timelines) >= sk.cfg.MaxTimelines {
			sk.tlMu.Unlock()
			return nil, fmt.Errorf("%w: %d held", ErrTooManyTimelines, len(sk.timelines))
		}
		tl = sk.newTimeline(key)
		sk.timelines[key] = tl
		sk.metrics.timelines.Set(float64(len(sk.timelines)))
	}
	sk.tlMu.Unlock()
	if err := tl.mu.Lock(ctx); err != nil {
		return nil, err
	}
	defer tl.mu.Unlock()
	if tl.acc == nil && tl.broken == nil && !tl.stopped {
		exists, err := walstore.Exists(sk.env.Disk, tl.key.dir())
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
		}
		if !exists {
			if err := tl.create(g); err != nil {
				return nil, fmt.Errorf("%w: create timeline: %w", ErrUnavailable, err)
			}
			sk.log.Info("timeline created", "tenant", g.TenantID, "timeline", g.TimelineID, "start", g.StartLSN)
		}
	}
	return tl, tl.usable()
}

// Mux returns the service's handlers. They are the edge where domain
// errors become net codes (statusOf), once; the code below returns
// package sentinels wrapped with %w.
func (sk *Safekeeper) Mux() *net.Mux {
	m := net.NewMux()
	net.HandleStreamProto(m, skapi.MethodPropose, func(ctx context.Context, s *net.ServerStreamOf[*skapi.ProposerMessage, *skapi.AcceptorMessage]) error {
		return statusOf(sk.propose(ctx, s))
	})
	net.HandleUnary(m, skapi.MethodReadWal, func(ctx context.Context, req *skapi.ReadWalRequest) (*skapi.ReadWalResponse, error) {
		resp, err := sk.readWal(ctx, req)
		return resp, statusOf(err)
	})
	net.HandleStreamProto(m, skapi.MethodStreamWal, func(ctx context.Context, s *net.ServerStreamOf[*skapi.StreamWalRequest, *skapi.WalChunk]) error {
		return statusOf(sk.streamWal(ctx, s))
	})
	net.HandleUnary(m, skapi.MethodStatus, func(ctx context.Context, req *skapi.TimelineRef) (*skapi.TimelineStatus, error) {
		resp, err := sk.status(ctx, req)
		return resp, statusOf(err)
	})
	return m
}

// propose serves one proposer's stream. A reader task queues incoming
// messages so that the appends that arrived while the last batch was being
// synced are applied together under one fsync.
func (sk *Safekeeper) propose(ctx context.Context, s *net.ServerStreamOf[*skapi.ProposerMessage, *skapi.AcceptorMessage]) error {
	ctx, cancel := clock.WithCancel(ctx)
	defer cancel()
	in := clock.NewChan[skproto.Msg](sk.env.Clock, 2*maxStepBatch)
	var recvErr error
	readerDone := clock.NewWaitGroup(sk.env.Clock)
	readerDone.Add(1)
	sk.env.Clock.Go(ctx, "sk-propose-recv", func(ctx context.Context) {
		defer readerDone.Done()
		defer in.Close()
		for {
			pb, err := s.Recv()
			if err != nil {
				if !errors.Is(err, io.EOF) {
					recvErr = err
				}
				return
			}
			m, err := skapi.ProposerFromPB(pb)
			if err != nil {
				recvErr = err
				return
			}
			if err := in.Send(ctx, m); err != nil {
				return
			}
		}
	})
	// The reader is not waited for on the way out: it sits in s.Recv,
	// which only the end of the call unblocks, and the call ends when this
	// handler returns. Waiting here would hold an error (a refused append,
	// say) back from the proposer until it sent again or timed out.

	var tl *timeline
	var pending skproto.Msg // a Greeting held back from the previous batch
	for {
		var batch []skproto.Msg
		if pending != nil {
			batch, pending = append(batch, pending), nil
		} else {
			m, ok, err := in.Recv(ctx)
			if err != nil {
				return err
			}
			if !ok {
				_ = readerDone.Wait(context.Background())
				return recvErr
			}
			batch = append(batch, m)
		}
		if g, ok := batch[0].(skproto.Greeting); ok {
			var err error
			if tl, err = sk.getOrCreate(ctx, g); err != nil {
				return err
			}
		} else if tl == nil {
			return fmt.Errorf("%w: got %T", ErrNoGreeting, batch[0])
		} else {
			// Gather what is already queued, up to a Greeting (which may
			// name another timeline).
			for len(batch) < maxStepBatch {
				m, ok, ready := in.TryRecv()
				if !ready || !ok {
					break
				}
				if _, isGreeting := m.(skproto.Greeting); isGreeting {
					pending = m
					break
				}
				batch = append(batch, m)
			}
		}
		replies, err := tl.step(ctx, batch)
		if err != nil {
			return err
		}
		for _, reply := range replies {
			out, err := skapi.AcceptorToPB(reply)
			if err != nil {
				return err
			}
			if err := s.Send(out); err != nil {
				return err
			}
		}
		if sk.cfg.Bugs.AckBeforeFsync {
			tl.syncLate(ctx)
		}
		for _, reply := range replies {
			if v, ok := reply.(skproto.VoteResponse); ok && v.VoteGiven {
				sk.failpoint(FailpointCrashAfterVote)
			}
		}
	}
}

func (sk *Safekeeper) readWal(ctx context.Context, req *skapi.ReadWalRequest) (*skapi.ReadWalResponse, error) {
	tl, err := sk.lookup(req.GetTimeline().GetTenantId(), req.GetTimeline().GetTimelineId())
	if err != nil {
		return nil, err
	}
	b, err := tl.read(ctx, lsn.LSN(req.GetStartLsn()), lsn.LSN(req.GetEndLsn()), skproto.Term(req.GetTerm()), req.GetMaxBytes())
	if err != nil {
		return nil, err
	}
	return &skapi.ReadWalResponse{StartLsn: req.GetStartLsn(), Wal: b}, nil
}

// streamWal sends committed WAL from the requested LSN as it commits.
func (sk *Safekeeper) streamWal(ctx context.Context, s *net.ServerStreamOf[*skapi.StreamWalRequest, *skapi.WalChunk]) error {
	req, err := s.Recv()
	if err != nil {
		return err
	}
	tl, err := sk.lookup(req.GetTimeline().GetTenantId(), req.GetTimeline().GetTimelineId())
	if err != nil {
		return err
	}
	pos := lsn.LSN(req.GetStartLsn())
	if fb := req.GetFeedback(); fb != nil {
		if err := tl.recordFeedback(ctx, fb); err != nil {
			return err
		}
	}
	// Later messages carry the reader's feedback. A task takes them while
	// this one streams; it ends when the stream does (the client closing
	// its side, or this handler returning).
	sk.env.Clock.Go(ctx, "safekeeper streamwal feedback", func(ctx context.Context) {
		for {
			m, err := s.Recv()
			if err != nil {
				return
			}
			if fb := m.GetFeedback(); fb != nil {
				if err := tl.recordFeedback(ctx, fb); err != nil {
					sk.env.Log.Warn("pageserver feedback dropped", "tenant", tl.key.tenant, "timeline", tl.key.timeline, "err", err)
				}
			}
		}
	})
	for {
		if err := tl.mu.Lock(ctx); err != nil {
			return err
		}
		for tl.usable() == nil && tl.acc.CommitLSN() <= pos {
			if err := tl.cond.Wait(ctx); err != nil {
				tl.mu.Unlock()
				return err
			}
		}
		if err := tl.usable(); err != nil {
			tl.mu.Unlock()
			return err
		}
		commit := tl.acc.CommitLSN()
		b, err := tl.readLocked(pos, commit)
		tl.mu.Unlock()
		if err != nil {
			return err
		}
		if err := s.Send(&skapi.WalChunk{StartLsn: uint64(pos), Wal: b, CommitLsn: uint64(commit)}); err != nil {
			return err
		}
		pos += lsn.LSN(len(b))
	}
}

func (sk *Safekeeper) status(ctx context.Context, req *skapi.TimelineRef) (*skapi.TimelineStatus, error) {
	tl, err := sk.lookup(req.GetTenantId(), req.GetTimelineId())
	if err != nil {
		return nil, err
	}
	s, err := tl.snapshot(ctx)
	if err != nil {
		return nil, err
	}
	return &skapi.TimelineStatus{NodeId: sk.cfg.NodeID, Term: uint64(s.Term), LastLogTerm: uint64(s.History.LastTerm()),
		ElectedTerm: uint64(s.ElectedTerm), FlushLsn: uint64(s.FlushLSN), CommitLsn: uint64(s.CommitLSN),
		BackupLsn: uint64(s.BackupLSN), StartLsn: uint64(s.StartLSN), TermHistory: skapi.HistoryToPB(s.History),
		PageserverFeedback: s.Feedback}, nil
}

// FailpointCrashAfterVote, when enabled, kills the process right after a
// vote leaves: the window in which an unpersisted vote would be forgotten.
const FailpointCrashAfterVote = "safekeeper/crash-after-vote"

// failpoint kills the process (through Config.OnFatal) if the named
// failpoint is enabled on this node.
func (sk *Safekeeper) failpoint(name string) {
	if sk.env.Failpoints == nil || sk.cfg.OnFatal == nil {
		return
	}
	if _, err := sk.env.Failpoints.Eval(name); err == nil {
		sk.log.Warn("failpoint fired", "name", name)
		sk.cfg.OnFatal(fmt.Errorf("safekeeper: failpoint %s", name))
	}
}

// Timeline returns a timeline's current state (for tests and checkers).
func (sk *Safekeeper) Timeline(ctx context.Context, tenant, timeline string) (Snapshot, error) {
	tl, err := sk.lookup(tenant, timeline)
	if err != nil {
		return Snapshot{}, err
	}
	return tl.snapshot(ctx)
}

// ReadWAL reads flushed WAL [start, end) in chunks (for tests and
// checkers).
func (sk *Safekeeper) ReadWAL(ctx context.Context, tenant, timeline string, start, end lsn.LSN) ([]byte, error) {
	tl, err := sk.lookup(tenant, timeline)
	if err != nil {
		return nil, err
	}
	var out []byte
	for pos := start; pos < end; {
		b, err := tl.read(ctx, pos, end, 0, 0)
		if err != nil {
			return nil, err
		}
		if len(b) == 0 {
			return nil, fmt.Errorf("%w: no WAL at %s", walstore.ErrRange, pos)
		}
		out = append(out, b...)
		pos += lsn.LSN(len(b))
	}
	return out, nil
}
