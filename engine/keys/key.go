package keys

import (
	"cmp"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// Size is the encoded length of a Key.
const Size = 18

// Key is Neon's 18-byte page key (see docs/neon-compat.md, Keys).
type Key struct {
	Field1 uint8
	Field2 uint32
	Field3 uint32
	Field4 uint32
	Field5 uint8
	Field6 uint32
}

// ErrSyntax reports a malformed key text or encoding.
var ErrSyntax = errors.New("keys: malformed key")

// Min and Max bound the key space. They are read-only (never assigned):
// Go has no struct constants, and callers use them as values.
var (
	//strata:nondeterministic read-only key-space bound, never assigned
	Min = Key{}
	//strata:nondeterministic read-only key-space bound, never assigned
	Max = Key{0xFF, 0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0xFF, 0xFFFFFFFF}
)

// Bytes returns the 18-byte big-endian encoding; byte order equals key order.
func (k Key) Bytes() [Size]byte {
	var b [Size]byte
	b[0] = k.Field1
	binary.BigEndian.PutUint32(b[1:], k.Field2)
	binary.BigEndian.PutUint32(b[5:], k.Field3)
	binary.BigEndian.PutUint32(b[9:], k.Field4)
	b[13] = k.Field5
	binary.BigEndian.PutUint32(b[14:], k.Field6)
	return b
}

// FromBytes decodes an 18-byte key.
func FromBytes(b []byte) (Key, error) {
	if len(b) != Size {
		return Key{}, fmt.Errorf("%w: %d bytes, want %d", ErrSyntax, len(b), Size)
	}
	return Key{
		Field1: b[0],
		Field2: binary.BigEndian.Uint32(b[1:]),
		Field3: binary.BigEndian.Uint32(b[5:]),
		Field4: binary.BigEndian.Uint32(b[9:]),
		Field5: b[13],
		Field6: binary.BigEndian.Uint32(b[14:]),
	}, nil
}

// String is the 36-character upper-case hex form.
func (k Key) String() string {
	return fmt.Sprintf("%02X%08X%08X%08X%02X%08X", k.Field1, k.Field2, k.Field3, k.Field4, k.Field5, k.Field6)
}

// Parse parses the 36-character hex form (either case).
func Parse(s string) (Key, error) {
	if len(s) != 2*Size {
		return Key{}, fmt.Errorf("%w: %q has %d characters, want %d", ErrSyntax, s, len(s), 2*Size)
	}
	b, err := hex.DecodeString(strings.ToLower(s))
	if err != nil {
		return Key{}, fmt.Errorf("%w: %q: not hex", ErrSyntax, s)
	}
	return FromBytes(b)
}

// Compare orders keys field by field. The encoding is the fields big-endian
// in order, so this equals the order of Bytes() without building two 18-byte
// encodings per comparison: it sits on every read's index search.
func (k Key) Compare(o Key) int {
	if c := cmp.Compare(k.Field1, o.Field1); c != 0 {
		return c
	}
	if c := cmp.Compare(k.Field2, o.Field2); c != 0 {
		return c
	}
	if c := cmp.Compare(k.Field3, o.Field3); c != 0 {
		return c
	}
	if c := cmp.Compare(k.Field4, o.Field4); c != 0 {
		return c
	}
	if c := cmp.Compare(k.Field5, o.Field5); c != 0 {
		return c
	}
	return cmp.Compare(k.Field6, o.Field6)
}

// Less reports k < o.
func (k Key) Less(o Key) bool { return k.Compare(o) < 0 }

// Next returns the smallest key greater than k (Max.Next() == Max).
func (k Key) Next() Key {
	b := k.Bytes()
	for i := Size - 1; i >= 0; i-- {
		b[i]++
		if b[i] != 0 {
			n, _ := FromBytes(b[:])
			return n
		}
	}
	return Max
}

// Range is the half-open key range [Start, End).
type Range struct {
	Start, End Key
}

// Contains reports whether k is in r.
func (r Range) Contains(k Key) bool { return !k.Less(r.Start) && k.Less(r.End) }

// Overlaps reports whether r and o share a key.
func (r Range) Overlaps(o Range) bool { return r.Start.Less(o.End) && o.Start.Less(r.End) }

func (r Range) String() string { return r.Start.String() + "-" + r.End.String() }
