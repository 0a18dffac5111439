package pageserver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"

	"github.com/stratadb/strata/engine/keys"
	"github.com/stratadb/strata/engine/lsn"
	"github.com/stratadb/strata/engine/timeline"
	"github.com/stratadb/strata/engine/walrec"
	"github.com/stratadb/strata/net"
	"github.com/stratadb/strata/nodes/pageserver/pageapi"
)

// The metadata requests of the page service — GetDbSize, GetSlruSegment,
// GetBaseBackup (basebackup.go) — read key ranges of shard 0 with the
// engine's range scan (docs/pageserver.md, "Base backup").

// ErrInconsistent: the stored keys contradict each other (an SLRU segment
// size with a block missing, a size key that does not decode). Internal.
var ErrInconsistent = errors.New("pageserver: stored keys are inconsistent")

// scanTimeline is a Timeline that can also scan a key range at an LSN:
// what the metadata requests need. shardTimeline is one.
type scanTimeline interface {
	Timeline
	// Scan starts a range scan (timeline.Timeline.Scan); the caller closes
	// it.
	Scan(r keys.Range, at lsn.LSN) (*timeline.Scanner, error)
}

var _ scanTimeline = (*shardTimeline)(nil)

// Scan implements scanTimeline.
func (s *shardTimeline) Scan(r keys.Range, at lsn.LSN) (*timeline.Scanner, error) {
	return s.tl.Scan(r, at)
}

// relationKeys is the range of the relation family (field1 00): blocks,
// sizes, the database, relation-map and relation directories.
func relationKeys() keys.Range { return keys.Range{Start: keys.Min, End: keys.Key{Field1: 0x01}} }

// checkEvery is how many keys a scan visits between checks of its
// context, so a cancelled request stops soon without a check per key.
const checkEvery = 256

// openShard0 authenticates a metadata call, resolves its timeline and
// checks that it is shard 0 (the only one that answers these requests).
func (ps *PageService) openShard0(ctx context.Context, method string) (pageapi.Target, scanTimeline, error) {
	target, tl, err := ps.open(ctx)
	if err != nil {
		return target, nil, err
	}
	if tl.Shard().Number != 0 {
		return target, nil, fmt.Errorf("%w: %s sent to shard %s", ErrNotShard0, method, tl.Shard().Index())
	}
	st, ok := tl.(scanTimeline)
	if !ok {
		return target, nil, fmt.Errorf("pageserver: %s: timeline %T cannot scan key ranges", method, tl)
	}
	return target, st, nil
}

// getDbSize answers a database's size in bytes (shard 0 only).
func (ps *PageService) getDbSize(ctx context.Context, req *pageapi.GetDbSizeRequest) (*pageapi.GetDbSizeResponse, error) {
	resp, err := ps.dbSize(ctx, req)
	err = StatusOf(err)
	ps.count("GetDbSize", net.CodeOf(err))
	return resp, err
}

func (ps *PageService) dbSize(ctx context.Context, req *pageapi.GetDbSizeRequest) (*pageapi.GetDbSizeResponse, error) {
	_, tl, err := ps.openShard0(ctx, "GetDbSize")
	if err != nil {
		return nil, err
	}
	at, err := ps.readLSN(ctx, tl, req.ReadLsn)
	if err != nil {
		return nil, err
	}
	sc, err := tl.Scan(relationKeys(), at)
	if err != nil {
		return nil, err
	}
	defer sc.Close()
	n, err := dbBytes(ctx, sc, req.DbOid)
	if err != nil {
		return nil, fmt.Errorf("size of database %d at %s: %w", req.DbOid, at, err)
	}
	return &pageapi.GetDbSizeResponse{NumBytes: n}, nil
}

// dbBytes sums num_blocks × 8192 over the relation size keys of database
// db, in every tablespace, that exist at the scan's LSN. It visits only the
// keys it needs: it seeks over other databases and over each relation's
// blocks to its size key, so its cost grows with the number of relations
// (and tablespaces), not blocks.
func dbBytes(ctx context.Context, sc *timeline.Scanner, db uint32) (uint64, error) {
	var total uint64
	sc.Seek(keys.Key{Field3: db})
	for i := 0; sc.Next(); i++ {
		if i%checkEvery == 0 {
			if err := ctx.Err(); err != nil {
				return 0, err
			}
		}
		k := sc.Key()
		switch {
		case k.Field3 < db:
			sc.Seek(keys.Key{Field2: k.Field2, Field3: db})
			continue
		case k.Field3 > db:
			if k.Field2 == math.MaxUint32 {
				return total, nil
			}
			sc.Seek(keys.Key{Field2: k.Field2 + 1, Field3: db})
			continue
		}
		switch keys.ClassOf(k) {
		case keys.ClassRelBlock:
			rel, _ := k.ToRelTag()
			sc.Seek(keys.RelSizeKey(rel))
		case keys.ClassRelSize:
			n, dropped, err := walrec.DecodeSize(sc.Value())
			if err != nil || dropped {
				return 0, fmt.Errorf("%w: size key %s: %v", ErrInconsistent, k, err)
			}
			total += uint64(n) * keys.BlockSize
		}
		// The database's relation map and directory (relnode 0) hold no size.
	}
	return total, sc.Err()
}

// SlruPagesPerSegment is the most blocks an SLRU segment holds (Postgres'
// SLRU_PAGES_PER_SEGMENT).
const SlruPagesPerSegment = 32

// getSlruSegment answers one SLRU segment (shard 0 only).
func (ps *PageService) getSlruSegment(ctx context.Context, req *pageapi.GetSlruSegmentRequest) (*pageapi.GetSlruSegmentResponse, error) {
	resp, err := ps.slruSegment(ctx, req)
	err = StatusOf(err)
	ps.count("GetSlruSegment", net.CodeOf(err))
	return resp, err
}

func (ps *PageService) slruSegment(ctx context.Context, req *pageapi.GetSlruSegmentRequest) (*pageapi.GetSlruSegmentResponse, error) {
	_, tl, err := ps.openShard0(ctx, "GetSlruSegment")
	if err != nil {
		return nil, err
	}
	if req.Kind > keys.SlruMultiXactOffset {
		return nil, fmt.Errorf("%w: SLRU kind %d (0 clog, 1 multixact members, 2 multixact offsets)", ErrBadRequest, req.Kind)
	}
	at, err := ps.readLSN(ctx, tl, req.ReadLsn)
	if err != nil {
		return nil, err
	}
	seg, err := readSlruSegment(tl, req.Kind, req.Segno, at)
	if err != nil {
		return nil, fmt.Errorf("SLRU kind %d segment %d at %s: %w", req.Kind, req.Segno, at, err)
	}
	return &pageapi.GetSlruSegmentResponse{Segment: seg}, nil
}

// readSlruSegment assembles a segment from its size key and its block keys,
// read in one scan (one pinned layer set): blocks 0 to size-1, each a
// page. No size key is timeline.ErrNotFound; a size above
// SlruPagesPerSegment or a block missing below the size is ErrInconsistent.
func readSlruSegment(tl scanTimeline, kind keys.SlruKind, segno uint32, at lsn.LSN) ([]byte, error) {
	sizeKey := keys.SlruSizeKey(kind, segno)
	sc, err := tl.Scan(keys.Range{Start: keys.SlruBlockKey(kind, segno, 0), End: sizeKey.Next()}, at)
	if err != nil {
		return nil, err
	}
	defer sc.Close()
	var pages [SlruPagesPerSegment][]byte
	size, found := uint32(0), false
	for sc.Next() {
		k := sc.Key()
		if k == sizeKey {
			n, dropped, err := walrec.DecodeSize(sc.Value())
			if err != nil || dropped {
				return nil, fmt.Errorf("%w: size key %s: %v", ErrInconsistent, k, err)
			}
			size, found = n, true
			continue
		}
		if blk := k.Field6; blk < SlruPagesPerSegment {
			pages[blk] = bytes.Clone(sc.Value())
		} else {
			sc.Seek(sizeKey) // no segment has blocks this far: straight to the size
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	switch {
	case !found:
		return nil, fmt.Errorf("%w: no SLRU segment there", timeline.ErrNotFound)
	case size > SlruPagesPerSegment:
		return nil, fmt.Errorf("%w: segment size %d blocks, at most %d", ErrInconsistent, size, SlruPagesPerSegment)
	}
	seg := make([]byte, 0, int(size)*keys.BlockSize)
	for blk := range size {
		if len(pages[blk]) != keys.BlockSize {
			return nil, fmt.Errorf("%w: block %d of a %d-block segment holds %d bytes", ErrInconsistent, blk, size, len(pages[blk]))
		}
		seg = append(seg, pages[blk]...)
	}
	return seg, nil
}
