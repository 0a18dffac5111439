package pageserver

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/stratadb/strata/clock"
	"github.com/stratadb/strata/disk/objstore"
	"github.com/stratadb/strata/engine/lsn"
	"github.com/stratadb/strata/engine/remote"
	"github.com/stratadb/strata/engine/shard"
	"github.com/stratadb/strata/engine/walrec"
	"github.com/stratadb/strata/net"
	"github.com/stratadb/strata/nodes/node"
	"github.com/stratadb/strata/nodes/pageserver/pageapi"
	"github.com/stratadb/strata/nodes/storcon/storconapi"
	"github.com/stratadb/strata/sim"
)

// testStore wraps the world's object store: it records the keys of the
// puts and deletes that succeeded, in order, counts uploads in flight,
// and can hold puts whose key hold says so until released.
type testStore struct {
	objstore.Store
	clk clock.Clock

	mu          sync.Mutex
	puts        []string
	deleteCalls [][]string
	inFlight    int
	maxInFlight int
	hold        func(key string) bool
	// failPuts: each key's first failPuts puts fail (transient).
	failPuts int
	putTries map[string]int
}

func (s *testStore) Put(ctx context.Context, key string, data []byte, opts objstore.PutOptions) error {
	s.mu.Lock()
	s.inFlight++
	s.maxInFlight = max(s.maxInFlight, s.inFlight)
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.inFlight--
		s.mu.Unlock()
	}()
	for {
		s.mu.Lock()
		held := s.hold != nil && s.hold(key)
		s.mu.Unlock()
		if !held {
			break
		}
		if err := clock.Sleep(ctx, s.clk, time.Millisecond); err != nil {
			return err
		}
	}
	s.mu.Lock()
	if s.putTries == nil {
		s.putTries = map[string]int{}
	}
	s.putTries[key]++
	fail := s.putTries[key] <= s.failPuts
	s.mu.Unlock()
	if fail {
		return fmt.Errorf("test store: put %s: %w", key, objstore.ErrTransient)
	}
	if err := s.Store.Put(ctx, key, data, opts); err != nil {
		return err
	}
	s.mu.Lock()
	s.puts = append(s.puts, key)
	s.mu.Unlock()
	return nil
}

func (s *testStore) Delete(ctx context.Context, keys []string) error {
	if err := s.Store.Delete(ctx, keys); err != nil {
		return err
	}
	s.mu.Lock()
	s.deleteCalls = append(s.deleteCalls, append([]string(nil), keys...))
	s.mu.Unlock()
	return nil
}

func (s *testStore) setHold(h func(string) bool) {
	s.mu.Lock()
	s.hold = h
	s.mu.Unlock()
}

// putKeys returns the keys put so far that contain sub.
func (s *testStore) putKeys(sub string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, k := range s.puts {
		if strings.Contains(k, sub) {
			out = append(out, k)
		}
	}
	return out
}

// logRecorder keeps every log record's level and message (and attributes
// as text) besides passing it on.
type logRecorder struct {
	mu      sync.Mutex
	records []loggedRecord
}

type loggedRecord struct {
	level slog.Level
	msg   string
	attrs map[string]string
}

type recordingHandler struct {
	inner slog.Handler
	rec   *logRecorder
	attrs []slog.Attr
}

func (h recordingHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h recordingHandler) Handle(ctx context.Context, r slog.Record) error {
	lr := loggedRecord{level: r.Level, msg: r.Message, attrs: map[string]string{}}
	for _, a := range h.attrs {
		lr.attrs[a.Key] = a.Value.String()
	}
	r.Attrs(func(a slog.Attr) bool {
		lr.attrs[a.Key] = a.Value.String()
		return true
	})
	h.rec.mu.Lock()
	h.rec.records = append(h.rec.records, lr)
	h.rec.mu.Unlock()
	if h.inner.Enabled(ctx, r.Level) {
		return h.inner.Handle(ctx, r)
	}
	return nil
}

func (h recordingHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return recordingHandler{inner: h.inner.WithAttrs(as), rec: h.rec, attrs: append(append([]slog.Attr(nil), h.attrs...), as...)}
}

func (h recordingHandler) WithGroup(name string) slog.Handler {
	return recordingHandler{inner: h.inner.WithGroup(name), rec: h.rec, attrs: h.attrs}
}

// find returns the records whose message contains msg.
func (l *logRecorder) find(msg string) []loggedRecord {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []loggedRecord
	for _, r := range l.records {
		if strings.Contains(r.msg, msg) {
			out = append(out, r)
		}
	}
	return out
}

// validatingController answers re-attach from a table and validate from
// a validity flag per shard (absent: omitted from the answer, so invalid),
// and counts the validate calls.
type validatingController struct {
	mu         sync.Mutex
	reattach   []storconapi.ReAttachTenant
	valid      map[shard.TenantShardID]bool
	validates  int
	failNextVs int // answer this many validate calls with Unavailable
}

func (c *validatingController) register(rt *net.Router) {
	net.HandleJSON(rt, storconapi.RouteReAttach, 200, func(_ context.Context, _ *net.HTTPRequest, _ storconapi.ReAttachRequest) (storconapi.ReAttachResponse, error) {
		c.mu.Lock()
		defer c.mu.Unlock()
		return storconapi.ReAttachResponse{Tenants: c.reattach}, nil
	})
	net.HandleJSON(rt, storconapi.RouteValidate, 200, func(_ context.Context, _ *net.HTTPRequest, req storconapi.ValidateRequest) (storconapi.ValidateResponse, error) {
		c.mu.Lock()
		defer c.mu.Unlock()
		c.validates++
		if c.failNextVs > 0 {
			c.failNextVs--
			return storconapi.ValidateResponse{}, net.Errorf(net.Unavailable, "validating controller: failing on purpose")
		}
		var resp storconapi.ValidateResponse
		for _, t := range req.Tenants {
			if v, ok := c.valid[t.ID]; ok {
				resp.Tenants = append(resp.Tenants, storconapi.ValidateResponseTenant{ID: t.ID, Valid: v})
			}
		}
		return resp, nil
	})
}

func (c *validatingController) setValid(id shard.TenantShardID, v bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.valid[id] = v
}

// remoteFixture is a pageserver given the world's object store (through
// a testStore), a client, and optionally a controller.
type remoteFixture struct {
	*nodeFixture
	t     *testing.T
	cfg   Config // the next start's
	store *testStore
	logs  *logRecorder
	ctl   *validatingController
	// wipe, if set, empties the pageserver's disk at its next start (a
	// lost disk).
	wipe bool
}

// runRemote runs body against a pageserver with remote storage; with
// useCtl it is given the validating controller.
func runRemote(t *testing.T, cfg Config, useCtl bool, body func(f *remoteFixture)) {
	t.Helper()
	cfg.NodeID, cfg.PageAddr, cfg.HTTPAddr = 7, "ps:6400", "ps:9898"
	if useCtl {
		cfg.AdvertiseHTTPAddr, cfg.AdvertisePageAddr = "ps:9898", "ps:6400"
	}
	w := sim.New(sim.Options{Seed: 1})
	err := w.Run(func(w *sim.World) error {
		f := &remoteFixture{nodeFixture: &nodeFixture{w: w}, t: t, cfg: cfg, logs: &logRecorder{},
			ctl: &validatingController{valid: map[shard.TenantShardID]bool{}}}
		f.store = &testStore{Store: w.Store(), clk: w.Clock()}
		if useCtl {
			w.AddNode("storcon", func(env node.Env) error {
				rt := net.NewRouter()
				f.ctl.register(rt)
				m := net.NewMux()
				rt.Register(m)
				_, err := env.Net.Listen(ctlAddr, m)
				return err
			})
		}
		f.ps = w.AddNode("ps", func(env node.Env) error {
			if f.wipe {
				for _, dir := range []string{tenantsDir, deletionDir} {
					if err := env.Disk.RemoveAll(dir); err != nil {
						return err
					}
				}
				f.wipe = false
			}
			env.Store = f.store
			env.Log = slog.New(recordingHandler{inner: env.Log.Handler(), rec: f.logs})
			c := f.cfg
			if useCtl {
				c.ControlPlane = net.DialHTTP{Net: env.Net, Addr: ctlAddr}
			}
			n, err := Start(env, c)
			if err == nil {
				f.node = n
			}
			return err
		})
		cli := w.AddNode("cli", func(node.Env) error { return nil })
		hc, err := cli.Env().Net.Dial(context.Background(), cfg.HTTPAddr)
		if err != nil {
			return err
		}
		pc, err := cli.Env().Net.Dial(context.Background(), cfg.PageAddr)
		if err != nil {
			return err
		}
		f.http, f.page = net.SeamHTTP{Conn: hc}, pc
		ctx, cancel := clock.WithTimeout(w.Clock(), context.Background(), time.Hour)
		defer cancel()
		f.ctx = ctx
		f.waitUp(t)
		body(f)
		return nil
	})
	if err != nil {
		t.Fatalf("simulation: %v", err)
	}
}

// quietConf turns background compaction and GC off: the tests drive them.
func quietConf() *pageapi.TenantConf {
	never, off, two := "1000h", "0s", 2
	return &pageapi.TenantConf{CompactionPeriod: &never, CheckpointTimeout: &never, GCPeriod: &off, CompactionThreshold: &two}
}

var tsidA = shard.UnshardedID(tenantA)

// attachA attaches tenantA with generation g in mode (quiet background).
func (f *remoteFixture) attachA(g uint32, mode pageapi.LocationMode) error {
	conf := pageapi.LocationConfig{Mode: mode, Generation: gen(g), TenantConf: quietConf()}
	return f.do("PUT", "/v1/tenant/"+tsidA.String()+"/location_config", conf, nil)
}

// timeline returns tenantA's timeline tid on the current incarnation.
func (f *remoteFixture) timeline(tid shard.TimelineID) *shardTimeline {
	f.t.Helper()
	ts, err := f.node.tenants.get(tsidA)
	if err != nil {
		f.t.Fatal(err)
	}
	st, err := ts.lookup(tid)
	if err != nil {
		f.t.Fatal(err)
	}
	return st
}

// writeFlush ingests a full page image of each block at the next LSNs
// and flushes: one new L0 layer. It returns the last LSN.
func (f *remoteFixture) writeFlush(st *shardTimeline, at lsn.LSN, fill byte, blocks ...uint32) lsn.LSN {
	f.t.Helper()
	for _, b := range blocks {
		at += 0x10
		if err := st.Ingest(at, walrec.FullPageImage{Rel: testRel, Blk: b, Page: testPage(fill + byte(b))}); err != nil {
			f.t.Fatal(err)
		}
	}
	if err := st.tl.Flush(); err != nil {
		f.t.Fatal(err)
	}
	return at
}

// barrier waits until timeline tid's queue has uploaded what is
// scheduled.
func (f *remoteFixture) barrier(tid shard.TimelineID) {
	f.t.Helper()
	ctx, cancel := clock.WithTimeout(f.w.Clock(), f.ctx, 5*time.Minute)
	defer cancel()
	q := f.timeline(tid).remote
	if q == nil {
		f.t.Fatal("no upload queue")
	}
	if err := q.barrier(ctx); err != nil {
		f.t.Fatalf("barrier: %v (%s)", err, q.describe())
	}
}

// index reads the index tenantA's timeline tid uploaded under generation
// g.
func (f *remoteFixture) index(tid shard.TimelineID, g uint32) (remote.IndexPart, error) {
	b, err := f.w.Store().Get(f.ctx, remote.Layout{}.IndexKey(tsidA, tid, layerGen(g)))
	if err != nil {
		return remote.IndexPart{}, err
	}
	return remote.Parse(b)
}

// metric returns the value of the pageserver's counter or gauge name
// whose labels include the given pairs (summed over matches).
func (f *remoteFixture) metric(name string, labels ...string) float64 {
	f.t.Helper()
	return metricValue(f.t, f.ps.Env().Metrics, name, labels...)
}

func metricValue(t *testing.T, reg *prometheus.Registry, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				if !hasLabel(m, labels[i], labels[i+1]) {
					continue next
				}
			}
			switch {
			case m.Counter != nil:
				sum += m.Counter.GetValue()
			case m.Gauge != nil:
				sum += m.Gauge.GetValue()
			}
		}
	}
	return sum
}

func hasLabel(m *dto.Metric, k, v string) bool {
	for _, l := range m.GetLabel() {
		if l.GetName() == k && l.GetValue() == v {
			return true
		}
	}
	return false
}

// eventually polls cond (virtual time) until it holds or budget passes.
func (f *remoteFixture) eventually(budget time.Duration, what string, cond func() bool) {
	f.t.Helper()
	for waited := time.Duration(0); !cond(); waited += 10 * time.Millisecond {
		if waited > budget {
			f.t.Fatalf("%s: not within %v", what, budget)
		}
		_ = clock.Sleep(f.ctx, f.w.Clock(), 10*time.Millisecond)
	}
}

// restart stops the pageserver cleanly (or crashes it) and starts it
// again.
func (f *remoteFixture) restart(crash bool) {
	if crash {
		f.w.Crash("ps", false)
	} else {
		f.w.Stop("ps")
	}
	f.w.Restart("ps")
	f.waitUp(f.t)
}
