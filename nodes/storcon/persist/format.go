package persist

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"strconv"
	"strings"
)

// On-disk format of the embedded store (see the package doc for the
// protocol that writes it).
const (
	// MaxRecordBytes bounds one log record's payload: one transaction's
	// encoding. A transaction that would encode larger is refused with
	// ErrInvalid before anything is written.
	MaxRecordBytes = 64 << 20

	// frameHeaderBytes is a record's header: payload length, payload
	// crc32c, and a crc32c of those 8 bytes, so a damaged length is told
	// apart from a short tail.
	frameHeaderBytes = 12

	snapshotName  = "snapshot"
	snapshotMagic = "STRCSNP1"
	// snapshotHeaderBytes: magic, payload length, payload crc32c.
	snapshotHeaderBytes = len(snapshotMagic) + 8

	logPrefix = "log-"
	// logNameDigits is the width of the first sequence number in a log's
	// name, so that lexical order is numeric order.
	logNameDigits = 20
)

func crc(b []byte) uint32 { return crc32.Checksum(b, crc32.MakeTable(crc32.Castagnoli)) }

// encodeFrame appends payload's record to dst.
func encodeFrame(dst, payload []byte) []byte {
	var h [frameHeaderBytes]byte
	binary.LittleEndian.PutUint32(h[0:4], uint32(len(payload)))
	binary.LittleEndian.PutUint32(h[4:8], crc(payload))
	binary.LittleEndian.PutUint32(h[8:12], crc(h[0:8]))
	dst = append(dst, h[:]...)
	return append(dst, payload...)
}

// encodeTxn encodes x as one record, or refuses it as too large.
func encodeTxn(x *txn) ([]byte, error) {
	payload, err := json.Marshal(x)
	if err != nil {
		return nil, fmt.Errorf("persist: encode transaction %d: %w", x.Seq, err)
	}
	if len(payload) > MaxRecordBytes {
		return nil, fmt.Errorf("%w: transaction of %d bytes (limit MaxRecordBytes = %d)", ErrInvalid, len(payload), MaxRecordBytes)
	}
	return encodeFrame(nil, payload), nil
}

func decodeJSON(b []byte, v any) error {
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		return err
	}
	if d.More() {
		return fmt.Errorf("trailing data after the JSON value")
	}
	return nil
}

// decodeLog parses a log file's bytes. It returns the transactions of the
// longest valid prefix and that prefix's length in bytes. The rest, if any,
// is a torn tail — what a crash can leave of the one unsynced append at the
// end of the file — when it is:
//
//   - shorter than a record header;
//   - all zero bytes (a file system that extended the file but never wrote
//     the data);
//   - a record whose header checks but which runs past the end of the file
//     (only a prefix of the append survived); or
//   - a record whose header checks and which ends exactly at the end of the
//     file but whose payload fails its checksum (a sector of it kept old
//     content).
//
// Anything else — a record that fails its checksum with more bytes after
// it, a damaged header followed by non-zero bytes, a record that checks but
// does not decode — is corruption in the middle of the log: decodeLog
// returns ErrCorrupt and never drops what follows.
func decodeLog(b []byte) (txns []txn, valid int, err error) {
	off := 0
	for off < len(b) {
		rem := b[off:]
		if len(rem) < frameHeaderBytes {
			return txns, off, nil
		}
		n := binary.LittleEndian.Uint32(rem[0:4])
		if binary.LittleEndian.Uint32(rem[8:12]) != crc(rem[0:8]) {
			if allZero(rem) {
				return txns, off, nil
			}
			return nil, 0, fmt.Errorf("%w: log record header at offset %d fails its checksum", ErrCorrupt, off)
		}
		if n == 0 || n > MaxRecordBytes {
			return nil, 0, fmt.Errorf("%w: log record at offset %d claims %d bytes", ErrCorrupt, off, n)
		}
		end := frameHeaderBytes + int(n)
		if end > len(rem) {
			return txns, off, nil
		}
		payload := rem[frameHeaderBytes:end]
		if binary.LittleEndian.Uint32(rem[4:8]) != crc(payload) {
			if end == len(rem) {
				return txns, off, nil
			}
			return nil, 0, fmt.Errorf("%w: log record at offset %d fails its checksum and %d bytes follow it", ErrCorrupt, off, len(rem)-end)
		}
		var x txn
		if err := decodeJSON(payload, &x); err != nil {
			return nil, 0, fmt.Errorf("%w: log record at offset %d: %w", ErrCorrupt, off, err)
		}
		txns = append(txns, x)
		off += end
	}
	return txns, off, nil
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// snapshot is the state at one transaction: the whole of both tables.
type snapshot struct {
	Seq    uint64        `json:"seq"`
	Nodes  []Node        `json:"nodes"`
	Shards []TenantShard `json:"shards"`
}

func encodeSnapshot(seq uint64, t *tables) ([]byte, error) {
	payload, err := json.Marshal(snapshot{Seq: seq, Nodes: t.listNodes(), Shards: t.listShards(nil)})
	if err != nil {
		return nil, fmt.Errorf("persist: encode snapshot: %w", err)
	}
	out := make([]byte, snapshotHeaderBytes, snapshotHeaderBytes+len(payload))
	copy(out, snapshotMagic)
	binary.LittleEndian.PutUint32(out[len(snapshotMagic):], uint32(len(payload)))
	binary.LittleEndian.PutUint32(out[len(snapshotMagic)+4:], crc(payload))
	return append(out, payload...), nil
}

// decodeSnapshot checks and parses a snapshot file. A snapshot is written
// atomically (disk.WriteFileAtomic), so any damage is corruption.
func decodeSnapshot(b []byte) (uint64, *tables, error) {
	if len(b) < snapshotHeaderBytes || string(b[:len(snapshotMagic)]) != snapshotMagic {
		return 0, nil, fmt.Errorf("%w: snapshot has no valid header", ErrCorrupt)
	}
	n := binary.LittleEndian.Uint32(b[len(snapshotMagic):])
	payload := b[snapshotHeaderBytes:]
	if int64(n) != int64(len(payload)) || binary.LittleEndian.Uint32(b[len(snapshotMagic)+4:]) != crc(payload) {
		return 0, nil, fmt.Errorf("%w: snapshot fails its length or checksum", ErrCorrupt)
	}
	var s snapshot
	if err := decodeJSON(payload, &s); err != nil {
		return 0, nil, fmt.Errorf("%w: snapshot: %w", ErrCorrupt, err)
	}
	t := newTables()
	for _, n := range s.Nodes {
		if _, dup := t.nodes[n.ID]; dup {
			return 0, nil, fmt.Errorf("%w: snapshot names node %d twice", ErrCorrupt, n.ID)
		}
		t.nodes[n.ID] = n
	}
	for _, sh := range s.Shards {
		if _, dup := t.shard(sh.ID); dup {
			return 0, nil, fmt.Errorf("%w: snapshot names shard %s twice", ErrCorrupt, sh.ID)
		}
		if err := t.apply(&txn{PutShards: []TenantShard{sh}}); err != nil {
			return 0, nil, err
		}
	}
	if err := t.validate(); err != nil {
		return 0, nil, fmt.Errorf("%w: snapshot: %w", ErrCorrupt, err)
	}
	return s.Seq, t, nil
}

// logName is the name of the log whose first transaction is first.
func logName(first uint64) string { return fmt.Sprintf("%s%0*d", logPrefix, logNameDigits, first) }

// parseLogName returns the first transaction of a log file name.
func parseLogName(name string) (uint64, bool) {
	digits, ok := strings.CutPrefix(name, logPrefix)
	if !ok || len(digits) != logNameDigits {
		return 0, false
	}
	first, err := strconv.ParseUint(digits, 10, 64)
	if err != nil || logName(first) != name {
		return 0, false
	}
	return first, true
}
