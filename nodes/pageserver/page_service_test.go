package pageserver

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/stratadb/strata/clock"
	"github.com/stratadb/strata/engine/keys"
	"github.com/stratadb/strata/engine/lsn"
	"github.com/stratadb/strata/engine/shard"
	"github.com/stratadb/strata/engine/timeline"
	"github.com/stratadb/strata/engine/walrec"
	"github.com/stratadb/strata/net"
	"github.com/stratadb/strata/net/jwtauth"
	"github.com/stratadb/strata/nodes/node"
	"github.com/stratadb/strata/nodes/pageserver/pageapi"
	"github.com/stratadb/strata/sim"
)

var testRel = keys.RelTag{SpcNode: 1663, DbNode: 5, RelNode: 16384, ForkNum: keys.ForkMain}

func testPage(fill byte) []byte { return bytes.Repeat([]byte{fill}, walrec.PageSize) }

// mapResolver resolves from a fixed set of timelines (the tenant manager's
// stand-in for these tests: the timelines behind it are real).
type mapResolver map[pageapi.Target]Timeline

func (m mapResolver) Resolve(t pageapi.Target) (Timeline, error) {
	if tl, ok := m[t]; ok {
		return tl, nil
	}
	return nil, fmt.Errorf("%w: %s", ErrUnknownTenant, t.Shard)
}

// fixture is a page server node serving real timelines on its simulated
// disk, and a client node dialled to it, inside one simulated world.
type fixture struct {
	w      *sim.World
	clk    clock.Clock
	conn   net.Conn
	tls    map[pageapi.Target]*shardTimeline
	signer ed25519.PrivateKey
}

var (
	tenantA, _ = shard.ParseTenantID("0123456789abcdef0123456789abcdef")
	timelineA  = shard.TimelineID{0xaa}
)

// runFixture starts a page service with one timeline per shard identity
// given (all of tenantA/timelineA) and runs body as the client.
func runFixture(t *testing.T, cfg PageServiceConfig, auth bool, idents []shard.ShardIdentity, body func(f *fixture)) {
	t.Helper()
	w := sim.New(sim.Options{Seed: 1})
	err := w.Run(func(w *sim.World) error {
		f := &fixture{w: w, clk: w.Clock(), tls: map[pageapi.Target]*shardTimeline{}}
		var startErr error
		ready := w.Clock().NewWaiter()
		w.AddNode("ps", func(env node.Env) error {
			defer ready.Wake()
			res := mapResolver{}
			for i, id := range idents {
				tn, err := timeline.Open(timeline.Options{FS: env.Disk, Dir: fmt.Sprintf("tenant-%d", i), Clock: env.Clock})
				if err != nil {
					startErr = err
					return err
				}
				tl, err := tn.Create(timeline.ID(timelineA), 0)
				if err != nil {
					startErr = err
					return err
				}
				target := pageapi.Target{Shard: shard.TenantShardID{TenantID: tenantA, Shard: id.Index()}, Timeline: timelineA}
				st := newShardTimeline(env.Clock, id, tl, timeline.DefaultGCHorizonBytes)
				res[target] = st
				f.tls[target] = st
			}
			var v *jwtauth.Verifier
			if auth {
				var seed [ed25519.SeedSize]byte
				for i := range seed {
					seed[i] = byte(env.Rand.Uint32())
				}
				priv := ed25519.NewKeyFromSeed(seed[:])
				pub := priv.Public().(ed25519.PublicKey)
				f.signer = priv
				var err error
				if v, err = jwtauth.NewVerifier([]ed25519.PublicKey{pub}, env.Clock.Now); err != nil {
					return err
				}
			}
			ps, err := newPageService(env.Clock, env.Log, prometheus.NewRegistry(), newTaskRegistry(env.Clock), cfg, res, v)
			if err != nil {
				startErr = err
				return err
			}
			m := net.NewMux()
			ps.Register(m)
			_, err = env.Net.Listen("ps:1", m)
			return err
		})
		ready.Wait()
		if startErr != nil {
			return startErr
		}
		cli := w.AddNode("cli", func(node.Env) error { return nil })
		conn, err := cli.Env().Net.Dial(context.Background(), "ps:1")
		if err != nil {
			return err
		}
		f.conn = conn
		body(f)
		return nil
	})
	if err != nil {
		t.Fatalf("simulation: %v", err)
	}
}

func (f *fixture) target(idx shard.ShardIndex) pageapi.Target {
	return pageapi.Target{Shard: shard.TenantShardID{TenantID: tenantA, Shard: idx}, Timeline: timelineA}
}

func (f *fixture) ingest(t *testing.T, idx shard.ShardIndex, at lsn.LSN, rec walrec.Record) {
	t.Helper()
	if err := f.tls[f.target(idx)].Ingest(at, rec); err != nil {
		t.Errorf("ingest at %s: %v", at, err)
	}
}

func getPageReq(id uint64, at lsn.LSN, blocks ...uint32) *pageapi.GetPageRequest {
	return &pageapi.GetPageRequest{
		RequestId:   &pageapi.RequestID{Id: id},
		ReadLsn:     &pageapi.ReadLsn{RequestLsn: uint64(at)},
		Rel:         &pageapi.RelTag{SpcOid: testRel.SpcNode, DbOid: testRel.DbNode, RelNumber: testRel.RelNode, ForkNumber: uint32(testRel.ForkNum)},
		BlockNumber: blocks,
	}
}

type pageStream = net.ClientStreamOf[*pageapi.GetPageRequest, *pageapi.GetPageResponse]

func (f *fixture) stream(t *testing.T, ctx context.Context) *pageStream {
	t.Helper()
	s, err := net.StreamProto[*pageapi.GetPageRequest, *pageapi.GetPageResponse](ctx, f.conn, pageapi.PageService_GetPages_FullMethodName)
	if err != nil {
		t.Fatalf("open GetPages: %v", err)
	}
	return s
}

func (f *fixture) ctx(idx shard.ShardIndex, token string) (context.Context, context.CancelFunc) {
	ctx, cancel := clock.WithTimeout(f.clk, context.Background(), time.Minute)
	return pageapi.WithTarget(ctx, f.target(idx), token), cancel
}

var unsharded = []shard.ShardIdentity{shard.Unsharded()}

func TestGetPagesAnswersInOrder(t *testing.T) {
	runFixture(t, PageServiceConfig{}, false, unsharded, func(f *fixture) {
		u := shard.ShardIndex{}
		f.ingest(t, u, 0x10, walrec.FullPageImage{Rel: testRel, Blk: 0, Page: testPage(1)})
		f.ingest(t, u, 0x20, walrec.FullPageImage{Rel: testRel, Blk: 1, Page: testPage(2)})
		f.ingest(t, u, 0x30, walrec.PageWrite{Rel: testRel, Blk: 0, Offset: 5, Data: []byte("xyz")})
		patched := testPage(1)
		copy(patched[5:], "xyz")
		ctx, cancel := f.ctx(u, "")
		defer cancel()
		s := f.stream(t, ctx)
		// Pipelined: all requests go out before any answer is read.
		reqs := []struct {
			at     lsn.LSN
			blocks []uint32
			want   [][]byte
			status pageapi.GetPageStatusCode
		}{
			{0x10, []uint32{0}, [][]byte{testPage(1)}, pageapi.GetPageStatusCode_GET_PAGE_STATUS_CODE_OK},
			{0x30, []uint32{1, 0}, [][]byte{testPage(2), patched}, pageapi.GetPageStatusCode_GET_PAGE_STATUS_CODE_OK},
			{0x20, []uint32{0, 1}, [][]byte{testPage(1), testPage(2)}, pageapi.GetPageStatusCode_GET_PAGE_STATUS_CODE_OK},
			{0x10, []uint32{1}, nil, pageapi.GetPageStatusCode_GET_PAGE_STATUS_CODE_NOT_FOUND},
			{0, []uint32{1}, nil, pageapi.GetPageStatusCode_GET_PAGE_STATUS_CODE_INVALID_REQUEST},
			{0x30, nil, nil, pageapi.GetPageStatusCode_GET_PAGE_STATUS_CODE_INVALID_REQUEST},
		}
		for i, r := range reqs {
			if err := s.Send(getPageReq(uint64(i+1), r.at, r.blocks...)); err != nil {
				t.Fatalf("send %d: %v", i, err)
			}
		}
		for i, r := range reqs {
			resp, err := s.Recv()
			if err != nil {
				t.Fatalf("recv %d: %v", i, err)
			}
			if resp.RequestId.GetId() != uint64(i+1) || resp.StatusCode != r.status {
				t.Fatalf("response %d: id %d status %v (%s), want id %d status %v", i, resp.RequestId.GetId(), resp.StatusCode, resp.Reason, i+1, r.status)
			}
			if r.status != pageapi.GetPageStatusCode_GET_PAGE_STATUS_CODE_OK {
				if len(resp.Page) != 0 || resp.Rel != nil || resp.Reason == "" {
					t.Errorf("response %d: a failure carries pages %d, rel %v, reason %q", i, len(resp.Page), resp.Rel, resp.Reason)
				}
				continue
			}
			for j, p := range resp.Page {
				if p.BlockNumber != r.blocks[j] || !bytes.Equal(p.Image, r.want[j]) {
					t.Errorf("response %d page %d: block %d, image[0..8]=%v", i, j, p.BlockNumber, p.Image[:8])
				}
			}
		}
		if err := s.CloseSend(); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Recv(); err != io.EOF {
			t.Fatalf("after CloseSend: %v, want io.EOF", err)
		}
	})
}

// A read above the last ingested LSN waits for ingest, and is answered
// with the page at that LSN once it arrives; one that waits too long fails
// in-band without ending the stream.
func TestGetPagesWaitsForIngest(t *testing.T) {
	runFixture(t, PageServiceConfig{WaitLSNTimeout: 5 * time.Second}, false, unsharded, func(f *fixture) {
		u := shard.ShardIndex{}
		f.ingest(t, u, 0x10, walrec.FullPageImage{Rel: testRel, Blk: 0, Page: testPage(1)})
		ctx, cancel := f.ctx(u, "")
		defer cancel()
		s := f.stream(t, ctx)
		start := f.clk.Mono()
		f.clk.Go(context.Background(), "late ingest", func(context.Context) {
			_ = clock.Sleep(context.Background(), f.clk, 2*time.Second)
			f.ingest(t, u, 0x20, walrec.FullPageImage{Rel: testRel, Blk: 0, Page: testPage(9)})
		})
		if err := s.Send(getPageReq(1, 0x20, 0)); err != nil {
			t.Fatal(err)
		}
		resp, err := s.Recv()
		if err != nil || resp.StatusCode != pageapi.GetPageStatusCode_GET_PAGE_STATUS_CODE_OK || !bytes.Equal(resp.Page[0].Image, testPage(9)) {
			t.Fatalf("read at 0x20: %v %v", resp, err)
		}
		if waited := f.clk.Mono() - start; waited < 2*time.Second {
			t.Fatalf("answered after %v, before the record was ingested", waited)
		}
		// not_modified_since at or below what is ingested: no wait, read at
		// the newest ingested LSN within the range.
		req := getPageReq(2, 0x90, 0)
		req.ReadLsn.NotModifiedSinceLsn = 0x20
		before := f.clk.Mono()
		if err := s.Send(req); err != nil {
			t.Fatal(err)
		}
		resp, err = s.Recv()
		if err != nil || resp.StatusCode != pageapi.GetPageStatusCode_GET_PAGE_STATUS_CODE_OK || !bytes.Equal(resp.Page[0].Image, testPage(9)) || f.clk.Mono()-before > time.Second {
			t.Fatalf("not_modified_since read: %v %v after %v", resp, err, f.clk.Mono()-before)
		}
		req = getPageReq(3, 0x20, 0)
		req.ReadLsn.NotModifiedSinceLsn = 0x30
		if err := s.Send(req); err != nil {
			t.Fatal(err)
		}
		if resp, err = s.Recv(); err != nil || resp.StatusCode != pageapi.GetPageStatusCode_GET_PAGE_STATUS_CODE_INVALID_REQUEST {
			t.Fatalf("not_modified_since above request_lsn: %v %v", resp, err)
		}
		// Never ingested: fails in-band after WaitLSNTimeout.
		before = f.clk.Mono()
		if err := s.Send(getPageReq(4, 0x1000, 0)); err != nil {
			t.Fatal(err)
		}
		resp, err = s.Recv()
		if err != nil || resp.StatusCode != pageapi.GetPageStatusCode_GET_PAGE_STATUS_CODE_INTERNAL_ERROR || !strings.Contains(resp.Reason, "timed out") {
			t.Fatalf("read beyond ingest: %v %v", resp, err)
		}
		if waited := f.clk.Mono() - before; waited < 5*time.Second {
			t.Fatalf("gave up after %v, want the 5s WaitLSNTimeout", waited)
		}
		// The stream is still usable.
		if err := s.Send(getPageReq(5, 0x10, 0)); err != nil {
			t.Fatal(err)
		}
		if resp, err = s.Recv(); err != nil || resp.StatusCode != pageapi.GetPageStatusCode_GET_PAGE_STATUS_CODE_OK {
			t.Fatalf("after a timeout: %v %v", resp, err)
		}
	})
}

// A block another shard owns is INVALID_REQUEST naming the owner; relation
// size is for shard 0 only.
func TestShardOwnership(t *testing.T) {
	const stripe = 8
	idents := []shard.ShardIdentity{{Number: 0, Count: 2, StripeSize: stripe}, {Number: 1, Count: 2, StripeSize: stripe}}
	runFixture(t, PageServiceConfig{}, false, idents, func(f *fixture) {
		// Find a block each shard owns.
		owned := map[shard.ShardNumber]uint32{}
		for blk := uint32(0); len(owned) < 2; blk += stripe {
			owned[idents[0].ShardOf(keys.RelBlockKey(testRel, blk))] = blk
		}
		for _, id := range idents {
			f.ingest(t, id.Index(), 0x10, walrec.FullPageImage{Rel: testRel, Blk: owned[id.Number], Page: testPage(byte(id.Number + 1))})
			f.ingest(t, id.Index(), 0x11, walrec.RelSizeChange{Rel: testRel, NBlocks: 100})
		}
		for _, id := range idents {
			ctx, cancel := f.ctx(id.Index(), "")
			s := f.stream(t, ctx)
			other := owned[1-id.Number]
			for i, blk := range []uint32{owned[id.Number], other} {
				if err := s.Send(getPageReq(uint64(i), 0x11, blk)); err != nil {
					t.Fatal(err)
				}
				resp, err := s.Recv()
				if err != nil {
					t.Fatal(err)
				}
				if blk == other {
					wantOwner := shard.ShardIndex{Number: 1 - id.Number, Count: 2}.String()
					if resp.StatusCode != pageapi.GetPageStatusCode_GET_PAGE_STATUS_CODE_INVALID_REQUEST || !strings.Contains(resp.Reason, wantOwner) {
						t.Errorf("shard %s reading block %d of shard %s: %v %q", id.Index(), blk, wantOwner, resp.StatusCode, resp.Reason)
					}
				} else if resp.StatusCode != pageapi.GetPageStatusCode_GET_PAGE_STATUS_CODE_OK || !bytes.Equal(resp.Page[0].Image, testPage(byte(id.Number+1))) {
					t.Errorf("shard %s own block %d: %v %q", id.Index(), blk, resp.StatusCode, resp.Reason)
				}
			}
			size, err := net.CallProto[*pageapi.GetRelSizeResponse](ctx, f.conn, pageapi.PageService_GetRelSize_FullMethodName,
				&pageapi.GetRelSizeRequest{ReadLsn: &pageapi.ReadLsn{RequestLsn: 0x11}, Rel: getPageReq(0, 0).Rel})
			if id.Number == 0 && (err != nil || size.NumBlocks != 100) {
				t.Errorf("GetRelSize on shard 0: %v %v", size, err)
			}
			if id.Number != 0 && net.CodeOf(err) != net.InvalidArgument {
				t.Errorf("GetRelSize on shard %s: %v, want InvalidArgument", id.Index(), err)
			}
			cancel()
		}
	})
}

// Calls that cannot be served end with the status the page API lists.
func TestGetPagesRefusals(t *testing.T) {
	runFixture(t, PageServiceConfig{}, true, unsharded, func(f *fixture) {
		u := shard.ShardIndex{}
		f.ingest(t, u, 0x10, walrec.FullPageImage{Rel: testRel, Blk: 0, Page: testPage(1)})
		sign := func(c jwtauth.Claims) string {
			s, err := jwtauth.Sign(f.signer, c)
			if err != nil {
				t.Fatal(err)
			}
			return s
		}
		good := sign(jwtauth.Claims{Scope: jwtauth.ScopeTenant, TenantID: tenantA.String()})
		otherTenant := sign(jwtauth.Claims{Scope: jwtauth.ScopeTenant, TenantID: strings.Repeat("f", 32)})
		base, cancel := clock.WithTimeout(f.clk, context.Background(), time.Minute)
		defer cancel()
		unknown := f.target(u)
		unknown.Timeline = shard.TimelineID{0xbb}
		cases := []struct {
			name string
			ctx  context.Context
			want net.Code
		}{
			{"no headers", base, net.InvalidArgument},
			{"missing shard header", net.WithMetadata(base, pageapi.HeaderTenantID, tenantA.String(), pageapi.HeaderTimelineID, timelineA.String()), net.InvalidArgument},
			{"no token", pageapi.WithTarget(base, f.target(u), ""), net.Unauthenticated},
			{"bad token", pageapi.WithTarget(base, f.target(u), "x.y.z"), net.Unauthenticated},
			{"other tenant's token", pageapi.WithTarget(base, f.target(u), otherTenant), net.PermissionDenied},
			{"unknown timeline", pageapi.WithTarget(base, unknown, good), net.NotFound},
			{"good", pageapi.WithTarget(base, f.target(u), good), net.OK},
		}
		for _, tc := range cases {
			s := f.stream(t, tc.ctx)
			if err := s.Send(getPageReq(1, 0x10, 0)); err != nil && err != io.EOF {
				t.Fatalf("%s: send: %v", tc.name, err)
			}
			resp, err := s.Recv()
			if got := net.CodeOf(err); got != tc.want {
				t.Errorf("%s: got %v (%v), want %v", tc.name, got, err, tc.want)
			}
			if tc.want == net.OK && (resp == nil || resp.StatusCode != pageapi.GetPageStatusCode_GET_PAGE_STATUS_CODE_OK) {
				t.Errorf("%s: %v", tc.name, resp)
			}
			_ = s.CloseSend()
		}
	})
}

// A read below the GC cutoff is refused in-band, never answered.
func TestGetPagesBelowGCCutoff(t *testing.T) {
	runFixture(t, PageServiceConfig{}, false, unsharded, func(f *fixture) {
		u := shard.ShardIndex{}
		for i := range 4 {
			f.ingest(t, u, lsn.LSN(0x10*(i+1)), walrec.FullPageImage{Rel: testRel, Blk: 0, Page: testPage(byte(i))})
		}
		tl := f.tls[f.target(u)].tl
		if err := tl.Flush(); err != nil {
			t.Fatal(err)
		}
		if _, err := tl.GCAt(0x30); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := f.ctx(u, "")
		defer cancel()
		s := f.stream(t, ctx)
		for _, c := range []struct {
			at   lsn.LSN
			want pageapi.GetPageStatusCode
		}{{0x10, pageapi.GetPageStatusCode_GET_PAGE_STATUS_CODE_INVALID_REQUEST}, {0x40, pageapi.GetPageStatusCode_GET_PAGE_STATUS_CODE_OK}} {
			if err := s.Send(getPageReq(1, c.at, 0)); err != nil {
				t.Fatal(err)
			}
			resp, err := s.Recv()
			if err != nil || resp.StatusCode != c.want {
				t.Fatalf("read at %s below/above cutoff 0x30: %v %v", c.at, resp, err)
			}
			if c.want != pageapi.GetPageStatusCode_GET_PAGE_STATUS_CODE_OK && !strings.Contains(resp.Reason, "GC cutoff") {
				t.Errorf("refusal reason %q does not name the GC cutoff", resp.Reason)
			}
		}
	})
}

func TestPageServiceConfigValidate(t *testing.T) {
	for _, c := range []PageServiceConfig{
		{MaxBlocksPerRequest: -1}, {MaxBlocksPerRequest: maxBlocksPerMessage + 1},
		{MaxInflightPerStream: -1}, {MaxStreams: -2}, {WaitLSNTimeout: -time.Second},
	} {
		if err := c.Validate(); !errors.Is(err, ErrConfig) {
			t.Errorf("%+v: %v, want ErrConfig", c, err)
		}
	}
	if err := (PageServiceConfig{}).Validate(); err != nil {
		t.Errorf("zero config: %v", err)
	}
}

func lsnOf(v uint64) lsn.LSN { return lsn.LSN(v) }
