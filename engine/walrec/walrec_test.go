package walrec

import (
	"bytes"
	"errors"
	"io"
	"reflect"
	"testing"

	"github.com/stratadb/strata/engine/keys"
)

var testRel = keys.RelTag{SpcNode: 1663, DbNode: 5, RelNode: 16384, ForkNum: keys.ForkMain}

func page(fill byte) []byte { return bytes.Repeat([]byte{fill}, PageSize) }

func sampleRecords() []Record {
	return []Record{
		FullPageImage{Rel: testRel, Blk: 3, Page: page(0xAB)},
		PageWrite{Rel: testRel, Blk: 3, Offset: 100, Data: []byte("hello")},
		PageWrite{Rel: testRel, Blk: keys.MaxBlockNumber, Offset: PageSize - 1, Data: []byte{7}},
		RelSizeChange{Rel: testRel, NBlocks: 12},
		RelSizeChange{Rel: testRel, NBlocks: 0xFFFFFFFF},
		RelDrop{Rel: keys.RelTag{SpcNode: 1, DbNode: 2, RelNode: 3, ForkNum: keys.ForkVM}},
		LogicalMessage{Prefix: "bench", Payload: []byte{1, 2, 3}},
		LogicalMessage{Prefix: "", Payload: []byte{}},
	}
}

func TestRoundTrip(t *testing.T) {
	for _, rec := range sampleRecords() {
		t.Run(rec.Type().String(), func(t *testing.T) {
			b := Encode(rec)
			got, n, err := Decode(b)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if n != len(b) {
				t.Fatalf("n = %d, want %d", n, len(b))
			}
			if !reflect.DeepEqual(got, rec) {
				t.Fatalf("round trip: got %#v, want %#v", got, rec)
			}
			// Every proper prefix is truncated, not corrupt.
			for _, cut := range []int{0, 1, HeaderSize, HeaderSize + 1, len(b) - 1} {
				if _, _, err := Decode(b[:cut]); !errors.Is(err, ErrTruncated) {
					t.Errorf("Decode(prefix %d) = %v, want ErrTruncated", cut, err)
				}
			}
		})
	}
}

func TestEncodeRejectsInvalid(t *testing.T) {
	tests := []struct {
		name string
		rec  Record
	}{
		{"nil", nil},
		{"short fpi", FullPageImage{Rel: testRel, Page: make([]byte, 10)}},
		{"relnode 0", RelDrop{Rel: keys.RelTag{SpcNode: 1}}},
		{"size block", PageWrite{Rel: testRel, Blk: 0xFFFFFFFF, Data: []byte{1}}},
		{"empty write", PageWrite{Rel: testRel}},
		{"write past end", PageWrite{Rel: testRel, Offset: PageSize - 1, Data: []byte{1, 2}}},
		{"long prefix", LogicalMessage{Prefix: string(make([]byte, 256))}},
		{"long payload", LogicalMessage{Payload: make([]byte, MaxPayloadLen+1)}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := AppendEncode(nil, tc.rec); !errors.Is(err, ErrInvalid) {
				t.Fatalf("AppendEncode = %v, want ErrInvalid", err)
			}
			defer func() {
				if recover() == nil {
					t.Fatal("Encode of an invalid record did not panic")
				}
			}()
			Encode(tc.rec)
		})
	}
}

func TestDecodeDetectsEveryByteFlip(t *testing.T) {
	for _, rec := range sampleRecords() {
		b := Encode(rec)
		for i := range b {
			c := append([]byte(nil), b...)
			c[i] ^= 0x01
			got, _, err := Decode(c)
			if err == nil {
				t.Fatalf("%v: flip at %d decoded to %#v", rec.Type(), i, got)
			}
			if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrTruncated) {
				t.Fatalf("%v: flip at %d gave unclassified error %v", rec.Type(), i, err)
			}
		}
	}
}

func TestDecodeCorruptFraming(t *testing.T) {
	tests := []struct {
		name string
		b    []byte
	}{
		{"length too small", []byte{3, 0, 0, 0, 0, 0, 0, 0, 1}},
		{"length absurd", []byte{0xFF, 0xFF, 0xFF, 0x7F, 0, 0, 0, 0, 1}},
	}
	for _, tc := range tests {
		if _, _, err := Decode(tc.b); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: %v, want ErrCorrupt", tc.name, err)
		}
	}
	// A well-framed record of an unknown type with a valid crc.
	b := Encode(RelDrop{Rel: testRel})
	b[HeaderSize] = 99
	fixCRC(b)
	if _, _, err := Decode(b); !errors.Is(err, ErrCorrupt) {
		t.Errorf("unknown type: %v, want ErrCorrupt", err)
	}
	// A well-framed page write that breaks the page bound.
	b = Encode(PageWrite{Rel: testRel, Offset: 8000, Data: make([]byte, 100)})
	b[HeaderSize+1+relTagSize+4+1] = 0x1F // offset 8000 -> 0x1F40 stays, make it bigger
	b[HeaderSize+1+relTagSize+4] = 0xFF
	fixCRC(b)
	if _, _, err := Decode(b); !errors.Is(err, ErrCorrupt) {
		t.Errorf("page write past end: %v, want ErrCorrupt", err)
	}
}

func fixCRC(b []byte) {
	c := recordCRC(b)
	b[4], b[5], b[6], b[7] = byte(c), byte(c>>8), byte(c>>16), byte(c>>24)
}

func TestStream(t *testing.T) {
	recs := sampleRecords()
	var buf []byte
	for _, r := range recs {
		buf = append(buf, Encode(r)...)
	}
	got, err := DecodeAll(buf)
	if err != nil || !reflect.DeepEqual(got, recs) {
		t.Fatalf("DecodeAll = %d records, %v", len(got), err)
	}
	// A torn tail: all complete records come out, then ErrTruncated, and
	// Offset points at the end of the last good record.
	last := len(Encode(recs[len(recs)-1]))
	torn := buf[:len(buf)-1]
	s := NewStream(torn)
	n := 0
	for {
		_, err := s.Next()
		if err != nil {
			if !errors.Is(err, ErrTruncated) {
				t.Fatalf("torn tail: %v, want ErrTruncated", err)
			}
			break
		}
		n++
	}
	if n != len(recs)-1 || s.Offset() != len(buf)-last {
		t.Fatalf("torn tail: %d records, offset %d; want %d, %d", n, s.Offset(), len(recs)-1, len(buf)-last)
	}
	if _, err := NewStream(nil).Next(); err != io.EOF {
		t.Fatalf("empty stream: %v, want io.EOF", err)
	}
}

func TestValueRoundTrip(t *testing.T) {
	vals := []Value{Image(page(1)), SizeImage(77), Tombstone()}
	for _, r := range sampleRecords() {
		vals = append(vals, Delta(r))
	}
	for _, v := range vals {
		got, err := DecodeValue(EncodeValue(v))
		if err != nil {
			t.Fatalf("DecodeValue(%v): %v", v.Kind, err)
		}
		if !reflect.DeepEqual(got, v) {
			t.Fatalf("value round trip: got %#v, want %#v", got, v)
		}
	}
	bad := [][]byte{nil, {0}, {3}, {2}, {2, 99}, {2, byte(TypeRelDrop), 1, 2}}
	for _, b := range bad {
		if _, err := DecodeValue(b); !errors.Is(err, ErrCorrupt) {
			t.Errorf("DecodeValue(%v) = %v, want ErrCorrupt", b, err)
		}
	}
	if _, err := AppendEncodeValue(nil, Value{}); !errors.Is(err, ErrInvalid) {
		t.Errorf("zero Value encodes: %v", err)
	}
}

func TestDecomposeAndRedo(t *testing.T) {
	blk := keys.RelBlockKey(testRel, 3)
	size := keys.RelSizeKey(testRel)
	tests := []struct {
		name    string
		key     keys.Key
		base    []byte
		recs    []Record
		want    func() []byte
		wantErr error
	}{
		{
			name: "fpi then writes", key: blk,
			recs: []Record{
				FullPageImage{Rel: testRel, Blk: 3, Page: page(0xAA)},
				PageWrite{Rel: testRel, Blk: 3, Offset: 0, Data: []byte{1, 2}},
				PageWrite{Rel: testRel, Blk: 3, Offset: 1, Data: []byte{9}},
			},
			want: func() []byte { p := page(0xAA); p[0], p[1] = 1, 9; return p },
		},
		{
			name: "write on no base starts from zero page", key: blk,
			recs: []Record{PageWrite{Rel: testRel, Blk: 3, Offset: PageSize - 2, Data: []byte{5, 6}}},
			want: func() []byte { p := make([]byte, PageSize); p[PageSize-2], p[PageSize-1] = 5, 6; return p },
		},
		{
			name: "write on base", key: blk, base: page(0x11),
			recs: []Record{PageWrite{Rel: testRel, Blk: 3, Offset: 10, Data: []byte{0}}},
			want: func() []byte { p := page(0x11); p[10] = 0; return p },
		},
		{
			name: "size grows then drops", key: size,
			recs: []Record{RelSizeChange{Rel: testRel, NBlocks: 4}, RelDrop{Rel: testRel}},
			want: func() []byte { return []byte{} },
		},
		{
			name: "size after drop", key: size,
			recs: []Record{RelDrop{Rel: testRel}, RelSizeChange{Rel: testRel, NBlocks: 9}},
			want: func() []byte { return []byte{9, 0, 0, 0} },
		},
		{name: "nothing", key: blk, wantErr: ErrNoBase},
		{
			name: "write to a tombstone", key: size,
			recs:    []Record{RelDrop{Rel: testRel}, PageWrite{Rel: testRel, Blk: 3, Data: []byte{1}}},
			wantErr: ErrMismatch, // targets another key, even before the size check
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var vals []Value
			for _, r := range tc.recs {
				for _, kv := range Decompose(r) {
					if kv.Key != tc.key && tc.wantErr == nil {
						t.Fatalf("record %v decomposed to key %v, test expects %v", r.Type(), kv.Key, tc.key)
					}
					vals = append(vals, kv.Value)
				}
			}
			var baseCopy []byte
			if tc.base != nil {
				baseCopy = append([]byte{}, tc.base...)
			}
			got, err := Redo(tc.key, tc.base, vals)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("Redo = %v, want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Redo: %v", err)
			}
			if !bytes.Equal(got, tc.want()) {
				t.Fatalf("Redo result differs")
			}
			if tc.base != nil && !bytes.Equal(tc.base, baseCopy) {
				t.Fatal("Redo modified its base")
			}
			// Deltas given as records (not decomposed images) give the same.
			var raw []Value
			for _, r := range tc.recs {
				raw = append(raw, Delta(r))
			}
			again, err := Redo(tc.key, tc.base, raw)
			if err != nil || !bytes.Equal(again, got) {
				t.Fatalf("Redo over raw deltas = %v, differs", err)
			}
		})
	}
}

func TestRedoDoesNotAlias(t *testing.T) {
	img := page(3)
	key := keys.RelBlockKey(testRel, 0)
	got, err := Redo(key, nil, []Value{Image(img)})
	if err != nil {
		t.Fatal(err)
	}
	got[0] = 99
	if img[0] != 3 {
		t.Fatal("Redo returned the image's memory")
	}
	w := PageWrite{Rel: testRel, Blk: 0, Offset: 0, Data: []byte{42}}
	if _, err := Redo(key, img, []Value{Delta(w)}); err != nil || img[0] != 3 {
		t.Fatalf("Redo patched its base in place (%v)", err)
	}
}

func TestRedoMismatch(t *testing.T) {
	key := keys.RelBlockKey(testRel, 0)
	tests := []Value{
		Delta(PageWrite{Rel: testRel, Blk: 1, Data: []byte{1}}),
		Delta(LogicalMessage{Prefix: "x"}),
		Delta(RelSizeChange{Rel: testRel, NBlocks: 1}),
	}
	for _, v := range tests {
		if _, err := Redo(key, page(0), []Value{v}); !errors.Is(err, ErrMismatch) {
			t.Errorf("Redo(%v) = %v, want ErrMismatch", v.Rec.Type(), err)
		}
	}
	// A page write over a size-sized image of its own key is a mismatch too.
	if _, err := Redo(key, []byte{1, 2, 3, 4}, []Value{Delta(PageWrite{Rel: testRel, Blk: 0, Data: []byte{1}})}); !errors.Is(err, ErrMismatch) {
		t.Errorf("write over short image: %v", err)
	}
	if Decompose(LogicalMessage{Prefix: "p"}) != nil {
		t.Error("a logical message changes no key")
	}
}

func TestDecodeSize(t *testing.T) {
	if n, d, err := DecodeSize(SizeImage(5).Image); n != 5 || d || err != nil {
		t.Errorf("DecodeSize(5) = %d,%v,%v", n, d, err)
	}
	if _, d, err := DecodeSize(Tombstone().Image); !d || err != nil {
		t.Errorf("DecodeSize(tombstone) = %v,%v", d, err)
	}
	if _, _, err := DecodeSize([]byte{1}); !errors.Is(err, ErrCorrupt) {
		t.Errorf("DecodeSize(1 byte) = %v", err)
	}
}
