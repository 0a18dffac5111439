package layermap

import "github.com/stratadb/strata/engine/lsn"

// Removable returns the historic layers that garbage collection may delete
// given the GC cutoff and the LSNs that must stay readable below it (the
// branch points of child timelines).
//
// A layer is needed for a read at point P if it starts at or below P and no
// image layers with LSNs in [newest LSN the layer holds, P] (strictly newer
// than the layer, for an image) together cover its key range. Reads happen at
// the cutoff and above (covered by the check at the cutoff, since an image at
// or below the cutoff serves every later point too) and at each retained
// point. A layer is removable only if no such point needs it.
func (m *Map[V]) Removable(cutoff lsn.LSN, retain []lsn.LSN) []Layer[V] {
	var out []Layer[V]
	for _, l := range m.historic {
		d := l.Desc()
		lo := d.LSNs.End - 1 // newest LSN the layer can hold
		if d.Image {
			lo = d.LSNs.Start + 1
		}
		if !m.ImagesCover(d.Keys, lo, cutoff) {
			continue
		}
		needed := false
		for _, p := range retain {
			if p < cutoff && d.LSNs.Start <= p && !m.ImagesCover(d.Keys, lo, p) {
				needed = true
				break
			}
		}
		if !needed {
			out = append(out, l)
		}
	}
	return out
}
