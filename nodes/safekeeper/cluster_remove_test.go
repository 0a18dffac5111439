package safekeeper_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stratadb/strata/engine/lsn"
	"github.com/stratadb/strata/net"
	"github.com/stratadb/strata/nodes/safekeeper"
	"github.com/stratadb/strata/nodes/safekeeper/skapi"
	"github.com/stratadb/strata/nodes/safekeeper/walstore"
)

// feedbackStream is a pageserver stand-in: it streams WAL from one
// safekeeper and reports remote_consistent_lsn every 50ms until stopped.
func feedbackStream(t *testing.T, ctx context.Context, addr, ps string, remote lsn.LSN) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(ctx)
	conn, err := env(ps, nil, nil).Net.Dial(ctx, addr)
	if err != nil {
		t.Fatal(err)
	}
	fb := func() *skapi.PageserverFeedback {
		return &skapi.PageserverFeedback{PageserverId: ps, LastRecordLsn: uint64(remote), DiskConsistentLsn: uint64(remote),
			RemoteConsistentLsn: uint64(remote)}
	}
	s, err := net.StreamProto[*skapi.StreamWalRequest, *skapi.WalChunk](ctx, conn, skapi.MethodStreamWal)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Send(&skapi.StreamWalRequest{Timeline: skapi.Ref(tenant, timeline), StartLsn: uint64(remote), Feedback: fb()}); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{}, 2)
	go func() {
		defer func() { done <- struct{}{} }()
		for {
			if _, err := s.Recv(); err != nil {
				return
			}
		}
	}()
	go func() {
		defer func() { done <- struct{}{} }()
		for ctx.Err() == nil {
			if err := s.Send(&skapi.StreamWalRequest{Feedback: fb()}); err != nil {
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
	}()
	return func() {
		cancel()
		_ = conn.Close()
		<-done
		<-done
	}
}

// TestClusterRemovesWAL: three safekeepers with a broker. One pageserver
// reports its remote_consistent_lsn to sk-1 only; once the segments are
// offloaded every safekeeper removes the sealed segments below it (sk-2
// and sk-3 learn the pin and the offloaded LSN through the broker), never
// above it. A pageserver asking for WAL below the horizon gets OutOfRange
// naming the removal, and the removed segments are in object storage with
// the committed bytes. A restarted safekeeper keeps its horizon and goes
// on taking WAL.
func TestClusterRemovesWAL(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const seg = 4096
	c := newClusterTuned(t, 3, seg, func(cfg *safekeeper.Config) {
		cfg.RemovalInterval, cfg.FeedbackExpiry = 50*time.Millisecond, 400*time.Millisecond
	})
	w := c.proposer("compute-1")
	remote, _ := commit(t, ctx, w, "a", 40)
	end, _ := commit(t, ctx, w, "b", 40)
	if remote/seg < 3 || end/seg < remote/seg+2 {
		t.Fatalf("layout: remote %s, end %s", remote, end)
	}
	want := c.waitWAL(ctx, 0, 0x1000, end)
	for i := 1; i < 3; i++ {
		c.waitWAL(ctx, i, 0x1000, end)
	}
	// Nothing is removed without a pageserver's report.
	time.Sleep(600 * time.Millisecond)
	for i := range c.sks {
		if s, err := c.sks[i].Timeline(ctx, tenant, timeline); err != nil || s.HorizonLSN != 0 {
			t.Fatalf("sk-%d removed WAL before any pageserver reported: %+v %v", i+1, s, err)
		}
	}

	stop := feedbackStream(t, ctx, c.addrs[0], "ps-1", remote)
	defer stop()
	horizons := make([]lsn.LSN, 3)
	for i := range c.sks {
		for {
			s, err := c.sks[i].Timeline(ctx, tenant, timeline)
			if err == nil && s.HorizonLSN/seg == remote/seg {
				horizons[i] = s.HorizonLSN
				break
			}
			if err == nil && s.HorizonLSN > remote {
				t.Fatalf("sk-%d removed above the pageserver's remote_consistent_lsn %s: horizon %s", i+1, remote, s.HorizonLSN)
			}
			if ctx.Err() != nil {
				t.Fatalf("sk-%d never removed up to %s (last %+v, %v)", i+1, remote, s, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
		first := filepath.Join(c.dirs[i], "timelines", tenant, timeline, "wal", walstore.SegmentName(1))
		if _, err := os.Stat(first); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("sk-%d still has segment 1 below its horizon %s: %v", i+1, horizons[i], err)
		}
		got := c.waitWAL(ctx, i, horizons[i], end)
		if !bytes.Equal(got, want[horizons[i]-0x1000:]) {
			t.Fatalf("sk-%d WAL above its horizon differs", i+1)
		}
	}

	// A pageserver that lost its disk and asks for WAL below the horizon.
	conn, err := env("ps-2", nil, nil).Net.Dial(ctx, c.addrs[1])
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	s, err := skapi.OpenStreamWal(ctx, conn, tenant, timeline, 0x1000)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Recv(); net.CodeOf(err) != net.OutOfRange || !strings.Contains(err.Error(), "removed") {
		t.Fatalf("stream from below the horizon: %v (code %v), want OutOfRange naming the removal", err, net.CodeOf(err))
	}
	// What was removed is in object storage, byte for byte.
	for n := uint64(1); n < uint64(horizons[1]/seg); n++ {
		data, err := c.store.Get(ctx, skapi.RemoteSegmentKey(tenant, timeline, n))
		if err != nil {
			t.Fatalf("removed segment %d is not in object storage: %v", n, err)
		}
		if off := (n - 1) * seg; !bytes.Equal(data, want[off:off+seg]) {
			t.Fatalf("offloaded segment %d differs from the committed WAL", n)
		}
	}

	// Restart sk-2: the horizon holds, and it keeps taking WAL.
	c.stop(1)
	c.start(1)
	if s, err := c.sks[1].Timeline(ctx, tenant, timeline); err != nil || s.HorizonLSN != horizons[1] {
		t.Fatalf("sk-2 after restart: %+v %v, want horizon %s", s, err, horizons[1])
	}
	end2, _ := commit(t, ctx, w, "c", 10)
	want2 := c.waitWAL(ctx, 0, horizons[0], end2)
	if got := c.waitWAL(ctx, 1, horizons[0], end2); !bytes.Equal(got, want2) {
		t.Fatal("sk-2's WAL after its restart differs from sk-1's")
	}
}
