package walstore

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"

	"github.com/stratadb/strata/engine/lsn"
	"github.com/stratadb/strata/engine/skproto"
)

// ControlMagic opens every control file ("SKCF").
const ControlMagic uint32 = 0x534B4346

// ControlVersion is the control file format version.
const ControlVersion uint32 = 1

// maxControlBytes bounds a control file so a corrupt length cannot make a
// reader allocate without limit.
const maxControlBytes = 1 << 20

// Errors.
var (
	// ErrCorrupt reports a control file or WAL segment that fails its
	// checksum or contradicts the persisted state.
	ErrCorrupt = errors.New("walstore: corrupt")
	// ErrNotFound reports a timeline with no control file.
	ErrNotFound = errors.New("walstore: timeline not found")
	// ErrRange reports a read or write outside the WAL held.
	ErrRange = errors.New("walstore: LSN out of range")
	// ErrRemoved reports a read below the removal horizon: that WAL was
	// removed from this safekeeper after every pageserver had made it
	// remote and it had been offloaded (its segments are in object
	// storage under wal/<tenant>/<timeline>/).
	ErrRemoved = errors.New("walstore: WAL removed")
)

// castagnoli returns the crc32c table (the standard library caches it).
func castagnoli() *crc32.Table { return crc32.MakeTable(crc32.Castagnoli) }

// Control is the persistent state of one timeline.
type Control struct {
	TenantID   string
	TimelineID string
	// SegmentBytes is the WAL segment size, fixed at creation.
	SegmentBytes int64
	// Acceptor is the consensus state (term, history, commit, start).
	Acceptor skproto.AcceptorState
	// BackupLSN: WAL below it is in the object store.
	BackupLSN lsn.LSN
	// VerifiedLSN is a frame boundary at or below BackupLSN (the start of
	// the next segment to offload) where the offloader's frame check of
	// that segment starts (0: from StartLSN).
	VerifiedLSN lsn.LSN `json:",omitempty"`
	// HorizonLSN is the removal horizon: a frame boundary below which WAL
	// may have been removed. Segments wholly below it (segment numbers
	// below HorizonLSN / SegmentBytes) are legitimately absent; reads
	// below it fail with ErrRemoved. 0: nothing removed.
	HorizonLSN lsn.LSN `json:",omitempty"`
}

// EncodeControl serialises c: magic, version, length, JSON, crc32c of all
// preceding bytes.
func EncodeControl(c Control) ([]byte, error) {
	body, err := json.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("walstore: encode control: %w", err)
	}
	b := make([]byte, 12, 12+len(body)+4)
	binary.LittleEndian.PutUint32(b[0:4], ControlMagic)
	binary.LittleEndian.PutUint32(b[4:8], ControlVersion)
	binary.LittleEndian.PutUint32(b[8:12], uint32(len(body)))
	b = append(b, body...)
	return binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, castagnoli())), nil
}

// DecodeControl parses and verifies a control file.
func DecodeControl(b []byte) (Control, error) {
	var c Control
	if len(b) < 16 || len(b) > maxControlBytes {
		return c, fmt.Errorf("%w: control file of %d bytes", ErrCorrupt, len(b))
	}
	if m := binary.LittleEndian.Uint32(b[0:4]); m != ControlMagic {
		return c, fmt.Errorf("%w: control magic %#x", ErrCorrupt, m)
	}
	n := int(binary.LittleEndian.Uint32(b[8:12]))
	if 12+n+4 != len(b) {
		return c, fmt.Errorf("%w: control length %d in a %d-byte file", ErrCorrupt, n, len(b))
	}
	if crc32.Checksum(b[:12+n], castagnoli()) != binary.LittleEndian.Uint32(b[12+n:]) {
		return c, fmt.Errorf("%w: control checksum mismatch", ErrCorrupt)
	}
	if v := binary.LittleEndian.Uint32(b[4:8]); v != ControlVersion {
		return c, fmt.Errorf("%w: control version %d, want %d", ErrCorrupt, v, ControlVersion)
	}
	if err := json.Unmarshal(b[12:12+n], &c); err != nil {
		return c, fmt.Errorf("%w: control body: %v", ErrCorrupt, err)
	}
	if c.SegmentBytes <= 0 {
		return c, fmt.Errorf("%w: segment size %d", ErrCorrupt, c.SegmentBytes)
	}
	if err := c.Acceptor.History.Validate(); err != nil {
		return c, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	return c, nil
}
