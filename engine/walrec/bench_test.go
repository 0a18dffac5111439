package walrec

import "testing"

func benchRecords() map[string]Record {
	return map[string]Record{
		"fpi":        FullPageImage{Rel: testRel, Blk: 3, Page: page(0xAB)},
		"page-write": PageWrite{Rel: testRel, Blk: 3, Offset: 100, Data: make([]byte, 64)},
	}
}

func BenchmarkEncode(b *testing.B) {
	for _, name := range []string{"fpi", "page-write"} {
		rec := benchRecords()[name]
		b.Run(name, func(b *testing.B) {
			buf := make([]byte, 0, MaxRecordSize)
			b.SetBytes(int64(len(Encode(rec))))
			b.ReportAllocs()
			for b.Loop() {
				var err error
				if buf, err = AppendEncode(buf[:0], rec); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkDecode(b *testing.B) {
	for _, name := range []string{"fpi", "page-write"} {
		enc := Encode(benchRecords()[name])
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(enc)))
			b.ReportAllocs()
			for b.Loop() {
				if _, _, err := Decode(enc); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkRedo(b *testing.B) {
	base := page(1)
	var deltas []Value
	for i := 0; i < 16; i++ {
		deltas = append(deltas, Delta(PageWrite{Rel: testRel, Blk: 3, Offset: uint16(i * 64), Data: make([]byte, 64)}))
	}
	key := Decompose(deltas[0].Rec)[0].Key
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Redo(key, base, deltas); err != nil {
			b.Fatal(err)
		}
	}
}
