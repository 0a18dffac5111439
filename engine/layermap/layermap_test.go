package layermap

import (
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/stratadb/strata/engine/inmem"
	"github.com/stratadb/strata/engine/keys"
	"github.com/stratadb/strata/engine/lsn"
)

// val is a test value: "I..." is an image, anything else a delta.
type val string

func info(v val) (bool, int) { return len(v) > 0 && v[0] == 'I', len(v) }

func k(blk uint32) keys.Key { return keys.Key{Field2: 1663, Field3: 5, Field4: 100, Field6: blk} }

var all = keys.Range{Start: keys.Min, End: keys.Max}

// fake is a historic layer held in memory.
type fake struct {
	d    Desc
	vals map[keys.Key][]inmem.Entry[val] // ascending LSN
}

func (f *fake) Desc() Desc { return f.d }

func (f *fake) Collect(key keys.Key, lo, hi lsn.LSN, dst []inmem.Entry[val]) ([]inmem.Entry[val], bool, error) {
	es := f.vals[key]
	for i := len(es) - 1; i >= 0; i-- {
		e := es[i]
		if e.LSN >= hi || e.LSN < lo {
			continue
		}
		dst = append(dst, e)
		if e.WillInit {
			return dst, true, nil
		}
	}
	return dst, f.d.Image, nil
}

func layer(d Desc, puts ...any) *fake {
	f := &fake{d: d, vals: map[keys.Key][]inmem.Entry[val]{}}
	for i := 0; i < len(puts); i += 3 {
		key, at, v := k(puts[i].(uint32)), lsn.LSN(puts[i+1].(int)), val(puts[i+2].(string))
		wi, _ := info(v)
		f.vals[key] = append(f.vals[key], inmem.Entry[val]{LSN: at, WillInit: wi, Value: v})
	}
	return f
}

func mustMap(t *testing.T, ls ...Layer[val]) *Map[val] {
	t.Helper()
	m, err := Empty[val]().Replace(ls, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Check(); err != nil {
		t.Fatal(err)
	}
	return m
}

func search(t *testing.T, m *Map[val], blk uint32, at lsn.LSN) string {
	t.Helper()
	var r Result[val]
	r.Reset(at)
	if err := m.Search(k(blk), &r); err != nil {
		t.Fatal(err)
	}
	var vs []string
	for _, e := range r.Entries {
		vs = append(vs, string(e.Value))
	}
	return fmt.Sprintf("%v done=%v", vs, r.Done)
}

func TestSearch(t *testing.T) {
	// Deltas [10,20) [20,30) over everything, L1 deltas [30,40) split at
	// block 5, an image of blocks [0,5) at 25 and of everything at 35.
	split := keys.Range{Start: keys.Min, End: k(5)}
	rest := keys.Range{Start: k(5), End: keys.Max}
	m := mustMap(t,
		layer(DeltaDesc(all, 10, 20), uint32(1), 10, "Ia10", uint32(1), 15, "d15", uint32(7), 12, "Ib12"),
		layer(DeltaDesc(all, 20, 30), uint32(1), 22, "d22", uint32(1), 27, "d27", uint32(7), 26, "d26"),
		layer(ImageDesc(split, 25), uint32(1), 25, "I25"),
		layer(DeltaDesc(split, 30, 40), uint32(1), 33, "d33", uint32(1), 38, "d38"),
		layer(DeltaDesc(rest, 30, 40), uint32(7), 31, "d31"),
		layer(ImageDesc(rest, 35), uint32(7), 35, "I35"),
	)
	open := inmem.New[val](40, info)
	if err := open.Put(k(1), 41, "d41"); err != nil {
		t.Fatal(err)
	}
	m = m.WithOpen(open)
	cases := []struct {
		blk  uint32
		at   lsn.LSN
		want string
	}{
		{1, 9, "[] done=false"},
		{1, 10, "[Ia10] done=true"},
		{1, 21, "[d15 Ia10] done=true"},
		{1, 22, "[d22 d15 Ia10] done=true"},
		{1, 25, "[I25] done=true"},
		{1, 26, "[I25] done=true"},
		{1, 29, "[d27 I25] done=true"},
		{1, 45, "[d41 d38 d33 d27 I25] done=true"}, // d27 is newer than the image
		{7, 34, "[d31 d26 Ib12] done=true"},
		{7, 35, "[I35] done=true"},
		{7, 50, "[I35] done=true"},
		{3, 50, "[] done=true"}, // the image at 25 shows block 3 never existed
		{9, 34, "[] done=false"},
	}
	for _, c := range cases {
		if got := search(t, m, c.blk, c.at); got != c.want {
			t.Errorf("block %d at %d: %s, want %s", c.blk, c.at, got, c.want)
		}
	}
}

func TestSearchImageInsideDelta(t *testing.T) {
	// An image at 15 of blocks [0,5) inside an L0 delta [10,20): reads above
	// 15 take the delta's newer records and then the image.
	m := mustMap(t,
		layer(DeltaDesc(all, 10, 20), uint32(1), 11, "d11", uint32(1), 15, "d15", uint32(1), 18, "d18"),
		layer(ImageDesc(keys.Range{Start: keys.Min, End: k(5)}, 15), uint32(1), 15, "I15"),
		layer(DeltaDesc(all, 1, 10), uint32(1), 2, "I2"),
	)
	cases := []struct {
		at   lsn.LSN
		want string
	}{
		{19, "[d18 I15] done=true"},
		{15, "[I15] done=true"},
		{14, "[d11 I2] done=true"},
	}
	for _, c := range cases {
		if got := search(t, m, 1, c.at); got != c.want {
			t.Errorf("at %d: %s, want %s", c.at, got, c.want)
		}
	}
}

func TestCheckAndReplace(t *testing.T) {
	a := layer(DeltaDesc(all, 10, 20))
	b := layer(DeltaDesc(keys.Range{Start: k(1), End: k(2)}, 15, 25))
	m, err := Empty[val]().Replace([]Layer[val]{a, b}, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Check(); !errors.Is(err, ErrOverlap) {
		t.Fatalf("check overlapping deltas: %v", err)
	}
	if _, err := m.Replace([]Layer[val]{a}, nil, 0); !errors.Is(err, ErrDuplicate) {
		t.Fatalf("duplicate: %v", err)
	}
	if _, err := Empty[val]().Replace(nil, []Layer[val]{a}, 0); !errors.Is(err, ErrMissing) {
		t.Fatalf("missing: %v", err)
	}
	m2, err := m.Replace(nil, []Layer[val]{b}, 0)
	if err != nil || len(m2.Historic()) != 1 || len(m.Historic()) != 2 {
		t.Fatalf("replace: %v, %d layers (old map %d)", err, len(m2.Historic()), len(m.Historic()))
	}
	if err := m2.WithOpen(inmem.New[val](15, info)).Check(); !errors.Is(err, ErrOrder) {
		t.Fatalf("open layer below historic: %v", err)
	}
}

func TestImagesCover(t *testing.T) {
	m := mustMap(t,
		layer(ImageDesc(keys.Range{Start: keys.Min, End: k(5)}, 30)),
		layer(ImageDesc(keys.Range{Start: k(5), End: keys.Max}, 40)),
		layer(ImageDesc(keys.Range{Start: k(3), End: k(8)}, 20)),
	)
	cases := []struct {
		r      keys.Range
		lo, hi lsn.LSN
		want   bool
	}{
		{all, 30, 40, true},
		{all, 30, 39, false},
		{keys.Range{Start: k(1), End: k(4)}, 0, 30, true},
		{keys.Range{Start: k(3), End: k(8)}, 20, 20, true},
		{keys.Range{Start: k(3), End: k(9)}, 20, 30, false},
		{keys.Range{Start: k(3), End: k(9)}, 20, 40, true},
	}
	for _, c := range cases {
		if got := m.ImagesCover(c.r, c.lo, c.hi); got != c.want {
			t.Errorf("cover %s [%d,%d] = %v, want %v", c.r, c.lo, c.hi, got, c.want)
		}
	}
}

func TestRemovable(t *testing.T) {
	d1 := layer(DeltaDesc(all, 10, 20))
	d2 := layer(DeltaDesc(all, 20, 30))
	i1 := layer(ImageDesc(all, 19))
	i2 := layer(ImageDesc(all, 29))
	d3 := layer(DeltaDesc(all, 30, 40))
	m := mustMap(t, d1, d2, i1, i2, d3)
	names := func(ls []Layer[val]) []string {
		var s []string
		for _, l := range ls {
			s = append(s, l.Desc().String())
		}
		slices.Sort(s)
		return s
	}
	cases := []struct {
		cutoff lsn.LSN
		retain []lsn.LSN
		want   []Layer[val]
	}{
		{15, nil, nil},
		{19, nil, []Layer[val]{d1}},
		{35, nil, []Layer[val]{d1, d2, i1}},
		{35, []lsn.LSN{25}, []Layer[val]{d1}},
		{35, []lsn.LSN{12}, []Layer[val]{d2, i1}},
		{35, []lsn.LSN{5}, []Layer[val]{d1, d2, i1}},
	}
	for _, c := range cases {
		got, want := names(m.Removable(c.cutoff, c.retain)), names(c.want)
		if !slices.Equal(got, want) {
			t.Errorf("cutoff %d retain %v: %v, want %v", c.cutoff, c.retain, got, want)
		}
	}
}
