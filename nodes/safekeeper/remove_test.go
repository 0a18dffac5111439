package safekeeper

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/stratadb/strata/engine/lsn"
	"github.com/stratadb/strata/engine/skproto"
	"github.com/stratadb/strata/nodes/node"
	"github.com/stratadb/strata/nodes/safekeeper/skapi"
	"github.com/stratadb/strata/nodes/safekeeper/walstore"
	"github.com/stratadb/strata/sim"
)

const (
	rmSeg    = 256
	rmStart  = lsn.LSN(0x100)
	rmFrame  = 48 // 40-byte payloads
	rmExpiry = time.Minute
)

// removeRig is one safekeeper (no broker) in the simulator with a
// timeline holding committed WAL of many segments.
type removeRig struct {
	w   *sim.World
	n   *sim.Node
	sk  *Safekeeper
	tl  *timeline
	wal []byte
	end lsn.LSN
}

// frameAt is the LSN after the first i frames (a frame boundary).
func frameAt(i int) lsn.LSN { return rmStart + lsn.LSN(i*rmFrame) }

func withRemoveRig(t *testing.T, cfg Config, body func(ctx context.Context, r *removeRig) error) {
	t.Helper()
	w := sim.New(sim.Options{Seed: 1})
	err := w.Run(func(w *sim.World) error {
		r := &removeRig{w: w}
		cfg.NodeID, cfg.ListenAddr, cfg.SegmentBytes, cfg.Offload = "sk-1", "sk-1:1", rmSeg, true
		if cfg.FeedbackExpiry == 0 {
			cfg.FeedbackExpiry = rmExpiry
		}
		r.n = w.AddNode("sk-1", func(env node.Env) error {
			var err error
			if r.sk, err = New(env, cfg); err != nil {
				return err
			}
			return r.sk.loadAll()
		})
		w.Sleep(time.Millisecond)
		ctx := context.Background()
		var err error
		if r.tl, err = r.sk.getOrCreate(ctx, skproto.Greeting{TenantID: "t1", TimelineID: "00ff", StartLSN: rmStart}); err != nil {
			return err
		}
		for i := 0; i < 60; i++ {
			r.wal = skproto.AppendFrame(r.wal, bytes.Repeat([]byte{byte(i)}, rmFrame-skproto.FrameHeaderBytes))
		}
		r.end = rmStart + lsn.LSN(len(r.wal))
		if _, err := r.tl.step(ctx, []skproto.Msg{
			skproto.VoteRequest{Term: 1},
			skproto.ProposerElected{Term: 1, StartStreamingAt: rmStart, History: skproto.TermHistory{{Term: 1, LSN: rmStart}}},
			skproto.AppendRequest{Term: 1, BeginLSN: rmStart, EndLSN: r.end, CommitLSN: r.end, WAL: r.wal},
			skproto.AppendRequest{Term: 1, BeginLSN: r.end, EndLSN: r.end, CommitLSN: r.end},
		}); err != nil {
			return err
		}
		// Past the start-up grace: from here on only the reports count.
		w.Sleep(cfg.FeedbackExpiry + time.Second)
		return body(ctx, r)
	})
	if err != nil {
		t.Fatal(err)
	}
}

func (r *removeRig) offloadAll(ctx context.Context) error {
	for {
		more, err := r.sk.offloadTimeline(ctx, r.tl)
		if err != nil || !more {
			return err
		}
	}
}

func (r *removeRig) report(ctx context.Context, ps string, remote lsn.LSN) error {
	return r.tl.recordFeedback(ctx, &skapi.PageserverFeedback{PageserverId: ps, LastRecordLsn: uint64(r.end),
		DiskConsistentLsn: uint64(r.end), RemoteConsistentLsn: uint64(remote)})
}

// readFrom reads the WAL from at to the end, as a pageserver re-ingesting
// from its remote_consistent_lsn would.
func (r *removeRig) readFrom(ctx context.Context, at lsn.LSN) error {
	got, err := r.sk.ReadWAL(ctx, "t1", "00ff", at, r.end)
	if err != nil {
		return err
	}
	if !bytes.Equal(got, r.wal[at-rmStart:]) {
		return fmt.Errorf("WAL from %s differs", at)
	}
	return nil
}

func (r *removeRig) horizon(ctx context.Context) lsn.LSN {
	s, _ := r.tl.snapshot(ctx)
	return s.HorizonLSN
}

// TestRemoveAfterFeedbackAndOffload: with every segment offloaded and one
// pageserver's remote_consistent_lsn in segment 4, the sealed segments
// wholly below it (1..3) are removed and nothing more; reads below the
// horizon are ErrRemoved, from it the WAL reads as written, also after a
// restart, and offload goes on above it.
func TestRemoveAfterFeedbackAndOffload(t *testing.T) {
	withRemoveRig(t, Config{}, func(ctx context.Context, r *removeRig) error {
		if err := r.offloadAll(ctx); err != nil {
			return err
		}
		remote := frameAt(20) // 0x4c0, in segment 4
		if err := r.report(ctx, "ps-1", remote); err != nil {
			return err
		}
		n, err := r.sk.removeTimeline(ctx, r.tl)
		if err != nil || n != 3 {
			return fmt.Errorf("removed %d segments (%v), want 3", n, err)
		}
		if h := r.horizon(ctx); h != remote {
			return fmt.Errorf("horizon %s, want the remote_consistent_lsn %s", h, remote)
		}
		if got := metricValue(r.sk.metrics.removedSegs); got != 3 {
			return fmt.Errorf("removed segments metric %v", got)
		}
		if got := metricValue(r.sk.metrics.removedBytes); got != 3*rmSeg {
			return fmt.Errorf("removed bytes metric %v", got)
		}
		if got := metricValue(r.sk.metrics.horizon.WithLabelValues("t1", "00ff")); got != float64(remote) {
			return fmt.Errorf("horizon metric %v", got)
		}
		if err := r.readFrom(ctx, remote); err != nil {
			return err
		}
		if err := r.readFrom(ctx, frameAt(19)); !errors.Is(err, walstore.ErrRemoved) {
			return fmt.Errorf("read below the horizon: %v, want ErrRemoved", err)
		}
		if n, err := r.sk.removeTimeline(ctx, r.tl); err != nil || n != 0 {
			return fmt.Errorf("second round removed %d (%v)", n, err)
		}
		// Restart in place: the horizon is durable, the missing prefix is
		// accepted, and the WAL goes on (more segments written and
		// offloaded above the horizon).
		if err := r.tl.load(); err != nil {
			return fmt.Errorf("reload after removal: %w", err)
		}
		if h := r.horizon(ctx); h != remote {
			return fmt.Errorf("horizon after reload %s, want %s", h, remote)
		}
		if err := r.readFrom(ctx, remote); err != nil {
			return err
		}
		var more []byte
		for i := 0; i < 12; i++ {
			more = skproto.AppendFrame(more, bytes.Repeat([]byte{0xa0 + byte(i)}, rmFrame-skproto.FrameHeaderBytes))
		}
		end2 := r.end + lsn.LSN(len(more))
		if _, err := r.tl.step(ctx, []skproto.Msg{
			skproto.ProposerElected{Term: 1, StartStreamingAt: r.end, History: skproto.TermHistory{{Term: 1, LSN: rmStart}}},
			skproto.AppendRequest{Term: 1, BeginLSN: r.end, EndLSN: end2, CommitLSN: end2, WAL: more},
			skproto.AppendRequest{Term: 1, BeginLSN: end2, EndLSN: end2, CommitLSN: end2},
		}); err != nil {
			return err
		}
		r.wal, r.end = append(r.wal, more...), end2
		if err := r.offloadAll(ctx); err != nil {
			return fmt.Errorf("offload after removal: %w", err)
		}
		last := uint64(end2)/rmSeg - 1
		got, err := r.w.Store().Get(ctx, skapi.RemoteSegmentKey("t1", "00ff", last))
		if err != nil || !bytes.Equal(got, r.wal[lsn.LSN(last*rmSeg)-rmStart:lsn.LSN((last+1)*rmSeg)-rmStart]) {
			return fmt.Errorf("segment %d offloaded after the removal: %v", last, err)
		}
		return r.readFrom(ctx, remote)
	})
}

// TestRemoveNeedsFeedbackAndOffload: nothing is removed while no
// pageserver has reported, while one reports remote_consistent_lsn 0 (it
// has made nothing remote), and below what is offloaded.
func TestRemoveNeedsFeedbackAndOffload(t *testing.T) {
	withRemoveRig(t, Config{}, func(ctx context.Context, r *removeRig) error {
		// Offloaded, no report.
		if err := r.offloadAll(ctx); err != nil {
			return err
		}
		if n, err := r.sk.removeTimeline(ctx, r.tl); err != nil || n != 0 {
			return fmt.Errorf("no feedback: removed %d (%v)", n, err)
		}
		// One pageserver far ahead, one that has uploaded nothing.
		if err := r.report(ctx, "ps-1", frameAt(50)); err != nil {
			return err
		}
		if err := r.report(ctx, "ps-2", 0); err != nil {
			return err
		}
		if n, err := r.sk.removeTimeline(ctx, r.tl); err != nil || n != 0 {
			return fmt.Errorf("a pageserver at remote 0: removed %d (%v)", n, err)
		}
		return r.readFrom(ctx, rmStart)
	})
	withRemoveRig(t, Config{}, func(ctx context.Context, r *removeRig) error {
		// Reported far ahead, offloaded only below segment 3 (as if the
		// offloader had uploaded segments 1 and 2): the offloaded WAL
		// bounds the horizon.
		r.tl.backupLSN = 3 * rmSeg
		if err := r.report(ctx, "ps-1", frameAt(50)); err != nil {
			return err
		}
		n, err := r.sk.removeTimeline(ctx, r.tl)
		// The last frame boundary at or below 3·S is 736 (frames of 48
		// from 256), in segment 2: only segment 1 lies wholly below it.
		if err != nil || n != 1 {
			return fmt.Errorf("removed %d (%v), want 1 (segment 1, below the frame boundary under the offloaded 3·S)", n, err)
		}
		if h := r.horizon(ctx); h != frameAt(10) {
			return fmt.Errorf("horizon %s, want %s: the last frame boundary at or below %d", h, frameAt(10), 3*rmSeg)
		}
		return r.readFrom(ctx, frameAt(10))
	})
}

// TestRemoveFeedbackExpires: a pageserver that stops reporting (detached)
// pins the WAL for FeedbackExpiry, then no longer.
func TestRemoveFeedbackExpires(t *testing.T) {
	withRemoveRig(t, Config{}, func(ctx context.Context, r *removeRig) error {
		if err := r.offloadAll(ctx); err != nil {
			return err
		}
		old, cur := frameAt(8), frameAt(40)
		if err := r.report(ctx, "ps-old", old); err != nil {
			return err
		}
		if err := r.report(ctx, "ps-new", cur); err != nil {
			return err
		}
		if _, err := r.sk.removeTimeline(ctx, r.tl); err != nil {
			return err
		}
		if h := r.horizon(ctx); h != old {
			return fmt.Errorf("horizon %s, want the detached pageserver's %s while it is fresh", h, old)
		}
		for i := 0; i < 7; i++ { // ps-new keeps reporting, ps-old is gone
			r.w.Sleep(rmExpiry / 6)
			if err := r.report(ctx, "ps-new", cur); err != nil {
				return err
			}
		}
		if _, err := r.sk.removeTimeline(ctx, r.tl); err != nil {
			return err
		}
		if h := r.horizon(ctx); h != cur {
			return fmt.Errorf("horizon %s after ps-old expired, want %s", h, cur)
		}
		return nil
	})
}

// TestRemoveWaitsAfterStart: after a start the safekeeper removes nothing
// for FeedbackExpiry: a pageserver that reported before the restart may
// not have reported again.
func TestRemoveWaitsAfterStart(t *testing.T) {
	withRemoveRig(t, Config{}, func(ctx context.Context, r *removeRig) error {
		if err := r.offloadAll(ctx); err != nil {
			return err
		}
		if err := r.report(ctx, "ps-1", frameAt(40)); err != nil {
			return err
		}
		r.sk.startedAt = r.n.Env().Clock.Mono()
		if n, err := r.sk.removeTimeline(ctx, r.tl); err != nil || n != 0 {
			return fmt.Errorf("just after start: removed %d (%v)", n, err)
		}
		r.w.Sleep(rmExpiry + time.Second)
		if err := r.report(ctx, "ps-1", frameAt(40)); err != nil {
			return err
		}
		if n, err := r.sk.removeTimeline(ctx, r.tl); err != nil || n == 0 {
			return fmt.Errorf("after the grace: removed %d (%v)", n, err)
		}
		return nil
	})
}

// TestTrimAboveRemoteConsistentBug: the planted bug removes up to the
// offloaded, committed WAL regardless of the pageserver's
// remote_consistent_lsn, so a pageserver that must ingest again from there
// (it lost its disk and attaches from object storage) finds that WAL gone;
// the fixed code keeps it.
func TestTrimAboveRemoteConsistentBug(t *testing.T) {
	for _, bug := range []bool{false, true} {
		t.Run(fmt.Sprintf("bug=%t", bug), func(t *testing.T) {
			withRemoveRig(t, Config{Bugs: Bugs{TrimAboveRemoteConsistent: bug}}, func(ctx context.Context, r *removeRig) error {
				if err := r.offloadAll(ctx); err != nil {
					return err
				}
				remote := frameAt(10)
				if err := r.report(ctx, "ps-1", remote); err != nil {
					return err
				}
				if _, err := r.sk.removeTimeline(ctx, r.tl); err != nil {
					return err
				}
				err := r.readFrom(ctx, remote)
				if bug {
					if !errors.Is(err, walstore.ErrRemoved) {
						return fmt.Errorf("with the bug the pageserver's WAL from %s is still there (%v)", remote, err)
					}
					return nil
				}
				return err
			})
		})
	}
}

// metricValue reads a counter's or gauge's value.
func metricValue(m prometheus.Metric) float64 {
	var d dto.Metric
	if err := m.Write(&d); err != nil {
		return -1
	}
	if d.Counter != nil {
		return d.GetCounter().GetValue()
	}
	return d.GetGauge().GetValue()
}
