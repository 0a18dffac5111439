package safekeeper_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/stratadb/strata/clock"
	"github.com/stratadb/strata/disk"
	"github.com/stratadb/strata/disk/objstore"
	"github.com/stratadb/strata/engine/lsn"
	"github.com/stratadb/strata/engine/skproto"
	"github.com/stratadb/strata/net"
	"github.com/stratadb/strata/net/grpcx"
	"github.com/stratadb/strata/nodes/broker"
	"github.com/stratadb/strata/nodes/broker/brokerapi"
	"github.com/stratadb/strata/nodes/compute/walproposer"
	"github.com/stratadb/strata/nodes/node"
	"github.com/stratadb/strata/nodes/safekeeper"
	"github.com/stratadb/strata/nodes/safekeeper/skapi"
	"github.com/stratadb/strata/nodes/safekeeper/walstore"
)

const (
	tenant   = "7f3a0b1c2d3e4f506172839405a6b7c8"
	timeline = "00112233445566778899aabbccddeeff"
)

func env(id string, fsys disk.FS, store objstore.Store) node.Env {
	return node.Env{ID: id, Clock: clock.NewReal(), Net: grpcx.New(grpcx.Options{}), Disk: fsys, Store: store,
		Rand: rand.New(rand.NewPCG(1, 2)), Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Metrics: prometheus.NewRegistry()}
}

type cluster struct {
	t      testing.TB
	broker *broker.Broker
	store  objstore.Store
	// segBytes is the WAL segment size (small, so tests seal and offload
	// segments quickly).
	segBytes int64
	dirs     []string
	addrs    []string
	sks      []*safekeeper.Safekeeper
	// tune, if set, adjusts each safekeeper's config before it starts.
	tune func(*safekeeper.Config)
}

func newCluster(t testing.TB, n int) *cluster {
	return newClusterSeg(t, n, 4096)
}

func newClusterSeg(t testing.TB, n int, segBytes int64) *cluster {
	return newClusterTuned(t, n, segBytes, nil)
}

func newClusterTuned(t testing.TB, n int, segBytes int64, tune func(*safekeeper.Config)) *cluster {
	c := &cluster{t: t, segBytes: segBytes, tune: tune}
	b, err := broker.New(env("broker", nil, nil), broker.Config{ListenAddr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Stop() })
	c.broker = b
	st, err := objstore.NewLocal(disk.Dir(t.TempDir()), ".", objstore.LocalOptions{})
	if err != nil {
		t.Fatal(err)
	}
	c.store = st
	for i := 0; i < n; i++ {
		c.dirs = append(c.dirs, t.TempDir())
		c.addrs = append(c.addrs, "127.0.0.1:0")
		c.sks = append(c.sks, nil)
		c.start(i)
	}
	t.Cleanup(func() {
		for i := range c.sks {
			c.stop(i)
		}
	})
	return c
}

func (c *cluster) start(i int) {
	cfg := safekeeper.Config{
		NodeID: fmt.Sprintf("sk-%d", i+1), ListenAddr: c.addrs[i], BrokerAddr: c.broker.Addr(),
		SegmentBytes: c.segBytes, PublishInterval: 50 * time.Millisecond, OffloadInterval: 50 * time.Millisecond, Offload: true}
	if c.tune != nil {
		c.tune(&cfg)
	}
	sk, err := safekeeper.New(env(fmt.Sprintf("sk-%d", i+1), disk.Dir(c.dirs[i]), c.store), cfg)
	if err != nil {
		c.t.Fatal(err)
	}
	if err := sk.Start(context.Background()); err != nil {
		c.t.Fatal(err)
	}
	c.sks[i] = sk
	c.addrs[i] = sk.Addr() // keep the port across restarts
}

func (c *cluster) stop(i int) {
	if c.sks[i] != nil {
		_ = c.sks[i].Stop(context.Background())
		c.sks[i] = nil
	}
}

func (c *cluster) proposer(id string) *walproposer.WALProposer {
	return c.proposerWith(walproposer.Config{ID: id})
}

func (c *cluster) proposerWith(cfg walproposer.Config) *walproposer.WALProposer {
	id := cfg.ID
	cfg.TenantID, cfg.TimelineID, cfg.Safekeepers = tenant, timeline, c.addrs
	cfg.PeerTimeout, cfg.MaxReconnectBackoff = time.Second, 200*time.Millisecond
	w, err := walproposer.New(env(id, nil, nil), cfg)
	if err != nil {
		c.t.Fatal(err)
	}
	w.Start(context.Background())
	c.t.Cleanup(w.Stop)
	return w
}

func commit(t *testing.T, ctx context.Context, w *walproposer.WALProposer, tag string, n int) (lsn.LSN, [][]byte) {
	var all [][]byte
	var end lsn.LSN
	for i := 0; i < n; i++ {
		rec := [][]byte{[]byte(fmt.Sprintf("%s-%d", tag, i)), bytes.Repeat([]byte{byte(i)}, 300)}
		e, err := w.Append(ctx, rec)
		if err != nil {
			t.Fatal(err)
		}
		all, end = append(all, rec...), e
	}
	if err := w.WaitCommitted(ctx, end); err != nil {
		t.Fatal(err)
	}
	return end, all
}

// waitWAL waits until safekeeper i has flushed up to end and returns its
// WAL from start.
func (c *cluster) waitWAL(ctx context.Context, i int, start, end lsn.LSN) []byte {
	for {
		s, err := c.sks[i].Timeline(ctx, tenant, timeline)
		if err == nil && s.FlushLSN >= end {
			b, err := c.sks[i].ReadWAL(ctx, tenant, timeline, start, end)
			if err != nil {
				c.t.Fatal(err)
			}
			return b
		}
		if ctx.Err() != nil {
			c.t.Fatalf("sk %d never reached %s (last %+v, %v)", i, end, s, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestClusterCommitCrashRecover(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := newCluster(t, 3)
	w := c.proposer("compute-1")
	_, recs1 := commit(t, ctx, w, "a", 20)

	// One safekeeper down: a majority still commits.
	c.stop(2)
	end2, recs2 := commit(t, ctx, w, "b", 20)
	c.start(2)
	want := c.waitWAL(ctx, 0, 0x1000, end2)
	got, err := skproto.SplitFrames(want)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(recs1)+len(recs2) {
		t.Fatalf("%d records on sk-1, want %d", len(got), len(recs1)+len(recs2))
	}
	for i, r := range append(recs1, recs2...) {
		if !bytes.Equal(got[i], r) {
			t.Fatalf("record %d differs", i)
		}
	}
	for i := 1; i < 3; i++ {
		if b := c.waitWAL(ctx, i, 0x1000, end2); !bytes.Equal(b, want) {
			t.Fatalf("sk-%d WAL differs from sk-1", i+1)
		}
	}

	// A new compute deposes the old one, recovers and keeps the WAL.
	w.Stop()
	w2 := c.proposer("compute-2")
	end3, _ := commit(t, ctx, w2, "c", 5)
	if end3 <= end2 {
		t.Fatalf("new proposer ended at %s, not past %s", end3, end2)
	}
	for i := 0; i < 3; i++ {
		if b := c.waitWAL(ctx, i, 0x1000, end2); !bytes.Equal(b, want) {
			t.Fatalf("sk-%d lost committed WAL after the new election", i+1)
		}
	}

	// Sealed committed segments reach the object store, equal to the WAL.
	for seg := uint64(1); seg <= 2; seg++ {
		for {
			data, err := c.store.Get(ctx, skapi.RemoteSegmentKey(tenant, timeline, seg))
			if err == nil {
				if off := (seg - 1) * 4096; !bytes.Equal(data, want[off:off+4096]) {
					t.Fatalf("remote segment %d differs from the committed WAL", seg)
				}
				break
			}
			if ctx.Err() != nil {
				t.Fatalf("segment %d never offloaded: %v", seg, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// TestStreamWalAndStatus: a subscriber gets exactly the committed WAL from
// any frame boundary, as it commits; Status and bad requests answer with
// the right codes.
func TestStreamWalAndStatus(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c := newCluster(t, 3)
	w := c.proposer("compute-1")
	_, recs := commit(t, ctx, w, "s", 10)
	e := env("sub", nil, nil)
	conn, err := e.Net.Dial(ctx, c.addrs[1])
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ref := &skapi.TimelineRef{TenantId: tenant, TimelineId: timeline}
	for _, tc := range []struct {
		name string
		ref  *skapi.TimelineRef
		code net.Code
	}{
		{"ok", ref, net.OK},
		{"unknown timeline", &skapi.TimelineRef{TenantId: tenant, TimelineId: "ffff"}, net.NotFound},
		{"bad id", &skapi.TimelineRef{TenantId: "../x", TimelineId: timeline}, net.InvalidArgument},
	} {
		_, err := net.CallProto[*skapi.TimelineStatus](ctx, conn, skapi.MethodStatus, tc.ref)
		if net.CodeOf(err) != tc.code {
			t.Fatalf("%s: %v, want %v", tc.name, err, tc.code)
		}
	}
	// Start after the first record: a frame boundary.
	from := lsn.LSN(0x1000 + skproto.FrameHeaderBytes + len(recs[0]))
	s, err := net.StreamProto[*skapi.StreamWalRequest, *skapi.WalChunk](ctx, conn, skapi.MethodStreamWal)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Send(&skapi.StreamWalRequest{Timeline: ref, StartLsn: uint64(from)}); err != nil {
		t.Fatal(err)
	}
	end2, recs2 := commit(t, ctx, w, "t", 5)
	want := append(recs[1:], recs2...)
	var got []byte
	pos := from
	for pos < end2 {
		ch, err := s.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if lsn.LSN(ch.GetStartLsn()) != pos || lsn.LSN(ch.GetCommitLsn()) < pos+lsn.LSN(len(ch.GetWal())) {
			t.Fatalf("chunk at %d (commit %d), expected %s", ch.GetStartLsn(), ch.GetCommitLsn(), pos)
		}
		got = append(got, ch.GetWal()...)
		pos += lsn.LSN(len(ch.GetWal()))
	}
	frames, err := skproto.SplitFrames(got)
	if err != nil {
		t.Fatal(err)
	}
	if len(frames) != len(want) {
		t.Fatalf("%d frames streamed, want %d", len(frames), len(want))
	}
	for i := range want {
		if !bytes.Equal(frames[i], want[i]) {
			t.Fatalf("frame %d differs", i)
		}
	}
}

// TestBrokerHealsAfterRestart: the broker keeps nothing durable; a new
// broker on the same address holds every safekeeper's state again after a
// few publish intervals.
func TestBrokerHealsAfterRestart(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c := newCluster(t, 3)
	w := c.proposer("compute-1")
	end, _ := commit(t, ctx, w, "b", 3)
	addr := c.broker.Addr()
	_ = c.broker.Stop()
	b, err := broker.New(env("broker", nil, nil), broker.Config{ListenAddr: addr})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	defer b.Stop()
	e := env("reader", nil, nil)
	conn, err := e.Net.Dial(ctx, addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for {
		got, err := net.CallProto[*brokerapi.TimelineInfos](ctx, conn, brokerapi.MethodGet, &brokerapi.TimelineFilter{TenantId: tenant, TimelineId: timeline})
		if err == nil && len(got.Infos) == 3 {
			healed := true
			for _, in := range got.Infos {
				if lsn.LSN(in.FlushLsn) < end || in.ConnectionString == "" || in.Term == 0 {
					healed = false
				}
			}
			if healed {
				return
			}
		}
		if ctx.Err() != nil {
			t.Fatalf("broker never healed: %v %v", got, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestAppendBackpressure: without a quorum nothing commits, so Append stops
// accepting WAL once MaxUncommittedBytes are pending, and resumes when the
// quorum is back.
func TestAppendBackpressure(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c := newCluster(t, 3)
	w := c.proposerWith(walproposer.Config{ID: "compute-1", MaxUncommittedBytes: 4096})
	commit(t, ctx, w, "a", 2)
	c.stop(1)
	c.stop(2)
	rec := [][]byte{bytes.Repeat([]byte{'x'}, 1000)}
	n := 0
	for ; n < 10; n++ {
		actx, acancel := context.WithTimeout(ctx, 300*time.Millisecond)
		_, err := w.Append(actx, rec)
		acancel()
		if err != nil {
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatal(err)
			}
			break
		}
	}
	if n != 4 {
		t.Fatalf("%d appends of 1 KiB accepted without a quorum, want 4 under a 4 KiB limit", n)
	}
	c.start(1)
	end, err := w.Append(ctx, rec)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.WaitCommitted(ctx, end); err != nil {
		t.Fatal(err)
	}
}

// TestCorruptDonorStepsAside: the donor of a new term finds the WAL a
// lagging safekeeper needs corrupt on disk. It reports DataLoss (never
// serves the bytes), the proposer steps aside (ErrDefeated) instead of
// waiting forever, and the healthy majority elects the next proposer and
// brings everyone up to date with the committed WAL.
func TestCorruptDonorStepsAside(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := newCluster(t, 3)
	w1 := c.proposer("compute-1")
	end1, recs1 := commit(t, ctx, w1, "a", 4)
	c.stop(2) // sk-3 lags from end1
	end2, recs2 := commit(t, ctx, w1, "b", 4)
	w1.Stop()
	want := c.waitWAL(ctx, 0, 0x1000, end2)

	// Flip a byte of sk-1's WAL that sk-3 lacks, in the segment holding
	// the end of the WAL (not sealed, so the offloader does not read it).
	at := end2 - 5
	if at < end1 || at/lsn.LSN(c.segBytes) != end2/lsn.LSN(c.segBytes) {
		t.Fatalf("layout: %s not in the partial segment above %s", at, end1)
	}
	seg := filepath.Join(c.dirs[0], "timelines", tenant, timeline, "wal", walstore.SegmentName(uint64(at)/uint64(c.segBytes))+".partial")
	f, err := os.OpenFile(seg, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 1)
	off := int64(at) % c.segBytes
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0xff
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
	_ = f.Close()

	// sk-2 down: the next term is sk-1 (donor, higher flush) and sk-3.
	c.stop(1)
	c.start(2)
	w2 := c.proposer("compute-2")
	var aerr error
	for aerr == nil && ctx.Err() == nil {
		actx, acancel := context.WithTimeout(ctx, time.Second)
		var e lsn.LSN
		if e, aerr = w2.Append(actx, [][]byte{[]byte("c")}); aerr == nil {
			aerr = w2.WaitCommitted(actx, e)
			if aerr == nil {
				t.Fatal("committed through a donor whose WAL is corrupt")
			}
			if !errors.Is(aerr, skproto.ErrDefeated) {
				aerr = nil // not yet: keep trying
			}
		} else if !errors.Is(aerr, skproto.ErrDefeated) {
			aerr = nil
		}
		acancel()
	}
	if !errors.Is(aerr, skproto.ErrDefeated) {
		t.Fatalf("proposer did not step aside: %v", aerr)
	}
	t.Logf("proposer stepped aside: %v", aerr)
	if _, err := c.sks[0].Timeline(ctx, tenant, timeline); !errors.Is(err, walstore.ErrCorrupt) {
		t.Fatalf("sk-1 status after finding corruption: %v, want walstore.ErrCorrupt", err)
	}

	// The healthy majority (sk-2, sk-3) carries on with the committed WAL.
	w2.Stop()
	c.start(1)
	w3 := c.proposer("compute-3")
	end3, _ := commit(t, ctx, w3, "d", 2)
	for i := 1; i < 3; i++ {
		got := c.waitWAL(ctx, i, 0x1000, end3)
		if !bytes.Equal(got[:end2-0x1000], want) {
			t.Fatalf("sk-%d WAL differs from the committed WAL below %s", i+1, end2)
		}
		frames, err := skproto.SplitFrames(got[:end2-0x1000])
		if err != nil || len(frames) != len(recs1)+len(recs2) {
			t.Fatalf("sk-%d: %d frames, %v", i+1, len(frames), err)
		}
	}
}

// TestProposeRefusesBadRequests: a proposer stream that sends an oversized
// AppendRequest, WAL that is not whole valid frames, or names a bad id is
// refused with a clear code; reads of an unknown timeline are NotFound.
func TestProposeRefusesBadRequests(t *testing.T) {
	c := newCluster(t, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	const start = lsn.LSN(0x100)
	huge := skproto.AppendFrame(nil, make([]byte, skproto.MaxFramePayloadBytes))
	huge = append(huge, huge...)
	huge = append(huge, skproto.AppendFrame(nil, []byte("x"))...)
	for _, tc := range []struct {
		name     string
		timeline string
		wal      []byte
		want     net.Code
	}{
		{"oversized append", timeline, huge, net.ResourceExhausted},
		{"damaged frame", timeline, []byte("not a frame at all"), net.FailedPrecondition},
		{"bad timeline id", "../etc", nil, net.InvalidArgument},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cl := grpcx.New(grpcx.Options{})
			conn, err := cl.Dial(ctx, c.addrs[0])
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			s, err := net.StreamProto[*skapi.ProposerMessage, *skapi.AcceptorMessage](ctx, conn, skapi.MethodPropose)
			if err != nil {
				t.Fatal(err)
			}
			st, err := c.sks[0].Timeline(ctx, tenant, tc.timeline)
			term := skproto.Term(1)
			if err == nil {
				term = st.Term + 1
			}
			msgs := []skproto.Msg{
				skproto.Greeting{ProposerID: "p", TenantID: tenant, TimelineID: tc.timeline, StartLSN: start},
				skproto.VoteRequest{Term: term},
				skproto.ProposerElected{Term: term, StartStreamingAt: start, History: skproto.TermHistory{{Term: term, LSN: start}}},
				skproto.AppendRequest{Term: term, BeginLSN: start, EndLSN: start + lsn.LSN(len(tc.wal)), CommitLSN: start, WAL: tc.wal},
			}
			var got error
			for _, m := range msgs {
				pb, err := skapi.ProposerToPB(m)
				if err != nil {
					t.Fatal(err)
				}
				if err := s.Send(pb); err != nil {
					got = err
					break
				}
				if _, err := s.Recv(); err != nil {
					got = err
					break
				}
			}
			if net.CodeOf(got) != tc.want {
				t.Fatalf("stream ended with %v (code %v), want code %v", got, net.CodeOf(got), tc.want)
			}
			if st, err := c.sks[0].Timeline(ctx, tenant, timeline); err == nil && st.FlushLSN != start {
				t.Fatalf("refused append moved flush to %s", st.FlushLSN)
			}
		})
	}
	_, err := c.sks[0].ReadWAL(ctx, tenant, "0000000000000000000000000000abcd", start, start)
	if !errors.Is(err, safekeeper.ErrNoTimeline) {
		t.Fatalf("read of an unknown timeline: %v, want ErrNoTimeline", err)
	}
}
