package pageserver

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"

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
// and a timeline whose local state is not in line with that index (a lost
// disk, a new location, a newer owner since we last held it: see usable)
// is replaced by the index's state. No layer is downloaded for that: the
// files the old local directory (or a secondary location's copies) hold
// with the index's size are linked in, and the rest stay remote, entries
// of the layer map that the first read needing them downloads
// (ondemand.go), so the shard is active once its indexes are loaded. The
// indexes of all timelines are loaded before any is installed, so if one
// cannot be (the retry policy's attempts spent, a corrupt index) the shard
// attaches not at all and is broken with the reason.

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
	// Which timelines the local disk holds in line with the index, and
	// which to install from it.
	var fetch []*remoteTimeline
	for _, tid := range slices.SortedFunc(maps.Keys(found), compareTimelineID) {
		rt := found[tid]
		local, err := timeline.ReadState(m.fs, ts.dir(), timeline.ID(tid))
		switch {
		case err == nil && m.usable(ts, tid, local, &rt.idx):
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
		if err := m.installTimelines(ts, fetch); err != nil {
			return nil, nil, fail(err)
		}
	}
	out := map[shard.TimelineID]*remote.IndexPart{}
	for tid, rt := range found { //strata:nondeterministic building a map from a map; order cannot matter
		out[tid] = &rt.idx
	}
	return out, deleted, nil
}

// usable reports whether the local state of timeline tid can serve as it
// is with index idx: it lists every layer idx names, a listed file on
// disk that idx names has idx's size, a listed file missing from disk is
// one idx names (evicted: it stays remote), and its disk_consistent_lsn
// is at least idx's. Listed files idx does not name are this node's own
// later work, uploaded by the queue.
func (m *tenantManager) usable(ts *tenantShard, tid shard.TimelineID, local timeline.State, idx *remote.IndexPart) bool {
	if local.DiskConsistentLSN < idx.Metadata.DiskConsistentLSN {
		return false
	}
	dir := ts.dir() + "/timelines/" + tid.String()
	for _, n := range local.Layers {
		l, named := idx.Find(n)
		named = named && l.Name == n
		fi, err := m.fs.Stat(dir + "/" + n.String())
		switch {
		case err == nil:
			if named && uint64(fi.Size()) != l.FileSize {
				return false
			}
		case errors.Is(err, disk.ErrNotExist):
			if !named {
				return false // lost, and not in object storage either
			}
		default:
			return false
		}
	}
	for _, l := range idx.Layers {
		if !slices.Contains(local.Layers, l.Name) {
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

// installTimelines installs the state of each timeline's index in place
// of its local directory, ancestors first: the layer files on local disk
// with the index's size (the old directory's, a secondary location's) are
// linked into the staging directory, the others stay remote (every layer
// an index names is in object storage).
func (m *tenantManager) installTimelines(ts *tenantShard, fetch []*remoteTimeline) error {
	rs := m.remote
	inIndex := func(idx *remote.IndexPart) func(layer.Name) bool {
		return func(n layer.Name) bool {
			l, ok := idx.Find(n)
			return ok && l.Name == n
		}
	}
	for _, f := range fetch {
		dir, err := timeline.Stage(m.fs, ts.dir(), timeline.ID(f.id))
		if err != nil {
			return err
		}
		local := 0
		var localBytes uint64
		for _, l := range f.idx.Layers {
			if rs.useWarm(ts.id, f.id, l, dir) {
				local++
				localBytes += l.FileSize
			}
		}
		st := stateOfIndex(&f.idx)
		if err := timeline.InstallPartial(m.fs, ts.dir(), timeline.ID(f.id), st, inIndex(&f.idx)); err != nil {
			return fmt.Errorf("timeline %s: %w", f.id, err)
		}
		var total uint64
		for _, l := range f.idx.Layers {
			total += l.FileSize
		}
		rs.log.Info("timeline attached from object storage", "tenant_shard_id", ts.id, "timeline_id", f.id,
			"index_generation", f.gen, "layers", len(f.idx.Layers), "bytes", total, "local_layers", local, "local_bytes", localBytes,
			"remote_layers", len(f.idx.Layers)-local, "disk_consistent_lsn", st.DiskConsistentLSN)
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

// downloadLayer puts layer object l into dir under its file name: linked
// from a copy on local disk if there is one of the right size
// (secondary.go's useWarm), else downloaded (fetchLayer: the retry
// policy, the size checked against the index) to a temporary name,
// synced, and renamed into place. A Secondary location's downloads.
func (rs *remoteStorage) downloadLayer(ctx context.Context, id shard.TenantShardID, tid shard.TimelineID, l remote.Layer, dir string) error {
	if rs.useWarm(id, tid, l, dir) {
		return nil // a secondary's copy, or an earlier attachment's file (secondary.go)
	}
	path := dir + "/" + l.Name.String()
	tmp := path + ".tmp"
	if _, err := rs.fetchLayer(ctx, id, tid, l, tmp, "secondary"); err != nil {
		_ = rs.fs.Remove(tmp)
		return err
	}
	if err := rs.fs.Rename(tmp, path); err != nil {
		_ = rs.fs.Remove(tmp)
		return fmt.Errorf("write %s: %w", l.Name, err)
	}
	return rs.fs.SyncDir(dir)
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
