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

	"github.com/stratadb/strata/clock"
	"github.com/stratadb/strata/disk"
	"github.com/stratadb/strata/engine/inmem"
	"github.com/stratadb/strata/engine/layer"
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
	// Log receives the engine's logs; nil discards them.
	Log *slog.Logger
}

// Tenant holds a tenant's timelines on one disk directory:
//
//	<Dir>/timelines/<timeline id>/metadata
//	<Dir>/timelines/<timeline id>/<layer file name>
type Tenant struct {
	fs  disk.FS
	clk clock.Clock
	dir string
	cfg Config
	gen layer.Generation
	log *slog.Logger

	mu        sync.Mutex // guards timelines and branching
	timelines map[ID]*Timeline
	// branching holds the branch points of Branch calls in flight, by
	// parent: GC keeps them like those of existing children (see Branch).
	branching []pendingBranch

	scratch scratchPool // read-path scratch shared by the tenant's timelines
}

// Open opens (or initialises) the tenant directory and loads every timeline.
// It removes what a crash may have left half-done (temp directories, layer
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
	tn := &Tenant{fs: o.FS, clk: o.Clock, dir: o.Dir, cfg: cfg, gen: o.Generation, log: log, timelines: map[ID]*Timeline{}}
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
	removed := false
	for _, e := range ents {
		name := e.Name()
		if strings.HasSuffix(name, tempSuffix) {
			if err := tn.fs.RemoveAll(root + "/" + name); err != nil {
				return nil, fmt.Errorf("timeline: remove leftover %s: %w", name, err)
			}
			removed = true
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
	if removed {
		if err := tn.fs.SyncDir(root); err != nil {
			return nil, fmt.Errorf("timeline: sync %s: %w", root, err)
		}
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

func (tn *Tenant) timelinesDir() string {
	if tn.dir == "" || tn.dir == "." {
		return "timelines"
	}
	return tn.dir + "/timelines"
}

func (tn *Tenant) newTimeline(id ID, m metadata) *Timeline {
	t := &Timeline{
		tenant:            tn,
		id:                id,
		dir:               tn.timelinesDir() + "/" + id.String(),
		ancestorLSN:       m.AncestorLSN,
		initLSN:           m.InitLSN,
		log:               tn.log.With("timeline", id.String()),
		lastRecordLSN:     m.DiskConsistentLSN,
		diskConsistentLSN: m.DiskConsistentLSN,
		gcCutoff:          m.LatestGCCutoff,
		files:             slices.Clone(m.Layers),
	}
	t.layers = layermap.Empty[walrec.Value]().WithOpen(inmem.New[walrec.Value](m.DiskConsistentLSN+1, valueInfo))
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
	removed := false
	for _, e := range ents {
		if !listed[e.Name()] {
			// A layer or temp file a crash left behind before the metadata
			// listing it became durable (or after it stopped listing it).
			if err := tn.fs.RemoveAll(t.dir + "/" + e.Name()); err != nil {
				return fmt.Errorf("timeline %s: remove leftover %s: %w", id, e.Name(), err)
			}
			removed = true
		}
	}
	if removed {
		if err := tn.fs.SyncDir(t.dir); err != nil {
			return fmt.Errorf("timeline %s: sync dir: %w", id, err)
		}
	}
	var ls []layermap.Layer[walrec.Value]
	for _, s := range m.Layers {
		n, _ := layer.ParseName(s) // checked by decodeMetadata
		f, err := openFileLayer(tn.fs, t.dir, n)
		if err != nil {
			closeLayers(ls)
			return fmt.Errorf("timeline %s: %w", id, err)
		}
		ls = append(ls, f)
	}
	lm, err := t.layers.Replace(ls, nil, 0)
	if err == nil {
		err = lm.Check()
	}
	if err != nil {
		closeLayers(ls)
		return fmt.Errorf("%w: timeline %s: %w", ErrCorrupt, id, err)
	}
	t.layers = lm
	tn.mu.Lock()
	tn.timelines[id] = t
	tn.mu.Unlock()
	t.log.Info("timeline loaded", "disk_consistent_lsn", m.DiskConsistentLSN, "layers", len(ls), "gc_cutoff", m.LatestGCCutoff)
	return nil
}

func closeLayers(ls []layermap.Layer[walrec.Value]) {
	for _, l := range ls {
		_ = l.(*fileLayer).close()
	}
}

// Close releases every timeline's layer files. The tenant must not be used
// afterwards.
func (tn *Tenant) Close() {
	tn.mu.Lock()
	defer tn.mu.Unlock()
	for _, id := range tn.idsLocked() {
		closeLayers(tn.timelines[id].snapshot().Historic())
	}
	tn.timelines = map[ID]*Timeline{}
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

// children returns the branch points of id's child timelines, sorted.
func (tn *Tenant) branchPoints(id ID) []lsn.LSN {
	tn.mu.Lock()
	defer tn.mu.Unlock()
	var ps []lsn.LSN
	for _, cid := range tn.idsLocked() {
		if t := tn.timelines[cid]; t.ancestor != nil && t.ancestor.id == id {
			ps = append(ps, t.ancestorLSN)
		}
	}
	for _, b := range tn.branching {
		if b.parent == id {
			ps = append(ps, b.at)
		}
	}
	slices.Sort(ps)
	return ps
}

// pendingBranch is a branch point being created.
type pendingBranch struct {
	parent ID
	at     lsn.LSN
}

// reserveBranchPoint makes GC of parent keep what a read at at needs until
// the returned release is called (after the child is registered, when
// branchPoints lists it anyway).
func (tn *Tenant) reserveBranchPoint(parent ID, at lsn.LSN) (release func()) {
	tn.mu.Lock()
	defer tn.mu.Unlock()
	b := pendingBranch{parent, at}
	tn.branching = append(tn.branching, b)
	return func() {
		tn.mu.Lock()
		defer tn.mu.Unlock()
		if i := slices.Index(tn.branching, b); i >= 0 {
			tn.branching = slices.Delete(tn.branching, i, i+1)
		}
	}
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
	// Reserve the branch point before checking the cutoff: GC raises the
	// cutoff and then reads the branch points, so either the check below
	// sees GC's new cutoff, or GC sees this branch point and keeps the
	// layers the child will read. (Checking first let a GC in between free
	// them, and the child then read wrong pages at its branch point.)
	defer tn.reserveBranchPoint(parent, at)()
	p.mu.Lock()
	last, cutoff := p.lastRecordLSN, p.gcCutoff
	p.mu.Unlock()
	if at > last {
		return nil, fmt.Errorf("%w: branch at %s, parent %s last record %s", ErrFutureLSN, at, parent, last)
	}
	if at < cutoff {
		return nil, fmt.Errorf("%w: branch at %s, parent %s cutoff %s", ErrBelowGCCutoff, at, parent, cutoff)
	}
	return tn.create(child, branchMetadata(parent, at), p)
}

// branchMetadata is the metadata of a new branch of parent at at.
func branchMetadata(parent ID, at lsn.LSN) metadata {
	return metadata{DiskConsistentLSN: at, AncestorTimeline: parent.String(), AncestorLSN: at, LatestGCCutoff: at, InitLSN: at}
}

// create makes a timeline directory durably: a temp directory holding the
// metadata, renamed into place, so that a crash leaves either nothing (the
// temp directory is removed at Open) or a complete timeline.
func (tn *Tenant) create(id ID, m metadata, ancestor *Timeline) (*Timeline, error) {
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
