package pagecheck

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/stratadb/strata/clock"
	"github.com/stratadb/strata/disk/objstore"
	"github.com/stratadb/strata/engine/keys"
	"github.com/stratadb/strata/engine/lsn"
	"github.com/stratadb/strata/engine/shard"
	"github.com/stratadb/strata/engine/skproto"
	"github.com/stratadb/strata/engine/walrec"
	"github.com/stratadb/strata/net"
	"github.com/stratadb/strata/nodes/compute/walproposer"
	"github.com/stratadb/strata/nodes/node"
	"github.com/stratadb/strata/nodes/safekeeper/skapi"
)

// maxAppend bounds the records of one append (a preload is cut into
// appends of this many).
const maxAppend = 8

// Writer is a compute's WAL writer: through a walproposer it appends
// batches of page records (full images, partial writes, size changes) for
// random blocks of Rel and records every acknowledged commit in History.
type Writer struct {
	ID          string // the proposers' id prefix
	Tenant      shard.TenantID
	Timeline    shard.TimelineID
	Start       lsn.LSN
	Safekeepers []string
	Rel         keys.RelTag
	Blocks      int
	// OpTimeout bounds one append or commit wait.
	OpTimeout time.Duration
	History   *History
	// Preload first writes a full image of every block; once that commits
	// its LSN is the History's Floor, above which every block exists (so a
	// multi-block read answered not found is wrong).
	Preload bool

	seq int
}

// Run writes until ctx ends, replacing a proposer that is defeated or
// stops. Once History is stopped it keeps the last proposer running (the
// safekeepers learn the last commit LSN only from it, and the pageservers
// stream only what the safekeepers know committed).
func (wr *Writer) Run(ctx context.Context, env node.Env) {
	for ctx.Err() == nil {
		wp, err := walproposer.New(env, walproposer.Config{ID: fmt.Sprintf("%s/%d", wr.ID, wr.seq), TenantID: wr.Tenant.String(),
			TimelineID: wr.Timeline.String(), StartLSN: wr.Start, Safekeepers: wr.Safekeepers, PeerTimeout: time.Second,
			CallTimeout: time.Second, ReconnectBackoff: 20 * time.Millisecond, MaxReconnectBackoff: 500 * time.Millisecond})
		wr.seq++
		if err != nil {
			wr.History.Fail(fmt.Errorf("pagecheck: walproposer: %w", err))
			return
		}
		wp.Start(ctx)
		wr.drive(ctx, env, wp)
		if wr.History.Stopped() {
			for clock.Sleep(ctx, env.Clock, 100*time.Millisecond) == nil {
				if st, err := wp.Status(ctx); err != nil || st.Err != nil {
					break
				}
			}
		}
		wp.Stop()
		if clock.Sleep(ctx, env.Clock, 50*time.Millisecond) != nil {
			return
		}
	}
}

// drive appends batches of page records and waits for each to commit.
func (wr *Writer) drive(ctx context.Context, env node.Env, wp *walproposer.WALProposer) {
	for ctx.Err() == nil && !wr.History.Stopped() {
		preload := wr.Preload && wr.History.Floor() == 0
		var recs [][]byte
		if preload {
			for blk := range wr.Blocks {
				page := make([]byte, walrec.PageSize)
				for i := range page {
					page[i] = byte(env.Rand.Uint32())
				}
				recs = append(recs, walrec.Encode(walrec.FullPageImage{Rel: wr.Rel, Blk: uint32(blk), Page: page}))
			}
		} else {
			for range 1 + env.Rand.IntN(4) {
				recs = append(recs, walrec.Encode(wr.record(env)))
			}
		}
		var end lsn.LSN
		var err error
		for len(recs) > 0 && err == nil { // at most maxAppend records per append
			k := min(len(recs), maxAppend)
			actx, cancel := clock.WithTimeout(env.Clock, ctx, wr.OpTimeout)
			end, err = wp.Append(actx, recs[:k])
			cancel()
			recs = recs[k:]
		}
		if err != nil {
			if errors.Is(err, skproto.ErrDefeated) || errors.Is(err, walproposer.ErrStopped) {
				return
			}
			continue
		}
		wctx, cancel := clock.WithTimeout(env.Clock, ctx, wr.OpTimeout)
		err = wp.WaitCommitted(wctx, end)
		cancel()
		switch {
		case err == nil:
			wr.History.Committed(end)
			if preload {
				wr.History.setFloor(end)
			}
		case errors.Is(err, skproto.ErrDefeated) || errors.Is(err, walproposer.ErrStopped):
			return
		}
		if clock.Sleep(ctx, env.Clock, time.Duration(env.Rand.IntN(30))*time.Millisecond) != nil {
			return
		}
	}
}

func (wr *Writer) record(env node.Env) walrec.Record {
	blk := uint32(env.Rand.IntN(wr.Blocks))
	switch env.Rand.IntN(5) {
	case 0, 1:
		page := make([]byte, walrec.PageSize)
		for i := range page {
			page[i] = byte(env.Rand.Uint32())
		}
		return walrec.FullPageImage{Rel: wr.Rel, Blk: blk, Page: page}
	case 4:
		return walrec.RelSizeChange{Rel: wr.Rel, NBlocks: uint32(env.Rand.IntN(wr.Blocks + 1))}
	default:
		data := make([]byte, 1+env.Rand.IntN(64))
		for i := range data {
			data[i] = byte(env.Rand.Uint32())
		}
		return walrec.PageWrite{Rel: wr.Rel, Blk: blk, Offset: uint16(env.Rand.IntN(walrec.PageSize - len(data))), Data: data}
	}
}

// WAL reads back, after healing, what the safekeepers committed.
type WAL struct {
	Env         node.Env
	Safekeepers []string
	Tenant      shard.TenantID
	Timeline    shard.TimelineID
	Start       lsn.LSN
	// Sleep waits in the world's time (sim.World.Sleep); Now reads it.
	Sleep func(time.Duration)
	Now   func() time.Duration
	// Store, if set, holds the safekeepers' offloaded segments of
	// SegmentBytes each: WAL a safekeeper removed (it answers OutOfRange)
	// is read from there (offload.go).
	Store        objstore.Store
	SegmentBytes lsn.LSN
}

// ErrNoProgress is a liveness failure of the WAL read-back.
var ErrNoProgress = errors.New("pagecheck: no progress after healing")

// FinalCommit waits, once the workload stopped appending, until the
// highest commit LSN any safekeeper reports (or acked, the highest the
// workload was acknowledged) is steady, and returns it: an append whose
// acknowledgement was lost may still have committed.
func (a WAL) FinalCommit(ctx context.Context, acked lsn.LSN, deadline time.Duration) (lsn.LSN, error) {
	prev := lsn.LSN(0)
	for {
		a.Sleep(500 * time.Millisecond)
		cur := acked
		for _, addr := range a.Safekeepers {
			cctx, cancel := clock.WithTimeout(a.Env.Clock, ctx, time.Second)
			if conn, err := a.Env.Net.Dial(cctx, addr); err == nil {
				if st, err := skapi.Status(cctx, conn, a.Tenant.String(), a.Timeline.String()); err == nil {
					cur = max(cur, lsn.LSN(st.GetCommitLsn()))
				}
				conn.Close()
			}
			cancel()
		}
		if cur == prev {
			return cur, nil
		}
		prev = cur
		if a.Now() >= deadline {
			return 0, fmt.Errorf("%w: the commit LSN did not settle (last %s)", ErrNoProgress, cur)
		}
	}
}

// Committed reads [Start, commit) from a safekeeper that has it.
func (a WAL) Committed(ctx context.Context, commit lsn.LSN, deadline time.Duration) ([]byte, error) {
	for {
		for _, addr := range a.Safekeepers {
			b, err := a.read(ctx, addr, commit)
			if err == nil {
				return b, nil
			}
		}
		if a.Now() >= deadline {
			return nil, fmt.Errorf("%w: no safekeeper serves the committed WAL up to %s", ErrNoProgress, commit)
		}
		a.Sleep(100 * time.Millisecond)
	}
}

func (a WAL) read(ctx context.Context, addr string, commit lsn.LSN) ([]byte, error) {
	cctx, cancel := clock.WithTimeout(a.Env.Clock, ctx, 5*time.Second)
	defer cancel()
	conn, err := a.Env.Net.Dial(cctx, addr)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	var out []byte
	for pos := a.Start; pos < commit; {
		r, err := skapi.ReadWal(cctx, conn, &skapi.ReadWalRequest{Timeline: skapi.Ref(a.Tenant.String(), a.Timeline.String()),
			StartLsn: uint64(pos), EndLsn: uint64(commit)})
		if err != nil && a.Store != nil && net.CodeOf(err) == net.OutOfRange {
			b, oerr := a.offloaded(cctx, pos, commit)
			if oerr != nil {
				return nil, fmt.Errorf("%w (offloaded: %v)", err, oerr)
			}
			out = append(out, b...)
			pos += lsn.LSN(len(b))
			continue
		}
		if err != nil {
			return nil, err
		}
		if len(r.GetWal()) == 0 {
			return nil, fmt.Errorf("no WAL at %s", pos)
		}
		out = append(out, r.GetWal()...)
		pos += lsn.LSN(len(r.GetWal()))
	}
	return out, nil
}
