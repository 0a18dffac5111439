package pageserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/stratadb/strata/clock"
	"github.com/stratadb/strata/disk"
	"github.com/stratadb/strata/disk/objstore"
	"github.com/stratadb/strata/engine/remote"
	"github.com/stratadb/strata/engine/shard"
	"github.com/stratadb/strata/net"
	"github.com/stratadb/strata/net/jwtauth"
	"github.com/stratadb/strata/nodes/pageserver/pageapi"
)

// Secondary locations (docs/remote-storage.md, "Heatmaps and secondary
// locations"). A tenant shard in mode Secondary, on a node with remote
// storage, keeps a warm copy of the layers its attached location's
// heatmap (heatmap.go) names, so that attaching it later (a migration's
// destination) finds them on local disk instead of downloading them:
//
//   - A download pass reads the heatmap, removes local copies it no longer
//     names, and downloads the layers it names that are not on local disk
//     (hottest first; at most Secondaries.MaxConcurrentDownloads at once,
//     and the node's RemoteStorage.MaxConcurrentDownloads across all), each
//     with the download retry policy. A pass runs when the location
//     becomes Secondary, every Secondaries.DownloadPeriod after the last
//     one ended, and on POST …/secondary/download. Without a heatmap, or
//     with one that does not parse, nothing is removed.
//   - The copies live in tenants/<tenant shard id>/secondary/<timeline>/,
//     apart from the engine's timelines/ directory, which a Secondary
//     location never opens: a secondary never serves pages (the page
//     service refuses it, tenants.go Resolve). Layer files an earlier
//     attachment left in timelines/ stay as they are and count as present.
//   - When the location is attached, a layer the attach would download is
//     taken from local disk instead if a file of the same name (which
//     carries the generation) and size is there (useWarm, by hard link);
//     the secondary directory is removed once the attach succeeded.
//     Attached → Secondary keeps the attachment's layer files.

// Errors of secondary locations.
var (
	// ErrNotSecondary: the shard is here, but not a Secondary location
	// with remote storage.
	ErrNotSecondary = errors.New("pageserver: tenant shard is not a secondary location here")
	// ErrSecondaryDownload: a download pass failed (after the download
	// retry policy); the next pass tries again.
	ErrSecondaryDownload = errors.New("pageserver: secondary download failed")
)

// taskSecondary is a Secondary location's download loop.
const taskSecondary taskKind = "secondary"

// secondaryDirName is the directory, in a tenant shard's, holding a
// Secondary location's layer copies.
const secondaryDirName = "secondary"

func secondaryDir(id shard.TenantShardID) string {
	return tenantsDir + "/" + id.String() + "/" + secondaryDirName
}

// secondaryTenant is the download state of one Secondary location.
type secondaryTenant struct {
	rs  *remoteStorage
	id  shard.TenantShardID
	dir string
	cfg SecondaryConfig
	log *slog.Logger

	mu   *clock.Mutex
	cond *clock.Cond // broadcast when a pass starts or ends, a pass is asked for, or on stop
	// Passes are numbered from 1: started and done are the last begun and
	// ended, requested the highest one asked for by POST …/download.
	started, done, requested uint64
	lastErr                  error // of pass done
	progress                 pageapi.SecondaryProgress
	stopped                  bool
	// held and pending are this location's part of the node's gauges.
	held, pending float64
}

// setSecondary starts the download loop of shard ts when on (it is
// Secondary; nothing without remote storage, or if it already runs) or
// stops it (any other mode, detach, shutdown). Called with ts.op held, or
// at start-up.
func (m *tenantManager) setSecondary(ts *tenantShard, on bool) {
	ts.mu.Lock()
	s := ts.secondary
	if on && s == nil && m.remote != nil {
		s = newSecondaryTenant(m.remote, ts.id)
		ts.secondary = s
		ts.mu.Unlock()
		m.tasks.spawn(context.Background(), taskSecondary, tenantScope(ts.id), "secondary "+ts.id.String(), s.run)
		return
	}
	if on || s == nil {
		ts.mu.Unlock()
		return
	}
	ts.secondary = nil
	ts.mu.Unlock()
	s.stop()
	if left := m.tasks.stop(context.Background(), tenantScope(ts.id), taskSecondary); len(left) > 0 {
		m.log.Error("secondary downloads outlived their stop", "tenant_shard_id", ts.id, "tasks", left)
	}
}

func newSecondaryTenant(rs *remoteStorage, id shard.TenantShardID) *secondaryTenant {
	mu := clock.NewMutex(rs.clk)
	return &secondaryTenant{rs: rs, id: id, dir: secondaryDir(id), cfg: rs.cfg.Secondaries, mu: mu, cond: clock.NewCond(mu),
		log: rs.log.With("tenant_shard_id", id.String(), "mode", string(pageapi.ModeSecondary))}
}

// stop ends the location's downloads: waiters get ErrNotSecondary.
func (s *secondaryTenant) stop() {
	_ = s.mu.Lock(context.Background())
	defer s.mu.Unlock()
	s.stopped = true
	s.setGaugesLocked(0, 0)
	s.cond.Broadcast()
}

// run is the download loop (a task of the shard): a pass at once, then
// one DownloadPeriod after each, or sooner when one is asked for.
func (s *secondaryTenant) run(ctx context.Context) {
	clk := s.rs.clk
	next := clk.Mono()
	for {
		if err := s.mu.Lock(ctx); err != nil {
			return
		}
		for s.requested <= s.started {
			wait := next - clk.Mono()
			if wait <= 0 {
				break
			}
			wctx, cancel := clock.WithTimeout(clk, ctx, wait)
			_ = s.cond.Wait(wctx)
			cancel()
			if ctx.Err() != nil {
				s.mu.Unlock()
				return
			}
		}
		s.started++
		n := s.started
		s.cond.Broadcast()
		s.mu.Unlock()
		err := s.pass(ctx)
		if ctx.Err() != nil {
			return // stopped: waiters learn it from stop
		}
		_ = s.mu.Lock(context.Background())
		s.done, s.lastErr = n, err
		s.cond.Broadcast()
		s.mu.Unlock()
		next = clk.Mono() + s.cfg.DownloadPeriod
	}
}

// download is POST …/secondary/download: wait up to wait for the pass
// under way, or ask for one if none is. It returns the progress and
// whether that pass ended (complete: every layer is local), or the pass's
// error. A repeated request thus waits for the same pass (a caller
// repeating while it answers 202 gets to 200), as Neon's does.
func (s *secondaryTenant) download(ctx context.Context, wait time.Duration) (pageapi.SecondaryProgress, bool, error) {
	if err := s.mu.Lock(ctx); err != nil {
		return pageapi.SecondaryProgress{}, false, err
	}
	defer s.mu.Unlock()
	target := s.started
	if s.done == s.started {
		target++ // none under way: a new one
	}
	s.requested = max(s.requested, target)
	s.cond.Broadcast()
	wctx, cancel := clock.WithTimeout(s.rs.clk, ctx, wait)
	defer cancel()
	for s.done < target && !s.stopped {
		if s.cond.Wait(wctx) != nil {
			break
		}
	}
	switch {
	case ctx.Err() != nil:
		return s.progress, false, ctx.Err()
	case s.done >= target && s.lastErr != nil:
		return s.progress, false, fmt.Errorf("%w: %s: %w", ErrSecondaryDownload, s.id, s.lastErr)
	case s.done >= target:
		return s.progress, true, nil
	case s.stopped:
		return s.progress, false, fmt.Errorf("%w: %s stopped being secondary", ErrNotSecondary, s.id)
	}
	return s.progress, false, nil
}

// wanted is one heatmap layer a pass downloads.
type wanted struct {
	tid shard.TimelineID
	l   remote.HeatmapLayer
}

// pass reads the heatmap, removes the copies it no longer names and
// downloads what is missing.
func (s *secondaryTenant) pass(ctx context.Context) error {
	sec := s.rs.sec
	hm, mtime, err := s.fetchHeatmap(ctx)
	if err != nil {
		sec.downloadPasses.WithLabelValues("failed").Inc()
		s.log.Warn("secondary: heatmap unreadable; nothing downloaded or removed", "err", err)
		return err
	}
	if hm == nil {
		sec.downloadPasses.WithLabelValues("no_heatmap").Inc()
		s.setProgress(pageapi.SecondaryProgress{})
		s.log.Info("secondary: no heatmap yet; nothing to download")
		return nil
	}
	stamp := mtime.UTC().Format(time.RFC3339Nano)
	p := pageapi.SecondaryProgress{HeatmapMtime: &stamp}
	keep := map[shard.TimelineID]map[string]bool{}
	var missing []wanted
	for _, t := range hm.Timelines {
		names := map[string]bool{}
		for _, l := range t.Layers {
			names[l.Name.String()] = true
			p.LayersTotal++
			p.BytesTotal += l.FileSize
			if s.present(t.ID, l.Layer) {
				p.LayersDownloaded++
				p.BytesDownloaded += l.FileSize
				continue
			}
			missing = append(missing, wanted{t.ID, l})
		}
		keep[t.ID] = names
	}
	s.setProgress(p)
	if err := s.prune(keep); err != nil {
		s.log.Warn("secondary: removing layers the heatmap no longer names failed", "err", err)
	}
	// Hottest first, then by timeline and name (deterministic).
	slices.SortStableFunc(missing, func(a, b wanted) int {
		if c := b.l.AccessTime.Compare(a.l.AccessTime); c != 0 {
			return c
		}
		if c := strings.Compare(a.tid.String(), b.tid.String()); c != 0 {
			return c
		}
		return strings.Compare(a.l.Name.String(), b.l.Name.String())
	})
	start := s.rs.clk.Mono()
	err = s.fetch(ctx, missing)
	got := s.snapshot()
	if err != nil {
		sec.downloadPasses.WithLabelValues("failed").Inc()
		s.log.Warn("secondary: download pass incomplete; the next pass retries", "layers_downloaded", got.LayersDownloaded,
			"layers_total", got.LayersTotal, "bytes_downloaded", got.BytesDownloaded, "bytes_total", got.BytesTotal, "err", err)
		return err
	}
	sec.downloadPasses.WithLabelValues("complete").Inc()
	s.log.Info("secondary: layers downloaded", "heatmap_generation", hm.Generation, "downloaded", len(missing),
		"layers", got.LayersTotal, "bytes", got.BytesTotal, "took", s.rs.clk.Mono()-start)
	return nil
}

// fetchHeatmap reads the shard's heatmap and when it was last modified;
// nil (and no error) if there is none.
func (s *secondaryTenant) fetchHeatmap(ctx context.Context) (*remote.Heatmap, time.Time, error) {
	rs := s.rs
	key := rs.layout.HeatmapKey(s.id)
	var info objstore.ObjectInfo
	var data []byte
	err := rs.retrier.Do(ctx, "head "+key, remote.NotFoundFinal, func(ctx context.Context) (err error) {
		info, err = rs.store.Head(ctx, key)
		return err
	})
	if err == nil {
		err = rs.retrier.Do(ctx, "get "+key, remote.NotFoundFinal, func(ctx context.Context) (err error) {
			data, err = rs.store.Get(ctx, key)
			return err
		})
	}
	if errors.Is(err, objstore.ErrNotFound) {
		return nil, time.Time{}, nil
	}
	if err != nil {
		return nil, time.Time{}, err
	}
	hm, err := remote.ParseHeatmap(data)
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("%s: %w", key, err)
	}
	return &hm, info.LastModified, nil
}

// present reports whether layer l of timeline tid is on local disk: a
// copy of ours, or a file an earlier attachment left, of the right size.
func (s *secondaryTenant) present(tid shard.TimelineID, l remote.Layer) bool {
	for _, dir := range warmDirs(s.id, tid) {
		if fi, err := s.rs.fs.Stat(dir + "/" + l.Name.String()); err == nil && uint64(fi.Size()) == l.FileSize {
			return true
		}
	}
	return false
}

// warmDirs are where a layer of timeline tid may already be on local disk:
// the Secondary location's copies, and the engine's timeline directory.
func warmDirs(id shard.TenantShardID, tid shard.TimelineID) []string {
	return []string{secondaryDir(id) + "/" + tid.String(), tenantsDir + "/" + id.String() + "/timelines/" + tid.String()}
}

// prune removes the copies (and whole timeline directories) keep does
// not name, and anything else left in the secondary directory (a
// download's temporary file). The engine's timelines/ are not touched.
func (s *secondaryTenant) prune(keep map[shard.TimelineID]map[string]bool) error {
	fs := s.rs.fs
	ents, err := fs.ReadDir(s.dir)
	if errors.Is(err, disk.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var layers int
	var size uint64
	for _, e := range ents {
		dir := s.dir + "/" + e.Name()
		tid, perr := shard.ParseTimelineID(e.Name())
		names, kept := keep[tid]
		if perr != nil || !kept {
			n, b := s.dirLayers(dir)
			if err := fs.RemoveAll(dir); err != nil {
				return err
			}
			layers, size = layers+n, size+b
			continue
		}
		files, err := fs.ReadDir(dir)
		if err != nil {
			return err
		}
		for _, f := range files {
			if names[f.Name()] {
				continue
			}
			if fi, err := f.Info(); err == nil {
				size += uint64(fi.Size())
			}
			if err := fs.Remove(dir + "/" + f.Name()); err != nil && !errors.Is(err, disk.ErrNotExist) {
				return err
			}
			layers++
		}
	}
	if layers > 0 {
		s.rs.sec.evicted.Add(float64(layers))
		s.rs.sec.evictedBytes.Add(float64(size))
		s.log.Info("secondary: removed layers the heatmap no longer names", "layers", layers, "size", size)
	}
	return nil
}

// dirLayers counts the files in dir and their bytes.
func (s *secondaryTenant) dirLayers(dir string) (int, uint64) {
	files, err := s.rs.fs.ReadDir(dir)
	if err != nil {
		return 0, 0
	}
	var size uint64
	for _, f := range files {
		if fi, err := f.Info(); err == nil {
			size += uint64(fi.Size())
		}
	}
	return len(files), size
}

// fetch downloads the missing layers, MaxConcurrentDownloads at once. A
// failed download does not stop the others; the first error is returned.
func (s *secondaryTenant) fetch(ctx context.Context, missing []wanted) error {
	if len(missing) == 0 {
		return nil
	}
	made := map[shard.TimelineID]bool{}
	for _, w := range missing {
		if made[w.tid] {
			continue
		}
		if err := disk.MkdirAllDurable(s.rs.fs, s.dir+"/"+w.tid.String()); err != nil {
			return err
		}
		made[w.tid] = true
	}
	sem := clock.NewSemaphore(s.rs.clk, int64(s.cfg.MaxConcurrentDownloads))
	g := clock.NewGroup(s.rs.clk, ctx)
	for _, w := range missing {
		if err := sem.Acquire(ctx, 1); err != nil {
			break
		}
		g.Go("secondary download "+w.l.Name.String(), func(ctx context.Context) error {
			defer sem.Release(1)
			err := s.rs.downloadLayer(ctx, s.id, w.tid, w.l.Layer, s.dir+"/"+w.tid.String())
			if err != nil {
				return fmt.Errorf("timeline %s layer %s: %w", w.tid, w.l.LayerID, err)
			}
			s.rs.sec.downloads.Inc()
			s.rs.sec.downloadBytes.Add(float64(w.l.FileSize))
			_ = s.mu.Lock(context.Background())
			s.progress.LayersDownloaded++
			s.progress.BytesDownloaded += w.l.FileSize
			s.setGaugesLocked(float64(s.progress.BytesDownloaded), float64(s.progress.BytesTotal-s.progress.BytesDownloaded))
			s.mu.Unlock()
			return nil
		})
	}
	err := g.Wait()
	if err == nil {
		err = ctx.Err()
	}
	return err
}

func (s *secondaryTenant) setProgress(p pageapi.SecondaryProgress) {
	_ = s.mu.Lock(context.Background())
	defer s.mu.Unlock()
	s.progress = p
	s.setGaugesLocked(float64(p.BytesDownloaded), float64(p.BytesTotal-p.BytesDownloaded))
}

func (s *secondaryTenant) snapshot() pageapi.SecondaryProgress {
	_ = s.mu.Lock(context.Background())
	defer s.mu.Unlock()
	return s.progress
}

// setGaugesLocked moves this location's part of the node's gauges to
// held and pending bytes. s.mu is held.
func (s *secondaryTenant) setGaugesLocked(held, pending float64) {
	if s.stopped && (held != 0 || pending != 0) {
		return
	}
	s.rs.sec.secondaryHeld.Add(held - s.held)
	s.rs.sec.secondaryPending.Add(pending - s.pending)
	s.held, s.pending = held, pending
}

// useWarm puts layer l of timeline tid into dir from local disk if a
// file of its name (which carries the generation) and size is already
// there — a Secondary location's copy, or the engine's file from an
// earlier attachment — by hard link, instead of downloading it. It
// reports whether it did. Called by downloadLayer for the attaching shard
// id.
func (rs *remoteStorage) useWarm(id shard.TenantShardID, tid shard.TimelineID, l remote.Layer, dir string) bool {
	name := l.Name.String()
	dst := dir + "/" + name
	for _, src := range warmDirs(id, tid) {
		p := src + "/" + name
		if p == dst {
			continue
		}
		fi, err := rs.fs.Stat(p)
		if err != nil || uint64(fi.Size()) != l.FileSize {
			continue
		}
		if err := rs.fs.Link(p, dst); err != nil {
			rs.log.Debug("warm layer not linked; downloading it", "tenant_shard_id", id, "timeline_id", tid, "layer", name, "err", err)
			continue
		}
		rs.sec.warmUsed.Inc()
		rs.sec.warmUsedBytes.Add(float64(l.FileSize))
		rs.log.Info("layer found on local disk; not downloaded", "tenant_shard_id", id, "timeline_id", tid, "layer", l.LayerID.String(),
			"size", l.FileSize, "from", src)
		return true
	}
	return false
}

// dropWarm removes shard ts's secondary copies once it attached: the
// attach took what it needed (useWarm). Called at the end of a successful
// attach; a failure only leaks disk space until the next detach.
func (m *tenantManager) dropWarm(ts *tenantShard) {
	if m.remote == nil {
		return
	}
	dir := secondaryDir(ts.id)
	if _, err := m.fs.Stat(dir); err != nil {
		return
	}
	if err := m.fs.RemoveAll(dir); err != nil {
		m.log.Warn("secondary copies not removed after attach", "tenant_shard_id", ts.id, "err", err)
		return
	}
	if err := m.fs.SyncDir(ts.dir()); err != nil {
		m.log.Warn("secondary copies removed after attach, directory not synced", "tenant_shard_id", ts.id, "err", err)
	}
}

// secondaryDownload is POST …/secondary/download for shard id.
func (m *tenantManager) secondaryDownload(ctx context.Context, id shard.TenantShardID, wait time.Duration) (pageapi.SecondaryProgress, bool, error) {
	ts, err := m.get(id)
	if err != nil {
		return pageapi.SecondaryProgress{}, false, err
	}
	ts.mu.Lock()
	s, mode := ts.secondary, ts.conf.Mode
	ts.mu.Unlock()
	if s == nil {
		why := string(mode)
		if mode == pageapi.ModeSecondary {
			why = "Secondary without remote storage"
		}
		return pageapi.SecondaryProgress{}, false, fmt.Errorf("%w: %s is %s", ErrNotSecondary, id, why)
	}
	return s.download(ctx, wait)
}

// secondaryStatus maps the errors of heatmaps and secondaries to API
// statuses (the rest to mgmtStatus's).
func secondaryStatus(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ErrNotSecondary), errors.Is(err, ErrNoHeatmapUpload):
		return net.Wrap(net.FailedPrecondition, err)
	case errors.Is(err, ErrSecondaryDownload):
		return net.Wrap(net.Unavailable, err)
	}
	return mgmtStatus(err)
}

// registerSecondary adds the routes of heatmaps and secondaries
// (pageapi.RouteHeatmapUpload, pageapi.RouteSecondaryDownload).
func (n *Node) registerSecondary() {
	mgmtRoute(n, pageapi.RouteHeatmapUpload, 200, func(ctx context.Context, r *net.HTTPRequest, _ struct{}) (struct{}, error) {
		id, err := tenantShardParam(r)
		if err != nil {
			return struct{}{}, err
		}
		return struct{}{}, secondaryStatus(n.tenants.uploadHeatmap(ctx, id))
	})
	// 200 once the download is complete, 202 with the progress while it
	// runs: a status HandleJSON cannot vary.
	n.router.Handle(pageapi.RouteSecondaryDownload, func(ctx context.Context, r *net.HTTPRequest) (*net.HTTPResponse, error) {
		if err := n.authorize(r); err != nil {
			return nil, jwtauth.StatusOf(err)
		}
		id, err := tenantShardParam(r)
		if err != nil {
			return nil, mgmtStatus(err)
		}
		wait := MaxSecondaryDownloadWait
		if v, ok := r.Query[pageapi.SecondaryDownloadWaitParam]; ok {
			ms, err := strconv.ParseUint(v, 10, 32)
			if err != nil {
				return nil, net.Errorf(net.InvalidArgument, "%s=%q: want milliseconds", pageapi.SecondaryDownloadWaitParam, v)
			}
			wait = min(time.Duration(ms)*time.Millisecond, MaxSecondaryDownloadWait)
		}
		p, done, err := n.tenants.secondaryDownload(ctx, id, wait)
		if err != nil {
			return nil, secondaryStatus(err)
		}
		b, err := json.Marshal(p)
		if err != nil {
			return nil, net.Errorf(net.Internal, "encode response: %v", err)
		}
		status := 202
		if done {
			status = 200
		}
		return &net.HTTPResponse{Status: status, Body: b}, nil
	})
}
