package walrec

import (
	"bytes"
	"math/rand/v2"
	"testing"

	"github.com/stratadb/strata/engine/keys"
)

// TestRedoComposes checks the property image materialization relies on:
// replaying a history in one go equals replaying a prefix, keeping the
// result as a base image, and replaying the rest on top — and the result
// matches a simple model (a page patched in place).
func TestRedoComposes(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	key := keys.RelBlockKey(testRel, 5)
	for iter := 0; iter < 200; iter++ {
		var vals []Value
		model := make([]byte, PageSize)
		for n := 1 + rng.IntN(12); n > 0; n-- {
			if rng.IntN(5) == 0 {
				p := make([]byte, PageSize)
				for i := range p {
					p[i] = byte(rng.Uint32())
				}
				kv := Decompose(FullPageImage{Rel: testRel, Blk: 5, Page: p})
				vals = append(vals, kv[0].Value)
				copy(model, p)
				continue
			}
			off := rng.IntN(PageSize)
			data := make([]byte, 1+rng.IntN(min(64, PageSize-off)))
			for i := range data {
				data[i] = byte(rng.Uint32())
			}
			vals = append(vals, Decompose(PageWrite{Rel: testRel, Blk: 5, Offset: uint16(off), Data: data})[0].Value)
			copy(model[off:], data)
		}
		whole, err := Redo(key, nil, vals)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(whole, model) {
			t.Fatalf("iter %d: Redo differs from the model", iter)
		}
		cut := rng.IntN(len(vals) + 1)
		var base []byte
		if cut > 0 {
			if base, err = Redo(key, nil, vals[:cut]); err != nil {
				t.Fatal(err)
			}
		}
		if cut == len(vals) {
			continue
		}
		split, err := Redo(key, base, vals[cut:])
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(split, whole) {
			t.Fatalf("iter %d: Redo split at %d differs from Redo in one go", iter, cut)
		}
		// Encoding the values (as a layer stores them) changes nothing.
		var stored []Value
		for _, v := range vals {
			dv, err := DecodeValue(EncodeValue(v))
			if err != nil {
				t.Fatal(err)
			}
			stored = append(stored, dv)
		}
		if again, err := Redo(key, nil, stored); err != nil || !bytes.Equal(again, whole) {
			t.Fatalf("iter %d: Redo over stored values differs (%v)", iter, err)
		}
	}
}

// TestAppendRedo checks AppendRedo against Redo on random histories of every
// value kind: the value lands after dst's bytes (which stay intact), an
// error leaves dst as it was, and reusing dst's capacity allocates nothing.
func TestAppendRedo(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	key := keys.RelBlockKey(testRel, 5)
	prefix := []byte("prefix")
	for iter := 0; iter < 300; iter++ {
		var vals []Value
		for n := rng.IntN(8); n > 0; n-- {
			switch rng.IntN(6) {
			case 0:
				vals = append(vals, Image(page(byte(rng.Uint32()))))
			case 1:
				vals = append(vals, Tombstone())
			case 2:
				vals = append(vals, Delta(FullPageImage{Rel: testRel, Blk: 5, Page: page(byte(rng.Uint32()))}))
			case 3:
				if rng.IntN(4) == 0 {
					vals = append(vals, Delta(PageWrite{Rel: testRel, Blk: 6, Data: []byte{1}})) // wrong key
				}
			default:
				off := rng.IntN(PageSize)
				vals = append(vals, Delta(PageWrite{Rel: testRel, Blk: 5, Offset: uint16(off), Data: []byte{byte(rng.Uint32()), 7}[:min(2, PageSize-off)]}))
			}
		}
		var base []byte
		if rng.IntN(2) == 0 {
			base = page(9)
		}
		want, wantErr := Redo(key, base, vals)
		dst := append(make([]byte, 0, len(prefix)+PageSize), prefix...)
		got, err := AppendRedo(dst, key, base, vals)
		if (err == nil) != (wantErr == nil) {
			t.Fatalf("iter %d: AppendRedo err %v, Redo err %v", iter, err, wantErr)
		}
		if !bytes.Equal(got[:len(prefix)], prefix) {
			t.Fatalf("iter %d: dst prefix overwritten", iter)
		}
		if err != nil {
			if len(got) != len(prefix) {
				t.Fatalf("iter %d: dst grew to %d bytes on error %v", iter, len(got), err)
			}
			continue
		}
		if !bytes.Equal(got[len(prefix):], want) {
			t.Fatalf("iter %d: AppendRedo differs from Redo", iter)
		}
	}
	deltas := []Value{Delta(PageWrite{Rel: testRel, Blk: 5, Offset: 10, Data: []byte{1, 2}})}
	base := page(1)
	buf := make([]byte, 0, PageSize)
	if allocs := testing.AllocsPerRun(50, func() {
		var err error
		if buf, err = AppendRedo(buf[:0], key, base, deltas); err != nil {
			t.Fatal(err)
		}
	}); allocs != 0 {
		t.Fatalf("AppendRedo into a reused buffer: %v allocations, want 0", allocs)
	}
	if buf[10] != 1 || buf[11] != 2 || buf[12] != 1 {
		t.Fatalf("patched page wrong: % x", buf[8:14])
	}
}
