package walrec

import (
	"encoding/binary"
	"fmt"
)

// ValueKind says how a Value relates to the key's previous value.
type ValueKind uint8

// The value kinds. The values are part of the layer-file format.
const (
	// ValueImage is a complete value: a page, an encoded size, a tombstone.
	ValueImage ValueKind = 1
	// ValueDelta is a record applied on top of the previous value.
	ValueDelta ValueKind = 2
)

func (k ValueKind) String() string {
	switch k {
	case ValueImage:
		return "image"
	case ValueDelta:
		return "delta"
	}
	return fmt.Sprintf("value-kind(%d)", uint8(k))
}

// MaxImageSize bounds an image value, in bytes (a page, a size, or a
// metadata blob of at most a logical message's payload).
const MaxImageSize = MaxPayloadLen

// Value is what a layer stores for one key at one LSN.
//
// An Image holds the key's whole value: for a relation or SLRU block a
// PageSize page; for a size key a 4-byte little-endian block count
// (SizeImage); an empty Image is a tombstone (the key no longer exists, e.g.
// a dropped relation's size key). A Delta holds a Record that Redo applies
// on top of the key's previous value.
type Value struct {
	Kind  ValueKind
	Image []byte // when Kind == ValueImage
	Rec   Record // when Kind == ValueDelta
}

// Image returns an image value holding b (not copied).
func Image(b []byte) Value { return Value{Kind: ValueImage, Image: b} }

// Delta returns a delta value holding rec.
func Delta(rec Record) Value { return Value{Kind: ValueDelta, Rec: rec} }

// Tombstone returns the image value that marks a key as gone.
func Tombstone() Value { return Value{Kind: ValueImage, Image: []byte{}} }

// SizeImage returns the image value of a size key holding nblocks.
func SizeImage(nblocks uint32) Value {
	return Image(binary.LittleEndian.AppendUint32(nil, nblocks))
}

// IsTombstone reports whether v marks its key as gone.
func (v Value) IsTombstone() bool { return v.Kind == ValueImage && len(v.Image) == 0 }

// WillInit reports whether v replaces the previous value entirely, so redo
// needs nothing older. (A PageWrite does not: it patches a page.)
func (v Value) WillInit() bool {
	if v.Kind == ValueImage {
		return true
	}
	switch v.Rec.(type) {
	case FullPageImage, RelSizeChange, RelDrop:
		return true
	}
	return false
}

// DecodeSize interprets a size key's redo result: the block count, or
// dropped if the image is a tombstone.
func DecodeSize(img []byte) (nblocks uint32, dropped bool, err error) {
	switch len(img) {
	case 0:
		return 0, true, nil
	case 4:
		return binary.LittleEndian.Uint32(img), false, nil
	}
	return 0, false, fmt.Errorf("%w: size image of %d bytes, want 4 or 0", ErrCorrupt, len(img))
}

// Validate checks v against the format limits.
func (v Value) Validate() error {
	switch v.Kind {
	case ValueImage:
		if len(v.Image) > MaxImageSize {
			return fmt.Errorf("%w: image of %d bytes, max %d", ErrInvalid, len(v.Image), MaxImageSize)
		}
		return nil
	case ValueDelta:
		return Validate(v.Rec)
	}
	return fmt.Errorf("%w: value kind %d", ErrInvalid, uint8(v.Kind))
}

// AppendEncodeValue appends v's encoding: the kind byte, then for an image
// its bytes, for a delta the record's type byte and body (no frame: the
// layer file checksums its blocks and records each value's length).
func AppendEncodeValue(dst []byte, v Value) ([]byte, error) {
	if err := v.Validate(); err != nil {
		return dst, err
	}
	dst = append(dst, byte(v.Kind))
	if v.Kind == ValueImage {
		return append(dst, v.Image...), nil
	}
	dst = append(dst, byte(v.Rec.Type()))
	return v.Rec.appendBody(dst), nil
}

// EncodeValue returns v's encoding; v must pass Validate (a programming
// error otherwise, so it panics; see AppendEncodeValue).
func EncodeValue(v Value) []byte {
	b, err := AppendEncodeValue(nil, v)
	if err != nil {
		panic(err)
	}
	return b
}

// DecodeValue decodes exactly b as one value. Any malformation gives
// ErrCorrupt; the result never aliases b.
func DecodeValue(b []byte) (Value, error) {
	if len(b) == 0 {
		return Value{}, fmt.Errorf("%w: empty value", ErrCorrupt)
	}
	switch ValueKind(b[0]) {
	case ValueImage:
		if len(b)-1 > MaxImageSize {
			return Value{}, fmt.Errorf("%w: image of %d bytes, max %d", ErrCorrupt, len(b)-1, MaxImageSize)
		}
		img := make([]byte, len(b)-1)
		copy(img, b[1:])
		return Value{Kind: ValueImage, Image: img}, nil
	case ValueDelta:
		if len(b) < 2 {
			return Value{}, fmt.Errorf("%w: delta value without a record type", ErrCorrupt)
		}
		if len(b) > MaxRecordSize {
			return Value{}, fmt.Errorf("%w: delta value of %d bytes, max %d", ErrCorrupt, len(b), MaxRecordSize)
		}
		rec, err := decodeBody(Type(b[1]), b[2:])
		if err != nil {
			return Value{}, err
		}
		return Value{Kind: ValueDelta, Rec: rec}, nil
	}
	return Value{}, fmt.Errorf("%w: value kind %d", ErrCorrupt, b[0])
}
