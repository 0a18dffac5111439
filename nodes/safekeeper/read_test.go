package safekeeper

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"math/rand/v2"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/stratadb/strata/clock"
	"github.com/stratadb/strata/engine/lsn"
	"github.com/stratadb/strata/engine/skproto"
	"github.com/stratadb/strata/nodes/node"
	"github.com/stratadb/strata/nodes/safekeeper/skapi"
	"github.com/stratadb/strata/sim/simdisk"
)

// TestReadWalMaxBytes: ReadWal's max_bytes lowers the chunk bound (the
// walproposer's recovery windows rely on it), a single larger frame still
// comes whole, and an end_lsn inside a frame cuts before it instead of
// taking the timeline out of service.
func TestReadWalMaxBytes(t *testing.T) {
	ctx := context.Background()
	env := node.Env{ID: "sk-1", Clock: clock.NewReal(), Disk: simdisk.New(simdisk.Options{}), Rand: rand.New(rand.NewPCG(1, 1)),
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Metrics: prometheus.NewRegistry()}
	sk, err := New(env, Config{NodeID: "sk-1", ListenAddr: "sk-1:1", SegmentBytes: 256, MaxReadBytes: 300})
	if err != nil {
		t.Fatal(err)
	}
	if err := sk.loadAll(); err != nil {
		t.Fatal(err)
	}
	const start = lsn.LSN(0x100)
	tl, err := sk.getOrCreate(ctx, skproto.Greeting{TenantID: "t1", TimelineID: "00ff", StartLSN: start})
	if err != nil {
		t.Fatal(err)
	}
	var wal []byte
	for i := 0; i < 20; i++ {
		wal = skproto.AppendFrame(wal, bytes.Repeat([]byte{byte(i)}, 40)) // 48-byte frames
	}
	end := start + lsn.LSN(len(wal))
	if _, err := tl.step(ctx, []skproto.Msg{
		skproto.VoteRequest{Term: 1},
		skproto.ProposerElected{Term: 1, StartStreamingAt: start, History: skproto.TermHistory{{Term: 1, LSN: start}}},
		skproto.AppendRequest{Term: 1, BeginLSN: start, EndLSN: end, CommitLSN: end, WAL: wal},
	}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name     string
		end      lsn.LSN
		maxBytes uint64
		want     int
	}{
		{"server limit", end, 0, 288},
		{"client limit", end, 100, 96},
		{"client limit above the server's", end, 1 << 20, 288},
		{"limit below one frame", end, 3, 48},
		{"end inside a frame", start + 100, 0, 96},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := sk.readWal(ctx, &skapi.ReadWalRequest{Timeline: skapi.Ref("t1", "00ff"), StartLsn: uint64(start),
				EndLsn: uint64(tc.end), MaxBytes: tc.maxBytes})
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(resp.GetWal(), wal[:tc.want]) {
				t.Fatalf("got %d bytes, want the first %d", len(resp.GetWal()), tc.want)
			}
		})
	}
	if _, err := tl.snapshot(ctx); err != nil {
		t.Fatalf("timeline no longer served after the reads: %v", err)
	}
}
