package safekeeper

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"math/rand/v2"
	"path"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/stratadb/strata/clock"
	"github.com/stratadb/strata/disk/objstore"
	"github.com/stratadb/strata/engine/lsn"
	"github.com/stratadb/strata/engine/skproto"
	"github.com/stratadb/strata/nodes/node"
	"github.com/stratadb/strata/nodes/safekeeper/skapi"
	"github.com/stratadb/strata/nodes/safekeeper/walstore"
	"github.com/stratadb/strata/sim/simdisk"
)

// TestOffloadVerifiesFrames drives one timeline through the acceptor
// directly (no network), then offloads: clean segments are uploaded with
// exactly the WAL's bytes; a bit flip in a sealed, committed segment is
// caught by the frame checks, nothing is uploaded for it and the timeline
// is no longer served.
func TestOffloadVerifiesFrames(t *testing.T) {
	for _, corrupt := range []bool{false, true} {
		t.Run(map[bool]string{false: "clean", true: "bit flip"}[corrupt], func(t *testing.T) {
			ctx := context.Background()
			fsys := simdisk.New(simdisk.Options{})
			store, err := objstore.NewLocal(simdisk.New(simdisk.Options{}), "objects", objstore.LocalOptions{})
			if err != nil {
				t.Fatal(err)
			}
			env := node.Env{ID: "sk-1", Clock: clock.NewReal(), Disk: fsys, Store: store, Rand: rand.New(rand.NewPCG(1, 1)),
				Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Metrics: prometheus.NewRegistry()}
			sk, err := New(env, Config{NodeID: "sk-1", ListenAddr: "sk-1:1", SegmentBytes: 256, Offload: true})
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
			for i := 0; i < 30; i++ {
				wal = skproto.AppendFrame(wal, bytes.Repeat([]byte{byte(i)}, 40))
			}
			end := start + lsn.LSN(len(wal))
			msgs := []skproto.Msg{
				skproto.VoteRequest{Term: 1},
				skproto.ProposerElected{Term: 1, StartStreamingAt: start, History: skproto.TermHistory{{Term: 1, LSN: start}}},
				skproto.AppendRequest{Term: 1, BeginLSN: start, EndLSN: end, CommitLSN: end, WAL: wal},
				skproto.AppendRequest{Term: 1, BeginLSN: end, EndLSN: end, CommitLSN: end},
			}
			if _, err := tl.step(ctx, msgs); err != nil {
				t.Fatal(err)
			}
			if corrupt {
				name := path.Join(tl.key.dir(), "wal", walstore.SegmentName(2))
				if err := fsys.Corrupt(name, 100); err != nil {
					t.Fatal(err)
				}
			}
			_, err = sk.offloadTimeline(ctx, tl)
			seg2, gerr := store.Get(ctx, skapi.RemoteSegmentKey("t1", "00ff", 2))
			if !corrupt {
				if err != nil || gerr != nil {
					t.Fatalf("offload: %v, get: %v", err, gerr)
				}
				if !bytes.Equal(seg2, wal[0x200-start:0x300-start]) {
					t.Fatal("remote segment differs from the WAL")
				}
				return
			}
			if !errors.Is(err, walstore.ErrCorrupt) {
				t.Fatalf("offload of a damaged segment: %v", err)
			}
			if !errors.Is(gerr, objstore.ErrNotFound) {
				t.Fatalf("damaged segment uploaded (get: %v)", gerr)
			}
			if _, err := tl.snapshot(ctx); !errors.Is(err, walstore.ErrCorrupt) {
				t.Fatalf("corrupt timeline still served: %v", err)
			}
		})
	}
}

// TestOffloadRechecksSegmentHead: the frame straddling a segment boundary
// is checked with the earlier segment; a flip on disk in the part of it
// that lies in the next segment, made after that check, must never reach
// the object store: the offloader uploads the bytes it checked (kept in
// memory), or, once they are gone (a reload), checks the disk again and
// finds the damage.
func TestOffloadRechecksSegmentHead(t *testing.T) {
	for _, tc := range []struct {
		name            string
		corrupt, reload bool
	}{{"clean", false, false}, {"flip after the check, checked bytes kept", true, false}, {"flip after the check, then reload", true, true}} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			fsys := simdisk.New(simdisk.Options{})
			store, err := objstore.NewLocal(simdisk.New(simdisk.Options{}), "objects", objstore.LocalOptions{})
			if err != nil {
				t.Fatal(err)
			}
			env := node.Env{ID: "sk-1", Clock: clock.NewReal(), Disk: fsys, Store: store, Rand: rand.New(rand.NewPCG(1, 1)),
				Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Metrics: prometheus.NewRegistry()}
			sk, err := New(env, Config{NodeID: "sk-1", ListenAddr: "sk-1:1", SegmentBytes: 256, Offload: true})
			if err != nil {
				t.Fatal(err)
			}
			if err := sk.loadAll(); err != nil {
				t.Fatal(err)
			}
			// 48-byte frames from 0x100: the frame at 736 straddles the
			// boundary of segments 2 and 3 (768).
			const start = lsn.LSN(0x100)
			tl, err := sk.getOrCreate(ctx, skproto.Greeting{TenantID: "t1", TimelineID: "00ff", StartLSN: start})
			if err != nil {
				t.Fatal(err)
			}
			var wal []byte
			for i := 0; i < 30; i++ {
				wal = skproto.AppendFrame(wal, bytes.Repeat([]byte{byte(i)}, 40))
			}
			mid, end := start+12*48, start+lsn.LSN(len(wal))
			if _, err := tl.step(ctx, []skproto.Msg{
				skproto.VoteRequest{Term: 1},
				skproto.ProposerElected{Term: 1, StartStreamingAt: start, History: skproto.TermHistory{{Term: 1, LSN: start}}},
				skproto.AppendRequest{Term: 1, BeginLSN: start, EndLSN: mid, CommitLSN: mid, WAL: wal[:mid-start]},
				skproto.AppendRequest{Term: 1, BeginLSN: mid, EndLSN: mid, CommitLSN: mid},
			}); err != nil {
				t.Fatal(err)
			}
			if _, err := sk.offloadTimeline(ctx, tl); err != nil {
				t.Fatalf("first offload: %v", err)
			}
			if _, err := store.Get(ctx, skapi.RemoteSegmentKey("t1", "00ff", 2)); err != nil {
				t.Fatalf("segment 2 not offloaded: %v", err)
			}
			if tc.corrupt {
				name := path.Join(tl.key.dir(), "wal", walstore.SegmentName(3)+".partial")
				if err := fsys.Corrupt(name, 5); err != nil {
					t.Fatal(err)
				}
			}
			if tc.reload {
				if err := tl.load(); err != nil {
					t.Fatal(err)
				}
			}
			var again []skproto.Msg
			if tc.reload { // the election is in memory only
				again = append(again, skproto.ProposerElected{Term: 1, StartStreamingAt: mid, History: skproto.TermHistory{{Term: 1, LSN: start}}})
			}
			if _, err := tl.step(ctx, append(again,
				skproto.AppendRequest{Term: 1, BeginLSN: mid, EndLSN: end, CommitLSN: end, WAL: wal[mid-start:]},
				skproto.AppendRequest{Term: 1, BeginLSN: end, EndLSN: end, CommitLSN: end},
			)); err != nil {
				t.Fatal(err)
			}
			_, err = sk.offloadTimeline(ctx, tl)
			seg3, gerr := store.Get(ctx, skapi.RemoteSegmentKey("t1", "00ff", 3))
			if !tc.reload {
				if err != nil || gerr != nil {
					t.Fatalf("offload: %v, get: %v", err, gerr)
				}
				if !bytes.Equal(seg3, wal[0x300-start:0x400-start]) {
					t.Fatal("remote segment 3 differs from the WAL")
				}
				return
			}
			if !errors.Is(err, walstore.ErrCorrupt) || !errors.Is(gerr, objstore.ErrNotFound) {
				t.Fatalf("damaged head of segment 3: offload %v, get %v (%d bytes)", err, gerr, len(seg3))
			}
		})
	}
}
