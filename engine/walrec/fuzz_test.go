package walrec

import (
	"errors"
	"reflect"
	"testing"
)

// FuzzDecode: Decode never panics; it either fails with a classified error
// or returns a record whose encoding is exactly the bytes it consumed.
func FuzzDecode(f *testing.F) {
	for _, r := range sampleRecords() {
		b := Encode(r)
		f.Add(b)
		f.Add(b[:len(b)/2])
	}
	f.Add([]byte{})
	f.Add([]byte{9, 0, 0, 0, 0, 0, 0, 0, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		rec, n, err := Decode(b)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrTruncated) {
				t.Fatalf("unclassified error %v", err)
			}
			return
		}
		if n < HeaderSize+1 || n > len(b) {
			t.Fatalf("n = %d for %d bytes", n, len(b))
		}
		if again := Encode(rec); !reflect.DeepEqual(again, b[:n]) {
			t.Fatalf("re-encoding differs from the input")
		}
	})
}

// FuzzDecodeValue: DecodeValue never panics and round-trips what it accepts.
func FuzzDecodeValue(f *testing.F) {
	f.Add(EncodeValue(SizeImage(3)))
	f.Add(EncodeValue(Tombstone()))
	for _, r := range sampleRecords() {
		f.Add(EncodeValue(Delta(r)))
	}
	f.Add([]byte{2, 2, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := DecodeValue(b)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("unclassified error %v", err)
			}
			return
		}
		if again := EncodeValue(v); !reflect.DeepEqual(again, b) {
			t.Fatalf("re-encoding differs from the input")
		}
	})
}
