package layermap

import (
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/stratadb/strata/engine/inmem"
	"github.com/stratadb/strata/engine/keys"
	"github.com/stratadb/strata/engine/lsn"
)

// fold replays values oldest first: a will-init value replaces the state, a
// snapshot ("S:..." from an image layer) restores one, a delta appends.
func fold(es []inmem.Entry[val]) string {
	var s string
	for _, e := range es {
		switch v := string(e.Value); {
		case strings.HasPrefix(v, "S:"):
			s = v[2:]
		case e.WillInit:
			s = v
		default:
			s += "+" + v
		}
	}
	return s
}

// randomTiling cuts [0, nkeys) into consecutive key ranges, the first
// starting at keys.Min and the last ending at keys.Max.
func randomTiling(rng *rand.Rand, nkeys int) []keys.Range {
	var out []keys.Range
	start := keys.Min
	for b := 1; b < nkeys; b++ {
		if rng.IntN(2) == 0 {
			out = append(out, keys.Range{Start: start, End: k(uint32(b))})
			start = k(uint32(b))
		}
	}
	return append(out, keys.Range{Start: start, End: keys.Max})
}

// TestSearchMatchesHistory builds random layer maps that satisfy the map's
// invariants (L0 deltas, key-partitioned L1 sets, partial image layers at
// any LSN, an open in-memory layer) from one random history, and checks that
// every search reconstructs exactly the history's value.
func TestSearchMatchesHistory(t *testing.T) {
	const nkeys, nlsn = 5, 60
	removed := 0
	for seed := uint64(0); seed < 300; seed++ {
		rng := rand.New(rand.NewPCG(seed, 99))
		// history[key] lists (LSN, value) in LSN order.
		hist := make([][]inmem.Entry[val], nkeys)
		for at := lsn.LSN(1); at <= nlsn; at++ {
			if rng.IntN(3) == 0 {
				continue
			}
			key := rng.IntN(nkeys)
			v, wi := val("d"+at.String()), false
			if rng.IntN(4) == 0 {
				v, wi = val("I"+at.String()), true
			}
			hist[key] = append(hist[key], inmem.Entry[val]{LSN: at, WillInit: wi, Value: v})
		}
		truth := func(key int, at lsn.LSN) string {
			var es []inmem.Entry[val]
			for _, e := range hist[key] {
				if e.LSN <= at {
					es = append(es, e)
				}
			}
			return fold(es)
		}
		inRange := func(key int, lo, hi lsn.LSN) []inmem.Entry[val] {
			var es []inmem.Entry[val]
			for _, e := range hist[key] {
				if e.LSN >= lo && e.LSN < hi {
					es = append(es, e)
				}
			}
			return es
		}
		// Boundaries of flushed layers; everything from openStart on is in
		// the open in-memory layer.
		var bounds []lsn.LSN
		for at := lsn.LSN(1); at <= nlsn; at++ {
			if at == 1 || rng.IntN(6) == 0 {
				bounds = append(bounds, at)
			}
		}
		openStart := lsn.LSN(nlsn + 1)
		if rng.IntN(2) == 0 && len(bounds) > 1 {
			openStart, bounds = bounds[len(bounds)-1], bounds[:len(bounds)-1]
		}
		bounds = append(bounds, openStart)
		var ls []Layer[val]
		for i := 0; i+1 < len(bounds); {
			// Merge a run of chunks into one L1 set, or keep one L0.
			j := i + 1
			if rng.IntN(2) == 0 {
				j = min(len(bounds)-1, i+1+rng.IntN(3))
			}
			lo, hi := bounds[i], bounds[j]
			parts := []keys.Range{all}
			if j > i+1 || rng.IntN(2) == 0 {
				parts = randomTiling(rng, nkeys)
			}
			for _, p := range parts {
				f := &fake{d: DeltaDesc(p, lo, hi), vals: map[keys.Key][]inmem.Entry[val]{}}
				for key := 0; key < nkeys; key++ {
					if p.Contains(k(uint32(key))) {
						f.vals[k(uint32(key))] = inRange(key, lo, hi)
					}
				}
				ls = append(ls, f)
			}
			i = j
		}
		for n := rng.IntN(4); n > 0 && openStart > 1; n-- {
			x := lsn.LSN(1 + rng.IntN(int(openStart-1)))
			for _, p := range randomTiling(rng, nkeys) {
				if rng.IntN(2) == 0 {
					continue
				}
				d := ImageDesc(p, x)
				dup := false
				for _, l := range ls {
					dup = dup || l.Desc() == d
				}
				if dup {
					continue
				}
				f := &fake{d: d, vals: map[keys.Key][]inmem.Entry[val]{}}
				for key := 0; key < nkeys; key++ {
					if p.Contains(k(uint32(key))) && len(inRange(key, 0, x+1)) > 0 {
						f.vals[k(uint32(key))] = []inmem.Entry[val]{{LSN: x, WillInit: true, Value: val("S:" + truth(key, x))}}
					}
				}
				ls = append(ls, f)
			}
		}
		m := mustMap(t, ls...)
		open := inmem.New[val](openStart, info)
		for at := openStart; at <= nlsn; at++ { // ingest is in LSN order
			for key := 0; key < nkeys; key++ {
				for _, e := range inRange(key, at, at+1) {
					if err := open.Put(k(uint32(key)), e.LSN, e.Value); err != nil {
						t.Fatal(err)
					}
				}
			}
		}
		m = m.WithOpen(open)
		// GC at a random cutoff, keeping a random retained point below it:
		// reads at the cutoff and above, and at the retained point, must
		// not notice.
		cutoff := lsn.LSN(1 + rng.IntN(nlsn))
		retain := lsn.LSN(1 + rng.IntN(int(cutoff)))
		gone := m.Removable(cutoff, []lsn.LSN{retain})
		m, err := m.Replace(nil, gone, 0)
		if err != nil {
			t.Fatal(err)
		}
		removed += len(gone)
		for key := 0; key < nkeys; key++ {
			for at := lsn.LSN(1); at <= nlsn; at++ {
				if at < cutoff && at != retain {
					continue
				}
				var r Result[val]
				r.Reset(at)
				if err := m.Search(k(uint32(key)), &r); err != nil {
					t.Fatalf("seed %d: key %d at %s: %v", seed, key, at, err)
				}
				es := make([]inmem.Entry[val], len(r.Entries))
				for i, e := range r.Entries {
					es[len(es)-1-i] = e
				}
				if got, want := fold(es), truth(key, at); got != want {
					t.Fatalf("seed %d: key %d at %s (cutoff %s, retain %s): search folds to %q, history %q", seed, key, at, cutoff, retain, got, want)
				}
			}
		}
	}
	if removed == 0 {
		t.Fatal("GC never removed a layer: the test exercises nothing")
	}
	t.Logf("%d layers removed by GC across seeds", removed)
}
