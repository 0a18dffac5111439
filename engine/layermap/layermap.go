package layermap

import (
	"errors"
	"fmt"
	"slices"
	"sort"

	"github.com/stratadb/strata/engine/inmem"
	"github.com/stratadb/strata/engine/keys"
	"github.com/stratadb/strata/engine/lsn"
)

// Errors returned by the map.
var (
	// ErrOverlap reports two historic delta layers that overlap in keys and LSNs.
	ErrOverlap = errors.New("layermap: overlapping delta layers")
	// ErrOrder reports in-memory layers that are not newer than the historic ones.
	ErrOrder = errors.New("layermap: in-memory layer not above historic layers")
	// ErrDuplicate reports adding a layer whose descriptor is already present.
	ErrDuplicate = errors.New("layermap: duplicate layer")
	// ErrMissing reports removing a layer that is not in the map.
	ErrMissing = errors.New("layermap: layer not in map")
)

// Desc describes a historic layer.
type Desc struct {
	Keys keys.Range
	LSNs lsn.Range
	// Image marks an image layer at LSN LSNs.Start (LSNs.End == LSNs.Start+1).
	Image bool
}

// ImageDesc describes an image layer at LSN at.
func ImageDesc(r keys.Range, at lsn.LSN) Desc {
	return Desc{Keys: r, LSNs: lsn.Range{Start: at, End: at + 1}, Image: true}
}

// DeltaDesc describes a delta layer over [start, end).
func DeltaDesc(r keys.Range, start, end lsn.LSN) Desc {
	return Desc{Keys: r, LSNs: lsn.Range{Start: start, End: end}}
}

func (d Desc) String() string {
	if d.Image {
		return fmt.Sprintf("image %s@%s", d.Keys, d.LSNs.Start)
	}
	return fmt.Sprintf("delta %s@%s", d.Keys, d.LSNs)
}

// Layer is a historic layer as the read path sees it.
type Layer[V any] interface {
	Desc() Desc
	// Collect appends key's values with LSN in [lo, hi) to dst, newest
	// first, stopping after a value that initialises the page. done reports
	// that nothing older is needed: such a value was appended, or (for an
	// image layer) the key did not exist at the image's LSN.
	Collect(key keys.Key, lo, hi lsn.LSN, dst []inmem.Entry[V]) (out []inmem.Entry[V], done bool, err error)
}

// Map is an immutable snapshot of a timeline's layers.
type Map[V any] struct {
	// historic is sorted by searchOrder: LSN end descending, images first on
	// a tie, then start descending, then key start.
	historic []Layer[V]
	descs    []Desc // descs[i] == historic[i].Desc(), for the search's hot loop
	// runEnd[i] is the index after the run holding i: layers with equal
	// LSN range and kind, which search order keeps together sorted by key
	// (one compaction's key partitions), so a key is found in a run by
	// binary search.
	runEnd []int
	frozen []*inmem.Layer[V] // oldest first
	open   *inmem.Layer[V]   // may be nil
}

// Empty returns a map with no layers.
func Empty[V any]() *Map[V] { return &Map[V]{} }

func searchOrder[V any](a, b Layer[V]) int {
	da, db := a.Desc(), b.Desc()
	switch {
	case da.LSNs.End != db.LSNs.End:
		if da.LSNs.End > db.LSNs.End {
			return -1
		}
		return 1
	case da.Image != db.Image:
		if da.Image {
			return -1
		}
		return 1
	case da.LSNs.Start != db.LSNs.Start:
		if da.LSNs.Start > db.LSNs.Start {
			return -1
		}
		return 1
	}
	if c := da.Keys.Start.Compare(db.Keys.Start); c != 0 {
		return c
	}
	return da.Keys.End.Compare(db.Keys.End)
}

// Historic returns the historic layers in search order. Do not modify.
func (m *Map[V]) Historic() []Layer[V] { return m.historic }

// Frozen returns the frozen in-memory layers, oldest first. Do not modify.
func (m *Map[V]) Frozen() []*inmem.Layer[V] { return m.frozen }

// Open returns the open in-memory layer, or nil.
func (m *Map[V]) Open() *inmem.Layer[V] { return m.open }

// WithOpen returns a copy of m whose open layer is l.
func (m *Map[V]) WithOpen(l *inmem.Layer[V]) *Map[V] {
	n := *m
	n.open = l
	return &n
}

// FreezeOpen returns a copy of m in which the open layer (already frozen by
// the caller) joins the frozen list and next becomes the open layer.
func (m *Map[V]) FreezeOpen(next *inmem.Layer[V]) *Map[V] {
	n := *m
	if m.open != nil {
		n.frozen = append(slices.Clip(m.frozen), m.open)
	}
	n.open = next
	return &n
}

// Replace returns a copy of m with remove taken out of the historic layers and
// add put in, and with the oldest dropFrozen frozen layers dropped (they have
// been flushed into add). The change is atomic for readers of the new map.
func (m *Map[V]) Replace(add, remove []Layer[V], dropFrozen int) (*Map[V], error) {
	if dropFrozen > len(m.frozen) {
		return nil, fmt.Errorf("layermap: drop %d frozen layers of %d", dropFrozen, len(m.frozen))
	}
	gone := make(map[Desc]bool, len(remove))
	for _, l := range remove {
		gone[l.Desc()] = true
	}
	h := make([]Layer[V], 0, len(m.historic)+len(add))
	have := make(map[Desc]bool, len(m.historic)+len(add))
	for _, l := range m.historic {
		d := l.Desc()
		if gone[d] {
			delete(gone, d)
			continue
		}
		have[d] = true
		h = append(h, l)
	}
	if len(gone) > 0 {
		for _, l := range remove {
			if gone[l.Desc()] {
				return nil, fmt.Errorf("%w: %s", ErrMissing, l.Desc())
			}
		}
	}
	for _, l := range add {
		if have[l.Desc()] {
			return nil, fmt.Errorf("%w: %s", ErrDuplicate, l.Desc())
		}
		have[l.Desc()] = true
		h = append(h, l)
	}
	slices.SortFunc(h, searchOrder[V])
	ds := make([]Desc, len(h))
	for i, l := range h {
		ds[i] = l.Desc()
	}
	re := make([]int, len(h))
	for i := len(h) - 1; i >= 0; i-- {
		re[i] = i + 1
		if i+1 < len(h) && ds[i+1].LSNs == ds[i].LSNs && ds[i+1].Image == ds[i].Image {
			re[i] = re[i+1]
		}
	}
	n := &Map[V]{historic: h, descs: ds, runEnd: re, frozen: slices.Clone(m.frozen[dropFrozen:]), open: m.open}
	return n, nil
}

// Check verifies the map's invariants (see the package doc). It is O(n²) in
// the number of historic layers: the timeline runs it after loading and,
// with assertions on (engine/invariants), after every edit of its layer set.
func (m *Map[V]) Check() error {
	var top lsn.LSN
	for i, a := range m.historic {
		da := a.Desc()
		top = max(top, da.LSNs.End)
		if da.Image {
			continue
		}
		for _, b := range m.historic[i+1:] {
			db := b.Desc()
			if !db.Image && da.Keys.Overlaps(db.Keys) && da.LSNs.Start < db.LSNs.End && db.LSNs.Start < da.LSNs.End {
				return fmt.Errorf("%w: %s and %s", ErrOverlap, da, db)
			}
		}
	}
	for _, f := range m.inmem() {
		if f.Start() < top {
			return fmt.Errorf("%w: in-memory layer starts at %s, historic layers reach %s", ErrOrder, f.Start(), top)
		}
	}
	return nil
}

// inmem returns the in-memory layers newest first.
func (m *Map[V]) inmem() []*inmem.Layer[V] {
	ls := make([]*inmem.Layer[V], 0, len(m.frozen)+1)
	if m.open != nil {
		ls = append(ls, m.open)
	}
	for i := len(m.frozen) - 1; i >= 0; i-- {
		ls = append(ls, m.frozen[i])
	}
	return ls
}

// Result is what a search collected for one key.
type Result[V any] struct {
	// Entries are the values found, newest first. If Done and the last one
	// initialises the page, it is the base for redo.
	Entries []inmem.Entry[V]
	// Done reports that the search needs nothing older (a base was found, or
	// an image layer showed the key did not exist).
	Done bool
	// Cont is the exclusive upper LSN bound of what is still unsearched: an
	// ancestor timeline continues from min(Cont, branch LSN + 1).
	Cont lsn.LSN
}

// Reset prepares r for a search for a read at LSN at.
func (r *Result[V]) Reset(at lsn.LSN) {
	r.Entries = r.Entries[:0]
	r.Done = false
	r.Cont = at + 1
}

// Search continues r (see Result.Reset) for key through this map's layers.
func (m *Map[V]) Search(key keys.Key, r *Result[V]) error {
	if r.Done {
		return nil
	}
	if m.open != nil {
		if m.searchInmem(m.open, key, r) {
			return nil
		}
	}
	for i := len(m.frozen) - 1; i >= 0; i-- {
		if m.searchInmem(m.frozen[i], key, r) {
			return nil
		}
	}
	return m.searchHistoric(key, r)
}

func (m *Map[V]) searchInmem(l *inmem.Layer[V], key keys.Key, r *Result[V]) bool {
	start := l.Start()
	if r.Cont <= start {
		return false
	}
	r.Entries, r.Done = l.Collect(key, start, r.Cont, r.Entries)
	r.Cont = start
	return r.Done
}

func (m *Map[V]) searchHistoric(key keys.Key, r *Result[V]) error {
	h, ds := m.historic, m.descs
	straddler := -1 // index of a delta covering key across cont
	first := true
	for r.Cont > 0 {
		cont := r.Cont
		// Layers before p end above cont. At most one of them can cover key
		// below cont, a delta spanning cont: deltas do not overlap, and an
		// image ending above cont has its LSN at or above cont. After the
		// first round that delta can only be the one read last round.
		p := sort.Search(len(ds), func(i int) bool { return ds[i].LSNs.End <= cont })
		if first {
			first = false
			for i := 0; i < p; i = m.runEnd[i] {
				if d := &ds[i]; !d.Image && d.LSNs.Start < cont {
					if j := m.findInRun(i, key); j >= 0 {
						straddler = j
						break
					}
				}
			}
		}
		best := -1
		var bd Desc
		top := cont
		floor := lsn.LSN(0)
		if straddler >= 0 {
			best, bd = straddler, ds[straddler]
			floor = bd.LSNs.Start
		}
		for i := p; i < len(ds); {
			if best >= 0 && ds[i].LSNs.End <= bd.LSNs.Start {
				break
			}
			j := m.findInRun(i, key)
			i = m.runEnd[i]
			if j < 0 {
				continue
			}
			d := &ds[j]
			if best < 0 {
				best, bd, top, floor = j, *d, d.LSNs.End, d.LSNs.Start
				continue
			}
			if !d.Image {
				if bd.Image {
					continue // an older delta below the chosen image: next round
				}
				return fmt.Errorf("%w: %s and %s at key %s", ErrOverlap, bd, *d, key)
			}
			if !bd.Image && d.LSNs.End == top {
				// An image ending exactly at the bound wins the tie.
				best, bd, floor = j, *d, d.LSNs.Start
				continue
			}
			if !bd.Image {
				floor = max(floor, d.LSNs.Start+1)
			}
		}
		if best < 0 {
			return nil
		}
		var err error
		r.Entries, r.Done, err = h[best].Collect(key, floor, top, r.Entries)
		if err != nil {
			return fmt.Errorf("layermap: read %s: %w", bd, err)
		}
		r.Cont = floor
		if r.Done || bd.Image {
			r.Done = true
			return nil
		}
		straddler = -1
		if floor > bd.LSNs.Start {
			straddler = best
		}
	}
	return nil
}

// findInRun returns the index of a layer in the run starting at i that
// covers key, or -1. Deltas in a run never overlap (an invariant), so binary
// search finds the only candidate; images of one LSN may, so they are scanned.
func (m *Map[V]) findInRun(i int, key keys.Key) int {
	ds, e := m.descs, m.runEnd[i]
	if ds[i].Image {
		for j := i; j < e; j++ {
			if containsKey(ds[j].Keys, key) {
				return j
			}
		}
		return -1
	}
	// The last layer in the run whose key range starts at or below key.
	n := sort.Search(e-i, func(x int) bool { return ds[i+x].Keys.Start.Compare(key) > 0 })
	if n == 0 || !containsKey(ds[i+n-1].Keys, key) {
		return -1
	}
	return i + n - 1
}

// ImagesCover reports whether the union of image layers with LSN in
// [lo, hi] covers all of r. GC uses it to tell whether a layer is superseded.
func (m *Map[V]) ImagesCover(r keys.Range, lo, hi lsn.LSN) bool {
	var rs []keys.Range
	for i := range m.descs {
		d := &m.descs[i]
		if d.Image && d.LSNs.Start >= lo && d.LSNs.Start <= hi && d.Keys.Overlaps(r) {
			rs = append(rs, d.Keys)
		}
	}
	slices.SortFunc(rs, func(a, b keys.Range) int { return a.Start.Compare(b.Start) })
	at := r.Start
	for _, x := range rs {
		if x.Start.Compare(at) > 0 {
			return false
		}
		if x.End.Compare(at) > 0 {
			at = x.End
		}
		if at.Compare(r.End) >= 0 {
			return true
		}
	}
	return at.Compare(r.End) >= 0
}

func containsKey(r keys.Range, k keys.Key) bool {
	return k.Compare(r.Start) >= 0 && k.Compare(r.End) < 0
}
