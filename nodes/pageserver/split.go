package pageserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math/bits"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/stratadb/strata/clock"
	"github.com/stratadb/strata/disk"
	"github.com/stratadb/strata/disk/objstore"
	"github.com/stratadb/strata/engine/layer"
	"github.com/stratadb/strata/engine/lsn"
	"github.com/stratadb/strata/engine/remote"
	"github.com/stratadb/strata/engine/shard"
	"github.com/stratadb/strata/engine/timeline"
	"github.com/stratadb/strata/nodes/pageserver/pageapi"
)

// Shard split (docs/pageserver.md, "Shard split"). PUT …/shard_split on an
// attached parent shard makes its children on this node:
//
//  1. The parent's background work (compaction, GC) stops, so no layer
//     the children will name is removed under them; its timelines are
//     flushed and, with remote storage, their uploads drained.
//  2. Each child is built in a staging directory (<child>.___split): per
//     timeline the parent's persisted state, its layer files hard-linked
//     (disk.FS.Link: no copy), the child's location config (the parent's,
//     with the child's shard fields and the parent's generation) and a
//     split_from.json naming the parent. With remote storage the child's
//     index_part.json is uploaded under the parent's generation naming
//     the parent's layer objects (remote.LayerID carries the writing
//     shard, so no object is copied). Then the staging directory is
//     renamed into place.
//  3. The children attach like any shard and ingest from the parent's
//     disk_consistent_lsn; the split waits (bounded by ShardSplitTimeout)
//     until each child timeline has ingested the parent's last record LSN.
//  4. The parent's split.json is written: the local commit point. Then
//     the parent shuts down; its files stay until the controller detaches
//     it (location_config Detached).
//
// Crash safety: before the commit point a crash leaves the parent usable
// and its children absent: start-up removes staging directories and every
// child whose split_from parent is here without split.json (the split did
// not commit). After it, the children are complete and the parent loads
// as split (never served: requests for it are routed, route.go). A
// failure before the commit point undoes the split the same way (children
// removed, the parent's background work restarted). A child's index left
// in object storage by an undone split is harmless: a later split writes
// it again, and nothing attaches the child until the controller commits.

// Errors of a split. The request errors wrap pageapi.ErrBadConfig (400).
var (
	// ErrSplitShrink: the new count is not larger than the shard's.
	ErrSplitShrink = fmt.Errorf("%w: a split must grow the shard count", pageapi.ErrBadConfig)
	// ErrSplitRatio: new count / old count is not a power of two.
	ErrSplitRatio = fmt.Errorf("%w: a split's new count must be a power-of-two multiple of the old", pageapi.ErrBadConfig)
	// ErrSplitStripe: a stripe change of a tenant that is already sharded.
	ErrSplitStripe = fmt.Errorf("%w: the stripe size cannot change once the tenant has two shards or more", pageapi.ErrBadConfig)
	// ErrSplitConflict: the parent is already split another way, or a
	// child is already here (409).
	ErrSplitConflict = errors.New("pageserver: shard split conflicts with the shards here")
	// ErrShardSplit: the addressed shard was split here and no longer
	// serves (requests for it are routed to its children).
	ErrShardSplit = errors.New("pageserver: tenant shard was split")
	// ErrChildrenNotLocal: a request for a split shard whose children are
	// not all attached here (Unavailable: the client retries on its new
	// shard map).
	ErrChildrenNotLocal = errors.New("pageserver: the shard was split and its children are not all here")
)

const (
	// splitStagingSuffix marks a child's directory being built by a
	// split; start-up removes any.
	splitStagingSuffix = ".___split"
	// splitFile is written into a parent's directory when its split
	// commits locally.
	splitFile = "split.json"
	// splitFromFile names a child's parent; the child counts only once
	// the parent committed (splitFile) or is gone.
	splitFromFile = "split_from.json"
)

// splitRecord is a split parent's split.json.
type splitRecord struct {
	NewShardCount shard.ShardCount      `json:"new_shard_count"`
	NewStripeSize uint32                `json:"new_stripe_size"`
	Children      []shard.TenantShardID `json:"children"`
}

// splitFromRecord is a child's split_from.json.
type splitFromRecord struct {
	Parent shard.TenantShardID `json:"parent"`
}

// splitMetrics count splits by result and time them.
type splitMetrics struct {
	splits   *prometheus.CounterVec // by result: ok, repeat, refused, failed
	duration prometheus.Histogram
}

func newSplitMetrics(reg prometheus.Registerer) (*splitMetrics, error) {
	m := &splitMetrics{
		splits: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "strata_pageserver_shard_splits_total",
			Help: "Shard split requests by result (ok, repeat: answered from an earlier split, refused, failed: undone)."}, []string{"result"}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "strata_pageserver_shard_split_seconds",
			Help: "Duration of successful shard splits on this pageserver.", Buckets: prometheus.ExponentialBuckets(0.001, 4, 10)}),
	}
	for _, c := range []prometheus.Collector{m.splits, m.duration} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("pageserver: register metrics: %w", err)
		}
	}
	return m, nil
}

// checkSplit validates a split of the shard with identity from into
// newCount (and the stripe asked for, nil: keep) and returns the
// children's stripe.
func checkSplit(from shard.ShardIdentity, newCount shard.ShardCount, newStripe *uint32) (uint32, error) {
	old := max(uint8(from.Count), 1)
	if uint8(newCount) <= old {
		return 0, fmt.Errorf("%w: shard %s has count %d, asked for %d", ErrSplitShrink, from.Index(), from.Count, newCount)
	}
	ratio := uint8(newCount) / old
	if uint8(newCount)%old != 0 || bits.OnesCount8(ratio) != 1 {
		return 0, fmt.Errorf("%w: %d into %d", ErrSplitRatio, old, newCount)
	}
	stripe := from.StripeSize
	if newStripe != nil {
		if *newStripe == 0 {
			return 0, fmt.Errorf("%w: new_stripe_size 0", pageapi.ErrBadConfig)
		}
		if *newStripe != stripe && from.Count >= 2 {
			return 0, fmt.Errorf("%w: stripe %d, asked for %d", ErrSplitStripe, stripe, *newStripe)
		}
		stripe = *newStripe
	}
	return stripe, nil
}

// childConfig is the location config of child c of a parent with conf.
func childConfig(conf pageapi.LocationConfig, c shard.TenantShardID, stripe uint32) pageapi.LocationConfig {
	conf.ShardNumber, conf.ShardCount, conf.ShardStripeSize = uint8(c.Shard.Number), uint8(c.Shard.Count), stripe
	return conf
}

// split splits attached shard id into its children of req.NewShardCount on
// this node (see above) and returns them in shard-number order.
func (m *tenantManager) split(ctx context.Context, id shard.TenantShardID, req pageapi.ShardSplitRequest) (out []shard.TenantShardID, err error) {
	start := m.clk.Mono()
	result := "refused"
	defer func() {
		if m.splitMetrics == nil {
			return
		}
		m.splitMetrics.splits.WithLabelValues(result).Inc()
		if result == "ok" {
			m.splitMetrics.duration.Observe((m.clk.Mono() - start).Seconds())
		}
	}()
	ts, err := m.get(id)
	if err != nil {
		return nil, err
	}
	if err := ts.op.Lock(ctx); err != nil {
		return nil, err
	}
	defer ts.op.Unlock()
	ts.mu.Lock()
	conf, rec, broken, running := ts.conf, ts.split, ts.broken, ts.engine != nil
	ts.mu.Unlock()
	if rec != nil {
		kids, err := m.repeatSplit(id, rec, req)
		if err == nil {
			result = "repeat"
		}
		return kids, err
	}
	switch {
	case broken != nil:
		return nil, broken
	case conf.Mode != pageapi.ModeAttachedSingle && conf.Mode != pageapi.ModeAttachedMulti || conf.Generation == nil || !running:
		return nil, fmt.Errorf("%w: %s is %s; a split needs AttachedSingle or AttachedMulti", ErrNotAttached, id, conf.Mode)
	}
	stripe, err := checkSplit(conf.Identity(), req.NewShardCount, req.NewStripeSize)
	if err != nil {
		return nil, err
	}
	kids, err := id.SplitChildren(req.NewShardCount)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", pageapi.ErrBadConfig, err)
	}
	m.mu.Lock()
	for _, c := range kids {
		if m.shards[c] != nil {
			m.mu.Unlock()
			return nil, fmt.Errorf("%w: child %s is already here", ErrSplitConflict, c)
		}
	}
	if len(m.shards)+len(kids) > m.cfg.MaxTenantShards {
		m.mu.Unlock()
		return nil, fmt.Errorf("%w: %d tenant shards and %d children, limit %d", ErrLimit, len(m.shards), len(kids), m.cfg.MaxTenantShards)
	}
	m.mu.Unlock()

	result = "failed"
	log := m.log.With("tenant_shard_id", id.String(), "new_shard_count", req.NewShardCount, "new_stripe_size", stripe)
	log.Info("shard split starting", "children", len(kids), "generation", *conf.Generation)
	sctx, cancel := clock.WithTimeout(m.clk, ctx, m.cfg.ShardSplitTimeout)
	defer cancel()
	p, err := m.prepareSplit(sctx, ts)
	if err != nil {
		log.Warn("shard split failed preparing the parent; undone", "err", err)
		m.resumeParent(ts, p)
		return nil, err
	}
	made, err := m.makeChildren(sctx, ts, conf, p, kids, stripe)
	if err != nil {
		log.Warn("shard split failed making the children; undone", "err", err)
		m.undoChildren(made, kids)
		m.resumeParent(ts, p)
		return nil, err
	}
	m.atSplitPoint("children-ready")
	rec = &splitRecord{NewShardCount: req.NewShardCount, NewStripeSize: stripe, Children: kids}
	if err := m.commitSplit(ts, rec); err != nil {
		log.Warn("shard split failed to commit; undone", "err", err)
		m.undoChildren(made, kids)
		m.resumeParent(ts, p)
		return nil, err
	}
	m.atSplitPoint("committed")
	// Committed: the parent stops serving (requests for it are routed to
	// the children) and keeps its files until it is detached.
	m.detachEngine(ts)
	result = "ok"
	log.Info("shard split done; the parent is shut down and keeps its files until detached",
		"children", fmt.Sprint(kids), "took", time.Duration(m.clk.Mono()-start))
	return kids, nil
}

// atSplitPoint calls the test hook at a named point of a split.
func (m *tenantManager) atSplitPoint(point string) {
	if m.splitHook != nil {
		m.splitHook(point)
	}
}

// repeatSplit answers a split of a parent already split here: the
// children again if the request matches and every child is here and
// serving.
func (m *tenantManager) repeatSplit(id shard.TenantShardID, rec *splitRecord, req pageapi.ShardSplitRequest) ([]shard.TenantShardID, error) {
	if req.NewShardCount != rec.NewShardCount || req.NewStripeSize != nil && *req.NewStripeSize != rec.NewStripeSize {
		return nil, fmt.Errorf("%w: %s was split into %d shards (stripe %d)", ErrSplitConflict, id, rec.NewShardCount, rec.NewStripeSize)
	}
	for _, c := range rec.Children {
		cts, err := m.get(c)
		if err == nil {
			_, _, err = cts.attached()
		}
		if err != nil {
			return nil, fmt.Errorf("%w: %s was split, but child %s is not serving here: %v", ErrSplitConflict, id, c, err)
		}
	}
	m.log.Info("shard split repeated: answering the children again", "tenant_shard_id", id, "new_shard_count", rec.NewShardCount)
	return slices.Clone(rec.Children), nil
}

// splitParent is the parent's state the children are made from.
type splitParent struct {
	// stopped: the parent's background work was stopped (restarted by
	// resumeParent).
	stopped []*shardTimeline
	states  map[shard.TimelineID]timeline.State
	// indexes are the children's index_part, per timeline (nil without
	// remote storage).
	indexes map[shard.TimelineID]*remote.IndexPart
	gen     layer.Generation
	// lastRecord is the parent's last record LSN per timeline once the
	// children started.
	lastRecord map[shard.TimelineID]lsn.LSN
}

// prepareSplit stops the parent's background work, flushes its timelines,
// takes their persisted states and, with remote storage, waits until
// those states are uploaded and builds the children's indexes from them.
// ts.op is held.
func (m *tenantManager) prepareSplit(ctx context.Context, ts *tenantShard) (*splitParent, error) {
	_, sts, err := ts.attached()
	if err != nil {
		return nil, err
	}
	ts.mu.Lock()
	rt := ts.remote
	gen := layer.Generation(*ts.conf.Generation)
	ts.mu.Unlock()
	p := &splitParent{states: map[shard.TimelineID]timeline.State{}, gen: gen, stopped: sts}
	if left := m.tasks.stop(ctx, tenantScope(ts.id), taskBackground); len(left) > 0 {
		return p, fmt.Errorf("pageserver: split %s: background work did not stop: %v", ts.id, left)
	}
	for _, st := range sts {
		tid := shard.TimelineID(st.tl.ID())
		if st.tl.LastRecordLSN() > st.tl.DiskConsistentLSN() {
			if err := st.tl.Flush(); err != nil {
				return p, fmt.Errorf("pageserver: split %s: flush %s: %w", ts.id, tid, err)
			}
		}
		s, err := st.tl.State()
		if err != nil {
			return p, err
		}
		p.states[tid] = s
	}
	if rt == nil {
		return p, nil
	}
	p.indexes = map[shard.TimelineID]*remote.IndexPart{}
	for _, st := range sts {
		tid := shard.TimelineID(st.tl.ID())
		q := rt.queue(tid)
		if q == nil {
			return p, fmt.Errorf("pageserver: split %s: timeline %s has no upload queue", ts.id, tid)
		}
		// Every layer of the state was scheduled before this barrier, so
		// once it passes each is in object storage (and known).
		if err := q.barrier(ctx); err != nil {
			return p, fmt.Errorf("pageserver: split %s: uploads of %s: %w", ts.id, tid, err)
		}
		ip, err := q.indexOf(p.states[tid])
		if err != nil {
			return p, fmt.Errorf("pageserver: split %s: index of %s: %w", ts.id, tid, err)
		}
		p.indexes[tid] = &ip
	}
	return p, nil
}

// resumeParent restarts the background work prepareSplit stopped, after a
// split that did not commit.
func (m *tenantManager) resumeParent(ts *tenantShard, p *splitParent) {
	if p == nil {
		return
	}
	for _, st := range p.stopped {
		m.spawnBackground(ts, st)
	}
}

// makeChildren builds, installs and attaches the children (see above),
// then waits until each has ingested the parent's last record LSN. It
// returns the children it registered (for undoChildren).
func (m *tenantManager) makeChildren(ctx context.Context, parent *tenantShard, conf pageapi.LocationConfig, p *splitParent,
	kids []shard.TenantShardID, stripe uint32) ([]*tenantShard, error) {
	var made []*tenantShard
	for _, c := range kids {
		if err := m.buildChild(ctx, parent, childConfig(conf, c, stripe), p, c); err != nil {
			return made, err
		}
		m.atSplitPoint("child-built")
	}
	// All built before any attaches: an attach failing leaves nothing
	// half-made behind the others.
	for _, c := range kids {
		cts := &tenantShard{id: c, op: clock.NewMutex(m.clk), conf: childConfig(conf, c, stripe), splitFrom: &parent.id}
		m.mu.Lock()
		m.shards[c] = cts
		m.mu.Unlock()
		made = append(made, cts)
		if err := m.attach(cts); err != nil {
			return made, fmt.Errorf("pageserver: split %s: attach child %s: %w", parent.id, c, err)
		}
		m.log.Info("split child attached", "tenant_shard_id", c, "parent", parent.id, "generation", p.gen)
	}
	_, psts, err := parent.attached()
	if err != nil {
		return made, err
	}
	p.lastRecord = map[shard.TimelineID]lsn.LSN{}
	for _, st := range psts {
		p.lastRecord[shard.TimelineID(st.tl.ID())] = st.LastRecordLSN()
	}
	for _, cts := range made {
		for _, tid := range slices.SortedFunc(maps.Keys(p.lastRecord), compareTimelineID) {
			st, err := cts.lookup(tid)
			if err != nil {
				return made, err
			}
			if err := st.WaitLSN(ctx, p.lastRecord[tid]); err != nil {
				return made, fmt.Errorf("pageserver: split %s: child %s timeline %s did not ingest %s (at %s): %w",
					parent.id, cts.id, tid, p.lastRecord[tid], st.LastRecordLSN(), err)
			}
		}
	}
	return made, nil
}

// buildChild makes child c's directory in its staging place and renames
// it into place.
func (m *tenantManager) buildChild(ctx context.Context, parent *tenantShard, conf pageapi.LocationConfig, p *splitParent, c shard.TenantShardID) error {
	final := tenantsDir + "/" + c.String()
	stage := final + splitStagingSuffix
	if err := m.fs.RemoveAll(stage); err != nil {
		return fmt.Errorf("pageserver: clear %s: %w", stage, err)
	}
	if err := disk.MkdirAllDurable(m.fs, stage); err != nil {
		return fmt.Errorf("pageserver: create %s: %w", stage, err)
	}
	tids := slices.SortedFunc(maps.Keys(p.states), compareTimelineID)
	for _, tid := range tids {
		st := p.states[tid]
		dir, err := timeline.Stage(m.fs, stage, timeline.ID(tid))
		if err != nil {
			return err
		}
		src := parent.dir() + "/timelines/" + tid.String()
		// A layer the parent holds remote (not downloaded yet, or
		// evicted) stays remote in the child too: the child's index names
		// the parent's object.
		remoteOK := func(n layer.Name) bool {
			if ip := p.indexes[tid]; ip != nil {
				l, ok := ip.Find(n)
				return ok && l.Name == n
			}
			return false
		}
		for _, n := range st.Layers {
			if err := m.fs.Link(src+"/"+n.String(), dir+"/"+n.String()); err != nil && !(errors.Is(err, disk.ErrNotExist) && remoteOK(n)) {
				return fmt.Errorf("pageserver: split %s: link %s into %s: %w", parent.id, n, c, err)
			}
		}
		// Install syncs what it installs (the links with the staging
		// directory, then the timelines directory).
		if err := timeline.InstallPartial(m.fs, stage, timeline.ID(tid), st, remoteOK); err != nil {
			return fmt.Errorf("pageserver: split %s: child %s: %w", parent.id, c, err)
		}
	}
	from, err := json.Marshal(splitFromRecord{Parent: parent.id})
	if err != nil {
		return err
	}
	if err := disk.WriteFileAtomic(m.fs, stage+"/"+splitFromFile, from); err != nil {
		return fmt.Errorf("pageserver: split %s: child %s: %w", parent.id, c, err)
	}
	b, err := json.Marshal(conf)
	if err != nil {
		return err
	}
	if err := disk.WriteFileAtomic(m.fs, stage+"/"+locationFile, b); err != nil {
		return fmt.Errorf("pageserver: split %s: child %s: %w", parent.id, c, err)
	}
	if rs := m.remote; rs != nil {
		// Before the child can attach: an attach that found no index would
		// upload every layer again under the child's prefix.
		for _, tid := range tids {
			if err := rs.putIndex(ctx, c, tid, p.gen, p.indexes[tid]); err != nil {
				return fmt.Errorf("pageserver: split %s: child %s: %w", parent.id, c, err)
			}
		}
	}
	if err := m.fs.Rename(stage, final); err != nil {
		return fmt.Errorf("pageserver: split %s: child %s: %w", parent.id, c, err)
	}
	if err := m.fs.SyncDir(tenantsDir); err != nil {
		return fmt.Errorf("pageserver: split %s: child %s: %w", parent.id, c, err)
	}
	return nil
}

// putIndex uploads index ip as shard id's index of timeline tid under
// generation gen, retrying transient failures (the download policy's
// attempts).
func (rs *remoteStorage) putIndex(ctx context.Context, id shard.TenantShardID, tid shard.TimelineID, gen layer.Generation, ip *remote.IndexPart) error {
	if ip == nil {
		return fmt.Errorf("pageserver: no index for timeline %s", tid)
	}
	data, err := remote.Encode(ip)
	if errors.Is(err, remote.ErrEmptyIndex) {
		return nil // a root timeline with no layers yet: nothing to name
	}
	if err != nil {
		return err
	}
	key := rs.layout.IndexKey(id, tid, gen)
	err = rs.retrier.Do(ctx, "put "+key, remote.NotFoundFinal, func(ctx context.Context) error {
		return rs.store.Put(ctx, key, data, objstore.PutOptions{})
	})
	if err != nil {
		return err
	}
	rs.metrics.uploads.WithLabelValues("index").Inc()
	rs.metrics.uploadBytes.Add(float64(len(data)))
	rs.log.Info("split child index uploaded", "tenant_shard_id", id, "timeline_id", tid, "key", key, "layers", len(ip.Layers))
	return nil
}

// undoChildren removes the children a split that did not commit made:
// the attached ones are detached (their directories removed), staging
// directories and renamed ones too.
func (m *tenantManager) undoChildren(made []*tenantShard, kids []shard.TenantShardID) {
	for _, cts := range made {
		if err := m.detach(cts); err != nil {
			m.log.Error("undoing a split: child not removed; start-up removes it", "tenant_shard_id", cts.id, "err", err)
		}
	}
	for _, c := range kids {
		for _, dir := range []string{tenantsDir + "/" + c.String() + splitStagingSuffix, tenantsDir + "/" + c.String()} {
			if slices.ContainsFunc(made, func(ts *tenantShard) bool { return ts.id == c }) {
				continue
			}
			if err := m.fs.RemoveAll(dir); err != nil {
				m.log.Error("undoing a split: directory not removed; start-up removes it", "dir", dir, "err", err)
			}
		}
	}
	_ = m.fs.SyncDir(tenantsDir)
}

// commitSplit writes the parent's split.json durably: from here on the
// children are the shards and the parent is split (also after a crash).
func (m *tenantManager) commitSplit(ts *tenantShard, rec *splitRecord) error {
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	if err := disk.WriteFileAtomic(m.fs, ts.dir()+"/"+splitFile, b); err != nil {
		// The rename may have happened (a failed directory sync): take
		// it back, or a restart would find the parent split and its
		// children gone.
		_ = m.fs.Remove(ts.dir() + "/" + splitFile)
		_ = m.fs.SyncDir(ts.dir())
		return fmt.Errorf("pageserver: split %s: commit: %w", ts.id, err)
	}
	ts.mu.Lock()
	ts.split = rec
	ts.mu.Unlock()
	return nil
}

// clearSplit forgets a split of ts (a location config attaching the parent
// again: the controller rolled the split back). ts.op is held.
func (m *tenantManager) clearSplit(ts *tenantShard) error {
	ts.mu.Lock()
	rec := ts.split
	ts.mu.Unlock()
	if rec == nil {
		return nil
	}
	if err := m.fs.Remove(ts.dir() + "/" + splitFile); err != nil && !errors.Is(err, disk.ErrNotExist) {
		return fmt.Errorf("pageserver: %s: clear split: %w", ts.id, err)
	}
	if err := m.fs.SyncDir(ts.dir()); err != nil {
		return fmt.Errorf("pageserver: %s: clear split: %w", ts.id, err)
	}
	ts.mu.Lock()
	ts.split = nil
	ts.mu.Unlock()
	m.log.Info("split parent attached again (the split was rolled back)", "tenant_shard_id", ts.id)
	return nil
}

// readSplitFile reads a JSON marker of shard ts; ok false if absent.
func (m *tenantManager) readSplitFile(ts *tenantShard, name string, v any) (bool, error) {
	b, err := disk.ReadFile(m.fs, ts.dir()+"/"+name)
	if errors.Is(err, disk.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return false, fmt.Errorf("pageserver: %s/%s: %w", ts.dir(), name, err)
	}
	return true, nil
}

// loadSplits reads the split markers of the shards found at start-up and
// removes the children of splits that did not commit (their parent is
// here without split.json): the parent is then the shard, as before the
// split. It returns the shards that remain. A marker that cannot be read
// leaves its shard broken (never served), as does a child whose removal
// failed; the node still starts.
func (m *tenantManager) loadSplits(shards []*tenantShard) []*tenantShard {
	byID := map[shard.TenantShardID]*tenantShard{}
	for _, ts := range shards {
		byID[ts.id] = ts
		var rec splitRecord
		ok, err := m.readSplitFile(ts, splitFile, &rec)
		if ok {
			ts.split = &rec
		}
		var from splitFromRecord
		if err == nil {
			ok, err = m.readSplitFile(ts, splitFromFile, &from)
			if ok {
				ts.splitFrom = &from.Parent
			}
		}
		if err != nil {
			ts.broken = fmt.Errorf("%w: split marker: %v", ErrBroken, err)
			m.log.Error("tenant shard broken", "tenant_shard_id", ts.id, "err", ts.broken)
		}
	}
	var out []*tenantShard
	for _, ts := range shards {
		if ts.splitFrom != nil && ts.broken == nil {
			if p := byID[*ts.splitFrom]; p != nil && p.split == nil {
				if p.broken != nil {
					// Whether the split committed is unknown: neither serves.
					ts.broken = fmt.Errorf("%w: its split parent %s is broken", ErrBroken, p.id)
					out = append(out, ts)
					continue
				}
				m.log.Warn("removing the child of a split that did not commit", "tenant_shard_id", ts.id, "parent", p.id)
				if err := m.detach(ts); err != nil {
					ts.broken = fmt.Errorf("%w: child of a split that did not commit, and removing it failed: %v", ErrBroken, err)
					m.log.Error("tenant shard broken", "tenant_shard_id", ts.id, "err", ts.broken)
					out = append(out, ts)
				}
				continue
			}
		}
		out = append(out, ts)
	}
	return out
}

// loadSplitMarker reads a shard's split.json after re-attach (which makes
// new shard values for the listed shards). A split parent the controller
// listed is attached again: the controller did not commit the split.
func (m *tenantManager) loadSplitMarker(ts *tenantShard) error {
	var from splitFromRecord
	ok, err := m.readSplitFile(ts, splitFromFile, &from)
	if err != nil {
		return err
	}
	if ok {
		ts.splitFrom = &from.Parent
	}
	var rec splitRecord
	ok, err = m.readSplitFile(ts, splitFile, &rec)
	if err != nil || !ok {
		return err
	}
	ts.split = &rec
	if m.cfg.ControlPlane != nil && ts.conf.Mode.Attached() {
		return m.clearSplit(ts)
	}
	return nil
}

// spawnBackground starts timeline st's background loop (after a split
// that stopped it did not commit).
func (m *tenantManager) spawnBackground(ts *tenantShard, st *shardTimeline) {
	tid := shard.TimelineID(st.tl.ID())
	sc := scheduleOf(ts.conf.TenantConf)
	m.tasks.spawn(context.Background(), taskBackground, timelineScope(ts.id, tid), ts.id.String()+"/"+tid.String(),
		func(ctx context.Context) { m.background(ctx, ts.id, st, sc) })
}
