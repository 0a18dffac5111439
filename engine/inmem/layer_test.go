package inmem

import (
	"errors"
	"testing"

	"github.com/stratadb/strata/engine/keys"
	"github.com/stratadb/strata/engine/lsn"
)

// val is a test value: a string whose "I" prefix marks an image.
type val string

func info(v val) (bool, int) { return len(v) > 0 && v[0] == 'I', len(v) }

func k(blk uint32) keys.Key { return keys.Key{Field2: 1663, Field3: 5, Field4: 100, Field6: blk} }

func TestPutOrder(t *testing.T) {
	cases := []struct {
		name string
		puts []struct {
			blk uint32
			at  lsn.LSN
		}
		wantErr error
	}{
		{"increasing", []struct {
			blk uint32
			at  lsn.LSN
		}{{1, 10}, {2, 10}, {1, 20}}, nil},
		{"below start", []struct {
			blk uint32
			at  lsn.LSN
		}{{1, 5}}, ErrOutOfOrder},
		{"backwards", []struct {
			blk uint32
			at  lsn.LSN
		}{{1, 20}, {2, 15}}, ErrOutOfOrder},
		{"same key same lsn", []struct {
			blk uint32
			at  lsn.LSN
		}{{1, 20}, {1, 20}}, ErrOutOfOrder},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			l := New[val](10, info)
			var err error
			for _, p := range c.puts {
				if err = l.Put(k(p.blk), p.at, "D"); err != nil {
					break
				}
			}
			if !errors.Is(err, c.wantErr) {
				t.Fatalf("err = %v, want %v", err, c.wantErr)
			}
		})
	}
}

func TestCollect(t *testing.T) {
	l := New[val](10, info)
	for _, p := range []struct {
		at lsn.LSN
		v  val
	}{{10, "Da"}, {20, "Ib"}, {30, "Dc"}, {40, "Dd"}} {
		if err := l.Put(k(1), p.at, p.v); err != nil {
			t.Fatal(err)
		}
	}
	cases := []struct {
		lo, hi   lsn.LSN
		want     []val
		complete bool
	}{
		{0, lsn.Max, []val{"Dd", "Dc", "Ib"}, true},
		{0, 40, []val{"Dc", "Ib"}, true},
		{0, 41, []val{"Dd", "Dc", "Ib"}, true},
		{25, 41, []val{"Dd", "Dc"}, false},
		{0, 20, []val{"Da"}, false},
		{0, 10, nil, false},
	}
	for _, c := range cases {
		got, complete := l.Collect(k(1), c.lo, c.hi, nil)
		var vs []val
		for _, e := range got {
			vs = append(vs, e.Value)
		}
		if complete != c.complete || len(vs) != len(c.want) {
			t.Fatalf("[%d,%d): got %v complete=%v, want %v complete=%v", c.lo, c.hi, vs, complete, c.want, c.complete)
		}
		for i := range vs {
			if vs[i] != c.want[i] {
				t.Fatalf("[%d,%d): got %v, want %v", c.lo, c.hi, vs, c.want)
			}
		}
	}
	if got, _ := l.Collect(k(2), 0, lsn.Max, nil); len(got) != 0 {
		t.Fatalf("absent key returned %v", got)
	}
}

func TestFreezeAndIterate(t *testing.T) {
	l := New[val](10, info)
	if err := l.Iterate(func(KeyEntry[val]) error { return nil }); !errors.Is(err, ErrNotFrozen) {
		t.Fatalf("iterate open layer: %v", err)
	}
	puts := []struct {
		blk uint32
		at  lsn.LSN
	}{{3, 10}, {1, 10}, {2, 11}, {1, 12}, {3, 13}}
	for _, p := range puts {
		if err := l.Put(k(p.blk), p.at, "Dxx"); err != nil {
			t.Fatal(err)
		}
	}
	if got, want := l.SizeBytes(), int64(5*(3+EntryOverheadBytes)); got != want {
		t.Fatalf("size %d, want %d", got, want)
	}
	if err := l.Freeze(13); !errors.Is(err, ErrBadFreeze) {
		t.Fatalf("freeze at last LSN: %v", err)
	}
	if err := l.Freeze(14); err != nil {
		t.Fatal(err)
	}
	if err := l.Put(k(9), 20, "D"); !errors.Is(err, ErrFrozen) {
		t.Fatalf("put after freeze: %v", err)
	}
	var got []KeyEntry[val]
	if err := l.Iterate(func(e KeyEntry[val]) error { got = append(got, e); return nil }); err != nil {
		t.Fatal(err)
	}
	want := []struct {
		blk uint32
		at  lsn.LSN
	}{{1, 10}, {1, 12}, {2, 11}, {3, 10}, {3, 13}}
	if len(got) != len(want) {
		t.Fatalf("got %d entries, want %d", len(got), len(want))
	}
	for i, w := range want {
		if got[i].Key != k(w.blk) || got[i].LSN != w.at {
			t.Fatalf("entry %d = %s@%s, want %s@%s", i, got[i].Key, got[i].LSN, k(w.blk), w.at)
		}
	}
	if l.End() != 14 || l.LastLSN() != 13 || l.Len() != 5 {
		t.Fatalf("end %s last %s len %d", l.End(), l.LastLSN(), l.Len())
	}
}

func TestKeysOpenAndFrozen(t *testing.T) {
	l := New[val](1, info)
	for _, blk := range []uint32{5, 2, 9, 2} {
		if err := l.Put(k(blk), l.LastLSN()+1, "D"); err != nil {
			t.Fatal(err)
		}
	}
	for _, phase := range []string{"open", "frozen"} {
		got := l.Keys()
		if len(got) != 3 || got[0] != k(2) || got[1] != k(5) || got[2] != k(9) {
			t.Fatalf("%s keys: %v", phase, got)
		}
		if phase == "open" {
			if err := l.Freeze(l.LastLSN() + 1); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func TestRaiseStart(t *testing.T) {
	l := New[int](0x10, func(int) (bool, int) { return true, 1 })
	if err := l.RaiseStart(0x20); err != nil || l.Start() != 0x20 {
		t.Fatalf("empty layer: %v, start %s", err, l.Start())
	}
	if err := l.RaiseStart(0x18); err != nil || l.Start() != 0x20 {
		t.Fatalf("lower start: %v, start %s (never moves down)", err, l.Start())
	}
	if err := l.Put(keys.Key{Field6: 1}, 0x30, 1); err != nil {
		t.Fatal(err)
	}
	if err := l.RaiseStart(0x30); err != nil || l.Start() != 0x30 {
		t.Fatalf("up to the first entry: %v, start %s", err, l.Start())
	}
	if err := l.RaiseStart(0x31); !errors.Is(err, ErrBadStart) {
		t.Fatalf("above an entry: %v", err)
	}
	if err := l.Freeze(0x40); err != nil {
		t.Fatal(err)
	}
	if err := l.RaiseStart(0x30); !errors.Is(err, ErrBadStart) {
		t.Fatalf("frozen: %v", err)
	}
}
