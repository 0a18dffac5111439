package timeline

import (
	"fmt"

	"github.com/stratadb/strata/disk"
	"github.com/stratadb/strata/engine/inmem"
	"github.com/stratadb/strata/engine/keys"
	"github.com/stratadb/strata/engine/layer"
	"github.com/stratadb/strata/engine/layermap"
	"github.com/stratadb/strata/engine/lsn"
	"github.com/stratadb/strata/engine/walrec"
)

// fileLayer adapts a layer file reader to the layer map's Layer.
type fileLayer struct {
	name  layer.Name // with generation: the file name
	desc  layermap.Desc
	delta *layer.DeltaReader
	image *layer.ImageReader

	// Guarded by the timeline's mu.
	refs     int  // versions holding the file
	obsolete bool // an installed edit removed it: delete it once refs is 0
	disposed bool // closed (and, if obsolete, being deleted)
}

func openFileLayer(fsys disk.FS, dir string, name layer.Name) (*fileLayer, error) {
	path := dir + "/" + name.String()
	f := &fileLayer{name: name}
	var sum layer.Summary
	if name.IsDelta() {
		r, err := layer.OpenDelta(fsys, path)
		if err != nil {
			return nil, fmt.Errorf("timeline: open %s: %w", path, err)
		}
		f.delta, sum = r, r.Summary()
		f.desc = layermap.DeltaDesc(name.KeyRange, name.LSNRange.Start, name.LSNRange.End)
	} else {
		r, err := layer.OpenImage(fsys, path)
		if err != nil {
			return nil, fmt.Errorf("timeline: open %s: %w", path, err)
		}
		f.image, sum = r, r.Summary()
		f.desc = layermap.ImageDesc(name.KeyRange, name.LSN())
	}
	if got, want := sum.Name(), name.WithGeneration(layer.GenerationNone); got != want {
		_ = f.close()
		return nil, fmt.Errorf("%w: file %s describes itself as %s", ErrCorrupt, path, got)
	}
	return f, nil
}

func (f *fileLayer) Desc() layermap.Desc { return f.desc }

// Collect appends key's values in [lo, hi) newest first. Values are shared
// with the layer readers' caches (layer.ImageReader.View,
// layer.DeltaReader.Entry) and never modified on the read path: Redo
// copies what it returns.
func (f *fileLayer) Collect(key keys.Key, lo, hi lsn.LSN, dst []inmem.Entry[walrec.Value]) ([]inmem.Entry[walrec.Value], bool, error) {
	if f.image != nil {
		page, found, err := f.image.View(key)
		if err != nil || !found {
			// Not found in an image that covers the key: it did not exist.
			return dst, true, err
		}
		return append(dst, inmem.Entry[walrec.Value]{LSN: f.desc.LSNs.Start, WillInit: true, Value: walrec.Image(page)}), true, nil
	}
	first, end := f.delta.Find(key, lsn.Range{Start: lo, End: hi})
	for i := end - 1; i >= first; i-- {
		e, err := f.delta.Entry(i)
		if err != nil {
			return dst, false, err
		}
		wi := e.Value.WillInit()
		dst = append(dst, inmem.Entry[walrec.Value]{LSN: e.LSN, WillInit: wi, Value: e.Value})
		if wi {
			return dst, true, nil
		}
	}
	return dst, false, nil
}

// keys lists the keys the file holds, in order.
func (f *fileLayer) keys() []keys.Key {
	if f.image != nil {
		return f.image.Keys()
	}
	return f.delta.Keys()
}

func (f *fileLayer) close() error {
	if f.image != nil {
		return f.image.Close()
	}
	return f.delta.Close()
}

// valueInfo tells the in-memory layer whether a value initialises its page
// and how many bytes it holds.
func valueInfo(v walrec.Value) (bool, int) {
	if v.Kind == walrec.ValueImage {
		return true, len(v.Image)
	}
	switch r := v.Rec.(type) {
	case walrec.PageWrite:
		return false, len(r.Data) + 8
	case walrec.FullPageImage:
		return true, len(r.Page)
	}
	return v.WillInit(), 16
}
