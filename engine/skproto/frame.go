package skproto

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
)

// FrameHeaderBytes is the size of a WAL frame header: payload length (u32 LE)
// then crc32c (u32 LE) over the length bytes and the payload.
const FrameHeaderBytes = 8

// MaxFramePayloadBytes bounds one record so a torn length cannot make a
// reader allocate or skip gigabytes.
const MaxFramePayloadBytes = 4 << 20

// castagnoli returns the crc32c table (the standard library caches it).
func castagnoli() *crc32.Table { return crc32.MakeTable(crc32.Castagnoli) }

// ErrFrame reports a malformed or corrupt WAL frame.
var ErrFrame = errors.New("skproto: bad WAL frame")

// AppendFrame appends payload as one frame to dst.
func AppendFrame(dst, payload []byte) []byte {
	var h [FrameHeaderBytes]byte
	binary.LittleEndian.PutUint32(h[0:4], uint32(len(payload)))
	c := crc32.Update(0, castagnoli(), h[0:4])
	c = crc32.Update(c, castagnoli(), payload)
	binary.LittleEndian.PutUint32(h[4:8], c)
	dst = append(dst, h[:]...)
	return append(dst, payload...)
}

// FrameLen returns the total size of the frame at the start of b, or an
// error if b does not start with a complete, valid frame.
func FrameLen(b []byte) (int, error) {
	if len(b) < FrameHeaderBytes {
		return 0, fmt.Errorf("%w: short header (%d bytes)", ErrFrame, len(b))
	}
	n := binary.LittleEndian.Uint32(b[0:4])
	if n > MaxFramePayloadBytes {
		return 0, fmt.Errorf("%w: payload length %d over limit", ErrFrame, n)
	}
	total := FrameHeaderBytes + int(n)
	if len(b) < total {
		return 0, fmt.Errorf("%w: truncated payload (%d of %d bytes)", ErrFrame, len(b)-FrameHeaderBytes, n)
	}
	c := crc32.Update(0, castagnoli(), b[0:4])
	c = crc32.Update(c, castagnoli(), b[FrameHeaderBytes:total])
	if c != binary.LittleEndian.Uint32(b[4:8]) {
		return 0, fmt.Errorf("%w: checksum mismatch", ErrFrame)
	}
	return total, nil
}

// PeekFrameLen returns the total size the frame at the start of b declares,
// without checking its checksum (used to cut send batches on boundaries of
// WAL already known to be valid).
func PeekFrameLen(b []byte) (int, bool) {
	if len(b) < FrameHeaderBytes {
		return 0, false
	}
	n := binary.LittleEndian.Uint32(b[0:4])
	if n > MaxFramePayloadBytes {
		return 0, false
	}
	return FrameHeaderBytes + int(n), true
}

// ValidPrefix returns the length of the longest prefix of b made of whole
// valid frames. It is how a safekeeper finds the end of its WAL.
func ValidPrefix(b []byte) int {
	off := 0
	for off < len(b) {
		n, err := FrameLen(b[off:])
		if err != nil {
			break
		}
		off += n
	}
	return off
}

// SplitFrames returns the payloads of the frames in b, which must consist of
// whole valid frames.
func SplitFrames(b []byte) ([][]byte, error) {
	var out [][]byte
	for off := 0; off < len(b); {
		n, err := FrameLen(b[off:])
		if err != nil {
			return nil, fmt.Errorf("at offset %d: %w", off, err)
		}
		out = append(out, b[off+FrameHeaderBytes:off+n])
		off += n
	}
	return out, nil
}
