package walrec

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
)

// castagnoli returns the crc32c table (the standard library builds it once
// and caches it).
func castagnoli() *crc32.Table { return crc32.MakeTable(crc32.Castagnoli) }

// recordCRC covers the length field, the type byte and the body, so a
// corrupted length is caught even when it still frames plausible bytes.
func recordCRC(rec []byte) uint32 {
	c := crc32.Update(0, castagnoli(), rec[0:4])
	return crc32.Update(c, castagnoli(), rec[HeaderSize:])
}

// AppendEncode appends the framed encoding of rec to dst. It fails only if
// rec breaks a format limit (see Validate).
func AppendEncode(dst []byte, rec Record) ([]byte, error) {
	if err := Validate(rec); err != nil {
		return dst, err
	}
	start := len(dst)
	dst = append(dst, 0, 0, 0, 0, 0, 0, 0, 0, byte(rec.Type()))
	dst = rec.appendBody(dst)
	out := dst[start:]
	binary.LittleEndian.PutUint32(out[0:], uint32(len(out)))
	binary.LittleEndian.PutUint32(out[4:], recordCRC(out))
	return dst, nil
}

// Encode returns the framed encoding of rec. rec must pass Validate: a
// record breaking the format limits is a programming error in the writer
// (records are built by our own compute), so Encode panics on it. Callers
// holding records from elsewhere use AppendEncode.
func Encode(rec Record) []byte {
	b, err := AppendEncode(nil, rec)
	if err != nil {
		panic(err)
	}
	return b
}

// Decode decodes the first record in b and returns it with the number of
// bytes it occupied. Input that ends inside a record gives ErrTruncated; any
// other malformation gives ErrCorrupt. The returned record never aliases b.
func Decode(b []byte) (Record, int, error) {
	if len(b) < HeaderSize+1 {
		return nil, 0, fmt.Errorf("%w: %d bytes, header needs %d", ErrTruncated, len(b), HeaderSize+1)
	}
	n := binary.LittleEndian.Uint32(b)
	if n < HeaderSize+1 || n > MaxRecordSize {
		return nil, 0, fmt.Errorf("%w: record length %d outside [%d, %d]", ErrCorrupt, n, HeaderSize+1, MaxRecordSize)
	}
	if uint64(len(b)) < uint64(n) {
		return nil, 0, fmt.Errorf("%w: record of %d bytes, have %d", ErrTruncated, n, len(b))
	}
	rec := b[:n]
	if got, want := recordCRC(rec), binary.LittleEndian.Uint32(rec[4:]); got != want {
		return nil, 0, fmt.Errorf("%w: crc32c %08x, header says %08x", ErrCorrupt, got, want)
	}
	r, err := decodeBody(Type(rec[HeaderSize]), rec[HeaderSize+1:])
	if err != nil {
		return nil, 0, err
	}
	return r, int(n), nil
}

// Stream decodes a concatenation of records one at a time.
type Stream struct {
	buf []byte
	off int
}

// NewStream returns a Stream over b; b must not change while in use.
func NewStream(b []byte) *Stream { return &Stream{buf: b} }

// Next returns the next record. At the clean end of the input it returns
// io.EOF; input ending inside a record gives ErrTruncated (a torn tail);
// after any error the Stream stays at the failing offset.
func (s *Stream) Next() (Record, error) {
	if s.off == len(s.buf) {
		return nil, io.EOF
	}
	rec, n, err := Decode(s.buf[s.off:])
	if err != nil {
		return nil, fmt.Errorf("at offset %d: %w", s.off, err)
	}
	s.off += n
	return rec, nil
}

// Offset is the byte offset of the next record (the end of the last good
// one): where a torn tail should be truncated.
func (s *Stream) Offset() int { return s.off }

// DecodeAll decodes every record in b, failing on the first bad one.
func DecodeAll(b []byte) ([]Record, error) {
	s := NewStream(b)
	var out []Record
	for {
		r, err := s.Next()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		out = append(out, r)
	}
}
