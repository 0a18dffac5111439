package timeline

import (
	"errors"
	"fmt"
	"slices"

	"github.com/stratadb/strata/engine/keys"
	"github.com/stratadb/strata/engine/layer"
	"github.com/stratadb/strata/engine/lsn"
	"github.com/stratadb/strata/engine/walrec"
)

// pageBytes is what compaction charges per key when it partitions the key
// space for image layers.
const pageBytes = keys.BlockSize

// CompactStats says what one compaction did.
type CompactStats struct {
	L0Merged       int // L0 deltas merged
	L1Written      int // L1 deltas written
	ImagesWritten  int // image layers written
	ImageKeysTotal int // keys in the written images
}

// Compact runs both compaction steps: merge L0 deltas into key-partitioned
// L1 deltas once there are CompactionThreshold of them, then write image
// layers at disk_consistent_lsn for key partitions with at least
// ImageCreationThreshold deltas above their newest image. Compactions of one
// timeline run one at a time.
func (t *Timeline) Compact() (CompactStats, error) {
	lock(t.compactMu)
	defer t.compactMu.Unlock()
	var st CompactStats
	if err := t.compactL0(&st); err != nil {
		return st, err
	}
	if err := t.createImages(&st); err != nil {
		return st, err
	}
	return st, nil
}

// compactL0 merges the oldest L0 deltas (a contiguous LSN run) into L1
// deltas split at key boundaries every CompactionTargetSizeBytes. The L1s
// cover exactly the L0s' LSN range, so the map never holds two deltas for
// one (key, LSN) after the edit swaps them in.
func (t *Timeline) compactL0(st *CompactStats) error {
	cfg := t.tenant.cfg
	base, _, err := t.acquire()
	if err != nil {
		return err
	}
	defer base.release()
	var l0 []*fileLayer
	for _, f := range base.fileLayers() {
		if isL0(f.desc) {
			l0 = append(l0, f)
		}
	}
	if len(l0) < cfg.CompactionThreshold {
		return nil
	}
	slices.SortFunc(l0, func(a, b *fileLayer) int { return cmpLSN(a.desc.LSNs.Start, b.desc.LSNs.Start) })
	if len(l0) > cfg.MaxL0Merge {
		l0 = l0[:cfg.MaxL0Merge]
	}
	lr := lsn.Range{Start: l0[0].desc.LSNs.Start, End: l0[len(l0)-1].desc.LSNs.End}
	// The inputs are bounded (MaxL0Merge × checkpoint distance), so a merge
	// in memory is enough: gather, then sort by (key, LSN).
	var all []layer.DeltaEntry
	for _, l := range l0 {
		var err error
		if all, err = l.appendAll(all); err != nil {
			return fmt.Errorf("timeline %s: compact: read %s: %w", t.id, l.name, err)
		}
	}
	if keep := t.tenant.keepKey; keep != nil {
		// Left out of the L1s: keys this tenant does not keep (KeepKey).
		// If none is left the L0s go with nothing in their place.
		all = slices.DeleteFunc(all, func(e layer.DeltaEntry) bool { return !keep(e.Key) })
	}
	slices.SortStableFunc(all, func(a, b layer.DeltaEntry) int {
		if c := a.Key.Compare(b.Key); c != 0 {
			return c
		}
		return cmpLSN(a.LSN, b.LSN)
	})
	var added []*fileLayer
	fail := func(err error) error {
		closeFiles(added)
		return err
	}
	for start := 0; start < len(all); {
		end, size := start, int64(0)
		for end < len(all) && (end == start || size < cfg.CompactionTargetSizeBytes || all[end].Key == all[end-1].Key) {
			size += entryBytes(all[end].Value)
			end++
		}
		chunk := all[start:end]
		kr := keys.Range{Start: chunk[0].Key, End: chunk[len(chunk)-1].Key.Next()}
		name := layer.DeltaName(kr, lr).WithGeneration(t.tenant.gen)
		if _, err := layer.WriteDelta(t.tenant.fs, t.dir+"/"+name.String(), kr, lr, chunk); err != nil {
			return fail(fmt.Errorf("timeline %s: compact: write %s: %w", t.id, name, err))
		}
		fl, err := openFileLayer(t, name)
		if err != nil {
			return fail(err)
		}
		added = append(added, fl)
		start = end
	}
	e := &versionEdit{kind: editCompact, base: base.seq, add: added, remove: l0}
	if err := t.apply(e); err != nil {
		return fail(err)
	}
	st.L0Merged, st.L1Written = len(e.remove), len(added)
	t.log.Info("compacted L0", "merged", len(e.remove), "l1", len(added), "lsn_range", lr.String())
	return nil
}

// closeFiles closes layer files an edit that failed had opened (they were
// never in a version). The files stay on disk: a failed metadata write may
// still have listed them durably, and the next Open removes them if not.
func closeFiles(fs []*fileLayer) {
	for _, f := range fs {
		_ = f.close()
	}
}

func entryBytes(v walrec.Value) int64 {
	_, n := valueInfo(v)
	return int64(n) + 32
}

func cmpLSN(a, b lsn.LSN) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// partitions splits the key space into ranges tiling [Min, Max), each with
// about CompactionTargetSizeBytes/pageBytes of the given sorted keys.
func partitions(ks []keys.Key, targetBytes int64) []keys.Range {
	per := max(1, int(targetBytes/pageBytes))
	var out []keys.Range
	for i := 0; i < len(ks); i += per {
		r := keys.Range{Start: ks[i], End: keys.Max}
		if i == 0 {
			r.Start = keys.Min
		}
		if i+per < len(ks) {
			r.End = ks[i+per]
		}
		out = append(out, r)
	}
	return out
}

// createImages writes an image layer at disk_consistent_lsn for every key
// partition whose delta chain above its newest covering image has reached
// ImageCreationThreshold layers. An image holds every key that has a value
// at its LSN, tombstones included (the layer map relies on that: a key an
// image covers but does not hold did not exist). The images are read from
// the versions pinned at the start (the timeline's and its ancestors'), so
// a GC meanwhile cannot take layers from under them.
func (t *Timeline) createImages(st *CompactStats) error {
	cfg := t.tenant.cfg
	chain, err := t.pin(nil)
	if err != nil {
		return err
	}
	defer unpin(chain)
	bv := chain[0].v
	m, dcl := bv.layers, bv.dcl
	if dcl <= t.initLSN {
		return nil
	}
	var imageLSNs []lsn.LSN
	for _, l := range m.Historic() {
		if d := l.Desc(); d.Image {
			imageLSNs = append(imageLSNs, d.LSNs.Start)
		}
	}
	slices.Sort(imageLSNs)
	imageLSNs = slices.Compact(imageLSNs)
	ks, err := keysAt(chain, dcl)
	if err != nil {
		return fmt.Errorf("timeline %s: images: %w", t.id, err)
	}
	if keep := t.tenant.keepKey; keep != nil {
		// An image covers its whole range, so a key left out of it reads
		// as absent above it: only keys never served here may go.
		ks = slices.DeleteFunc(ks, func(k keys.Key) bool { return !keep(k) })
	}
	var added []*fileLayer
	fail := func(err error) error {
		closeFiles(added)
		return err
	}
	s := t.tenant.scratch.get()
	defer t.tenant.scratch.put(s)
	for _, p := range partitions(ks, cfg.CompactionTargetSizeBytes) {
		// The newest LSN from which images cover the whole partition.
		var base lsn.LSN
		for i := len(imageLSNs) - 1; i >= 0; i-- {
			if m.ImagesCover(p, imageLSNs[i], dcl) {
				base = imageLSNs[i]
				break
			}
		}
		if base == dcl {
			continue
		}
		deltas := 0
		for _, l := range m.Historic() {
			if d := l.Desc(); !d.Image && d.Keys.Overlaps(p) && d.LSNs.End-1 > base {
				deltas++
			}
		}
		if deltas < cfg.ImageCreationThreshold {
			continue
		}
		var entries []layer.ImageEntry
		for _, k := range ks {
			if !p.Contains(k) {
				continue
			}
			// A shared page is only read, by WriteImage, below.
			page, _, err := readValue(nil, chain, k, dcl, s)
			if errors.Is(err, ErrNotFound) {
				continue // no value at dcl (e.g. only written above it)
			}
			// A tombstone is kept as an empty image: the key has a value
			// (it is gone), which the image must hold like any other.
			if err != nil {
				return fail(fmt.Errorf("timeline %s: image of %s: %w", t.id, k, err))
			}
			entries = append(entries, layer.ImageEntry{Key: k, Page: page})
		}
		name := layer.ImageName(p, dcl).WithGeneration(t.tenant.gen)
		if _, err := layer.WriteImage(t.tenant.fs, t.dir+"/"+name.String(), p, dcl, entries); err != nil {
			return fail(fmt.Errorf("timeline %s: write %s: %w", t.id, name, err))
		}
		fl, err := openFileLayer(t, name)
		if err != nil {
			return fail(err)
		}
		added = append(added, fl)
		st.ImageKeysTotal += len(entries)
	}
	if len(added) == 0 {
		return nil
	}
	if err := t.apply(&versionEdit{kind: editImages, base: bv.seq, add: added}); err != nil {
		return fail(err)
	}
	st.ImagesWritten = len(added)
	t.log.Info("created images", "layers", len(added), "lsn", dcl)
	return nil
}
