package pageserver

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stratadb/strata/clock"
	"github.com/stratadb/strata/engine/lsn"
	"github.com/stratadb/strata/engine/shard"
	"github.com/stratadb/strata/engine/walrec"
	"github.com/stratadb/strata/net"
	"github.com/stratadb/strata/nodes/broker"
	"github.com/stratadb/strata/nodes/broker/brokerapi"
	"github.com/stratadb/strata/nodes/compute/walproposer"
	"github.com/stratadb/strata/nodes/node"
	"github.com/stratadb/strata/nodes/pageserver/pageapi"
	"github.com/stratadb/strata/nodes/safekeeper"
	"github.com/stratadb/strata/nodes/safekeeper/skapi"
	"github.com/stratadb/strata/sim"
)

func TestSelector(t *testing.T) {
	sec := time.Second
	info := func(id string, commit uint64, ageMs uint64) *brokerapi.SafekeeperTimelineInfo {
		return &brokerapi.SafekeeperTimelineInfo{SafekeeperId: id, ConnectionString: id + ":1", CommitLsn: commit, AgeMs: ageMs}
	}
	s := newSelector(WALReceiverConfig{MaxLagBytes: 1000})
	if _, ok := s.best(0); ok {
		t.Fatal("a candidate out of nothing")
	}
	s.observe(20*sec, []*brokerapi.SafekeeperTimelineInfo{info("sk-1", 500, 0), info("sk-2", 700, 0), info("sk-3", 900, 15000),
		{SafekeeperId: "sk-4", CommitLsn: 5000}, info("sk-5", 0, 0)})
	if c, _ := s.best(20 * sec); c.id != "sk-2" {
		t.Fatalf("best = %s, want sk-2 (sk-3 is stale, sk-4 has no address, sk-5 no commit)", c.id)
	}
	if w := s.failed("sk-2", 20*sec); w != 100*time.Millisecond {
		t.Fatalf("first back-off %v", w)
	}
	if c, _ := s.best(20 * sec); c.id != "sk-1" {
		t.Fatalf("best during sk-2's back-off = %s, want sk-1", c.id)
	}
	if w := s.failed("sk-2", 21*sec); w != 150*time.Millisecond {
		t.Fatalf("second back-off %v, want ×1.5", w)
	}
	for range 20 {
		s.failed("sk-2", 21*sec)
	}
	if b := s.backoff["sk-2"]; b.next != 15*sec {
		t.Fatalf("back-off grew to %v, want capped at 15s", b.next)
	}
	s.succeeded("sk-2")
	if c, _ := s.best(21 * sec); c.id != "sk-2" {
		t.Fatalf("after success best = %s", c.id)
	}
	// Switching: stalled with WAL to get; lagging by MaxLagBytes.
	if r := s.switchReason(21*sec, "sk-2", 700, 20*sec); r != "" {
		t.Errorf("caught up and quiet: %q", r)
	}
	s.observe(22*sec, []*brokerapi.SafekeeperTimelineInfo{info("sk-1", 800, 0)})
	if r := s.switchReason(31*sec, "sk-2", 700, 20*sec); r == "" || r[:7] != "stalled" {
		t.Errorf("silent for 11s with WAL at sk-1: %q", r)
	}
	if r := s.switchReason(22*sec, "sk-2", 700, 22*sec); r != "" {
		t.Errorf("100 bytes behind: %q", r)
	}
	s.observe(23*sec, []*brokerapi.SafekeeperTimelineInfo{info("sk-1", 1800, 0)})
	if r := s.switchReason(23*sec, "sk-2", 700, 23*sec); r == "" || r[:7] != "lagging" {
		t.Errorf("1100 bytes behind: %q", r)
	}
}

// A compute writes through three safekeepers; the pageserver's WAL
// receiver ingests the committed WAL, follows a safekeeper crash, and every
// page reads back as written at the LSN the compute was given.
func TestWALReceiverEndToEnd(t *testing.T) {
	const (
		brokerAddr = "broker:50051"
		psPage     = "ps:6400"
		psHTTP     = "ps:9898"
	)
	tl := shard.TimelineID{0x71}
	w := sim.New(sim.Options{Seed: 3})
	err := w.Run(func(w *sim.World) error {
		w.AddNode("broker", func(env node.Env) error {
			b, err := broker.New(env, broker.Config{ListenAddr: brokerAddr, EntryTTL: 5 * time.Second})
			if err != nil {
				return err
			}
			return b.Start()
		})
		var sks []string
		for i := 1; i <= 3; i++ {
			id, addr := fmt.Sprintf("sk-%d", i), fmt.Sprintf("sk-%d:5454", i)
			sks = append(sks, addr)
			w.AddNode(id, func(env node.Env) error {
				sk, err := safekeeper.New(env, safekeeper.Config{NodeID: id, ListenAddr: addr, BrokerAddr: brokerAddr,
					PublishInterval: 200 * time.Millisecond, CallTimeout: time.Second})
				if err != nil {
					return err
				}
				return sk.Start(context.Background())
			})
		}
		w.AddNode("ps", func(env node.Env) error {
			_, err := Start(env, Config{NodeID: 1, PageAddr: psPage, HTTPAddr: psHTTP,
				WALReceiver: WALReceiverConfig{BrokerAddr: brokerAddr, PollInterval: 200 * time.Millisecond, StallTimeout: 2 * time.Second}})
			return err
		})
		cli := w.AddNode("compute", func(node.Env) error { return nil })
		env := cli.Env()
		ctx, cancel := clock.WithTimeout(env.Clock, context.Background(), time.Hour)
		defer cancel()
		hc, _ := env.Net.Dial(ctx, psHTTP)
		mgmt := net.SeamHTTP{Conn: hc}
		base := "/v1/tenant/" + shard.UnshardedID(tenantA).String()
		init := lsn.LSN(0x1000)
		for i := 0; ; i++ {
			_, err := mgmt.Do(ctx, &net.HTTPRequest{Method: "PUT", Path: base + "/location_config"}, attachedConf(1), nil)
			if err == nil {
				break
			}
			if i > 100 {
				return err
			}
			_ = clock.Sleep(ctx, env.Clock, 50*time.Millisecond)
		}
		if _, err := mgmt.Do(ctx, &net.HTTPRequest{Method: "POST", Path: base + "/timeline"}, pageapi.TimelineCreateRequest{NewTimelineID: tl, InitLSN: &init}, nil); err != nil {
			return err
		}
		wp, err := walproposer.New(env, walproposer.Config{ID: "c1", TenantID: tenantA.String(), TimelineID: tl.String(),
			StartLSN: init, Safekeepers: sks, CallTimeout: time.Second})
		if err != nil {
			return err
		}
		wp.Start(ctx)
		defer wp.Stop()
		pc, _ := env.Net.Dial(ctx, psPage)
		want := map[uint32][]byte{}
		check := func(at lsn.LSN) {
			t.Helper()
			rctx := pageapi.WithTarget(ctx, pageapi.Target{Shard: shard.UnshardedID(tenantA), Timeline: tl}, "")
			s, err := net.StreamProto[*pageapi.GetPageRequest, *pageapi.GetPageResponse](rctx, pc, pageapi.PageService_GetPages_FullMethodName)
			if err != nil {
				t.Fatal(err)
			}
			var blocks []uint32
			for b := range uint32(len(want)) {
				blocks = append(blocks, b)
			}
			if err := s.Send(getPageReq(1, at, blocks...)); err != nil {
				t.Fatal(err)
			}
			r, err := s.Recv()
			if err != nil || r.StatusCode != pageapi.GetPageStatusCode_GET_PAGE_STATUS_CODE_OK {
				t.Fatalf("read at %s: %v %v", at, r, err)
			}
			for i, p := range r.Page {
				if !bytes.Equal(p.Image, want[blocks[i]]) {
					t.Fatalf("block %d at %s: wrong page (first byte %d, want %d)", blocks[i], at, p.Image[0], want[blocks[i]][0])
				}
			}
			_ = s.CloseSend()
		}
		var last lsn.LSN
		for round := range 30 {
			var recs [][]byte
			for b := range uint32(4) {
				page := testPage(byte(round*4 + int(b)))
				want[b] = page
				recs = append(recs, walrec.Encode(walrec.FullPageImage{Rel: testRel, Blk: b, Page: page}))
			}
			end, err := wp.Append(ctx, recs)
			if err != nil {
				return err
			}
			if err := wp.WaitCommitted(ctx, end); err != nil {
				return err
			}
			last = end
			check(end) // waits for ingest if the receiver is behind
			if round == 10 {
				// Crash the safekeeper the pageserver most likely streams
				// from; it must carry on from another.
				w.Crash("sk-1", false)
			}
			if round == 20 {
				w.Restart("sk-1")
			}
		}
		if last == 0 {
			t.Fatal("nothing written")
		}
		// Feedback: the safekeeper streaming to the pageserver learns how
		// far it ingested (within a feedback interval or two).
		_ = clock.Sleep(ctx, env.Clock, 3*time.Second)
		best := lsn.LSN(0)
		for _, addr := range sks {
			conn, err := env.Net.Dial(ctx, addr)
			if err != nil {
				continue
			}
			st, err := skapi.Status(ctx, conn, tenantA.String(), tl.String())
			conn.Close()
			if err != nil {
				continue
			}
			for _, fb := range st.GetPageserverFeedback() {
				if fb.GetPageserverId() == "ps-1" {
					best = max(best, lsn.LSN(fb.GetLastRecordLsn()))
				}
			}
		}
		if best < last {
			t.Fatalf("safekeepers heard ps-1 ingested up to %s, want %s", best, last)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
