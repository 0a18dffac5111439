package walrec

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/stratadb/strata/engine/keys"
)

// Errors. Every decoding failure wraps exactly one of ErrCorrupt or
// ErrTruncated; Validate and Redo failures wrap ErrInvalid, ErrNoBase or
// ErrMismatch.
var (
	// ErrCorrupt reports bytes that are not a valid record or value.
	ErrCorrupt = errors.New("walrec: corrupt record")
	// ErrTruncated reports input that ends inside a record; more bytes may
	// complete it.
	ErrTruncated = errors.New("walrec: truncated record")
	// ErrInvalid reports a record or value that breaks a format limit
	// (checked before encoding).
	ErrInvalid = errors.New("walrec: invalid record")
	// ErrNoBase reports a redo that has nothing to start from.
	ErrNoBase = errors.New("walrec: no base image for redo")
	// ErrMismatch reports a delta that does not apply to the key being
	// reconstructed.
	ErrMismatch = errors.New("walrec: record does not apply to key")
)

// PageSize is the size of a page image.
const PageSize = keys.BlockSize

// Format limits. They bound every length field so that a corrupt length can
// never make a decoder allocate or read without limit.
const (
	// HeaderSize is the record header: total length u32 + crc32c u32.
	HeaderSize = 8
	// MaxPrefixLen bounds a logical message's prefix, in bytes.
	MaxPrefixLen = 255
	// MaxPayloadLen bounds a logical message's payload, in bytes (1 MiB).
	MaxPayloadLen = 1 << 20
	// MaxRecordSize bounds an encoded record (header included), in bytes.
	MaxRecordSize = HeaderSize + 1 + 2 + MaxPrefixLen + 4 + MaxPayloadLen
)

// Type is the record type byte.
type Type uint8

// The record types. The values are part of the on-disk format.
const (
	TypeFullPageImage Type = 1
	TypePageWrite     Type = 2
	TypeRelSizeChange Type = 3
	TypeRelDrop       Type = 4
	TypeLogicalMsg    Type = 5
)

func (t Type) String() string {
	switch t {
	case TypeFullPageImage:
		return "full-page-image"
	case TypePageWrite:
		return "page-write"
	case TypeRelSizeChange:
		return "rel-size-change"
	case TypeRelDrop:
		return "rel-drop"
	case TypeLogicalMsg:
		return "logical-message"
	}
	return fmt.Sprintf("type(%d)", uint8(t))
}

// Record is one WAL record: FullPageImage, PageWrite, RelSizeChange,
// RelDrop or LogicalMessage (value types, never pointers).
type Record interface {
	// Type is the record's type byte.
	Type() Type
	// appendBody appends the body encoding (everything after the type byte).
	appendBody(dst []byte) []byte
	// validate checks the format limits.
	validate() error
}

// FullPageImage replaces a whole page.
type FullPageImage struct {
	Rel  keys.RelTag
	Blk  uint32
	Page []byte // exactly PageSize bytes
}

// PageWrite overwrites len(Data) bytes of a page at Offset.
// 1 <= len(Data) and Offset+len(Data) <= PageSize.
type PageWrite struct {
	Rel    keys.RelTag
	Blk    uint32
	Offset uint16
	Data   []byte
}

// RelSizeChange sets a relation fork's size in blocks (grow or truncate).
type RelSizeChange struct {
	Rel     keys.RelTag
	NBlocks uint32
}

// RelDrop drops a relation fork.
type RelDrop struct {
	Rel keys.RelTag
}

// LogicalMessage is an opaque message carried in the WAL (used by ingest
// benchmarks); it changes no page.
type LogicalMessage struct {
	Prefix  string
	Payload []byte
}

func (FullPageImage) Type() Type  { return TypeFullPageImage }
func (PageWrite) Type() Type      { return TypePageWrite }
func (RelSizeChange) Type() Type  { return TypeRelSizeChange }
func (RelDrop) Type() Type        { return TypeRelDrop }
func (LogicalMessage) Type() Type { return TypeLogicalMsg }

const relTagSize = 13

func appendRel(dst []byte, r keys.RelTag) []byte {
	dst = binary.LittleEndian.AppendUint32(dst, r.SpcNode)
	dst = binary.LittleEndian.AppendUint32(dst, r.DbNode)
	dst = binary.LittleEndian.AppendUint32(dst, r.RelNode)
	return append(dst, r.ForkNum)
}

func readRel(b []byte) keys.RelTag {
	return keys.RelTag{
		SpcNode: binary.LittleEndian.Uint32(b),
		DbNode:  binary.LittleEndian.Uint32(b[4:]),
		RelNode: binary.LittleEndian.Uint32(b[8:]),
		ForkNum: b[12],
	}
}

// validRel rejects relnode 0: its keys would collide with the directory
// keys (docs/neon-compat.md, Keys), so no record may name it.
func validRel(r keys.RelTag) error {
	if r.RelNode == 0 {
		return fmt.Errorf("%w: relnode 0 is reserved", ErrInvalid)
	}
	return nil
}

func validBlk(b uint32) error {
	if b > keys.MaxBlockNumber {
		return fmt.Errorf("%w: block %d is reserved for the size key", ErrInvalid, b)
	}
	return nil
}

func (r FullPageImage) appendBody(dst []byte) []byte {
	dst = appendRel(dst, r.Rel)
	dst = binary.LittleEndian.AppendUint32(dst, r.Blk)
	return append(dst, r.Page...)
}

func (r FullPageImage) validate() error {
	if err := validRel(r.Rel); err != nil {
		return err
	}
	if err := validBlk(r.Blk); err != nil {
		return err
	}
	if len(r.Page) != PageSize {
		return fmt.Errorf("%w: full page image of %d bytes, want %d", ErrInvalid, len(r.Page), PageSize)
	}
	return nil
}

func (r PageWrite) appendBody(dst []byte) []byte {
	dst = appendRel(dst, r.Rel)
	dst = binary.LittleEndian.AppendUint32(dst, r.Blk)
	dst = binary.LittleEndian.AppendUint16(dst, r.Offset)
	dst = binary.LittleEndian.AppendUint16(dst, uint16(len(r.Data)))
	return append(dst, r.Data...)
}

func (r PageWrite) validate() error {
	if err := validRel(r.Rel); err != nil {
		return err
	}
	if err := validBlk(r.Blk); err != nil {
		return err
	}
	if len(r.Data) == 0 {
		return fmt.Errorf("%w: empty page write", ErrInvalid)
	}
	if int(r.Offset)+len(r.Data) > PageSize {
		return fmt.Errorf("%w: page write [%d,%d) past the page end %d", ErrInvalid, r.Offset, int(r.Offset)+len(r.Data), PageSize)
	}
	return nil
}

func (r RelSizeChange) appendBody(dst []byte) []byte {
	dst = appendRel(dst, r.Rel)
	return binary.LittleEndian.AppendUint32(dst, r.NBlocks)
}

func (r RelSizeChange) validate() error {
	// Every uint32 is a valid size: blocks 0..MaxBlockNumber fill it.
	return validRel(r.Rel)
}

func (r RelDrop) appendBody(dst []byte) []byte { return appendRel(dst, r.Rel) }

func (r RelDrop) validate() error { return validRel(r.Rel) }

func (r LogicalMessage) appendBody(dst []byte) []byte {
	dst = append(dst, uint8(len(r.Prefix)))
	dst = append(dst, r.Prefix...)
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(r.Payload)))
	return append(dst, r.Payload...)
}

func (r LogicalMessage) validate() error {
	if len(r.Prefix) > MaxPrefixLen {
		return fmt.Errorf("%w: logical message prefix of %d bytes, max %d", ErrInvalid, len(r.Prefix), MaxPrefixLen)
	}
	if len(r.Payload) > MaxPayloadLen {
		return fmt.Errorf("%w: logical message payload of %d bytes, max %d", ErrInvalid, len(r.Payload), MaxPayloadLen)
	}
	return nil
}

// Validate checks rec against the format limits; Encode requires it.
func Validate(rec Record) error {
	if rec == nil {
		return fmt.Errorf("%w: nil record", ErrInvalid)
	}
	return rec.validate()
}

// decodeBody parses the body of a record of type t. body is exactly the
// bytes after the type byte.
func decodeBody(t Type, body []byte) (Record, error) {
	var rec Record
	switch t {
	case TypeFullPageImage:
		if len(body) != relTagSize+4+PageSize {
			return nil, fmt.Errorf("%w: full page image body of %d bytes, want %d", ErrCorrupt, len(body), relTagSize+4+PageSize)
		}
		page := make([]byte, PageSize)
		copy(page, body[relTagSize+4:])
		rec = FullPageImage{Rel: readRel(body), Blk: binary.LittleEndian.Uint32(body[relTagSize:]), Page: page}
	case TypePageWrite:
		const fixed = relTagSize + 4 + 2 + 2
		if len(body) < fixed {
			return nil, fmt.Errorf("%w: page write body of %d bytes, want at least %d", ErrCorrupt, len(body), fixed)
		}
		n := int(binary.LittleEndian.Uint16(body[relTagSize+6:]))
		if len(body) != fixed+n {
			return nil, fmt.Errorf("%w: page write says %d data bytes, body holds %d", ErrCorrupt, n, len(body)-fixed)
		}
		data := make([]byte, n)
		copy(data, body[fixed:])
		rec = PageWrite{
			Rel:    readRel(body),
			Blk:    binary.LittleEndian.Uint32(body[relTagSize:]),
			Offset: binary.LittleEndian.Uint16(body[relTagSize+4:]),
			Data:   data,
		}
	case TypeRelSizeChange:
		if len(body) != relTagSize+4 {
			return nil, fmt.Errorf("%w: size change body of %d bytes, want %d", ErrCorrupt, len(body), relTagSize+4)
		}
		rec = RelSizeChange{Rel: readRel(body), NBlocks: binary.LittleEndian.Uint32(body[relTagSize:])}
	case TypeRelDrop:
		if len(body) != relTagSize {
			return nil, fmt.Errorf("%w: drop body of %d bytes, want %d", ErrCorrupt, len(body), relTagSize)
		}
		rec = RelDrop{Rel: readRel(body)}
	case TypeLogicalMsg:
		if len(body) < 1 {
			return nil, fmt.Errorf("%w: empty logical message body", ErrCorrupt)
		}
		pl := int(body[0])
		if len(body) < 1+pl+4 {
			return nil, fmt.Errorf("%w: logical message body of %d bytes too short for prefix %d", ErrCorrupt, len(body), pl)
		}
		n := binary.LittleEndian.Uint32(body[1+pl:])
		if uint64(len(body)) != uint64(1+pl+4)+uint64(n) {
			return nil, fmt.Errorf("%w: logical message says %d payload bytes, body holds %d", ErrCorrupt, n, len(body)-(1+pl+4))
		}
		payload := make([]byte, n)
		copy(payload, body[1+pl+4:])
		rec = LogicalMessage{Prefix: string(body[1 : 1+pl]), Payload: payload}
	default:
		return nil, fmt.Errorf("%w: unknown record type %d", ErrCorrupt, uint8(t))
	}
	if err := rec.validate(); err != nil {
		// Well-framed bytes that break a limit are still corrupt input.
		return nil, fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	return rec, nil
}
