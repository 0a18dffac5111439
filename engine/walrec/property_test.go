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
