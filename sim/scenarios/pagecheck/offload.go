package pagecheck

import (
	"context"
	"errors"
	"fmt"

	"github.com/stratadb/strata/disk/objstore"
	"github.com/stratadb/strata/engine/lsn"
	"github.com/stratadb/strata/engine/skproto"
	"github.com/stratadb/strata/nodes/safekeeper/skapi"
)

// ErrLostCommit: an acknowledged commit is not in the committed WAL read
// back (beyond its end, or not at a record's end).
var ErrLostCommit = errors.New("pagecheck: an acknowledged commit is missing from the committed WAL")

// maxOffloadedReads bounds the attempts of one offloaded segment read
// (transient object-store errors are retried).
const maxOffloadedReads = 20

// offloaded reads the committed WAL at pos (a frame boundary) from the
// offloaded segments (nodes/safekeeper/offload.go: object
// skapi.RemoteSegmentKey per segment, SegmentBytes long, the bytes below
// the timeline's start zero), as far as consecutive segments are there,
// and returns the whole frames from pos: the safekeepers removed WAL only
// below a frame boundary at or below what is offloaded, so the read can go
// on at a safekeeper from the end of what it returns.
func (a WAL) offloaded(ctx context.Context, pos, commit lsn.LSN) ([]byte, error) {
	if a.SegmentBytes <= 0 {
		return nil, fmt.Errorf("pagecheck: WAL.SegmentBytes not set")
	}
	var buf []byte
	for seg := pos / a.SegmentBytes; seg*a.SegmentBytes < commit; seg++ {
		data, err := a.segment(ctx, uint64(seg))
		if errors.Is(err, objstore.ErrNotFound) {
			break
		}
		if err != nil {
			return nil, err
		}
		if int64(len(data)) != int64(a.SegmentBytes) {
			return nil, fmt.Errorf("pagecheck: offloaded segment %d holds %d bytes, want %d", seg, len(data), a.SegmentBytes)
		}
		if len(buf) == 0 {
			data = data[pos-seg*a.SegmentBytes:]
		}
		buf = append(buf, data...)
	}
	// Whole frames only, and none past the commit LSN.
	off := 0
	for off < len(buf) && pos+lsn.LSN(off) < commit {
		n, err := skproto.FrameLen(buf[off:])
		if err != nil || off+n > len(buf) || pos+lsn.LSN(off+n) > commit {
			break
		}
		off += n
	}
	if off == 0 {
		return nil, fmt.Errorf("pagecheck: no whole frame at %s in the offloaded segments", pos)
	}
	return buf[:off], nil
}

// segment reads one offloaded segment, retrying transient errors.
func (a WAL) segment(ctx context.Context, seg uint64) ([]byte, error) {
	key := skapi.RemoteSegmentKey(a.Tenant.String(), a.Timeline.String(), seg)
	var err error
	for range maxOffloadedReads {
		var data []byte
		if data, err = a.Store.Get(ctx, key); err == nil || !objstore.Retryable(err) {
			return data, err
		}
	}
	return nil, err
}

// CheckAcked checks that every commit LSN the workload was acknowledged
// is in the committed WAL the model was built from, at the end of a
// record: WAL removal, offload, elections and crashes never lose an
// acknowledged commit.
func (h *History) CheckAcked(m *Model) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	i := 0
	for _, c := range h.commits {
		for i < len(m.recs) && m.recs[i].end < c {
			i++
		}
		if i == len(m.recs) || m.recs[i].end != c {
			return fmt.Errorf("%w: acknowledged %s, the committed WAL has %d records", ErrLostCommit, c, len(m.recs))
		}
	}
	return nil
}
