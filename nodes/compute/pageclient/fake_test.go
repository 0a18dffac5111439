package pageclient

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/stratadb/strata/clock"
	"github.com/stratadb/strata/engine/keys"
	"github.com/stratadb/strata/engine/lsn"
	"github.com/stratadb/strata/engine/shard"
	"github.com/stratadb/strata/engine/walrec"
	"github.com/stratadb/strata/net"
	"github.com/stratadb/strata/nodes/node"
	"github.com/stratadb/strata/nodes/pageserver/pageapi"
	"github.com/stratadb/strata/sim"
)

var (
	testTenant   = shard.TenantID{0xc1, 0x1e}
	testTimeline = shard.TimelineID{0x7e, 0x57}
	testRel      = keys.RelTag{SpcNode: 1663, DbNode: 5, RelNode: 16384}
)

// fakePage is the page a fake pageserver answers for blk at l: its block
// and LSN in the first bytes, so a page for another block or LSN is told
// apart.
func fakePage(blk uint32, l lsn.LSN) []byte {
	p := make([]byte, walrec.PageSize)
	binary.LittleEndian.PutUint32(p, blk)
	binary.LittleEndian.PutUint64(p[4:], uint64(l))
	for i := 12; i < len(p); i += 4 {
		binary.LittleEndian.PutUint32(p[i:], blk*2654435761+uint32(i))
	}
	return p
}

// seenReq is a GetPage request a fake received.
type seenReq struct {
	shard   string // neon-shard-id of its stream
	stream  int    // the stream's number at this fake (1, 2, …)
	id      uint64
	attempt uint32
	blocks  []uint32
	at      time.Duration // Mono when received
}

// fake is a page service that answers GetPages like a pageserver (in
// order, pipelined, refusing blocks its shard does not own) from
// fakePage, with knobs to slow it down, hold answers and misbehave.
type fake struct {
	name, addr string
	stripe     uint32
	clk        clock.Clock

	mu    sync.Mutex
	delay time.Duration
	hold  bool
	// misbehave, when set, may replace the answer to the n-th request
	// (0-based, over the fake's life) or end the stream with an error.
	misbehave func(n int, req *pageapi.GetPageRequest, resp *pageapi.GetPageResponse) (*pageapi.GetPageResponse, error)
	seen      []seenReq
	open      int // GetPages streams open now
	maxOpen   int
	opened    int
	// maxInflight is the most requests one stream had received and not
	// yet answered.
	maxInflight int
	unary       []string // neon-shard-id of each unary call
	served      int      // requests answered (or dropped) so far
	// unaryFail GetRelSize calls fail with unaryCode before one succeeds.
	unaryFail int
	unaryCode net.Code
}

func newFake(name string, stripe uint32) *fake {
	return &fake{name: name, addr: name + ":6400", stripe: stripe}
}

func (f *fake) set(fn func(f *fake)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}

func (f *fake) snapshot() (seen []seenReq, maxOpen, opened, maxInflight, open int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]seenReq(nil), f.seen...), f.maxOpen, f.opened, f.maxInflight, f.open
}

func (f *fake) mux() *net.Mux {
	m := net.NewMux()
	net.HandleStreamProto(m, pageapi.PageService_GetPages_FullMethodName, f.getPages)
	net.HandleUnary(m, pageapi.PageService_GetRelSize_FullMethodName, func(ctx context.Context, r *pageapi.GetRelSizeRequest) (*pageapi.GetRelSizeResponse, error) {
		t, err := pageapi.ParseTarget(net.IncomingMetadata(ctx))
		if err != nil {
			return nil, net.Wrap(net.InvalidArgument, err)
		}
		f.mu.Lock()
		f.unary = append(f.unary, t.Shard.Shard.String())
		fail := f.unaryFail
		if fail != 0 {
			f.unaryFail--
		}
		f.mu.Unlock()
		if fail != 0 {
			return nil, net.Errorf(f.unaryCode, "planted")
		}
		if t.Shard.Shard.Number != 0 {
			return nil, net.Errorf(net.InvalidArgument, "fake: GetRelSize sent to shard %s", t.Shard.Shard)
		}
		return &pageapi.GetRelSizeResponse{NumBlocks: 42}, nil
	})
	shard0 := func(ctx context.Context, method string) error {
		t, err := pageapi.ParseTarget(net.IncomingMetadata(ctx))
		if err != nil {
			return net.Wrap(net.InvalidArgument, err)
		}
		f.mu.Lock()
		f.unary = append(f.unary, method+" "+t.Shard.Shard.String())
		f.mu.Unlock()
		if t.Shard.Shard.Number != 0 {
			return net.Errorf(net.InvalidArgument, "fake: %s sent to shard %s", method, t.Shard.Shard)
		}
		return nil
	}
	net.HandleUnary(m, pageapi.PageService_GetDbSize_FullMethodName, func(ctx context.Context, r *pageapi.GetDbSizeRequest) (*pageapi.GetDbSizeResponse, error) {
		if err := shard0(ctx, "GetDbSize"); err != nil {
			return nil, err
		}
		return &pageapi.GetDbSizeResponse{NumBytes: uint64(r.DbOid) * 8192}, nil
	})
	net.HandleUnary(m, pageapi.PageService_GetSlruSegment_FullMethodName, func(ctx context.Context, r *pageapi.GetSlruSegmentRequest) (*pageapi.GetSlruSegmentResponse, error) {
		if err := shard0(ctx, "GetSlruSegment"); err != nil {
			return nil, err
		}
		return &pageapi.GetSlruSegmentResponse{Segment: []byte{byte(r.Kind), byte(r.Segno)}}, nil
	})
	return m
}

func (f *fake) getPages(ctx context.Context, st *net.ServerStreamOf[*pageapi.GetPageRequest, *pageapi.GetPageResponse]) error {
	t, err := pageapi.ParseTarget(net.IncomingMetadata(ctx))
	if err != nil {
		return net.Wrap(net.InvalidArgument, err)
	}
	f.mu.Lock()
	f.open++
	f.opened++
	sid := f.opened
	f.maxOpen = max(f.maxOpen, f.open)
	f.mu.Unlock()
	defer f.set(func(f *fake) { f.open-- })
	q := clock.NewChan[*pageapi.GetPageRequest](f.clk, 256)
	inflight := 0 // under f.mu
	f.clk.Go(ctx, "fake recv", func(ctx context.Context) {
		defer q.Close()
		for {
			req, err := st.Recv()
			if err != nil {
				return
			}
			f.mu.Lock()
			inflight++
			f.maxInflight = max(f.maxInflight, inflight)
			f.seen = append(f.seen, seenReq{shard: t.Shard.Shard.String(), stream: sid, id: req.GetRequestId().GetId(),
				attempt: req.GetRequestId().GetAttempt(), blocks: req.BlockNumber, at: f.clk.Mono()})
			f.mu.Unlock()
			if q.Send(ctx, req) != nil {
				return
			}
		}
	})
	for {
		req, ok, err := q.Recv(ctx)
		if err != nil {
			return net.ToStatus(err)
		}
		if !ok {
			return nil
		}
		for {
			f.mu.Lock()
			hold, delay := f.hold, f.delay
			f.mu.Unlock()
			if !hold {
				if err := clock.Sleep(ctx, f.clk, delay); err != nil {
					return net.ToStatus(err)
				}
				break
			}
			if err := clock.Sleep(ctx, f.clk, time.Millisecond); err != nil {
				return net.ToStatus(err)
			}
		}
		resp := f.answer(t.Shard.Shard, req)
		f.mu.Lock()
		bad := f.misbehave
		seq := f.served
		f.served++
		inflight--
		f.mu.Unlock()
		if bad != nil {
			if resp, err = bad(seq, req, resp); err != nil {
				return err
			}
		}
		if resp == nil {
			continue
		}
		if err := st.Send(resp); err != nil {
			if err == io.EOF {
				return nil
			}
			return err
		}
	}
}

// answer is what a correct pageserver answers.
func (f *fake) answer(idx shard.ShardIndex, req *pageapi.GetPageRequest) *pageapi.GetPageResponse {
	resp := &pageapi.GetPageResponse{RequestId: req.RequestId}
	rel := keys.RelTag{SpcNode: req.Rel.SpcOid, DbNode: req.Rel.DbOid, RelNode: req.Rel.RelNumber, ForkNum: uint8(req.Rel.ForkNumber)}
	for _, b := range req.BlockNumber {
		if owner := shard.KeyToShard(keys.RelBlockKey(rel, b), idx.Count, f.stripe); owner != idx.Number {
			resp.StatusCode = pageapi.GetPageStatusCode_GET_PAGE_STATUS_CODE_INVALID_REQUEST
			resp.Reason = fmt.Sprintf("block %d is on shard %d, not %s", b, owner, idx)
			return resp
		}
	}
	resp.StatusCode = pageapi.GetPageStatusCode_GET_PAGE_STATUS_CODE_OK
	resp.Rel = req.Rel
	for _, b := range req.BlockNumber {
		resp.Page = append(resp.Page, &pageapi.Page{BlockNumber: b, Image: fakePage(b, lsn.LSN(req.ReadLsn.GetRequestLsn()))})
	}
	return resp
}

// countingNet counts dials per address.
type countingNet struct {
	net.Network
	mu    sync.Mutex
	dials map[string]int
}

func (n *countingNet) Dial(ctx context.Context, addr string) (net.Conn, error) {
	n.mu.Lock()
	n.dials[addr]++
	n.mu.Unlock()
	return n.Network.Dial(ctx, addr)
}

func (n *countingNet) count(addr string) int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.dials[addr]
}

// world is a simulated world with fakes and a compute node the test's
// body runs as.
type world struct {
	t   *testing.T
	w   *sim.World
	env node.Env // the compute's, with a dial-counting network
	net *countingNet
	reg *prometheus.Registry
	ctx context.Context
}

// runWorld starts the fakes, then runs body.
func runWorld(t *testing.T, fakes []*fake, body func(w *world)) {
	t.Helper()
	sw := sim.New(sim.Options{Seed: 1, MaxVirtualTime: 2 * time.Hour})
	err := sw.Run(func(sw *sim.World) error {
		for _, f := range fakes {
			sw.AddNode(f.name, func(env node.Env) error {
				f.clk = env.Clock
				_, err := env.Net.Listen(f.addr, f.mux())
				return err
			})
		}
		cn := sw.AddNode("compute", func(node.Env) error { return nil })
		sw.Sleep(time.Millisecond)
		env := cn.Env()
		cnet := &countingNet{Network: env.Net, dials: map[string]int{}}
		env.Net = cnet
		env.Metrics = prometheus.NewRegistry()
		ctx, cancel := clock.WithTimeout(env.Clock, context.Background(), time.Hour)
		defer cancel()
		body(&world{t: t, w: sw, env: env, net: cnet, reg: env.Metrics, ctx: ctx})
		return nil
	})
	if err != nil {
		t.Fatalf("simulation: %v", err)
	}
}

func (w *world) client(cfg Config, m ShardMap) *Client {
	w.t.Helper()
	cfg.Tenant, cfg.Timeline = testTenant, testTimeline
	c, err := New(w.env, cfg, m)
	if err != nil {
		w.t.Fatalf("New: %v", err)
	}
	return c
}

// parallel runs fn(i) for i in 0..n as tasks and waits for all.
func (w *world) parallel(n int, fn func(ctx context.Context, i int)) {
	g := clock.NewGroup(w.env.Clock, w.ctx)
	for i := range n {
		g.Go(fmt.Sprintf("caller %d", i), func(ctx context.Context) error {
			fn(ctx, i)
			return nil
		})
	}
	_ = g.Wait()
}

// checkPages fails unless images are the fake's pages of blocks at l, in
// order.
func checkPages(t *testing.T, images [][]byte, blocks []uint32, l lsn.LSN) {
	t.Helper()
	if len(images) != len(blocks) {
		t.Fatalf("%d images for %d blocks", len(images), len(blocks))
	}
	for i, b := range blocks {
		if want := fakePage(b, l); string(images[i]) != string(want) {
			t.Fatalf("position %d: page of block %d at %d, want block %d at %s", i,
				binary.LittleEndian.Uint32(images[i]), binary.LittleEndian.Uint64(images[i][4:]), b, l)
		}
	}
}

// counterValue reads one labelled value of a counter vector.
func counterValue(t *testing.T, v *prometheus.CounterVec, labels ...string) float64 {
	t.Helper()
	var m dto.Metric
	if err := v.WithLabelValues(labels...).Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// gaugeValue reads one labelled value of a gauge vector.
func gaugeValue(t *testing.T, v *prometheus.GaugeVec, labels ...string) float64 {
	t.Helper()
	var m dto.Metric
	if err := v.WithLabelValues(labels...).Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetGauge().GetValue()
}
