package pageserver

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"

	"github.com/stratadb/strata/clock"
	"github.com/stratadb/strata/disk"
	"github.com/stratadb/strata/disk/objstore"
	"github.com/stratadb/strata/engine/layer"
	"github.com/stratadb/strata/engine/remote"
	"github.com/stratadb/strata/engine/shard"
	"github.com/stratadb/strata/engine/timeline"
)

// Attaching from object storage (docs/remote-storage.md, "Attach"). Before
// a shard's engine opens, every timeline the shard has in object storage
// is compared with the local disk: the index the attachment starts from
// is chosen by generation (remote.DownloadIndex: never one above ours),
// and a timeline whose local state does not hold every layer of that
// index (a lost disk, a new location, a newer owner since we last held
// it) is downloaded whole and installed in place of the local one. The
// downloads of all timelines finish before any is installed, so the shard
// attaches with all of its timelines or, if a download fails after the
// retry policy's attempts, not at all (it is broken with the reason).
// Layers are downloaded eagerly at attach (bounded by
// RemoteStorage.MaxConcurrentDownloads across the node), not on demand:
// the engine opens and checks every layer file it lists.

// ErrRemoteAttach: a shard's state could not be brought from object
// storage (after the download retry policy's attempts, or a corrupt or
// inconsistent index); the shard is broken with this reason.
var ErrRemoteAttach = errors.New("pageserver: attach from object storage failed")

// remoteTimeline is what attach learned of one timeline in object storage.
type remoteTimeline struct {
	id  shard.TimelineID
	idx remote.IndexPart
	gen layer.Generation // the generation the index was uploaded under
}

// listRemoteTimelines lists the timelines with objects under the shard's
// prefix: one listing page of one key per timeline, each resuming after
// the previous timeline's keys. At most limit+1 timelines are listed.
func (rs *remoteStorage) listRemoteTimelines(ctx context.Context, id shard.TenantShardID, limit int) ([]shard.TimelineID, error) {
	prefix := rs.layout.TenantShardPrefix(id) + "timelines/"
	var out []shard.TimelineID
	opts := objstore.ListOptions{MaxKeys: 1}
	for len(out) <= limit {
		var p objstore.Page
		err := rs.retrier.Do(ctx, "list "+prefix, remote.NotFoundFinal, func(ctx context.Context) (err error) {
			p, err = rs.store.List(ctx, prefix, opts)
			return err
		})
		if err != nil {
			return nil, err
		}
		if len(p.Objects) == 0 {
			return out, nil
		}
		key := p.Objects[0].Key
		name, _, _ := strings.Cut(strings.TrimPrefix(key, prefix), "/")
		tid, err := shard.ParseTimelineID(name)
		if err != nil {
			rs.log.Warn("ignoring an object that is not under a timeline", "key", key)
			opts.StartAfter = key
			continue
		}
		out = append(out, tid)
		// '0' sorts after '/', and before every hex digit a later timeline
		// id differs in: this skips exactly the timeline's keys.
		opts.StartAfter = prefix + name + "0"
	}
	return nil, fmt.Errorf("%w: more than %d timelines under %s", ErrLimit, limit, prefix)
}

// prepareRemote brings shard ts's local timelines in line with object
// storage for an attachment with generation gen (see above), before its
// engine opens; ts.op is held. It returns the index each timeline with
// one starts from, and the timelines object storage says are deleted
// (removed locally once the engine opens).
func (m *tenantManager) prepareRemote(ctx context.Context, ts *tenantShard, gen layer.Generation) (map[shard.TimelineID]*remote.IndexPart, []shard.TimelineID, error) {
	rs := m.remote
	fail := func(err error) error { return fmt.Errorf("%w: %s: %w", ErrRemoteAttach, ts.id, err) }
	ids, err := rs.listRemoteTimelines(ctx, ts.id, m.cfg.MaxTimelinesPerTenant)
	if err != nil {
		return nil, nil, fail(err)
	}
	found := map[shard.TimelineID]*remoteTimeline{}
	var deleted []shard.TimelineID
	for _, tid := range ids {
		loadGen := gen
		if rs.bugs.LoadIndexAboveGeneration {
			loadGen = math.MaxUint32 // planted: whatever the generation
		}
		ip, g, err := remote.DownloadIndex(ctx, rs.retrier, rs.store, rs.layout, ts.id, tid, loadGen)
		if errors.Is(err, remote.ErrNoIndex) {
			// Objects, but no index at or below our generation (layers
			// whose index never made it, or a newer attachment's only).
			rs.log.Info("timeline in object storage without an index for us; skipped", "tenant_shard_id", ts.id, "timeline_id", tid, "generation", gen)
			continue
		}
		if err != nil {
			return nil, nil, fail(fmt.Errorf("timeline %s: %w", tid, err))
		}
		rs.metrics.indexes.Inc()
		if ip.DeletedAt != nil {
			rs.log.Info("timeline deleted in object storage; not attached", "tenant_shard_id", ts.id, "timeline_id", tid, "deleted_at", *ip.DeletedAt)
			deleted = append(deleted, tid)
			continue
		}
		found[tid] = &remoteTimeline{id: tid, idx: ip, gen: g}
	}
	// Which timelines the local disk already holds (every layer of the
	// index, and at least its disk_consistent_lsn), and which to download.
	var fetch []*remoteTimeline
	for _, tid := range slices.SortedFunc(maps.Keys(found), compareTimelineID) {
		rt := found[tid]
		local, err := timeline.ReadState(m.fs, ts.dir(), timeline.ID(tid))
		switch {
		case err == nil && m.covers(ts, tid, local, &rt.idx):
			continue
		case err != nil && !errors.Is(err, disk.ErrNotExist) && !errors.Is(err, timeline.ErrCorrupt):
			return nil, nil, fail(fmt.Errorf("timeline %s: local state: %w", tid, err))
		}
		fetch = append(fetch, rt)
	}
	if fetch, err = ancestorsFirst(fetch, func(id shard.TimelineID) bool {
		if found[id] != nil {
			return true
		}
		_, err := timeline.ReadState(m.fs, ts.dir(), timeline.ID(id))
		return err == nil
	}); err != nil {
		return nil, nil, fail(err)
	}
	if len(fetch) > 0 {
		if err := m.downloadTimelines(ctx, ts, fetch); err != nil {
			return nil, nil, fail(err)
		}
	}
	out := map[shard.TimelineID]*remote.IndexPart{}
	for tid, rt := range found { //strata:nondeterministic building a map from a map; order cannot matter
		out[tid] = &rt.idx
	}
	return out, deleted, nil
}

// covers reports whether the local state of timeline tid holds everything
// idx describes: every layer it names, with the same generation and size,
// and a disk_consistent_lsn at least its own. Local layers beyond it are
// this node's own later work, uploaded by the queue.
func (m *tenantManager) covers(ts *tenantShard, tid shard.TimelineID, local timeline.State, idx *remote.IndexPart) bool {
	if local.DiskConsistentLSN < idx.Metadata.DiskConsistentLSN {
		return false
	}
	dir := ts.dir() + "/timelines/" + tid.String()
	for _, l := range idx.Layers {
		if !slices.Contains(local.Layers, l.Name) {
			return false
		}
		fi, err := m.fs.Stat(dir + "/" + l.Name.String())
		if err != nil || uint64(fi.Size()) != l.FileSize {
			return false
		}
	}
	return true
}

// ancestorsFirst orders timelines so each comes after its ancestor when
// both are fetched; an ancestor neither fetched nor present (have) is an
// error.
func ancestorsFirst(fetch []*remoteTimeline, have func(shard.TimelineID) bool) ([]*remoteTimeline, error) {
	in := map[shard.TimelineID]bool{}
	for _, f := range fetch {
		in[f.id] = true
	}
	var out []*remoteTimeline
	placed := map[shard.TimelineID]bool{}
	for len(out) < len(fetch) {
		progress := false
		for _, f := range fetch {
			if placed[f.id] {
				continue
			}
			if a := f.idx.Metadata.AncestorTimeline; a != nil {
				if !in[*a] && !have(*a) {
					return nil, fmt.Errorf("timeline %s: ancestor %s is neither in object storage nor local", f.id, *a)
				}
				if in[*a] && !placed[*a] {
					continue
				}
			}
			out = append(out, f)
			placed[f.id] = true
			progress = true
		}
		if !progress {
			return nil, fmt.Errorf("ancestor cycle among %d timelines", len(fetch)-len(out))
		}
	}
	return out, nil
}

// downloadTimelines downloads every layer of the given timelines into
// their staging directories (bounded across the node), and only when all
// succeeded installs them, ancestors first.
func (m *tenantManager) downloadTimelines(ctx context.Context, ts *tenantShard, fetch []*remoteTimeline) error {
	rs := m.remote
	staged := make([]string, len(fetch))
	for i, f := range fetch {
		dir, err := timeline.Stage(m.fs, ts.dir(), timeline.ID(f.id))
		if err != nil {
			return err
		}
		staged[i] = dir
	}
	g := clock.NewGroup(m.clk, ctx)
	for i, f := range fetch {
		for _, l := range f.idx.Layers {
			g.Go("download "+l.Name.String(), func(ctx context.Context) error {
				err := rs.downloadLayer(ctx, ts.id, f.id, l, staged[i])
				if err != nil {
					g.Cancel() // the attach fails: stop the others
				}
				return err
			})
		}
	}
	if err := g.Wait(); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	for _, f := range fetch {
		st := stateOfIndex(&f.idx)
		if err := timeline.Install(m.fs, ts.dir(), timeline.ID(f.id), st); err != nil {
			return fmt.Errorf("timeline %s: %w", f.id, err)
		}
		rs.log.Info("timeline attached from object storage", "tenant_shard_id", ts.id, "timeline_id", f.id,
			"index_generation", f.gen, "layers", len(f.idx.Layers), "disk_consistent_lsn", st.DiskConsistentLSN)
	}
	return nil
}

// stateOfIndex is the engine state an index describes. A branch's own
// WAL starts at its branch point.
func stateOfIndex(ip *remote.IndexPart) timeline.State {
	md := ip.Metadata
	st := timeline.State{DiskConsistentLSN: md.DiskConsistentLSN, GCCutoff: md.LatestGCCutoffLSN, InitLSN: md.InitdbLSN}
	if md.AncestorTimeline != nil {
		a := timeline.ID(*md.AncestorTimeline)
		st.Ancestor, st.AncestorLSN, st.InitLSN = &a, md.AncestorLSN, md.AncestorLSN
	}
	st.GCCutoff = max(st.GCCutoff, st.InitLSN)
	for _, l := range ip.Layers {
		st.Layers = append(st.Layers, l.Name)
	}
	return st
}

// downloadLayer downloads one layer object into dir under its file name,
// with the download retry policy (a missing object is retried too: the
// index names it), and checks its size against the index.
func (rs *remoteStorage) downloadLayer(ctx context.Context, id shard.TenantShardID, tid shard.TimelineID, l remote.Layer, dir string) error {
	if rs.useWarm(id, tid, l, dir) {
		return nil // a secondary's copy, or an earlier attachment's file (secondary.go)
	}
	if err := rs.downloads.Acquire(ctx, 1); err != nil {
		return err
	}
	defer rs.downloads.Release(1)
	key := rs.layout.LayerKey(id.TenantID, tid, l.LayerID)
	start := rs.clk.Mono()
	var data []byte
	err := rs.retrier.Do(ctx, "get "+key, remote.NotFoundRetry, func(ctx context.Context) (err error) {
		data, err = rs.store.Get(ctx, key)
		return err
	})
	if err != nil {
		return err
	}
	if uint64(len(data)) != l.FileSize {
		return fmt.Errorf("%s: %d bytes, the index says %d", key, len(data), l.FileSize)
	}
	if err := disk.WriteFileAtomic(rs.fs, dir+"/"+l.Name.String(), data); err != nil {
		return fmt.Errorf("write %s: %w", l.Name, err)
	}
	rs.metrics.downloads.Inc()
	rs.metrics.downloadBytes.Add(float64(len(data)))
	rs.log.Info("layer downloaded", "tenant_shard_id", id, "timeline_id", tid, "layer", l.LayerID.String(), "size", len(data), "took", rs.clk.Mono()-start)
	return nil
}

// removeDeleted deletes the local copies of timelines object storage says
// are deleted (a delete that marked the index and then crashed before
// its local part), children before parents.
func (m *tenantManager) removeDeleted(ts *tenantShard, eng *timeline.Tenant, deleted []shard.TimelineID) error {
	left := map[timeline.ID]bool{}
	for _, tid := range deleted {
		if _, err := eng.Get(timeline.ID(tid)); err == nil {
			left[timeline.ID(tid)] = true
		}
	}
	for len(left) > 0 {
		progress := false
		for _, id := range eng.Timelines() {
			if !left[id] {
				continue
			}
			err := eng.Delete(id)
			if errors.Is(err, timeline.ErrHasChildren) {
				continue // after its children
			}
			if err != nil {
				return fmt.Errorf("%w: %s: removing timeline %s, deleted in object storage: %w", ErrRemoteAttach, ts.id, shard.TimelineID(id), err)
			}
			delete(left, id)
			progress = true
			m.remote.log.Info("timeline deleted in object storage removed here too", "tenant_shard_id", ts.id, "timeline_id", shard.TimelineID(id))
		}
		if !progress {
			// A child object storage does not say is deleted keeps it.
			m.remote.log.Warn("timelines deleted in object storage still have children here; kept", "tenant_shard_id", ts.id, "count", len(left))
			return nil
		}
	}
	return nil
}
