package keys

import (
	"bytes"
	"math/rand/v2"
	"testing"
)

// TestCompareMatchesBytes checks that the field-wise Compare is exactly the
// order of the 18-byte encoding, which layer files and indexes rely on.
func TestCompareMatchesBytes(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	rnd := func() Key {
		// Small ranges so equal fields are common and every field decides;
		// the shifts put set bits at the top of each field to catch a
		// signed or truncated comparison.
		return Key{Field1: uint8(r.IntN(3)) << 7, Field2: uint32(r.IntN(3)) << uint(r.IntN(32)), Field3: uint32(r.IntN(3)), Field4: uint32(r.IntN(3)) << 31, Field5: uint8(r.IntN(3)) << 7, Field6: uint32(r.IntN(3))}
	}
	ks := []Key{Min, Max, RelBlockKey(RelTag{1, 2, 3, 0}, 0), RelSizeKey(RelTag{1, 2, 3, 0})}
	for range 2000 {
		ks = append(ks, rnd())
	}
	for i, a := range ks {
		b := ks[(i*7+3)%len(ks)]
		ab, bb := a.Bytes(), b.Bytes()
		if got, want := a.Compare(b), bytes.Compare(ab[:], bb[:]); got != want {
			t.Fatalf("%v.Compare(%v) = %d, byte order says %d", a, b, got, want)
		}
		if a.Compare(a) != 0 {
			t.Fatalf("%v.Compare(itself) != 0", a)
		}
	}
}
