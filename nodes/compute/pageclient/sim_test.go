package pageclient

import (
	"context"
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/stratadb/strata/clock"
	"github.com/stratadb/strata/engine/keys"
	"github.com/stratadb/strata/engine/lsn"
	"github.com/stratadb/strata/engine/shard"
	"github.com/stratadb/strata/engine/walrec"
	"github.com/stratadb/strata/net"
	"github.com/stratadb/strata/nodes/broker"
	"github.com/stratadb/strata/nodes/compute/walproposer"
	"github.com/stratadb/strata/nodes/node"
	ps "github.com/stratadb/strata/nodes/pageserver"
	"github.com/stratadb/strata/nodes/pageserver/pageapi"
	"github.com/stratadb/strata/nodes/safekeeper"
	"github.com/stratadb/strata/sim"
	"github.com/stratadb/strata/sim/simnet"
)

// version is one committed image of a block.
type version struct {
	at   lsn.LSN
	page []byte
}

// simPage is version v of blk: distinct for every block and version.
func simPage(blk uint32, v int) []byte {
	p := make([]byte, walrec.PageSize)
	for i := range p {
		p[i] = byte(int(blk)*31 + v*7 + i/64)
	}
	return p
}

// TestAgainstPageservers runs the client in the simulator against real
// pageservers: a tenant of 4 shards (stripe 2) placed on 3 pageservers,
// its WAL written through a safekeeper with the walproposer and ingested
// by each shard's WAL receiver. Readers ask mixed-shard batches at
// committed LSNs while one pageserver crashes and restarts and the
// compute is cut off from another; every read must succeed (the client
// retries through both) and every page must be the committed image of its
// block as of the read's LSN.
func TestAgainstPageservers(t *testing.T) {
	const (
		nShards   = 4
		nPS       = 3
		stripe    = 2
		nBlocks   = 24
		nVersions = 4
		startLSN  = lsn.LSN(0x1000)
	)
	tenant, tl := shard.TenantID{0x5c, 0x1e}, shard.TimelineID{0x5c, 0x71}
	rel := keys.RelTag{SpcNode: 1663, DbNode: 5, RelNode: 16500}
	psPage := func(i int) string { return fmt.Sprintf("ps-%d:6400", i) }
	psHTTP := func(i int) string { return fmt.Sprintf("ps-%d:9898", i) }
	placement := func(n int) int { return 1 + n%nPS }

	w := sim.New(sim.Options{Seed: 3, MaxVirtualTime: 10 * time.Minute})
	err := w.Run(func(w *sim.World) error {
		w.UseNet(simnet.Options{Latency: simnet.Latency{Base: 200 * time.Microsecond, Jitter: 500 * time.Microsecond}, DeadLinkTimeout: 3 * time.Second})
		w.AddNode("broker", func(env node.Env) error {
			b, err := broker.New(env, broker.Config{ListenAddr: "broker:50051", EntryTTL: 5 * time.Second})
			if err != nil {
				return err
			}
			return b.Start()
		})
		w.AddNode("sk-1", func(env node.Env) error {
			sk, err := safekeeper.New(env, safekeeper.Config{NodeID: "sk-1", ListenAddr: "sk-1:5454", BrokerAddr: "broker:50051",
				PublishInterval: 200 * time.Millisecond, CallTimeout: time.Second})
			if err != nil {
				return err
			}
			return sk.Start(context.Background())
		})
		for i := 1; i <= nPS; i++ {
			w.AddNode(fmt.Sprintf("ps-%d", i), func(env node.Env) error {
				_, err := ps.Start(env, ps.Config{NodeID: uint64(i), PageAddr: psPage(i), HTTPAddr: psHTTP(i),
					PageService: ps.PageServiceConfig{WaitLSNTimeout: 30 * time.Second},
					WALReceiver: ps.WALReceiverConfig{BrokerAddr: "broker:50051", PollInterval: 200 * time.Millisecond,
						StallTimeout: 2 * time.Second, CallTimeout: time.Second}})
				return err
			})
		}
		cn := w.AddNode("compute", func(node.Env) error { return nil })
		env := cn.Env()
		ctx, cancel := clock.WithTimeout(env.Clock, context.Background(), 9*time.Minute)
		defer cancel()

		// The controller's part: attach each shard where it is placed and
		// create the timeline, retrying until the pageserver answers.
		for n := range nShards {
			id := shard.TenantShardID{TenantID: tenant, Shard: shard.ShardIndex{Number: shard.ShardNumber(n), Count: nShards}}
			init := startLSN
			gen := uint32(1)
			for _, st := range []struct {
				method, path string
				body         any
			}{
				{"PUT", "/v1/tenant/" + id.String() + "/location_config", pageapi.LocationConfig{Mode: pageapi.ModeAttachedSingle, Generation: &gen,
					ShardNumber: uint8(n), ShardCount: nShards, ShardStripeSize: stripe, TenantConf: &pageapi.TenantConf{}}},
				{"POST", "/v1/tenant/" + id.String() + "/timeline", pageapi.TimelineCreateRequest{NewTimelineID: tl, InitLSN: &init}},
			} {
				for attempt := 0; ; attempt++ {
					conn, err := env.Net.Dial(ctx, psHTTP(placement(n)))
					if err == nil {
						_, err = net.SeamHTTP{Conn: conn}.Do(ctx, &net.HTTPRequest{Method: st.method, Path: st.path}, st.body, nil)
						conn.Close()
					}
					if err == nil {
						break
					}
					if attempt == 100 {
						return fmt.Errorf("%s %s: %w", st.method, st.path, err)
					}
					w.Sleep(50 * time.Millisecond)
				}
			}
		}

		// Write nVersions full images of every block, one batch per
		// version, remembering the LSN each committed at.
		wp, err := walproposer.New(env, walproposer.Config{ID: "compute", TenantID: tenant.String(), TimelineID: tl.String(), StartLSN: startLSN,
			Safekeepers: []string{"sk-1:5454"}, PeerTimeout: time.Second, CallTimeout: time.Second})
		if err != nil {
			return err
		}
		wp.Start(ctx)
		defer wp.Stop()
		history := make([][]version, nBlocks)
		var commits []lsn.LSN
		for v := range nVersions {
			var recs [][]byte
			for b := range uint32(nBlocks) {
				recs = append(recs, walrec.Encode(walrec.FullPageImage{Rel: rel, Blk: b, Page: simPage(b, v)}))
			}
			end, err := wp.Append(ctx, recs)
			if err != nil {
				return fmt.Errorf("append: %w", err)
			}
			if err := wp.WaitCommitted(ctx, end); err != nil {
				return fmt.Errorf("commit: %w", err)
			}
			for b := range history {
				history[b] = append(history[b], version{at: end, page: simPage(uint32(b), v)})
			}
			commits = append(commits, end)
		}
		want := func(blk uint32, at lsn.LSN) []byte {
			h := history[blk]
			i := sort.Search(len(h), func(i int) bool { return h[i].at > at }) - 1
			return h[i].page
		}

		m := ShardMap{Count: nShards, StripeSize: stripe}
		for n := range nShards {
			m.Addrs = append(m.Addrs, psPage(placement(n)))
		}
		c, err := New(env, Config{Tenant: tenant, Timeline: tl, AttemptTimeout: 2 * time.Second, BackoffMax: 500 * time.Millisecond}, m)
		if err != nil {
			return err
		}
		defer c.Close()

		// Readers, while the faults happen.
		// Readers read until the faults are over, then a few rounds more.
		const readers, after = 4, 20
		faultsOver := false
		var reads, wrong, failed, pages int
		g := clock.NewGroup(env.Clock, ctx)
		for r := range readers {
			g.Go(fmt.Sprintf("reader %d", r), func(ctx context.Context) error {
				for left := after; left > 0; {
					if faultsOver {
						left--
					}
					at := commits[env.Rand.IntN(len(commits))]
					blocks := make([]uint32, 1+env.Rand.IntN(8))
					for i := range blocks {
						blocks[i] = uint32(env.Rand.IntN(nBlocks))
					}
					out, err := c.GetPages(ctx, Request{Rel: rel, Blocks: blocks, LSN: ReadLSN{Request: at}})
					reads++
					if err != nil {
						failed++
						t.Errorf("read of %v at %s: %v", blocks, at, err)
						continue
					}
					for i, b := range blocks {
						pages++
						if string(out[i]) != string(want(b, at)) {
							wrong++
							t.Errorf("block %d at %s: wrong page", b, at)
						}
					}
					_ = clock.Sleep(ctx, env.Clock, time.Duration(20+env.Rand.IntN(60))*time.Millisecond)
				}
				return nil
			})
		}
		w.Sleep(300 * time.Millisecond)
		w.Crash("ps-2", false)
		w.Sleep(1500 * time.Millisecond)
		w.Restart("ps-2")
		w.Sleep(500 * time.Millisecond)
		w.Net().Partition("compute", "ps-3")
		w.Sleep(2 * time.Second)
		w.Net().Heal()
		faultsOver = true
		_ = g.Wait()
		st := c.Stats()
		t.Logf("%d reads, %d pages, %d retries (%v Unavailable, %v DeadlineExceeded), virtual time %v", reads, pages, st.Retries,
			counterValue(t, c.m.retries, "GetPages", "Unavailable"), counterValue(t, c.m.retries, "GetPages", "DeadlineExceeded"), w.Now())
		if reads < 100 || failed != 0 || wrong != 0 {
			t.Errorf("%d reads (%d failed, %d wrong pages of %d), want at least 100, all right", reads, failed, wrong, pages)
		}
		if st.Retries == 0 {
			t.Errorf("no retries: the crash and the partition were not exercised")
		}
		// The crash refuses connections (Unavailable); the partition
		// silences streams (attempts time out).
		if counterValue(t, c.m.retries, "GetPages", "Unavailable") == 0 || counterValue(t, c.m.retries, "GetPages", "DeadlineExceeded") == 0 {
			t.Errorf("the crash (Unavailable) or the partition (DeadlineExceeded) caused no retry")
		}
		return nil
	})
	if err != nil {
		t.Fatalf("simulation: %v", err)
	}
}
