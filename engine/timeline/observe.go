package timeline

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/stratadb/strata/disk"
	"github.com/stratadb/strata/engine/layer"
	"github.com/stratadb/strata/engine/lsn"
)

// State is a timeline's persisted state: what its metadata file holds.
// Layers are the physical names (with generation) of its layer files,
// sorted by file name.
type State struct {
	Layers            []layer.Name
	DiskConsistentLSN lsn.LSN
	GCCutoff          lsn.LSN
	InitLSN           lsn.LSN
	// Ancestor is the parent (nil for a root timeline), branched at
	// AncestorLSN (then equal to InitLSN).
	Ancestor    *ID
	AncestorLSN lsn.LSN
}

// Edit tells an observer (Options.OnEdit) about one change of a
// timeline's persisted state, after the metadata holding it is durable and
// before the files it removes can be deleted.
type Edit struct {
	Timeline ID
	// Kind names the edit: flush, dcl, compact, images or gc.
	Kind string
	// Added are the layer files the edit listed (durable before it);
	// Removed those it stopped listing (deleted locally once no read holds
	// them).
	Added, Removed []layer.Name
	// State is the timeline's persisted state after the edit.
	State State
}

// State returns the timeline's persisted state as of its current version
// (ErrClosed once the tenant is closed or the timeline deleted).
func (t *Timeline) State() (State, error) {
	v := t.peek()
	if v == nil {
		return State{}, fmt.Errorf("%w: timeline %s", ErrClosed, t.id)
	}
	return t.stateOf(v), nil
}

// stateOf describes version v of t; v's fields never change.
func (t *Timeline) stateOf(v *version) State {
	st := State{DiskConsistentLSN: v.dcl, GCCutoff: v.gcCutoff, InitLSN: t.initLSN, AncestorLSN: t.ancestorLSN}
	if t.ancestor != nil {
		a := t.ancestor.id
		st.Ancestor = &a
	}
	st.Layers = make([]layer.Name, 0, len(v.files))
	for _, f := range v.fileLayers() {
		st.Layers = append(st.Layers, f.name)
	}
	sortNames(st.Layers)
	return st
}

// notify tells the tenant's observer about persisted edit e, whose
// version n is durable and about to be installed. Called by apply with the
// writer lock held, so an observer sees a timeline's edits one at a time,
// in version order, and before any file the edit removes can be deleted.
func (t *Timeline) notify(e *versionEdit, n *version) {
	obs := t.tenant.onEdit
	if obs == nil {
		return
	}
	ev := Edit{Timeline: t.id, Kind: e.kind.String(), State: t.stateOf(n)}
	for _, f := range e.add {
		ev.Added = append(ev.Added, f.name)
	}
	for _, f := range e.remove {
		ev.Removed = append(ev.Removed, f.name)
	}
	sortNames(ev.Added)
	sortNames(ev.Removed)
	obs(ev)
}

func sortNames(ns []layer.Name) {
	slices.SortFunc(ns, func(a, b layer.Name) int { return strings.Compare(a.String(), b.String()) })
}

// toMetadata is the metadata file that holds st.
func (st State) toMetadata() metadata {
	m := metadata{DiskConsistentLSN: st.DiskConsistentLSN, LatestGCCutoff: st.GCCutoff, InitLSN: st.InitLSN, AncestorLSN: st.AncestorLSN}
	if st.Ancestor != nil {
		m.AncestorTimeline = st.Ancestor.String()
	}
	m.Layers = make([]string, len(st.Layers))
	for i, n := range st.Layers {
		m.Layers[i] = n.String()
	}
	slices.Sort(m.Layers)
	return m
}

func (m metadata) toState() State {
	st := State{DiskConsistentLSN: m.DiskConsistentLSN, GCCutoff: m.LatestGCCutoff, InitLSN: m.InitLSN, AncestorLSN: m.AncestorLSN}
	if m.AncestorTimeline != "" {
		a, _ := ParseID(m.AncestorTimeline) // checked by validate
		st.Ancestor = &a
	}
	for _, s := range m.Layers {
		n, _ := layer.ParseName(s) // checked by validate
		st.Layers = append(st.Layers, n)
	}
	sortNames(st.Layers)
	return st
}

func timelinesDirOf(dir string) string {
	if dir == "" || dir == "." {
		return "timelines"
	}
	return dir + "/timelines"
}

// ReadState reads the persisted state of timeline id in the tenant
// directory dir without opening the tenant. A timeline that is not there
// is an error wrapping disk.ErrNotExist; a corrupt metadata file wraps
// ErrCorrupt.
func ReadState(fsys disk.FS, dir string, id ID) (State, error) {
	b, err := disk.ReadFile(fsys, timelinesDirOf(dir)+"/"+id.String()+"/"+metadataName)
	if err != nil {
		return State{}, fmt.Errorf("timeline %s: read metadata: %w", id, err)
	}
	m, err := decodeMetadata(b)
	if err != nil {
		return State{}, fmt.Errorf("timeline %s: %w", id, err)
	}
	return m.toState(), nil
}

// Stage prepares an empty staging directory for timeline id in the tenant
// directory dir and returns its path: the caller writes the layer files of
// a state fetched from elsewhere (object storage) into it, then Install
// puts them in place. A staging directory left by a crash is removed by
// Open (it has the temp suffix of a timeline being created).
func Stage(fsys disk.FS, dir string, id ID) (string, error) {
	root := timelinesDirOf(dir)
	if err := disk.MkdirAllDurable(fsys, root); err != nil {
		return "", fmt.Errorf("timeline: create %s: %w", root, err)
	}
	tmp := root + "/" + id.String() + tempSuffix
	if err := fsys.RemoveAll(tmp); err != nil {
		return "", fmt.Errorf("timeline: clear %s: %w", tmp, err)
	}
	if err := fsys.MkdirAll(tmp); err != nil {
		return "", fmt.Errorf("timeline: create %s: %w", tmp, err)
	}
	return tmp, nil
}

// ErrMissingLayer reports a state whose layer file is not in the staging
// directory.
var ErrMissingLayer = errors.New("timeline: staged layer file missing")

// Install makes the state st, whose layer files are in Stage's directory,
// timeline id of the tenant directory dir, replacing what is there: the
// metadata is written into the staging directory, an existing directory of
// the timeline is renamed to a deleting name, the staging directory is
// renamed into place, and the timelines directory is synced. A crash at
// any point leaves the old timeline, no timeline (Open removes the
// deleting and staging directories), or the new one. The tenant must not
// be open. The layer files are checked when the tenant opens (headers
// against names, checksums), as any listed file is.
func Install(fsys disk.FS, dir string, id ID, st State) error {
	return InstallPartial(fsys, dir, id, st, nil)
}

// InstallPartial is Install of a state whose layer files need not all be
// staged: a layer remote reports true for may be missing (the tenant
// opens it as remote: its Options.Source must have it). Nil remote
// requires every file, as Install does.
func InstallPartial(fsys disk.FS, dir string, id ID, st State, remote func(layer.Name) bool) error {
	m := st.toMetadata()
	if err := m.validate(); err != nil {
		return fmt.Errorf("timeline %s: refusing to install: %w", id, err)
	}
	root := timelinesDirOf(dir)
	final := root + "/" + id.String()
	tmp := final + tempSuffix
	for _, n := range st.Layers {
		if _, err := fsys.Stat(tmp + "/" + n.String()); err != nil {
			if remote != nil && errors.Is(err, disk.ErrNotExist) && remote(n) {
				continue
			}
			return fmt.Errorf("%w: timeline %s: %s: %w", ErrMissingLayer, id, n, err)
		}
	}
	b, err := encodeMetadata(m)
	if err != nil {
		return err
	}
	if err := disk.WriteFileAtomic(fsys, tmp+"/"+metadataName, b); err != nil {
		return fmt.Errorf("timeline %s: write metadata: %w", id, err)
	}
	if _, err := fsys.Stat(final); err == nil {
		gone := final + deletingSuffix
		if err := fsys.RemoveAll(gone); err != nil {
			return fmt.Errorf("timeline: clear %s: %w", gone, err)
		}
		if err := fsys.Rename(final, gone); err != nil {
			return fmt.Errorf("timeline %s: set aside the old directory: %w", id, err)
		}
	} else if !errors.Is(err, disk.ErrNotExist) {
		return fmt.Errorf("timeline: stat %s: %w", final, err)
	}
	if err := fsys.Rename(tmp, final); err != nil {
		return fmt.Errorf("timeline %s: install: %w", id, err)
	}
	if err := fsys.SyncDir(root); err != nil {
		return fmt.Errorf("timeline: sync %s: %w", root, err)
	}
	if err := fsys.RemoveAll(final + deletingSuffix); err != nil {
		return fmt.Errorf("timeline %s: remove the old directory: %w", id, err)
	}
	return nil
}
