package walpipeline

import (
	"bytes"
	"slices"
	"testing"

	"github.com/stratadb/strata/disk"
	"github.com/stratadb/strata/engine/keys"
	"github.com/stratadb/strata/engine/layer"
	"github.com/stratadb/strata/engine/lsn"
	"github.com/stratadb/strata/engine/shard"
	"github.com/stratadb/strata/engine/walrec"
	"github.com/stratadb/strata/sim/simdisk"
)

var rel = keys.RelTag{SpcNode: 1663, DbNode: 5, RelNode: 16384}

// genRecords turns fuzz bytes into a record sequence over 4 blocks.
func genRecords(data []byte) []walrec.Record {
	var recs []walrec.Record
	for len(data) >= 3 {
		op, blk, arg := data[0]%8, uint32(data[1]%4), data[2]
		data = data[3:]
		switch {
		case op < 5:
			n := int(arg%16) + 1
			off := int(arg) * 31 % (walrec.PageSize - n)
			recs = append(recs, walrec.PageWrite{Rel: rel, Blk: blk, Offset: uint16(off), Data: bytes.Repeat([]byte{arg}, n)})
		case op == 5:
			recs = append(recs, walrec.FullPageImage{Rel: rel, Blk: blk, Page: bytes.Repeat([]byte{arg}, walrec.PageSize)})
		case op == 6:
			recs = append(recs, walrec.RelSizeChange{Rel: rel, NBlocks: uint32(arg)})
		default:
			recs = append(recs, walrec.LogicalMessage{Prefix: "fuzz", Payload: []byte{arg}})
		}
	}
	return recs
}

// FuzzWALThroughLayer: records → WAL bytes → records → (key, LSN, value) →
// delta layer file → Redo gives exactly the model's pages and size.
func FuzzWALThroughLayer(f *testing.F) {
	f.Add([]byte{0, 0, 1, 5, 1, 2, 1, 1, 3, 6, 0, 4, 7, 0, 0})
	f.Add(bytes.Repeat([]byte{1, 2, 3, 5, 2, 9}, 20))
	f.Fuzz(func(t *testing.T, data []byte) {
		recs := genRecords(data)
		// Frame the records into one WAL stream; LSN = frame offset + 1 (0 is
		// invalid).
		var wal []byte
		for _, r := range recs {
			wal = append(wal, walrec.Encode(r)...)
		}
		model := map[uint32][]byte{}
		var size *uint32
		var entries []layer.DeltaEntry
		s := walrec.NewStream(wal)
		for i := 0; ; i++ {
			at := lsn.LSN(s.Offset() + 1)
			r, err := s.Next()
			if err != nil {
				if i != len(recs) {
					t.Fatalf("stream stopped after %d of %d records: %v", i, len(recs), err)
				}
				break
			}
			switch r := r.(type) {
			case walrec.PageWrite:
				p, ok := model[r.Blk]
				if !ok {
					p = make([]byte, walrec.PageSize)
					model[r.Blk] = p
				}
				copy(p[r.Offset:], r.Data)
			case walrec.FullPageImage:
				model[r.Blk] = bytes.Clone(r.Page)
			case walrec.RelSizeChange:
				n := r.NBlocks
				size = &n
			}
			for _, kv := range walrec.Decompose(r) {
				entries = append(entries, layer.DeltaEntry{Key: kv.Key, LSN: at, Value: kv.Value})
			}
		}
		slices.SortStableFunc(entries, func(a, b layer.DeltaEntry) int { return a.Key.Compare(b.Key) })

		fsys := simdisk.New(simdisk.Options{})
		if err := disk.MkdirAllDurable(fsys, "tl"); err != nil {
			t.Fatal(err)
		}
		lr := lsn.Range{Start: 1, End: lsn.LSN(len(wal) + 2)}
		if _, err := layer.WriteDelta(fsys, "tl/d", keys.Range{Start: keys.Min, End: keys.Max}, lr, entries); err != nil {
			t.Fatal(err)
		}
		d, err := layer.OpenDelta(fsys, "tl/d")
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		for blk := uint32(0); blk < 4; blk++ {
			k := keys.RelBlockKey(rel, blk)
			es, err := d.Get(k, lr)
			if err != nil {
				t.Fatal(err)
			}
			want, ok := model[blk]
			if !ok {
				if len(es) != 0 {
					t.Fatalf("block %d: layer holds values the model never wrote", blk)
				}
				continue
			}
			var vals []walrec.Value
			for _, e := range es {
				vals = append(vals, e.Value)
			}
			got, err := walrec.Redo(k, nil, vals)
			if err != nil {
				t.Fatalf("block %d: %v", blk, err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("block %d: page read through the layer differs from the model", blk)
			}
			// Exactly one of 3 shards stores the block; the size key is on all.
			local := 0
			for n := shard.ShardNumber(0); n < 3; n++ {
				id := shard.ShardIdentity{Number: n, Count: 3, StripeSize: 2}
				if id.IsKeyLocal(k) {
					local++
				}
				if !id.IsKeyLocal(keys.RelSizeKey(rel)) {
					t.Fatalf("shard %d does not store the size key", n)
				}
			}
			if local != 1 {
				t.Fatalf("block %d stored on %d shards", blk, local)
			}
		}
		es, err := d.Get(keys.RelSizeKey(rel), lr)
		if err != nil {
			t.Fatal(err)
		}
		if size == nil {
			if len(es) != 0 {
				t.Fatal("size key written without a size change")
			}
			return
		}
		var vals []walrec.Value
		for _, e := range es {
			vals = append(vals, e.Value)
		}
		img, err := walrec.Redo(keys.RelSizeKey(rel), nil, vals)
		if err != nil {
			t.Fatal(err)
		}
		n, dropped, err := walrec.DecodeSize(img)
		if err != nil || dropped || n != *size {
			t.Fatalf("size = %d dropped %v (%v), want %d", n, dropped, err, *size)
		}
	})
}
