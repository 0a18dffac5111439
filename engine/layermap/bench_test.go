package layermap

import (
	"testing"

	"github.com/stratadb/strata/engine/keys"
	"github.com/stratadb/strata/engine/lsn"
)

// BenchmarkSearchManyPartitions searches a map of 20 L1 levels of 500 key
// partitions each (10,000 layers) with an image level of 500 partitions
// under them: the index cost of a read, without any page copy.
func BenchmarkSearchManyPartitions(b *testing.B) {
	const levels, parts, perPart = 20, 500, 4
	var ls []Layer[val]
	part := func(i int) keys.Range {
		r := keys.Range{Start: k(uint32(i * perPart)), End: k(uint32((i + 1) * perPart))}
		if i == 0 {
			r.Start = keys.Min
		}
		if i == parts-1 {
			r.End = keys.Max
		}
		return r
	}
	for i := 0; i < parts; i++ {
		f := layer(ImageDesc(part(i), 10))
		for j := 0; j < perPart; j++ {
			f.vals[k(uint32(i*perPart+j))] = f.vals[k(0)][:0]
		}
		ls = append(ls, f)
	}
	for lv := 0; lv < levels; lv++ {
		lo := lsn.LSN(11 + lv*100)
		for i := 0; i < parts; i++ {
			ls = append(ls, layer(DeltaDesc(part(i), lo, lo+100), uint32(i*perPart+1), int(lo)+i%100, "d"))
		}
	}
	m := mustMapB(b, ls)
	key := k(uint32(parts/2*perPart + 1))
	var r Result[val]
	b.ReportAllocs()
	for b.Loop() {
		r.Reset(lsn.LSN(11 + levels*100))
		if err := m.Search(key, &r); err != nil || !r.Done || len(r.Entries) != levels {
			b.Fatalf("search: %v, done %v, %d entries", err, r.Done, len(r.Entries))
		}
	}
}

func mustMapB(b *testing.B, ls []Layer[val]) *Map[val] {
	m, err := Empty[val]().Replace(ls, nil, 0)
	if err != nil {
		b.Fatal(err)
	}
	return m
}
