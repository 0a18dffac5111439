package timeline

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/stratadb/strata/clock"
	"github.com/stratadb/strata/disk"
	"github.com/stratadb/strata/engine/inmem"
	"github.com/stratadb/strata/engine/keys"
	"github.com/stratadb/strata/engine/layer"
	"github.com/stratadb/strata/engine/layercache"
	"github.com/stratadb/strata/engine/layermap"
	"github.com/stratadb/strata/engine/lsn"
	"github.com/stratadb/strata/engine/walrec"
)

// tempSuffix marks a timeline directory being created: it is renamed into
// place only after every check passed and its metadata is durable, and any
// left by a crash is removed at Open.
const tempSuffix = ".___temp"

// Options are what a Tenant is opened with.
type Options struct {
	// FS is the disk seam; Dir is the tenant's directory on it.
	FS  disk.FS
	Dir string
	// Clock is the task seam: writers of a timeline's layer set queue on
	// a clock.Mutex, so the simulator sees every wait. Required.
	Clock clock.Clock
	// Config is the page-engine policy (zero fields mean defaults).
	Config Config
	// Generation is the attachment generation stamped on every layer file
	// this tenant writes (layer.GenerationNone for legacy names).
	Generation layer.Generation
	// LayerCache bounds the layer files open at once; a node shares one
	// across all its tenants (nodes/pageserver). Nil gives the tenant a
	// cache of its own with layercache.DefaultMaxOpenFiles (engine tests,
	// tools opening one tenant).
	LayerCache *layercache.Cache
	// Log receives the engine's logs; nil discards them.
	Log *slog.Logger
	// Bugs plants deliberate defects (tests only; see Bugs).
	Bugs Bugs
	// OnEdit, if set, is told about every change of a timeline's
	// persisted state (flush, compaction, image creation, GC), after its
	// metadata is durable: the pageserver's upload queue hooks here. It is
	// called with the timeline's layer-set writer held, so it sees one
	// timeline's edits in order; it must return quickly and must not call
	// back into the timeline's writers (Flush, Compact, GC, Delete).
	OnEdit func(Edit)
	// Source, if set, is where layer files that are not on the local disk
	// come from (object storage): a layer the metadata lists whose file
	// is missing is opened as remote if the source has it, and downloaded
	// on its first use; Timeline.Evict removes local files the source
	// holds. Nil: every listed file must be local (a missing one fails
	// Open).
	Source LayerSource
	// KeepKey, if set, says which keys the tenant keeps when it rewrites
	// layers: compaction leaves the others out of the L1 deltas it writes
	// and image creation out of the images. A shard made by a split starts
	// from its parent's layers, which hold keys other shards own; this
	// drops them in time (GC then removes the old layers, as ever). Reads
	// of a key it does not keep are the caller's to refuse. Nil keeps all.
	KeepKey func(keys.Key) bool
}

// Tenant holds a tenant's timelines on one disk directory:
//
//	<Dir>/timelines/<timeline id>/metadata
//	<Dir>/timelines/<timeline id>/<layer file name>
type Tenant struct {
	fs   disk.FS
	clk  clock.Clock
	dir  string
	cfg  Config
	gen  layer.Generation
	log  *slog.Logger
	bugs Bugs
	// onEdit is Options.OnEdit (nil: nobody is told).
	onEdit func(Edit)
	// keepKey is Options.KeepKey (nil: every key is kept).
	keepKey func(keys.Key) bool
	// cache holds the readers of the tenant's layer files (shared with
	// other tenants when Options.LayerCache is).
	cache *layercache.Cache
	// source is Options.Source (nil: every layer file is local).
	source LayerSource
	// resident is the size of the local files of the layers the
	// timelines' versions hold.
	resident atomic.Int64

	// createMu makes Create and Branch one at a time: both claim an id and
	// make its directory.
	createMu *clock.Mutex

	mu        sync.Mutex // guards timelines
	timelines map[ID]*Timeline

	scratch scratchPool // read-path scratch shared by the tenant's timelines
}

// Open opens (or initialises) the tenant directory and loads every timeline.
// It removes what a crash may have left half-done (temp directories of
// creates, directories of deletes (Delete), layer
// files not listed in a timeline's metadata, temp files); a timeline whose
// metadata is missing or corrupt, or that lists a missing or damaged layer
// file, fails the open with ErrCorrupt (or the layer's error).
func Open(o Options) (*Tenant, error) {
	cfg := o.Config.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if o.FS == nil {
		return nil, fmt.Errorf("%w: Options.FS is nil", ErrConfig)
	}
	if o.Clock == nil {
		return nil, fmt.Errorf("%w: Options.Clock is nil", ErrConfig)
	}
	log := o.Log
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	cache := o.LayerCache
	if cache == nil {
		var err error
		if cache, err = layercache.New(layercache.Config{}); err != nil {
			return nil, err
		}
	}
	tn := &Tenant{fs: o.FS, clk: o.Clock, dir: o.Dir, cfg: cfg, gen: o.Generation, log: log, bugs: o.Bugs, onEdit: o.OnEdit, keepKey: o.KeepKey,
		cache: cache, source: o.Source, createMu: clock.NewMutex(o.Clock), timelines: map[ID]*Timeline{}}
	root := tn.timelinesDir()
	if err := disk.MkdirAllDurable(tn.fs, root); err != nil {
		return nil, fmt.Errorf("timeline: create %s: %w", root, err)
	}
	ents, err := tn.fs.ReadDir(root)
	if err != nil {
		return nil, fmt.Errorf("timeline: list %s: %w", root, err)
	}
	metas := map[ID]metadata{}
	var ids []ID
	for _, e := range ents {
		name := e.Name()
		if strings.HasSuffix(name, tempSuffix) || strings.HasSuffix(name, deletingSuffix) {
			if err := tn.fs.RemoveAll(root + "/" + name); err != nil {
				return nil, fmt.Errorf("timeline: remove leftover %s: %w", name, err)
			}
			continue
		}
		id, err := ParseID(name)
		if err != nil {
			return nil, fmt.Errorf("%w: unexpected entry %q in %s", ErrCorrupt, name, root)
		}
		b, err := disk.ReadFile(tn.fs, root+"/"+name+"/"+metadataName)
		if err != nil {
			return nil, fmt.Errorf("%w: timeline %s: read metadata: %w", ErrCorrupt, id, err)
		}
		m, err := decodeMetadata(b)
		if err != nil {
			return nil, fmt.Errorf("timeline %s: %w", id, err)
		}
		metas[id] = m
		ids = append(ids, id)
	}
	// Sync the directory even if nothing was removed: an earlier
	// incarnation may have renamed a timeline into place and then failed to
	// sync it; what this Open loads must be durable before anyone relies on
	// it.
	if err := tn.fs.SyncDir(root); err != nil {
		return nil, fmt.Errorf("timeline: sync %s: %w", root, err)
	}
	// Load parents before children (ids in sorted order within each round,
	// so the order is deterministic).
	slices.SortFunc(ids, func(a, b ID) int { return strings.Compare(a.String(), b.String()) })
	for len(ids) > 0 {
		var next []ID
		for _, id := range ids {
			if a := metas[id].AncestorTimeline; a != "" {
				aid, _ := ParseID(a) // checked by decodeMetadata
				if _, ok := metas[aid]; !ok {
					tn.Close()
					return nil, fmt.Errorf("%w: timeline %s: ancestor %s missing", ErrCorrupt, id, aid)
				}
				if _, loaded := tn.timelines[aid]; !loaded {
					next = append(next, id)
					continue
				}
			}
			if err := tn.load(id, metas[id]); err != nil {
				tn.Close()
				return nil, err
			}
		}
		if len(next) == len(ids) {
			tn.Close()
			return nil, fmt.Errorf("%w: ancestor cycle among %d timelines", ErrCorrupt, len(ids))
		}
		ids = next
	}
	tn.log.Info("tenant opened", "dir", o.Dir, "timelines", len(metas))
	return tn, nil
}

func (tn *Tenant) timelinesDir() string { return timelinesDirOf(tn.dir) }

func (tn *Tenant) newTimeline(id ID, m metadata) *Timeline {
	t := &Timeline{
		tenant:        tn,
		id:            id,
		dir:           tn.timelinesDir() + "/" + id.String(),
		ancestorLSN:   m.AncestorLSN,
		initLSN:       m.InitLSN,
		log:           tn.log.With("timeline", id.String()),
		writer:        clock.NewMutex(tn.clk),
		flushMu:       clock.NewMutex(tn.clk),
		compactMu:     clock.NewMutex(tn.clk),
		gcMu:          clock.NewMutex(tn.clk),
		lastRecordLSN: m.DiskConsistentLSN,
		doomed:        map[string]bool{},
	}
	t.cur = &version{
		tl:       t,
		seq:      1, // 0 is "no base" in an edit
		layers:   layermap.Empty[walrec.Value]().WithOpen(inmem.New[walrec.Value](m.DiskConsistentLSN+1, valueInfo)),
		files:    slices.Clone(m.Layers),
		dcl:      m.DiskConsistentLSN,
		gcCutoff: m.LatestGCCutoff,
		refs:     1,
	}
	return t
}

// load opens one timeline from its metadata and cleans its directory.
func (tn *Tenant) load(id ID, m metadata) error {
	t := tn.newTimeline(id, m)
	if m.AncestorTimeline != "" {
		aid, _ := ParseID(m.AncestorTimeline) // checked by decodeMetadata
		a := tn.timelines[aid]
		if a == nil {
			return fmt.Errorf("%w: timeline %s: ancestor %s missing", ErrCorrupt, id, aid)
		}
		t.ancestor = a
	}
	ents, err := tn.fs.ReadDir(t.dir)
	if err != nil {
		return fmt.Errorf("timeline %s: list: %w", id, err)
	}
	listed := map[string]bool{metadataName: true}
	for _, n := range m.Layers {
		listed[n] = true
	}
	for _, e := range ents {
		if !listed[e.Name()] {
			// A layer or temp file a crash left behind before the metadata
			// listing it became durable (or after it stopped listing it).
			if err := tn.fs.RemoveAll(t.dir + "/" + e.Name()); err != nil {
				return fmt.Errorf("timeline %s: remove leftover %s: %w", id, e.Name(), err)
			}
		}
	}
	// Sync the directory even if nothing was removed: the metadata and
	// layer files this Open trusts may come from an incarnation whose
	// directory sync failed (it then exited, keeping its unsynced
	// entries). Until they are durable a crash could bring back older
	// metadata, and disk_consistent_lsn would go back.
	if err := tn.fs.SyncDir(t.dir); err != nil {
		return fmt.Errorf("timeline %s: sync dir: %w", id, err)
	}
	var ls []*fileLayer
	remote := 0
	for _, s := range m.Layers {
		n, _ := layer.ParseName(s) // checked by decodeMetadata
		f, err := tn.loadLayer(t, n)
		if err != nil {
			closeFiles(ls)
			return fmt.Errorf("timeline %s: %w", id, err)
		}
		if !f.resident.Load() {
			remote++
		}
		f.refs = 1 // held by the first version
		ls = append(ls, f)
	}
	lm, err := t.cur.layers.Replace(asLayers(ls), nil, 0)
	if err == nil {
		err = lm.Check()
	}
	if err != nil {
		closeFiles(ls)
		return fmt.Errorf("%w: timeline %s: %w", ErrCorrupt, id, err)
	}
	t.cur.layers = lm
	tn.mu.Lock()
	tn.timelines[id] = t
	tn.mu.Unlock()
	if a := t.ancestor; a != nil {
		// Nothing else runs yet: the parent's first version may change in
		// place.
		i, _ := slices.BinarySearch(a.cur.branchPoints, t.ancestorLSN)
		a.cur.branchPoints = slices.Insert(a.cur.branchPoints, i, t.ancestorLSN)
	}
	t.log.Info("timeline loaded", "disk_consistent_lsn", m.DiskConsistentLSN, "layers", len(ls), "remote_layers", remote, "gc_cutoff", m.LatestGCCutoff)
	return nil
}

// loadLayer opens a layer the metadata lists: its local file, or, if
// that is missing or damaged and the source has the layer, a remote layer
// (downloaded on first use; a damaged file is removed first). A missing
// or damaged file the source does not have fails Open.
func (tn *Tenant) loadLayer(t *Timeline, n layer.Name) (*fileLayer, error) {
	path := t.dir + "/" + n.String()
	if tn.source == nil {
		return openFileLayer(t, n)
	}
	size, ok := tn.source.Has(t.id, n)
	if _, err := tn.fs.Stat(path); errors.Is(err, disk.ErrNotExist) && ok {
		return remoteFileLayer(t, n, size), nil
	}
	f, err := openFileLayer(t, n)
	if err == nil || !ok || !(errors.Is(err, layer.ErrCorrupt) || errors.Is(err, ErrCorrupt)) {
		return f, err
	}
	t.log.Warn("damaged layer file removed; the layer source has it, downloaded again on use", "layer", n.String(), "err", err)
	if rerr := tn.fs.Remove(path); rerr != nil {
		return nil, fmt.Errorf("%w (removing it: %v)", err, rerr)
	}
	return remoteFileLayer(t, n, size), nil
}

// Close releases every timeline's current version, so each layer file is
// closed once no read holds it any more. The tenant must not be used
// afterwards (its timelines fail with ErrClosed).
func (tn *Tenant) Close() {
	tn.mu.Lock()
	ids := tn.idsLocked()
	tls := make([]*Timeline, len(ids))
	for i, id := range ids {
		tls[i] = tn.timelines[id]
	}
	tn.timelines = map[ID]*Timeline{}
	tn.mu.Unlock()
	for _, t := range tls {
		// Behind the writer lock: an edit in flight installs its version
		// first (apply relies on nobody else replacing t.cur).
		lock(t.writer)
		t.mu.Lock()
		v := t.cur
		t.cur = nil
		t.mu.Unlock()
		t.writer.Unlock()
		if v != nil {
			v.release()
		}
	}
}

func (tn *Tenant) idsLocked() []ID {
	return slices.SortedFunc(maps.Keys(tn.timelines), func(a, b ID) int { return bytes.Compare(a[:], b[:]) })
}

// Timelines lists the timeline ids, sorted.
func (tn *Tenant) Timelines() []ID {
	tn.mu.Lock()
	defer tn.mu.Unlock()
	return tn.idsLocked()
}

// Get returns the timeline id.
func (tn *Tenant) Get(id ID) (*Timeline, error) {
	tn.mu.Lock()
	defer tn.mu.Unlock()
	t := tn.timelines[id]
	if t == nil {
		return nil, fmt.Errorf("%w: %s", ErrUnknown, id)
	}
	return t, nil
}

// Create creates an empty root timeline whose WAL starts above initLSN.
func (tn *Tenant) Create(id ID, initLSN lsn.LSN) (*Timeline, error) {
	if initLSN >= lsn.Max-1 {
		return nil, fmt.Errorf("%w: init LSN %s", ErrInvalidLSN, initLSN)
	}
	return tn.create(id, metadata{DiskConsistentLSN: initLSN, LatestGCCutoff: initLSN, InitLSN: initLSN}, nil)
}

// Branch creates child as a branch of parent at LSN at: the child sees the
// parent's history at or below at and its own records above it. at must not
// be above the parent's last record LSN nor below its GC cutoff. Reads on
// the child below at are refused (its GC cutoff starts at the branch point:
// the parent keeps only what the branch point needs).
func (tn *Tenant) Branch(parent, child ID, at lsn.LSN) (*Timeline, error) {
	p, err := tn.Get(parent)
	if err != nil {
		return nil, err
	}
	if at == lsn.Invalid {
		return nil, fmt.Errorf("%w: branch at 0", ErrInvalidLSN)
	}
	if last := p.LastRecordLSN(); at > last {
		return nil, fmt.Errorf("%w: branch at %s, parent %s last record %s", ErrFutureLSN, at, parent, last)
	}
	// Reserving the branch point is an edit of the parent's layer set: the
	// writer checks it against the cutoff and records it atomically, so a
	// GC either ran first (and the branch is refused) or keeps what reads
	// at the branch point need.
	if err := p.apply(&versionEdit{kind: editBranch, branchPoint: at}); err != nil {
		return nil, err
	}
	t, err := tn.create(child, branchMetadata(parent, at), p)
	if err != nil {
		if uerr := p.apply(&versionEdit{kind: editUnbranch, branchPoint: at}); uerr != nil {
			p.log.Warn("releasing the branch point of a failed branch failed; GC keeps its layers until restart", "at", at, "err", uerr)
		}
		return nil, err
	}
	return t, nil
}

// branchMetadata is the metadata of a new branch of parent at at.
func branchMetadata(parent ID, at lsn.LSN) metadata {
	return metadata{DiskConsistentLSN: at, AncestorTimeline: parent.String(), AncestorLSN: at, LatestGCCutoff: at, InitLSN: at}
}

// create makes a timeline directory durably: a temp directory holding the
// metadata, renamed into place, so that a crash leaves either nothing (the
// temp directory is removed at Open) or a complete timeline.
func (tn *Tenant) create(id ID, m metadata, ancestor *Timeline) (*Timeline, error) {
	lock(tn.createMu)
	defer tn.createMu.Unlock()
	tn.mu.Lock()
	_, taken := tn.timelines[id]
	tn.mu.Unlock()
	if taken {
		return nil, fmt.Errorf("%w: %s", ErrExists, id)
	}
	root := tn.timelinesDir()
	final := root + "/" + id.String()
	if _, err := tn.fs.Stat(final); err == nil {
		return nil, fmt.Errorf("%w: %s exists on disk", ErrExists, final)
	} else if !errors.Is(err, disk.ErrNotExist) {
		return nil, fmt.Errorf("timeline: stat %s: %w", final, err)
	}
	b, err := encodeMetadata(m)
	if err != nil {
		return nil, err
	}
	tmp := final + tempSuffix
	if err := tn.fs.RemoveAll(tmp); err != nil {
		return nil, fmt.Errorf("timeline: clear %s: %w", tmp, err)
	}
	if err := tn.fs.MkdirAll(tmp); err != nil {
		return nil, fmt.Errorf("timeline: create %s: %w", tmp, err)
	}
	if err := disk.WriteFileAtomic(tn.fs, tmp+"/"+metadataName, b); err != nil {
		return nil, fmt.Errorf("timeline: write metadata: %w", err)
	}
	if err := tn.fs.Rename(tmp, final); err != nil {
		return nil, fmt.Errorf("timeline: rename %s: %w", tmp, err)
	}
	if err := tn.fs.SyncDir(root); err != nil {
		// The directory is in place but maybe not durably: take it away,
		// so that a retry starts afresh instead of finding it "exists"
		// (should a crash bring it back, it is a complete timeline).
		if rerr := tn.fs.RemoveAll(final); rerr != nil {
			tn.log.Warn("removing the timeline of a failed create failed", "timeline", id.String(), "err", rerr)
		}
		return nil, fmt.Errorf("timeline: sync %s: %w", root, err)
	}
	t := tn.newTimeline(id, m)
	t.ancestor = ancestor
	tn.mu.Lock()
	tn.timelines[id] = t
	tn.mu.Unlock()
	t.log.Info("timeline created", "init_lsn", m.InitLSN, "ancestor", m.AncestorTimeline)
	return t, nil
}
