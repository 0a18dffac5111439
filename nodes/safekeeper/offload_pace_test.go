package safekeeper

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stratadb/strata/engine/lsn"
	"github.com/stratadb/strata/engine/skproto"
	"github.com/stratadb/strata/nodes/node"
	"github.com/stratadb/strata/nodes/safekeeper/skapi"
	"github.com/stratadb/strata/sim"
)

// TestOffloadKeepsUpWithABacklog: a backlog of many times
// maxOffloadPerRound sealed segments is offloaded in back-to-back rounds,
// not maxOffloadPerRound per OffloadInterval (which a busy writer with
// small segments outruns for good).
func TestOffloadKeepsUpWithABacklog(t *testing.T) {
	const (
		segBytes = 256
		segs     = 5 * maxOffloadPerRound
		interval = time.Second
		start    = lsn.LSN(segBytes)
	)
	w := sim.New(sim.Options{Seed: 1})
	err := w.Run(func(w *sim.World) error {
		var sk *Safekeeper
		n := w.AddNode("sk-1", func(env node.Env) error {
			var err error
			sk, err = New(env, Config{NodeID: "sk-1", ListenAddr: "sk-1:1", SegmentBytes: segBytes, Offload: true, OffloadInterval: interval})
			if err != nil {
				return err
			}
			return sk.loadAll()
		})
		n.SetDiskLatency(func(op string) time.Duration {
			if op == "sync" || op == "syncdir" {
				return time.Millisecond
			}
			return 0
		})
		w.Sleep(time.Millisecond)
		ctx := context.Background()
		tl, err := sk.getOrCreate(ctx, skproto.Greeting{TenantID: "t1", TimelineID: "00ff", StartLSN: start})
		if err != nil {
			return err
		}
		var wal []byte
		for len(wal) < segs*segBytes {
			wal = skproto.AppendFrame(wal, bytes.Repeat([]byte{byte(len(wal))}, 40))
		}
		end := start + lsn.LSN(len(wal))
		if _, err := tl.step(ctx, []skproto.Msg{
			skproto.VoteRequest{Term: 1},
			skproto.ProposerElected{Term: 1, StartStreamingAt: start, History: skproto.TermHistory{{Term: 1, LSN: start}}},
			skproto.AppendRequest{Term: 1, BeginLSN: start, EndLSN: end, CommitLSN: end, WAL: wal},
			skproto.AppendRequest{Term: 1, BeginLSN: end, EndLSN: end, CommitLSN: end},
		}); err != nil {
			return err
		}
		n.Env().Clock.Go(ctx, "offload", func(ctx context.Context) { _ = sk.offloadLoop(ctx) })
		w.Sleep(interval + time.Second/2)
		for seg := uint64(1); seg <= segs; seg++ {
			if _, err := w.Store().Get(ctx, skapi.RemoteSegmentKey("t1", "00ff", seg)); err != nil {
				return fmt.Errorf("segment %d of %d not offloaded half an interval after the first round: %w", seg, segs, err)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
