package pageserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/stratadb/strata/clock"
	"github.com/stratadb/strata/disk"
	"github.com/stratadb/strata/disk/objstore"
	"github.com/stratadb/strata/engine/invariants"
	"github.com/stratadb/strata/engine/layer"
	"github.com/stratadb/strata/engine/lsn"
	"github.com/stratadb/strata/engine/remote"
	"github.com/stratadb/strata/engine/shard"
	"github.com/stratadb/strata/engine/timeline"
	"github.com/stratadb/strata/nodes/pageserver/pageapi"
)

// The upload queue of one timeline (docs/remote-storage.md, "Upload
// queue"). The engine reports every persisted edit (timeline.Options.OnEdit);
// each becomes, in order, an upload per new layer file, an upload of the
// index describing the timeline after the edit, and, if the edit removed
// layers, their deletion. The rules:
//
//   - A layer upload may run beside other uploads, but never before a
//     deletion scheduled ahead of it.
//   - An index upload starts only when everything scheduled before it is
//     done, so the layers it names are in object storage before it is.
//     Consecutive index uploads coalesce: only the newest goes out.
//   - A deletion is handed on (to the deletion queue, which validates the
//     generation before deleting) only when everything before it is done,
//     so the index that stopped naming the objects is uploaded first.
//   - At most RemoteStorage.MaxInFlight uploads run at once; each is
//     retried until it succeeds, with back-off, logged at warn from the
//     third failure.
//   - AttachedMulti uploads but holds its deletions (handed on if the mode
//     becomes AttachedSingle); AttachedStale neither uploads nor deletes:
//     uploads wait until the mode changes.
//
// A layer file can vanish before its upload ran: a later edit removed it
// (compaction, GC) and the last read let go. Its upload is then abandoned,
// and so is every index upload that names it; a later index upload, the
// one of the edit that removed it, is always scheduled and does not. A
// deletion handed on when the index before it was abandoned (or never
// uploaded, being empty) keeps back the objects the newest uploaded index
// still names, until an uploaded index no longer names them.

type opKind uint8

const (
	opLayer opKind = iota + 1
	opIndex
	opDelete
)

func (k opKind) String() string {
	switch k {
	case opLayer:
		return "layer"
	case opIndex:
		return "index"
	case opDelete:
		return "delete"
	}
	return fmt.Sprintf("op(%d)", uint8(k))
}

type uploadOp struct {
	seq  uint64
	kind opKind
	// name is the layer file to upload (opLayer).
	name layer.Name
	// state is the timeline state the index describes (opIndex).
	state timeline.State
	// names are the layer files the edit removed (opDelete).
	names   []layer.Name
	running bool
}

// uploadQueue is one timeline's queue of uploads and deletions.
type uploadQueue struct {
	rt   *remoteTenant
	rs   *remoteStorage
	tsid shard.TenantShardID
	tid  shard.TimelineID
	dir  string // the timeline's local directory
	log  *slog.Logger

	mu      *clock.Mutex
	cond    *clock.Cond // broadcast on every change (op done, scheduled, mode, stop)
	ops     []*uploadOp // scheduled and not done, in order
	seq     uint64      // the last op's seq
	running int
	stopped bool
	// known are the layer objects in object storage as far as this
	// attachment knows (uploaded by it, or named by the index it started
	// from), by local file name.
	known map[layer.Name]remote.Layer
	// abandoned are layer files that vanished before their upload (see
	// above).
	abandoned map[layer.Name]bool
	// latest is the newest state scheduled: the layers it lists must not
	// vanish.
	latest timeline.State
	// base carries what an index holds besides the layers and the engine's
	// state (Postgres version, lineage, archival, GC blocking), from the
	// index the attachment started from.
	base remote.IndexPart
	// held are deletions an AttachedMulti location keeps back.
	held []remote.LayerID
	// deferred are layers a deletion removed while the newest index in
	// object storage still named them (deferIndexedLocked).
	deferred []layer.Name
	// indexed are the layers of the newest index in object storage that
	// this attachment uploaded or started from: a restart finds them
	// through it, so their local files may be evicted (eviction.go).
	indexed map[layer.Name]remote.Layer
	// uploaded is the disk_consistent_lsn of the newest index uploaded
	// (remote_consistent_lsn as projected); visible is the one whose
	// generation validated since, the one reported.
	uploaded, visible lsn.LSN
}

// newUploadQueue makes the queue of timeline tid, whose persisted state is
// local, starting from the index idx the attachment loaded (nil: none).
// Local layers the index does not name are scheduled for upload, and an
// index if the local state differs from idx.
func newUploadQueue(rt *remoteTenant, tid shard.TimelineID, dir string, local timeline.State, idx *remote.IndexPart) *uploadQueue {
	mu := clock.NewMutex(rt.rs.clk)
	q := &uploadQueue{rt: rt, rs: rt.rs, tsid: rt.id, tid: tid, dir: dir, mu: mu, cond: clock.NewCond(mu),
		known: map[layer.Name]remote.Layer{}, abandoned: map[layer.Name]bool{}, indexed: map[layer.Name]remote.Layer{}, latest: local,
		log: rt.rs.log.With("tenant_shard_id", rt.id.String(), "timeline_id", tid.String())}
	changed := idx == nil
	if idx != nil {
		q.base = *idx
		q.base.Layers = nil
		for _, l := range idx.Layers {
			q.known[l.Name] = l
			q.indexed[l.Name] = l
		}
		q.uploaded = idx.Metadata.DiskConsistentLSN
		changed = !sameState(local, idx)
	}
	_ = q.mu.Lock(context.Background())
	for _, n := range local.Layers {
		if _, ok := q.known[n]; !ok {
			q.pushLocked(&uploadOp{kind: opLayer, name: n})
			changed = true
		}
	}
	if changed {
		q.pushLocked(&uploadOp{kind: opIndex, state: local})
	}
	q.mu.Unlock()
	if q.uploaded > 0 {
		// The index already in object storage counts once our generation
		// validates, as any upload of ours does.
		q.rs.validator.projectRCL(q, q.uploaded)
	}
	return q
}

// restartUploadQueue gives timeline tl of an attachment a new upload
// queue after its delete failed; old (stopped) was its queue, nil if it
// had none. Object storage may say the timeline is deleted, so a new
// index is uploaded; the layers old knew to be in object storage are not
// uploaded again (an evicted one has no local file to upload).
func (m *tenantManager) restartUploadQueue(ts *tenantShard, rt *remoteTenant, tl *timeline.Timeline, old *uploadQueue) error {
	st, err := tl.State()
	if err != nil {
		return err
	}
	tid := shard.TimelineID(tl.ID())
	q := newUploadQueue(rt, tid, ts.dir()+"/timelines/"+tid.String(), st, nil)
	if old != nil {
		q.adopt(old)
	}
	rt.addQueue(q)
	q.begin()
	return nil
}

// adopt takes over what old (the stopped queue of the same timeline)
// knew to be in object storage: those layers' uploads are dropped. q has
// not begun.
func (q *uploadQueue) adopt(old *uploadQueue) {
	_ = old.mu.Lock(context.Background())
	known, indexed := maps.Clone(old.known), maps.Clone(old.indexed)
	old.mu.Unlock()
	_ = q.mu.Lock(context.Background())
	defer q.mu.Unlock()
	maps.Copy(q.known, known)
	q.indexed = indexed
	q.ops = slices.DeleteFunc(q.ops, func(op *uploadOp) bool {
		_, ok := known[op.name]
		return op.kind == opLayer && ok
	})
}

// begin starts the uploads newUploadQueue scheduled; the queue must be
// registered with its remoteTenant first (its uploads call back into it).
func (q *uploadQueue) begin() {
	_ = q.mu.Lock(context.Background())
	defer q.mu.Unlock()
	q.launchLocked()
}

// sameState reports whether idx describes exactly local.
func sameState(local timeline.State, idx *remote.IndexPart) bool {
	m := idx.Metadata
	if len(idx.Layers) != len(local.Layers) || m.DiskConsistentLSN != local.DiskConsistentLSN || m.LatestGCCutoffLSN != local.GCCutoff {
		return false
	}
	for _, n := range local.Layers {
		if l, ok := idx.Find(n); !ok || l.Name != n {
			return false
		}
	}
	return true
}

// pushLocked appends op to the queue. q.mu is held.
func (q *uploadQueue) pushLocked(op *uploadOp) {
	q.seq++
	op.seq = q.seq
	q.ops = append(q.ops, op)
}

// scheduleEdit turns a persisted edit into its uploads and deletion.
func (q *uploadQueue) scheduleEdit(e timeline.Edit) {
	_ = q.mu.Lock(context.Background())
	defer q.mu.Unlock()
	if q.stopped {
		return
	}
	for _, n := range e.Added {
		q.pushLocked(&uploadOp{kind: opLayer, name: n})
	}
	q.pushLocked(&uploadOp{kind: opIndex, state: e.State})
	if len(e.Removed) > 0 {
		q.pushLocked(&uploadOp{kind: opDelete, names: slices.Clone(e.Removed)})
	}
	q.latest = e.State
	q.setLagLocked()
	q.launchLocked()
}

// kick re-evaluates the queue after the attachment's mode changed.
func (q *uploadQueue) kick() {
	_ = q.mu.Lock(context.Background())
	defer q.mu.Unlock()
	q.cond.Broadcast()
	if q.stopped {
		return
	}
	if len(q.held) > 0 && q.rt.currentMode() == pageapi.ModeAttachedSingle {
		held := q.held
		q.held = nil
		q.rs.deletions.push(q.tsid, q.rt.gen, q.tid, held)
	}
	q.launchLocked()
}

// stop ends the queue: nothing more is scheduled or started (the running
// uploads are ended by their tasks' cancellation), and barriers fail.
func (q *uploadQueue) stop() {
	_ = q.mu.Lock(context.Background())
	defer q.mu.Unlock()
	q.stopped = true
	q.cond.Broadcast()
	q.rs.metrics.rclLag.DeleteLabelValues(q.tsid.String(), q.tid.String())
}

// barrier waits until everything scheduled before it is done (uploaded,
// or handed on for deletion), or ctx ends, or the queue stops.
func (q *uploadQueue) barrier(ctx context.Context) error {
	if err := q.mu.Lock(ctx); err != nil {
		return err
	}
	defer q.mu.Unlock()
	target := q.seq
	for len(q.ops) > 0 && q.ops[0].seq <= target {
		if q.stopped {
			return fmt.Errorf("%w: upload queue of %s/%s stopped", ErrShuttingDown, q.tsid, q.tid)
		}
		if err := q.cond.Wait(ctx); err != nil {
			return fmt.Errorf("upload queue of %s/%s: %d operations left: %w", q.tsid, q.tid, len(q.ops), err)
		}
	}
	return nil
}

// uploadsAllowedLocked reports whether the mode lets the queue upload.
func (q *uploadQueue) uploadsAllowedLocked() bool {
	switch q.rt.currentMode() {
	case pageapi.ModeAttachedSingle, pageapi.ModeAttachedMulti:
		return true
	case pageapi.ModeAttachedStale:
		return q.rs.bugs.StaleUploads
	}
	return false
}

// launchLocked starts every operation the rules allow. q.mu is held.
func (q *uploadQueue) launchLocked() {
	if q.stopped || !q.uploadsAllowedLocked() {
		return
	}
	for i := 0; i < len(q.ops); {
		if q.running >= q.rs.cfg.MaxInFlight {
			return
		}
		op := q.ops[i]
		if op.running {
			i++
			continue
		}
		switch op.kind {
		case opLayer:
			q.start(op)
			i++
		case opIndex:
			if i != 0 {
				i++ // waits for everything before it; later layers may go
				continue
			}
			for len(q.ops) > 1 && q.ops[1].kind == opIndex {
				q.ops = q.ops[1:] // coalesced into the newer one
				q.cond.Broadcast()
			}
			op = q.ops[0]
			if q.abandonsLocked(op.state) {
				q.ops = q.ops[1:]
				q.cond.Broadcast()
				continue
			}
			q.start(op)
			i++
		case opDelete:
			if i != 0 {
				return // nothing behind a deletion starts before it
			}
			q.ops = q.ops[1:]
			q.handOnLocked(q.deferIndexedLocked(op.names))
			q.cond.Broadcast()
		}
	}
}

// abandonsLocked reports whether an index of st would name a layer that
// was never uploaded because its file vanished (a later index, which does
// not name it, is scheduled). Every other layer it names is known: its
// upload was scheduled before the index and is done.
func (q *uploadQueue) abandonsLocked(st timeline.State) bool {
	for _, n := range st.Layers {
		if _, ok := q.known[n]; ok {
			continue
		}
		if q.abandoned[n] {
			return true
		}
		invariants.Check(false, "upload queue %s/%s: index names %s, neither uploaded nor abandoned", q.tsid, q.tid, n)
		return true
	}
	return false
}

// handOnLocked passes the removed layers' objects on for deletion (held
// while AttachedMulti). Objects another shard wrote are never deleted
// here (after a split a parent's objects are shared), nor layers never
// uploaded.
func (q *uploadQueue) handOnLocked(names []layer.Name) {
	var ids []remote.LayerID
	for _, n := range names {
		l, ok := q.known[n]
		if !ok {
			continue
		}
		delete(q.known, n)
		if l.Shard == q.tsid.Shard {
			ids = append(ids, l.LayerID)
		}
	}
	if len(ids) == 0 {
		return
	}
	if q.rt.currentMode() != pageapi.ModeAttachedSingle {
		q.held = append(q.held, ids...)
		return
	}
	q.rs.deletions.push(q.tsid, q.rt.gen, q.tid, ids)
}

// start runs op as a task of the timeline. q.mu is held.
func (q *uploadQueue) start(op *uploadOp) {
	op.running = true
	q.running++
	name := fmt.Sprintf("%s/%s %s #%d", q.tsid, q.tid, op.kind, op.seq)
	q.rs.tasks.spawn(context.Background(), taskUpload, timelineScope(q.tsid, q.tid), name, func(ctx context.Context) {
		err := q.run(ctx, op)
		_ = q.mu.Lock(context.Background())
		defer q.mu.Unlock()
		q.running--
		op.running = false
		if err != nil {
			// Only a stop (or cancellation) ends an upload unfinished; the
			// op stays, and the queue with it.
			q.cond.Broadcast()
			return
		}
		if i := slices.Index(q.ops, op); i >= 0 {
			q.ops = slices.Delete(q.ops, i, i+1)
		}
		if op.kind == opIndex && len(q.deferred) > 0 {
			d := q.deferred
			q.deferred = nil
			q.handOnLocked(q.deferIndexedLocked(d))
		}
		q.cond.Broadcast()
		q.launchLocked()
	})
}

// deferIndexedLocked returns the names among names that the newest index
// in object storage (q.indexed) does not name, and keeps the others in
// q.deferred until an uploaded index no longer names them. A deletion
// normally follows the index that stopped naming its layers; but that
// index may have been abandoned (it named a layer that vanished before
// its upload) or not uploaded at all (an empty index), and deleting then
// would leave the newest index naming missing objects. q.mu is held.
func (q *uploadQueue) deferIndexedLocked(names []layer.Name) []layer.Name {
	var out []layer.Name
	for _, n := range names {
		if _, ok := q.indexed[n]; ok {
			q.deferred = append(q.deferred, n)
			continue
		}
		out = append(out, n)
	}
	return out
}

// run performs op, retrying until it succeeds or ctx ends.
func (q *uploadQueue) run(ctx context.Context, op *uploadOp) error {
	for failures := 0; ; {
		if err := q.waitAllowed(ctx); err != nil {
			return err
		}
		var err error
		if op.kind == opLayer {
			err = q.uploadLayer(ctx, op.name)
		} else {
			err = q.uploadIndex(ctx, op.state)
		}
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		failures++
		q.rs.metrics.uploadFailures.WithLabelValues(op.kind.String()).Inc()
		wait := q.rs.cfg.backoff(failures)
		level := slog.LevelInfo
		if failures >= uploadWarnFailures {
			level = slog.LevelWarn
		}
		q.log.Log(ctx, level, "upload failed, will retry", "op", op.kind.String(), "seq", op.seq, "failures", failures, "wait", wait, "err", err)
		if err := clock.Sleep(ctx, q.rs.clk, wait); err != nil {
			return err
		}
	}
}

// waitAllowed waits while the mode forbids uploads (AttachedStale).
func (q *uploadQueue) waitAllowed(ctx context.Context) error {
	if err := q.mu.Lock(ctx); err != nil {
		return err
	}
	defer q.mu.Unlock()
	for !q.uploadsAllowedLocked() {
		if q.stopped {
			return ErrShuttingDown
		}
		if err := q.cond.Wait(ctx); err != nil {
			return err
		}
	}
	if q.stopped {
		return ErrShuttingDown
	}
	return nil
}

// uploadLayer uploads one layer file under the generation that wrote it.
func (q *uploadQueue) uploadLayer(ctx context.Context, n layer.Name) error {
	data, err := disk.ReadFile(q.rs.fs, q.dir+"/"+n.String())
	if errors.Is(err, disk.ErrNotExist) {
		_ = q.mu.Lock(context.Background())
		listed := slices.Contains(q.latest.Layers, n)
		if !listed {
			q.abandoned[n] = true
		}
		q.mu.Unlock()
		if !listed {
			q.log.Debug("layer file gone before its upload (a later edit removed it)", "layer", n.String())
			return nil
		}
		return fmt.Errorf("layer %s is listed but its file is missing: %w", n, err)
	}
	if err != nil {
		return fmt.Errorf("read layer %s: %w", n, err)
	}
	id := remote.LayerID{Name: n, Shard: q.tsid.Shard}
	key := q.rs.layout.LayerKey(q.tsid.TenantID, q.tid, id)
	start := q.rs.clk.Mono()
	if q.rs.bugs.IndexBeforeLayers {
		q.uploadLayerInBackground(n, id, key, data)
		return nil
	}
	if err := q.rs.store.Put(ctx, key, data, objstore.PutOptions{}); err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}
	_ = q.mu.Lock(context.Background())
	q.known[n] = remote.Layer{LayerID: id, FileSize: uint64(len(data))}
	q.mu.Unlock()
	q.rs.metrics.uploads.WithLabelValues("layer").Inc()
	q.rs.metrics.uploadBytes.Add(float64(len(data)))
	q.log.Debug("layer uploaded", "layer", n.String(), "size", len(data), "took", time.Duration(q.rs.clk.Mono()-start))
	return nil
}

// uploadLayerInBackground is the planted IndexBeforeLayers bug: the layer
// counts as uploaded at once and its Put runs (retried) in a task of its
// own, so an index naming it can reach object storage first.
func (q *uploadQueue) uploadLayerInBackground(n layer.Name, id remote.LayerID, key string, data []byte) {
	_ = q.mu.Lock(context.Background())
	q.known[n] = remote.Layer{LayerID: id, FileSize: uint64(len(data))}
	q.mu.Unlock()
	q.rs.tasks.spawn(context.Background(), taskUpload, timelineScope(q.tsid, q.tid), "background "+key, func(ctx context.Context) {
		for failures := 1; q.rs.store.Put(ctx, key, data, objstore.PutOptions{}) != nil; failures++ {
			if clock.Sleep(ctx, q.rs.clk, q.rs.cfg.backoff(failures)) != nil {
				return
			}
		}
	})
}

// indexOf is the index describing st: its layers as known, the engine's
// state as metadata, the rest from base.
func (q *uploadQueue) indexOf(st timeline.State) (remote.IndexPart, error) {
	_ = q.mu.Lock(context.Background())
	defer q.mu.Unlock()
	ip := q.base
	ip.Layers = make([]remote.Layer, 0, len(st.Layers))
	for _, n := range st.Layers {
		l, ok := q.known[n]
		if !ok {
			return ip, fmt.Errorf("index names %s, which is not uploaded", n)
		}
		ip.Layers = append(ip.Layers, l)
	}
	ip.SortLayers()
	ip.Metadata = remote.Metadata{
		DiskConsistentLSN: st.DiskConsistentLSN,
		AncestorLSN:       st.AncestorLSN,
		LatestGCCutoffLSN: st.GCCutoff,
		InitdbLSN:         st.InitLSN,
		PGVersion:         q.base.Metadata.PGVersion,
	}
	if st.Ancestor != nil {
		a := shard.TimelineID(*st.Ancestor)
		ip.Metadata.AncestorTimeline = &a
	}
	return ip, nil
}

// uploadIndex uploads the index describing st under the attachment's
// generation and then projects its disk_consistent_lsn as the
// remote_consistent_lsn (visible once the generation validates). An index
// with no layers and no ancestor (a new root timeline) is never uploaded.
func (q *uploadQueue) uploadIndex(ctx context.Context, st timeline.State) error {
	ip, err := q.indexOf(st)
	if err != nil {
		return err
	}
	data, err := remote.Encode(&ip)
	if errors.Is(err, remote.ErrEmptyIndex) {
		return nil
	}
	if err != nil {
		// A bug, not a transient failure: retrying cannot help, and the
		// next edit's index may be fine.
		q.log.Error("index does not encode; not uploaded", "err", err)
		return nil
	}
	key := q.rs.layout.IndexKey(q.tsid, q.tid, q.rt.gen)
	if err := q.rs.store.Put(ctx, key, data, objstore.PutOptions{}); err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}
	q.rs.metrics.uploads.WithLabelValues("index").Inc()
	q.rs.metrics.uploadBytes.Add(float64(len(data)))
	_ = q.mu.Lock(context.Background())
	q.uploaded = max(q.uploaded, st.DiskConsistentLSN)
	up := q.uploaded
	q.indexed = make(map[layer.Name]remote.Layer, len(ip.Layers))
	for _, l := range ip.Layers {
		q.indexed[l.Name] = l
	}
	q.mu.Unlock()
	q.log.Debug("index uploaded", "key", key, "layers", len(ip.Layers), "disk_consistent_lsn", st.DiskConsistentLSN)
	q.rs.validator.projectRCL(q, up)
	q.rt.heatmapChanged()
	return nil
}

// setVisible makes l (uploaded, and its generation validated since) the
// reported remote_consistent_lsn; it never moves back.
func (q *uploadQueue) setVisible(l lsn.LSN) {
	_ = q.mu.Lock(context.Background())
	defer q.mu.Unlock()
	if l > q.visible {
		q.visible = l
	}
	q.setLagLocked()
}

func (q *uploadQueue) setLagLocked() {
	if q.stopped {
		return
	}
	var lag float64
	if d := q.latest.DiskConsistentLSN; d > q.visible {
		lag = float64(d - q.visible)
	}
	q.rs.metrics.rclLag.WithLabelValues(q.tsid.String(), q.tid.String()).Set(lag)
}

// remoteConsistentLSN is the visible remote_consistent_lsn: everything
// at or below it is in object storage under a generation that validated.
func (q *uploadQueue) remoteConsistentLSN() lsn.LSN {
	_ = q.mu.Lock(context.Background())
	defer q.mu.Unlock()
	return q.visible
}

// describe summarises the queue for errors and tests.
func (q *uploadQueue) describe() string {
	_ = q.mu.Lock(context.Background())
	defer q.mu.Unlock()
	return fmt.Sprintf("%d ops (%d running), uploaded %s, visible %s", len(q.ops), q.running, q.uploaded, q.visible)
}

// markDeleted marks the (stopped) timeline deleted in object storage: an
// index with deleted_at, so that no later attachment brings it back. It
// returns the layer objects to delete once the timeline is gone locally
// (AttachedSingle only; another mode leaves them, a leak). An
// AttachedStale location changes nothing. The upload is retried until ctx
// ends.
func (q *uploadQueue) markDeleted(ctx context.Context) ([]remote.LayerID, error) {
	mode := q.rt.currentMode()
	if mode != pageapi.ModeAttachedSingle && mode != pageapi.ModeAttachedMulti {
		q.log.Warn("deleting a timeline of a stale location: object storage is left alone", "mode", mode)
		return nil, nil
	}
	_ = q.mu.Lock(context.Background())
	ip := q.base
	st := q.latest
	ip.Layers = nil
	for _, n := range st.Layers {
		if l, ok := q.known[n]; ok {
			ip.Layers = append(ip.Layers, l)
		}
	}
	var ids []remote.LayerID
	for _, l := range q.known { //strata:nondeterministic collected, then sorted below
		if l.Shard == q.tsid.Shard {
			ids = append(ids, l.LayerID)
		}
	}
	q.mu.Unlock()
	slices.SortFunc(ids, func(a, b remote.LayerID) int { return strings.Compare(a.Name.String(), b.Name.String()) })
	if mode != pageapi.ModeAttachedSingle {
		ids = nil
	}
	if len(ip.Layers) == 0 && st.Ancestor == nil {
		if len(ids) == 0 {
			// No index of it can be in object storage: an index always
			// names a layer or an ancestor, and every layer an index
			// named is known.
			return nil, nil
		}
		// The state's layers never got uploaded, but an older index
		// names known ones: a tombstone naming one of them is enough.
		ip.Layers = []remote.Layer{q.knownLayer(ids[0])}
	}
	ip.SortLayers()
	ip.Metadata = remote.Metadata{DiskConsistentLSN: st.DiskConsistentLSN, AncestorLSN: st.AncestorLSN,
		LatestGCCutoffLSN: st.GCCutoff, InitdbLSN: st.InitLSN, PGVersion: q.base.Metadata.PGVersion}
	if st.Ancestor != nil {
		a := shard.TimelineID(*st.Ancestor)
		ip.Metadata.AncestorTimeline = &a
	}
	now := q.rs.clk.Now().UTC()
	ip.DeletedAt = &now
	data, err := remote.Encode(&ip)
	if err != nil {
		return nil, err
	}
	key := q.rs.layout.IndexKey(q.tsid, q.tid, q.rt.gen)
	for failures := 0; ; {
		err := q.rs.store.Put(ctx, key, data, objstore.PutOptions{})
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("put %s: %w", key, err)
		}
		failures++
		q.rs.metrics.uploadFailures.WithLabelValues("index").Inc()
		if err := clock.Sleep(ctx, q.rs.clk, q.rs.cfg.backoff(failures)); err != nil {
			return nil, fmt.Errorf("put %s: %w", key, err)
		}
	}
	q.rs.metrics.uploads.WithLabelValues("index").Inc()
	q.log.Info("timeline marked deleted in object storage", "key", key)
	return ids, nil
}

// durable returns the object of layer n if the newest index this
// attachment uploaded (or started from) names it: only such a layer's
// local file may be evicted.
func (q *uploadQueue) durable(n layer.Name) (remote.Layer, bool) {
	_ = q.mu.Lock(context.Background())
	defer q.mu.Unlock()
	l, ok := q.indexed[n]
	return l, ok
}

// remoteLayer returns the object of layer n as far as the queue knows
// (uploaded, or named by an index), to download it.
func (q *uploadQueue) remoteLayer(n layer.Name) (remote.Layer, bool) {
	_ = q.mu.Lock(context.Background())
	defer q.mu.Unlock()
	if l, ok := q.known[n]; ok {
		return l, true
	}
	l, ok := q.indexed[n]
	return l, ok
}

// knownLayer returns the known entry of object id.
func (q *uploadQueue) knownLayer(id remote.LayerID) remote.Layer {
	_ = q.mu.Lock(context.Background())
	defer q.mu.Unlock()
	return q.known[id.Name]
}
