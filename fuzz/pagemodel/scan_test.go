package pagemodel

import (
	"bytes"
	"slices"

	"pgregory.net/rapid"

	"github.com/stratadb/strata/engine/keys"
	"github.com/stratadb/strata/engine/lsn"
	"github.com/stratadb/strata/engine/walrec"
)

// modelKV is one key the model says a scan returns, with its value.
type modelKV struct {
	k keys.Key
	v []byte
}

// scanModel lists, in key order, every key of the model's relations with a
// value at at in r: the blocks that exist and the size of each relation
// that exists (a dropped one's size key is gone; its blocks are not).
func scanModel(m *mtl, r keys.Range, at lsn.LSN) []modelKV {
	var out []modelKV
	for _, rl := range rels {
		for blk := uint32(0); blk < blocks; blk++ {
			if k := keys.RelBlockKey(rl, blk); r.Contains(k) {
				if p := m.page(rl, blk, at); p != nil {
					out = append(out, modelKV{k, p})
				}
			}
		}
		if k := keys.RelSizeKey(rl); r.Contains(k) {
			if n, ok := m.size(rl, at); ok {
				out = append(out, modelKV{k, walrec.SizeImage(n).Image})
			}
		}
	}
	slices.SortFunc(out, func(a, b modelKV) int { return a.k.Compare(b.k) })
	return out
}

// scanBounds are the keys a drawn scan range starts or ends at: the edges
// of the key space and of every block and size key of the relations.
func scanBounds() []keys.Key {
	out := []keys.Key{keys.Min, keys.Max}
	for _, rl := range rels {
		for blk := uint32(0); blk <= blocks; blk++ {
			out = append(out, keys.RelBlockKey(rl, blk))
		}
		out = append(out, keys.RelSizeKey(rl), keys.RelSizeKey(rl).Next())
	}
	return out
}

// scan reads a drawn key range at a drawn LSN with Timeline.Scan, now and
// then seeking forward, and checks every key and value against the model.
func (s *machine) scan(t *rapid.T) {
	m := s.pick(t)
	at, ok := readable(t, m)
	if !ok {
		t.Skip("nothing readable")
	}
	bounds := scanBounds()
	r := keys.Range{
		Start: rapid.SampledFrom(bounds).Draw(t, "scan_start"),
		End:   rapid.SampledFrom(bounds).Draw(t, "scan_end"),
	}
	want := scanModel(m, r, at)
	sc, err := s.engine(t, m).Scan(r, at)
	if err != nil {
		t.Fatalf("%s: scan %s at %s: %v", m.id, r, at, err)
	}
	defer sc.Close()
	from := r.Start
	for {
		// The first key the model has at or after from.
		i, _ := slices.BinarySearchFunc(want, from, func(e modelKV, k keys.Key) int { return e.k.Compare(k) })
		if !sc.Next() {
			if sc.Err() != nil || i < len(want) {
				t.Fatalf("%s: scan %s at %s ended (%v); model has %d more keys from %s", m.id, r, at, sc.Err(), len(want)-i, from)
			}
			break
		}
		if i == len(want) || sc.Key() != want[i].k || !bytes.Equal(sc.Value(), want[i].v) {
			t.Fatalf("%s: scan %s at %s: got %s (%d bytes), model index %d of %d", m.id, r, at, sc.Key(), len(sc.Value()), i, len(want))
		}
		from = sc.Key().Next()
		if rapid.IntRange(0, 4).Draw(t, "seek") == 0 {
			to := rapid.SampledFrom(bounds).Draw(t, "seek_to")
			sc.Seek(to)
			if from.Less(to) {
				from = to
			}
		}
	}
	s.cov.scans++
}
