package inmem

import (
	"slices"
	"testing"

	"github.com/stratadb/strata/engine/keys"
)

// KeysIn returns exactly the keys of the range, sorted, open or frozen.
func TestKeysIn(t *testing.T) {
	l := New[val](1, info)
	for _, blk := range []uint32{5, 2, 9, 2, 7} {
		if err := l.Put(k(blk), l.LastLSN()+1, "D"); err != nil {
			t.Fatal(err)
		}
	}
	cases := []struct {
		r    keys.Range
		want []uint32
	}{
		{keys.Range{Start: keys.Min, End: keys.Max}, []uint32{2, 5, 7, 9}},
		{keys.Range{Start: k(5), End: k(9)}, []uint32{5, 7}}, // end excluded
		{keys.Range{Start: k(3), End: k(4)}, nil},
		{keys.Range{Start: k(9).Next(), End: keys.Max}, nil},
	}
	for _, phase := range []string{"open", "frozen"} {
		for _, c := range cases {
			var want []keys.Key
			for _, b := range c.want {
				want = append(want, k(b))
			}
			if got := l.KeysIn(c.r); !slices.Equal(got, want) {
				t.Errorf("%s: KeysIn(%s) = %v, want %v", phase, c.r, got, want)
			}
		}
		if phase == "open" {
			if err := l.Freeze(l.LastLSN() + 1); err != nil {
				t.Fatal(err)
			}
		}
	}
}
