package pageserver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/stratadb/strata/clock"
	"github.com/stratadb/strata/engine/lsn"
	"github.com/stratadb/strata/engine/shard"
	"github.com/stratadb/strata/engine/skproto"
	"github.com/stratadb/strata/engine/walrec"
	"github.com/stratadb/strata/net"
	"github.com/stratadb/strata/nodes/broker/brokerapi"
	"github.com/stratadb/strata/nodes/safekeeper/skapi"
)

// ErrBadWAL: a safekeeper sent WAL that does not decode or does not
// continue where ingest stands. The connection is dropped and another (or
// the same, later) safekeeper is tried; nothing of it is ingested.
var ErrBadWAL = errors.New("pageserver: bad WAL from safekeeper")

// walMetrics are the WAL receivers' metrics, shared by every timeline.
type walMetrics struct {
	bytes, records prometheus.Counter
	switches       *prometheus.CounterVec // by reason class
	lastRecord     *prometheus.GaugeVec   // by tenant shard, timeline
}

func newWALMetrics(reg prometheus.Registerer) (*walMetrics, error) {
	m := &walMetrics{
		bytes:   prometheus.NewCounter(prometheus.CounterOpts{Name: "strata_pageserver_ingest_bytes_total", Help: "WAL bytes ingested."}),
		records: prometheus.NewCounter(prometheus.CounterOpts{Name: "strata_pageserver_ingest_records_total", Help: "WAL records ingested."}),
		switches: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "strata_pageserver_walreceiver_switches_total",
			Help: "WAL receiver connections ended, by reason (error, stalled, lagging)."}, []string{"reason"}),
		lastRecord: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "strata_pageserver_last_record_lsn",
			Help: "Last ingested LSN per timeline."}, []string{"tenant_shard_id", "timeline_id"}),
	}
	for _, c := range []prometheus.Collector{m.bytes, m.records, m.switches, m.lastRecord} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("pageserver: register metrics: %w", err)
		}
	}
	return m, nil
}

// walReceiver follows one timeline's committed WAL from the safekeepers
// into the timeline. It runs as a task of the timeline until the timeline,
// tenant or node shuts down.
type walReceiver struct {
	env     walEnv
	cfg     WALReceiverConfig
	id      shard.TenantShardID
	tid     shard.TimelineID
	st      *shardTimeline
	log     *slog.Logger
	metrics *walMetrics
	broker  *brokerapi.Client
	bugs    Bugs
	// nodeID names this pageserver in its feedback to safekeepers.
	nodeID string
	// tasks registers the receiver's helper tasks (watchdog, feedback).
	tasks *taskRegistry

	mu  sync.Mutex // guards sel (the watchdog and the loop share it)
	sel *selector
}

// walEnv is what a receiver needs of the node.
type walEnv struct {
	clk clock.Clock
	net net.Network
}

// run is the receiver's loop: pick a safekeeper, stream from it until it
// fails or a better one appears, back off, repeat.
func (r *walReceiver) run(ctx context.Context) {
	clk := r.env.clk
	for ctx.Err() == nil {
		r.poll(ctx)
		r.mu.Lock()
		c, ok := r.sel.best(clk.Mono())
		r.mu.Unlock()
		if !ok {
			if clock.Sleep(ctx, clk, r.cfg.PollInterval) != nil {
				return
			}
			continue
		}
		reason, err := r.follow(ctx, c)
		if ctx.Err() != nil {
			return
		}
		class := "error"
		switch {
		case reason != "":
			// switchReason's texts start with their class.
			class, _, _ = strings.Cut(reason, ":")
			r.log.Info("switching safekeeper", "from", c.id, "why", reason)
		case err != nil:
			r.log.Warn("WAL stream ended", "safekeeper", c.id, "err", err)
		}
		r.metrics.switches.WithLabelValues(class).Inc()
		r.mu.Lock()
		r.sel.failed(c.id, clk.Mono())
		r.mu.Unlock()
	}
}

// poll asks the broker for the timeline's safekeepers.
func (r *walReceiver) poll(ctx context.Context) {
	infos, err := r.broker.Get(ctx, &brokerapi.TimelineFilter{TenantId: r.id.TenantID.String(), TimelineId: r.tid.String()})
	if err != nil {
		if ctx.Err() == nil {
			r.log.Debug("broker poll failed", "err", err)
		}
		return
	}
	r.mu.Lock()
	r.sel.observe(r.env.clk.Mono(), infos)
	r.mu.Unlock()
}

// follow streams from c until the stream fails (err) or the watchdog
// decides to switch (reason).
func (r *walReceiver) follow(ctx context.Context, c candidate) (reason string, err error) {
	clk := r.env.clk
	cctx, cancel := clock.WithCancel(ctx)
	defer cancel()
	dctx, dcancel := clock.WithTimeout(clk, cctx, r.cfg.CallTimeout)
	conn, err := r.env.net.Dial(dctx, c.addr)
	dcancel()
	if err != nil {
		return "", err
	}
	defer conn.Close()
	start := r.st.LastRecordLSN()
	if r.bugs.ResumeWrongLSN && start > 0 {
		start = c.commit // skips the WAL between what is ingested and the new safekeeper's commit
	}
	s, err := skapi.OpenStreamWal(cctx, conn, r.id.TenantID.String(), r.tid.String(), uint64(start))
	if err != nil {
		return "", err
	}
	// Feedback: the safekeeper learns how far this pageserver has ingested
	// and made durable, so it never removes WAL the pageserver still needs.
	scope := timelineScope(r.id, r.tid)
	r.tasks.spawn(cctx, taskWALReceiver, scope, "feedback "+r.tid.String(), func(ctx context.Context) {
		for clock.Sleep(ctx, clk, r.cfg.FeedbackInterval) == nil {
			if err := s.Send(&skapi.StreamWalRequest{Feedback: r.feedback()}); err != nil {
				return
			}
		}
	})
	r.log.Info("streaming WAL", "safekeeper", c.id, "addr", c.addr, "from", start)

	var mu sync.Mutex
	received, lastData := start, clk.Mono()
	var why string
	// The watchdog polls the broker and ends the stream when the selector
	// says to switch; it ends with the stream.
	r.tasks.spawn(cctx, taskWALReceiver, scope, "watchdog "+r.tid.String(), func(ctx context.Context) {
		for clock.Sleep(ctx, clk, r.cfg.PollInterval) == nil {
			r.poll(ctx)
			mu.Lock()
			rcv, last := received, lastData
			mu.Unlock()
			r.mu.Lock()
			w := r.sel.switchReason(clk.Mono(), c.id, rcv, last)
			r.mu.Unlock()
			if w != "" {
				mu.Lock()
				why = w
				mu.Unlock()
				cancel()
				return
			}
		}
	})
	pos := start
	for {
		chunk, err := s.Recv()
		if err != nil {
			mu.Lock()
			w := why
			mu.Unlock()
			if w != "" {
				return w, nil
			}
			if err == io.EOF {
				return "", fmt.Errorf("safekeeper %s ended the stream", c.id)
			}
			return "", err
		}
		if got := lsn.LSN(chunk.GetStartLsn()); got != pos && !r.bugs.ResumeWrongLSN {
			return "", fmt.Errorf("%w: chunk starts at %s, expected %s", ErrBadWAL, got, pos)
		}
		n, err := r.ingest(lsn.LSN(chunk.GetStartLsn()), chunk.GetWal())
		pos = lsn.LSN(chunk.GetStartLsn()) + lsn.LSN(n)
		mu.Lock()
		received, lastData = pos, clk.Mono()
		mu.Unlock()
		if err != nil {
			return "", err
		}
		if n > 0 {
			r.mu.Lock()
			r.sel.succeeded(c.id)
			r.mu.Unlock()
		}
	}
}

// ingest decodes whole frames of wal (which starts at from) and ingests
// each record at the LSN just past its frame. It returns the bytes
// consumed; on an error the frames before the bad one are ingested.
func (r *walReceiver) ingest(from lsn.LSN, wal []byte) (int, error) {
	off := 0
	for off < len(wal) {
		n, err := skproto.FrameLen(wal[off:])
		if err != nil {
			return off, fmt.Errorf("%w: at %s: %v", ErrBadWAL, from+lsn.LSN(off), err)
		}
		payload := wal[off+skproto.FrameHeaderBytes : off+n]
		rec, used, err := walrec.Decode(payload)
		if err == nil && used != len(payload) {
			err = fmt.Errorf("%d trailing bytes in the frame", len(payload)-used)
		}
		if err != nil {
			return off, fmt.Errorf("%w: record at %s: %v", ErrBadWAL, from+lsn.LSN(off), err)
		}
		end := from + lsn.LSN(off+n)
		if err := r.st.Ingest(end, rec); err != nil {
			return off, fmt.Errorf("ingest at %s: %w", end, err)
		}
		off += n
		r.metrics.records.Inc()
		r.metrics.bytes.Add(float64(n))
	}
	r.metrics.lastRecord.WithLabelValues(r.id.String(), r.tid.String()).Set(float64(r.st.LastRecordLSN()))
	return off, nil
}

// feedback is the timeline's progress as the safekeepers see it:
// remote_consistent_lsn only once uploaded under a generation that
// validated since (0 without remote storage).
func (r *walReceiver) feedback() *skapi.PageserverFeedback {
	// Each shard reports as its own source: the safekeepers keep WAL for
	// the slowest source, and two shards on this node have their own
	// remote_consistent_lsn (one id would keep only the higher).
	id := r.nodeID
	if !r.id.Shard.IsUnsharded() {
		id += "/" + r.id.Shard.String()
	}
	return &skapi.PageserverFeedback{PageserverId: id, LastRecordLsn: uint64(r.st.LastRecordLSN()),
		DiskConsistentLsn: uint64(r.st.tl.DiskConsistentLSN()), RemoteConsistentLsn: uint64(r.st.remoteConsistentLSN())}
}
