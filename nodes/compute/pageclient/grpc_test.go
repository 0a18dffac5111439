package pageclient

import (
	"context"
	"io"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/stratadb/strata/clock"
	"github.com/stratadb/strata/engine/lsn"
	"github.com/stratadb/strata/net"
	"github.com/stratadb/strata/net/grpcx"
	"github.com/stratadb/strata/nodes/node"
	"github.com/stratadb/strata/nodes/pageserver/pageapi"
)

// TestOverGRPC runs the client in real mode (real clock, gRPC on
// loopback, the network the daemons use) against two fake pageservers of
// a 2-shard tenant: concurrent mixed-shard batches come back in order,
// pipelined, and a stream broken by a server is retried.
func TestOverGRPC(t *testing.T) {
	clk := clock.NewReal()
	gn := grpcx.New(grpcx.Options{})
	m := ShardMap{Count: 2, StripeSize: 1}
	var fakes []*fake
	for _, name := range []string{"ps-0", "ps-1"} {
		f := newFake(name, 1)
		f.clk = clk
		f.delay = time.Millisecond
		l, err := gn.Listen("127.0.0.1:0", f.mux())
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		f.addr = l.Addr()
		m.Addrs = append(m.Addrs, f.addr)
		fakes = append(fakes, f)
	}
	var broke atomic.Bool
	fakes[1].misbehave = func(n int, req *pageapi.GetPageRequest, r *pageapi.GetPageResponse) (*pageapi.GetPageResponse, error) {
		if n == 3 && !broke.Load() {
			broke.Store(true)
			return nil, net.Errorf(net.Unavailable, "planted")
		}
		return r, nil
	}
	env := node.Env{ID: "compute", Clock: clk, Net: gn, Rand: rand.New(rand.NewPCG(1, 2)),
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Metrics: prometheus.NewRegistry()}
	c, err := New(env, Config{Tenant: testTenant, Timeline: testTimeline, StreamsPerShard: 2, InflightPerStream: 4}, m)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 10 {
				blocks := []uint32{uint32(i), uint32(i + j + 1), uint32(3 * j), uint32(i*j + 7)}
				at := lsn.LSN(0x100 + i*10 + j)
				out, err := c.GetPages(ctx, Request{Rel: testRel, Blocks: blocks, LSN: ReadLSN{Request: at}})
				if err != nil {
					t.Errorf("caller %d: %v", i, err)
					return
				}
				checkPages(t, out, blocks, at)
			}
		}()
	}
	wg.Wait()
	for _, f := range fakes {
		_, maxOpen, _, maxInflight, _ := f.snapshot()
		if maxOpen > 2 || maxInflight < 2 {
			t.Errorf("%s: %d streams open at most (limit 2), %d in flight at most (want pipelining)", f.name, maxOpen, maxInflight)
		}
	}
	if !broke.Load() || c.Stats().Retries == 0 {
		t.Errorf("the broken stream was not retried (broke %v, %d retries)", broke.Load(), c.Stats().Retries)
	}
	if err := c.Close(); err != nil {
		t.Errorf("close: %v", err)
	}
	if _, err := c.GetPages(ctx, Request{Rel: testRel, Blocks: []uint32{1}, LSN: ReadLSN{Request: 0x100}}); net.CodeOf(err) != net.FailedPrecondition {
		t.Errorf("GetPages after Close: %v, want FailedPrecondition", err)
	}
}
