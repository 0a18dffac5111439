package pageclient

import (
	"context"
	"errors"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stratadb/strata/clock"
	"github.com/stratadb/strata/engine/lsn"
	"github.com/stratadb/strata/net"
	"github.com/stratadb/strata/nodes/pageserver/pageapi"
)

func one(f *fake) ShardMap { return ShardMap{Addrs: []string{f.addr}} }

// TestPipelining: with one stream allowed and four requests in flight per
// stream, eight concurrent callers share one stream, four requests deep,
// and every caller gets its own pages (answers matched in order).
func TestPipelining(t *testing.T) {
	f := newFake("ps-0", 1)
	f.delay = 5 * time.Millisecond
	runWorld(t, []*fake{f}, func(w *world) {
		c := w.client(Config{StreamsPerShard: 1, InflightPerStream: 4}, one(f))
		defer c.Close()
		w.parallel(8, func(ctx context.Context, i int) {
			blocks := []uint32{uint32(i)}
			out, err := c.GetPages(ctx, Request{Rel: testRel, Blocks: blocks, LSN: ReadLSN{Request: lsn.LSN(0x100 + i)}})
			if err != nil {
				t.Errorf("caller %d: %v", i, err)
				return
			}
			checkPages(t, out, blocks, lsn.LSN(0x100+i))
		})
		seen, maxOpen, opened, maxInflight, _ := f.snapshot()
		if len(seen) != 8 || opened != 1 || maxOpen != 1 {
			t.Errorf("%d requests on %d streams (at most %d open), want 8 on 1", len(seen), opened, maxOpen)
		}
		if maxInflight != 4 {
			t.Errorf("at most %d requests in flight on the stream, want 4 (pipelined up to the limit)", maxInflight)
		}
	})
}

// TestStreamMismatchFailsLoudly: a response whose request id (or
// attempt) is not the next request's breaks the stream: both pipelined
// callers fail Internal, neither gets a page, and nothing is retried.
func TestStreamMismatchFailsLoudly(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(id *pageapi.RequestID) *pageapi.RequestID
	}{
		{"another id", func(id *pageapi.RequestID) *pageapi.RequestID {
			return &pageapi.RequestID{Id: id.Id + 1, Attempt: id.Attempt}
		}},
		{"another attempt", func(id *pageapi.RequestID) *pageapi.RequestID {
			return &pageapi.RequestID{Id: id.Id, Attempt: id.Attempt + 1}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake("ps-0", 1)
			f.delay = 5 * time.Millisecond
			f.misbehave = func(n int, _ *pageapi.GetPageRequest, r *pageapi.GetPageResponse) (*pageapi.GetPageResponse, error) {
				if n == 0 {
					r.RequestId = tc.edit(r.RequestId)
				}
				return r, nil
			}
			runWorld(t, []*fake{f}, func(w *world) {
				c := w.client(Config{StreamsPerShard: 1, InflightPerStream: 2}, one(f))
				defer c.Close()
				errs := make([]error, 2)
				w.parallel(2, func(ctx context.Context, i int) {
					_, errs[i] = c.GetPages(ctx, Request{Rel: testRel, Blocks: []uint32{uint32(i)}, LSN: ReadLSN{Request: 0x100}})
				})
				for i, err := range errs {
					if net.CodeOf(err) != net.Internal || !errors.Is(err, ErrBadResponse) {
						t.Errorf("caller %d: %v, want Internal wrapping ErrBadResponse", i, err)
					}
				}
				if seen, _, _, maxInflight, _ := f.snapshot(); len(seen) != 2 || maxInflight != 2 {
					t.Errorf("server saw %d requests, %d in flight at most; want 2 pipelined (Internal is never retried)", len(seen), maxInflight)
				}
				if got := counterValue(t, c.m.requests, "GetPages", "Internal"); got != 2 {
					t.Errorf("requests_total{GetPages,Internal} = %v, want 2", got)
				}
			})
		})
	}
}

// TestRetryCodes: what the client retries and what it does not. Internal
// (in the response or ending the stream), NotFound and InvalidArgument
// fail at once; SLOW_DOWN and a stream ended Unavailable are retried with
// the attempt counted in the request id.
func TestRetryCodes(t *testing.T) {
	inBand := func(code pageapi.GetPageStatusCode) func(int, *pageapi.GetPageRequest, *pageapi.GetPageResponse) (*pageapi.GetPageResponse, error) {
		return func(n int, _ *pageapi.GetPageRequest, r *pageapi.GetPageResponse) (*pageapi.GetPageResponse, error) {
			if n < 2 {
				return &pageapi.GetPageResponse{RequestId: r.RequestId, StatusCode: code, Reason: "planted"}, nil
			}
			return r, nil
		}
	}
	endStream := func(code net.Code) func(int, *pageapi.GetPageRequest, *pageapi.GetPageResponse) (*pageapi.GetPageResponse, error) {
		return func(n int, _ *pageapi.GetPageRequest, r *pageapi.GetPageResponse) (*pageapi.GetPageResponse, error) {
			if n < 2 {
				return nil, net.Errorf(code, "planted")
			}
			return r, nil
		}
	}
	for _, tc := range []struct {
		name       string
		bad        func(int, *pageapi.GetPageRequest, *pageapi.GetPageResponse) (*pageapi.GetPageResponse, error)
		wantCode   net.Code // OK: the third attempt succeeds
		retryLabel string   // the code the retries are counted under
	}{
		{"INTERNAL_ERROR", inBand(pageapi.GetPageStatusCode_GET_PAGE_STATUS_CODE_INTERNAL_ERROR), net.Internal, ""},
		{"stream ends Internal", endStream(net.Internal), net.Internal, ""},
		{"NOT_FOUND", inBand(pageapi.GetPageStatusCode_GET_PAGE_STATUS_CODE_NOT_FOUND), net.NotFound, ""},
		{"INVALID_REQUEST", inBand(pageapi.GetPageStatusCode_GET_PAGE_STATUS_CODE_INVALID_REQUEST), net.InvalidArgument, ""},
		{"stream ends PermissionDenied", endStream(net.PermissionDenied), net.PermissionDenied, ""},
		{"SLOW_DOWN", inBand(pageapi.GetPageStatusCode_GET_PAGE_STATUS_CODE_SLOW_DOWN), net.OK, "ResourceExhausted"},
		{"stream ends Unavailable", endStream(net.Unavailable), net.OK, "Unavailable"},
		{"stream ends Aborted", endStream(net.Aborted), net.OK, "Aborted"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake("ps-0", 1)
			f.misbehave = tc.bad
			runWorld(t, []*fake{f}, func(w *world) {
				c := w.client(Config{}, one(f))
				defer c.Close()
				out, err := c.GetPages(w.ctx, Request{Rel: testRel, Blocks: []uint32{7}, LSN: ReadLSN{Request: 0x100}})
				if net.CodeOf(err) != tc.wantCode {
					t.Fatalf("GetPages: %v, want code %v", err, tc.wantCode)
				}
				seen, _, _, _, _ := f.snapshot()
				var attempts []uint32
				for _, r := range seen {
					attempts = append(attempts, r.attempt)
				}
				if tc.wantCode != net.OK {
					if len(seen) != 1 || c.Stats().Retries != 0 {
						t.Errorf("attempts %v, %d retries; want exactly one attempt (%v is not retried)", attempts, c.Stats().Retries, tc.wantCode)
					}
					return
				}
				checkPages(t, out, []uint32{7}, 0x100)
				if !slices.Equal(attempts, []uint32{0, 1, 2}) {
					t.Errorf("request ids carried attempts %v, want [0 1 2]", attempts)
				}
				if got := counterValue(t, c.m.retries, "GetPages", tc.retryLabel); got != 2 {
					t.Errorf("retries_total{GetPages,%s} = %v, want 2", tc.retryLabel, got)
				}
				if s := c.Stats(); s.Retries != 2 || s.Requests != 1 {
					t.Errorf("stats %+v, want 2 retries of 1 request", s)
				}
			})
		})
	}
}

// waitFor polls cond every millisecond of virtual time, for at most a
// minute.
func (w *world) waitFor(what string, cond func() bool) {
	w.t.Helper()
	for i := 0; !cond(); i++ {
		if i == 60_000 {
			w.t.Fatalf("timed out waiting for %s", what)
		}
		w.w.Sleep(time.Millisecond)
	}
}

// TestShardMapSwap: requests in flight when the map changes finish on the
// old map; a retry after the change routes by the new map (split over
// the new shards, attempt 1); a shrinking count, a new stripe once sharded
// and a map missing a shard are refused and leave the map as it was; the
// old shard's pool is closed once idle.
func TestShardMapSwap(t *testing.T) {
	a, b, c2 := newFake("ps-a", 1), newFake("ps-b", 1), newFake("ps-c", 1)
	a.hold = true
	failFrom := uint32(100)
	a.misbehave = func(_ int, req *pageapi.GetPageRequest, r *pageapi.GetPageResponse) (*pageapi.GetPageResponse, error) {
		if req.BlockNumber[0] >= failFrom {
			return nil, net.Errorf(net.Unavailable, "planted: shard split away")
		}
		return r, nil
	}
	runWorld(t, []*fake{a, b, c2}, func(w *world) {
		c := w.client(Config{}, one(a))
		defer c.Close()
		stay := []uint32{0, 1, 2, 3, 4, 5, 6, 7}
		moved := []uint32{100, 101, 102, 103, 104, 105, 106, 107}
		next := ShardMap{Count: 2, StripeSize: 1, Addrs: []string{b.addr, c2.addr}}
		results := make([][][]byte, 2)
		errs := make([]error, 2)
		done := clock.NewGroup(w.env.Clock, w.ctx)
		for i, blocks := range [][]uint32{stay, moved} {
			done.Go("caller", func(ctx context.Context) error {
				results[i], errs[i] = c.GetPages(ctx, Request{Rel: testRel, Blocks: blocks, LSN: ReadLSN{Request: 0x200}})
				return nil
			})
		}
		w.waitFor("both requests at the old shard", func() bool { seen, _, _, _, _ := a.snapshot(); return len(seen) == 2 })
		if err := c.UpdateShardMap(next); err != nil {
			t.Fatalf("update: %v", err)
		}
		a.set(func(f *fake) { f.hold = false })
		_ = done.Wait()
		for i, blocks := range [][]uint32{stay, moved} {
			if errs[i] != nil {
				t.Fatalf("caller %d: %v", i, errs[i])
			}
			checkPages(t, results[i], blocks, 0x200)
		}
		// The in-flight request finished on the old map: the new shards
		// never saw its blocks; the failed one was retried on the new map.
		var got []uint32
		for _, f := range []*fake{b, c2} {
			seen, _, _, _, _ := f.snapshot()
			if len(seen) == 0 {
				t.Errorf("%s got nothing: the retry did not split over the new map", f.name)
			}
			for _, r := range seen {
				if r.attempt != 1 {
					t.Errorf("%s got attempt %d, want the retry (1)", f.name, r.attempt)
				}
				got = append(got, r.blocks...)
			}
		}
		slices.Sort(got)
		if !slices.Equal(got, moved) {
			t.Errorf("the new shards got blocks %v, want exactly the retried %v", got, moved)
		}
		if seen, _, _, _, _ := a.snapshot(); len(seen) != 2 {
			t.Errorf("the old shard saw %d requests after the swap, want none beyond the 2 in flight", len(seen))
		}

		for _, bad := range []struct {
			m    ShardMap
			want error
		}{
			{ShardMap{Count: 1, StripeSize: 1, Addrs: []string{b.addr}}, ErrShardMapUpdate},
			{ShardMap{Addrs: []string{b.addr}}, ErrShardMapUpdate},
			{ShardMap{Count: 2, StripeSize: 8, Addrs: []string{b.addr, c2.addr}}, ErrShardMapUpdate},
			{ShardMap{Count: 4, StripeSize: 1, Addrs: []string{b.addr, c2.addr, a.addr}}, ErrShardMap},
		} {
			if err := c.UpdateShardMap(bad.m); !errors.Is(err, bad.want) {
				t.Errorf("update to %v: %v, want %v", bad.m, err, bad.want)
			}
		}
		if m := c.ShardMap(); m.Count != 2 || m.StripeSize != 1 || !slices.Equal(m.Addrs, next.Addrs) {
			t.Errorf("map after refusals: %v, want %v", m, next)
		}
		if applied, refused := counterValue(t, c.m.mapUpdates, "applied"), counterValue(t, c.m.mapUpdates, "refused"); applied != 1 || refused != 4 {
			t.Errorf("map updates applied %v refused %v, want 1 and 4", applied, refused)
		}
		// The old shard's pool went once idle, long before IdleTimeout:
		// at the first reaper pass after its requests were done.
		w.w.Sleep(DefaultIdleTimeout/4 + time.Second)
		if _, _, _, _, open := a.snapshot(); open != 0 {
			t.Errorf("%d streams still open to the shard that left the map", open)
		}
		// An update closes at once the idle pools of shards that leave.
		b.set(func(f *fake) { f.hold = false })
		if _, err := c.GetPages(w.ctx, Request{Rel: testRel, Blocks: stay, LSN: ReadLSN{Request: 0x200}}); err != nil {
			t.Fatalf("read on the new map: %v", err)
		}
		if _, _, _, _, open := b.snapshot(); open == 0 {
			t.Fatalf("no stream open to %s", b.name)
		}
		moved4 := ShardMap{Count: 4, StripeSize: 1, Addrs: []string{a.addr, c2.addr, a.addr, c2.addr}}
		if err := c.UpdateShardMap(moved4); err != nil {
			t.Fatalf("update to 4 shards: %v", err)
		}
		w.w.Sleep(10 * time.Millisecond)
		if _, _, _, _, open := b.snapshot(); open != 0 {
			t.Errorf("%d streams still open to %s right after the update that moved its shard", open, b.name)
		}
	})
}

// drop answers nothing to the requests for which pred holds (the answer is
// lost: the caller can only time out).
func drop(pred func(n int) bool) func(int, *pageapi.GetPageRequest, *pageapi.GetPageResponse) (*pageapi.GetPageResponse, error) {
	return func(n int, _ *pageapi.GetPageRequest, r *pageapi.GetPageResponse) (*pageapi.GetPageResponse, error) {
		if pred(n) {
			return nil, nil
		}
		return r, nil
	}
}

// TestAttemptTimeout: an attempt that gets no answer within
// AttemptTimeout is retried (on a fresh stream: the silent one is closed)
// and the call succeeds; the first attempt's stream is gone.
func TestAttemptTimeout(t *testing.T) {
	f := newFake("ps-0", 1)
	f.misbehave = drop(func(n int) bool { return n == 0 })
	runWorld(t, []*fake{f}, func(w *world) {
		c := w.client(Config{AttemptTimeout: time.Second, CallTimeout: 10 * time.Second}, one(f))
		defer c.Close()
		start := w.env.Clock.Mono()
		out, err := c.GetPages(w.ctx, Request{Rel: testRel, Blocks: []uint32{3}, LSN: ReadLSN{Request: 0x100}})
		if err != nil {
			t.Fatalf("GetPages: %v", err)
		}
		checkPages(t, out, []uint32{3}, 0x100)
		took := w.env.Clock.Mono() - start
		seen, _, opened, _, _ := f.snapshot()
		if len(seen) != 2 || seen[0].attempt != 0 || seen[1].attempt != 1 || opened != 2 || seen[0].stream == seen[1].stream {
			t.Errorf("seen %+v on %d streams: want attempts 0 and 1 on two streams", seen, opened)
		}
		if took < time.Second || took > 2*time.Second {
			t.Errorf("call took %v, want the 1s attempt timeout and a short back-off", took)
		}
		if got := counterValue(t, c.m.retries, "GetPages", "DeadlineExceeded"); got != 1 {
			t.Errorf("retries{DeadlineExceeded} = %v, want 1", got)
		}
	})
}

// TestCallTimeout: a server that never answers makes the call fail
// DeadlineExceeded after CallTimeout, having retried each timed-out
// attempt meanwhile.
func TestCallTimeout(t *testing.T) {
	f := newFake("ps-0", 1)
	f.misbehave = drop(func(int) bool { return true })
	runWorld(t, []*fake{f}, func(w *world) {
		c := w.client(Config{AttemptTimeout: time.Second, CallTimeout: 10 * time.Second, BackoffMax: 100 * time.Millisecond}, one(f))
		defer c.Close()
		start := w.env.Clock.Mono()
		_, err := c.GetPages(w.ctx, Request{Rel: testRel, Blocks: []uint32{3}, LSN: ReadLSN{Request: 0x100}})
		took := w.env.Clock.Mono() - start
		if net.CodeOf(err) != net.DeadlineExceeded || !strings.Contains(err.Error(), "gave up after 10s") {
			t.Fatalf("GetPages: %v, want DeadlineExceeded after the call timeout", err)
		}
		if took < 10*time.Second || took > 10*time.Second+100*time.Millisecond {
			t.Errorf("call took %v, want 10s", took)
		}
		if seen, _, _, _, _ := f.snapshot(); len(seen) < 8 || seen[len(seen)-1].attempt != uint32(len(seen)-1) {
			t.Errorf("%d attempts (last %+v), want about 9, numbered 0, 1, …", len(seen), seen[len(seen)-1])
		}
		if got := counterValue(t, c.m.requests, "GetPages", "DeadlineExceeded"); got != 1 {
			t.Errorf("requests{DeadlineExceeded} = %v, want 1", got)
		}
	})
}

// TestBackoff: the back-off doubles from the base to the cap, half of each
// step is jitter, and the same seed gives the same pauses.
func TestBackoff(t *testing.T) {
	base, maxD := 5*time.Millisecond, 5*time.Second
	r1, r2 := rand.New(rand.NewPCG(1, 2)), rand.New(rand.NewPCG(1, 2))
	distinct := map[time.Duration]bool{}
	for attempt := range 16 {
		step := min(base<<attempt, maxD)
		for range 20 {
			d := Backoff(base, maxD, attempt, r1)
			if d < step/2 || d > step {
				t.Fatalf("attempt %d: back-off %v not in [%v, %v]", attempt, d, step/2, step)
			}
			if d2 := Backoff(base, maxD, attempt, r2); d2 != d {
				t.Fatalf("same seed, different back-off: %v vs %v", d, d2)
			}
			distinct[d] = true
		}
	}
	if len(distinct) < 100 {
		t.Errorf("only %d distinct pauses in 320: no jitter", len(distinct))
	}
	if d := Backoff(base, maxD, 1000, r1); d > maxD {
		t.Errorf("attempt 1000: %v above the cap", d)
	}
}

// TestRetriesBackOff: through the client, the gaps between the attempts a
// server sees grow as the back-off says.
func TestRetriesBackOff(t *testing.T) {
	f := newFake("ps-0", 1)
	f.misbehave = func(n int, _ *pageapi.GetPageRequest, r *pageapi.GetPageResponse) (*pageapi.GetPageResponse, error) {
		if n < 6 {
			return nil, net.Errorf(net.Unavailable, "planted")
		}
		return r, nil
	}
	runWorld(t, []*fake{f}, func(w *world) {
		base, maxD := 100*time.Millisecond, time.Second
		c := w.client(Config{BackoffBase: base, BackoffMax: maxD}, one(f))
		defer c.Close()
		if _, err := c.GetPages(w.ctx, Request{Rel: testRel, Blocks: []uint32{3}, LSN: ReadLSN{Request: 0x100}}); err != nil {
			t.Fatalf("GetPages: %v", err)
		}
		seen, _, _, _, _ := f.snapshot()
		if len(seen) != 7 {
			t.Fatalf("%d attempts, want 7", len(seen))
		}
		for k := 1; k < len(seen); k++ {
			step := min(base<<(k-1), maxD)
			if gap := seen[k].at - seen[k-1].at; gap < step/2 || gap > step+50*time.Millisecond {
				t.Errorf("gap before attempt %d: %v, want in [%v, %v] plus network", k, gap, step/2, step)
			}
		}
	})
}

// TestIdleReaping: a stream and its connection stay while used and for
// IdleTimeout after, then the reaper closes both (gauges back to 0); the
// next request opens a new stream.
func TestIdleReaping(t *testing.T) {
	f := newFake("ps-0", 1)
	runWorld(t, []*fake{f}, func(w *world) {
		c := w.client(Config{IdleTimeout: 10 * time.Second}, one(f))
		defer c.Close()
		get := func() {
			if _, err := c.GetPages(w.ctx, Request{Rel: testRel, Blocks: []uint32{3}, LSN: ReadLSN{Request: 0x100}}); err != nil {
				t.Fatalf("GetPages: %v", err)
			}
		}
		pool := c.route.Load().pools[0]
		get()
		w.w.Sleep(6 * time.Second)
		get() // used again: the idle clock restarts
		w.w.Sleep(6 * time.Second)
		if n := pool.counts(); n.Streams[normalPool] != 1 || n.Conns[normalPool] != 1 {
			t.Fatalf("reaped too early: %+v", n)
		}
		if _, _, opened, _, open := f.snapshot(); opened != 1 || open != 1 {
			t.Fatalf("server: %d streams opened, %d open; want 1 and 1", opened, open)
		}
		if gaugeValue(t, c.m.streams, "normal") != 1 || gaugeValue(t, c.m.conns, "normal") != 1 {
			t.Errorf("gauges: streams %v conns %v, want 1 and 1", gaugeValue(t, c.m.streams, "normal"), gaugeValue(t, c.m.conns, "normal"))
		}
		w.w.Sleep(7 * time.Second)
		if n := pool.counts(); n.Streams[normalPool] != 0 || n.Conns[normalPool] != 0 {
			t.Fatalf("not reaped after the idle timeout: %+v", n)
		}
		if _, _, _, _, open := f.snapshot(); open != 0 {
			t.Errorf("server still has %d streams open", open)
		}
		if gaugeValue(t, c.m.streams, "normal") != 0 || gaugeValue(t, c.m.conns, "normal") != 0 {
			t.Errorf("gauges not back to 0")
		}
		get()
		if _, _, opened, _, _ := f.snapshot(); opened != 2 {
			t.Errorf("%d streams opened, want a second one after reaping", opened)
		}
	})
}

// TestLimitsHonoured: many concurrent callers never make the client
// exceed its streams per shard, requests in flight per stream, clients
// per connection or connections per shard, in the normal and the bulk
// pool; requests of BulkThreshold blocks use the bulk pool. In the first
// case the stream limit binds, in the second the connection limit.
func TestLimitsHonoured(t *testing.T) {
	for _, tc := range []struct {
		name         string
		cfg          Config
		streams      [2]int // peak streams, normal and bulk
		conns        [2]int
		dials        int
		maxServerOps int // streams open at once at the server, at most
	}{
		{"streams bind", Config{ClientsPerConn: 2, MaxConnsPerShard: 2, StreamsPerShard: 3, InflightPerStream: 2,
			BulkClientsPerConn: 1, BulkStreamsPerShard: 1, BulkThreshold: 4}, [2]int{3, 1}, [2]int{2, 1}, 3, 4},
		{"connections bind", Config{ClientsPerConn: 1, MaxConnsPerShard: 2, StreamsPerShard: 8, InflightPerStream: 2,
			BulkClientsPerConn: 1, BulkStreamsPerShard: 1, BulkThreshold: 4}, [2]int{2, 1}, [2]int{2, 1}, 3, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake("ps-0", 1)
			f.delay = 5 * time.Millisecond
			runWorld(t, []*fake{f}, func(w *world) {
				c := w.client(tc.cfg, one(f))
				defer c.Close()
				pool := c.route.Load().pools[0]
				var peak poolCounts
				stop := false
				g := clock.NewGroup(w.env.Clock, w.ctx)
				g.Go("watch", func(ctx context.Context) error {
					for !stop {
						n := pool.counts()
						for k := range 2 {
							peak.Streams[k] = max(peak.Streams[k], n.Streams[k])
							peak.Conns[k] = max(peak.Conns[k], n.Conns[k])
						}
						peak.MaxInflight = max(peak.MaxInflight, n.MaxInflight)
						_ = clock.Sleep(ctx, w.env.Clock, 100*time.Microsecond)
					}
					return nil
				})
				w.parallel(24, func(ctx context.Context, i int) {
					blocks := []uint32{uint32(i)}
					if i%4 == 0 {
						blocks = []uint32{uint32(i), uint32(i + 1), uint32(i + 2), uint32(i + 3)}
					}
					out, err := c.GetPages(ctx, Request{Rel: testRel, Blocks: blocks, LSN: ReadLSN{Request: 0x100}})
					if err != nil {
						t.Errorf("caller %d: %v", i, err)
						return
					}
					checkPages(t, out, blocks, 0x100)
				})
				stop = true
				_ = g.Wait()
				seen, maxOpen, _, maxInflight, _ := f.snapshot()
				if maxOpen > tc.maxServerOps || maxInflight != 2 {
					t.Errorf("server: %d streams open at most (want <= %d), %d in flight on one (limit 2, pipelined)", maxOpen, tc.maxServerOps, maxInflight)
				}
				if peak.Streams != tc.streams || peak.Conns != tc.conns || peak.MaxInflight != 2 {
					t.Errorf("peak pool %+v, want streams %v, conns %v, 2 in flight", peak, tc.streams, tc.conns)
				}
				if d := w.net.count(f.addr); d != tc.dials {
					t.Errorf("%d dials, want %d", d, tc.dials)
				}
				bulkStreams := map[int]bool{}
				for _, r := range seen {
					if len(r.blocks) >= 4 {
						bulkStreams[r.stream] = true
					}
				}
				if len(bulkStreams) != 1 {
					t.Errorf("bulk requests on %d streams, want the one bulk stream", len(bulkStreams))
				}
				for _, r := range seen {
					if len(r.blocks) < 4 && bulkStreams[r.stream] {
						t.Errorf("a 1-block request went to the bulk stream")
					}
				}
			})
		})
	}
}

// TestConfigValidate: defaults fill zero fields; negative or inconsistent
// values are refused naming the field; Validate does not change its
// receiver.
func TestConfigValidate(t *testing.T) {
	if err := (Config{}).Validate(); err != nil {
		t.Fatalf("zero config: %v", err)
	}
	if d := (Config{}).withDefaults(); d.StreamsPerShard != DefaultStreamsPerShard || d.IdleTimeout != DefaultIdleTimeout || d.CallTimeout != DefaultCallTimeout {
		t.Errorf("defaults not filled: %+v", d)
	}
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{StreamsPerShard: -1}, "StreamsPerShard -1"},
		{Config{InflightPerStream: -2}, "InflightPerStream -2"},
		{Config{ClientsPerConn: -1}, "ClientsPerConn"},
		{Config{MaxAttempts: -1}, "MaxAttempts"},
		{Config{IdleTimeout: -time.Second}, "IdleTimeout"},
		{Config{AttemptTimeout: 2 * time.Minute}, "AttemptTimeout 2m0s > CallTimeout 1m0s"},
		{Config{BackoffBase: time.Minute}, "BackoffBase 1m0s > BackoffMax 5s"},
		{Config{MaxBlocksPerRequest: 5000}, "MaxBlocksPerRequest 5000"},
	} {
		cp := tc.cfg
		err := tc.cfg.Validate()
		if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want ErrConfig naming %q", tc.cfg, err, tc.want)
		}
		if cp != tc.cfg {
			t.Errorf("Validate changed its receiver")
		}
	}
}

// TestShardMapValidate: a map needs one address per shard and, when
// sharded, a stripe.
func TestShardMapValidate(t *testing.T) {
	for _, tc := range []struct {
		m  ShardMap
		ok bool
	}{
		{ShardMap{Addrs: []string{"a:1"}}, true},
		{ShardMap{Count: 1, StripeSize: 2048, Addrs: []string{"a:1"}}, true},
		{ShardMap{Count: 2, StripeSize: 1, Addrs: []string{"a:1", "a:1"}}, true},
		{ShardMap{}, false},
		{ShardMap{Addrs: []string{"a:1", "b:1"}}, false},
		{ShardMap{Count: 2, Addrs: []string{"a:1", "b:1"}}, false},
		{ShardMap{Count: 2, StripeSize: 8, Addrs: []string{"a:1"}}, false},
		{ShardMap{Count: 2, StripeSize: 8, Addrs: []string{"a:1", " "}}, false},
	} {
		if err := tc.m.Validate(); (err == nil) != tc.ok || (err != nil && !errors.Is(err, ErrShardMap)) {
			t.Errorf("%+v: %v, want ok=%v", tc.m, err, tc.ok)
		}
	}
	// Growth is allowed, including a new stripe from one shard.
	cur := ShardMap{Count: 1, StripeSize: 2048, Addrs: []string{"a:1"}}
	if err := cur.CheckUpdate(ShardMap{Count: 4, StripeSize: 8, Addrs: []string{"a:1", "b:1", "c:1", "d:1"}}); err != nil {
		t.Errorf("1 -> 4 shards with a new stripe: %v", err)
	}
	if err := (ShardMap{Addrs: []string{"a:1"}}).CheckUpdate(cur); err != nil {
		t.Errorf("unsharded -> 1 shard: %v", err)
	}
}

// TestUnaryRetries: unary calls retry what may heal, never Internal.
func TestUnaryRetries(t *testing.T) {
	for _, tc := range []struct {
		code  net.Code
		calls int
		ok    bool
	}{{net.Unavailable, 3, true}, {net.ResourceExhausted, 3, true}, {net.Internal, 1, false}, {net.NotFound, 1, false}} {
		t.Run(tc.code.String(), func(t *testing.T) {
			f := newFake("ps-0", 1)
			f.unaryFail, f.unaryCode = 2, tc.code
			runWorld(t, []*fake{f}, func(w *world) {
				c := w.client(Config{}, one(f))
				defer c.Close()
				n, _, err := c.GetRelSize(w.ctx, testRel, ReadLSN{Request: 0x100}, false)
				if tc.ok != (err == nil) || (err == nil && n != 42) || (err != nil && net.CodeOf(err) != tc.code) {
					t.Fatalf("GetRelSize: %d, %v", n, err)
				}
				if len(f.unary) != tc.calls {
					t.Errorf("%d calls, want %d", len(f.unary), tc.calls)
				}
				if got := counterValue(t, c.m.requests, "GetRelSize", map[bool]string{true: "OK", false: tc.code.String()}[tc.ok]); got != 1 {
					t.Errorf("requests_total{GetRelSize} = %v, want 1", got)
				}
			})
		})
	}
}
