package pageserver

import (
	"bytes"
	"testing"

	"github.com/stratadb/strata/engine/keys"
	"github.com/stratadb/strata/engine/shard"
	"github.com/stratadb/strata/engine/walrec"
	"github.com/stratadb/strata/net"
	"github.com/stratadb/strata/nodes/pageserver/pageapi"
)

// splitUnsharded attaches tenantA unsharded, writes two rounds (one
// flushed) and splits it into n shards of stripe 1.
func splitUnsharded(t *testing.T, f *nodeFixture, n shard.ShardCount) *splitHarness {
	t.Helper()
	h := &splitHarness{t: t, f: f, at: 0x100}
	h.attach(shard.ShardIndex{}, 0, 3)
	h.round(0x10, true)
	h.round(0x40, false)
	if err := f.do("PUT", splitURL(tsidOf(shard.ShardIndex{})), pageapi.ShardSplitRequest{NewShardCount: n, NewStripeSize: u32(1)}, nil); err != nil {
		t.Fatalf("split: %v", err)
	}
	return h
}

// TestRoutedBatchInRequestOrder: a batch addressed to the split parent
// that straddles all its children, in no particular order and with a
// block twice, comes back in request order with every page as written.
func TestRoutedBatchInRequestOrder(t *testing.T) {
	runNode(t, Config{}, func(f *nodeFixture) {
		h := splitUnsharded(t, f, 4)
		h.round(0x70, true) // after the split: only the children have it
		blocks := []uint32{9, 2, 15, 0, 2, 7, 11, 4, 13, 1, 6, 3}
		owners := map[shard.ShardNumber]bool{}
		for _, b := range blocks {
			owners[shard.KeyToShard(keys.RelBlockKey(testRel, b), 4, 1)] = true
		}
		if len(owners) != 4 {
			t.Fatalf("the batch touches %d children, want all 4", len(owners))
		}
		for _, at := range h.lsns() {
			r, err := h.read(tsidOf(shard.ShardIndex{}), at, blocks...)
			if err != nil || r.StatusCode != pageapi.GetPageStatusCode_GET_PAGE_STATUS_CODE_OK || len(r.Page) != len(blocks) {
				t.Fatalf("batch at %s: %v %v", at, r, err)
			}
			for i, b := range blocks {
				if r.Page[i].BlockNumber != b || !bytes.Equal(r.Page[i].Image, h.want(b, at)) {
					t.Fatalf("batch at %s: page %d is block %d, want block %d as written", at, i, r.Page[i].BlockNumber, b)
				}
			}
		}
		if got := metricValue(t, f.ps.Env().Metrics, "strata_pageserver_routed_requests_total"); got != float64(len(h.lsns())) {
			t.Errorf("routed requests %v, want %d", got, len(h.lsns()))
		}
	})
}

// TestRoutedMetadataToChildShard0: relation size, database size and SLRU
// requests addressed to a split parent shard 0 are answered by child
// shard 0; addressed to a parent other than shard 0 they are refused as
// before the split.
func TestRoutedMetadataToChildShard0(t *testing.T) {
	runNode(t, Config{}, func(f *nodeFixture) {
		h := &splitHarness{t: t, f: f, at: 0x100}
		for n := range uint8(2) {
			h.attach(shard.ShardIndex{Number: shard.ShardNumber(n), Count: 2}, 1, 3)
		}
		h.round(0x10, true)
		h.at += 0x10
		for _, st := range h.serving() {
			if err := st.tl.IngestValues(h.at, []walrec.KeyValue{slruKV(keys.SlruClog, 0, 0, 7), slruSize(keys.SlruClog, 0, 1)}); err != nil {
				t.Fatal(err)
			}
			st.ingested.Advance(h.at)
		}
		at := h.at
		for n := range uint8(2) {
			if err := f.do("PUT", splitURL(tsidOf(shard.ShardIndex{Number: shard.ShardNumber(n), Count: 2})), pageapi.ShardSplitRequest{NewShardCount: 4}, nil); err != nil {
				t.Fatal(err)
			}
		}
		for n := range uint8(2) {
			ctx := pageapi.WithTarget(f.ctx, pageapi.Target{Shard: tsidOf(shard.ShardIndex{Number: shard.ShardNumber(n), Count: 2}), Timeline: timelineA}, "")
			size, err := net.CallProto[*pageapi.GetRelSizeResponse](ctx, f.page, pageapi.PageService_GetRelSize_FullMethodName,
				&pageapi.GetRelSizeRequest{ReadLsn: readLsn(at), Rel: getPageReq(0, 0).Rel})
			db, derr := net.CallProto[*pageapi.GetDbSizeResponse](ctx, f.page, pageapi.PageService_GetDbSize_FullMethodName,
				&pageapi.GetDbSizeRequest{ReadLsn: readLsn(at), DbOid: testRel.DbNode})
			seg, serr := net.CallProto[*pageapi.GetSlruSegmentResponse](ctx, f.page, pageapi.PageService_GetSlruSegment_FullMethodName,
				&pageapi.GetSlruSegmentRequest{ReadLsn: readLsn(at), Kind: keys.SlruClog, Segno: 0})
			if n == 0 {
				if err != nil || size.NumBlocks != splitBlocks {
					t.Errorf("GetRelSize through parent 0002: %v %v, want %d", size, err, splitBlocks)
				}
				if derr != nil || db.NumBytes != splitBlocks*keys.BlockSize {
					t.Errorf("GetDbSize through parent 0002: %v %v", db, derr)
				}
				if serr != nil || !bytes.Equal(seg.Segment, testPage(7)) {
					t.Errorf("GetSlruSegment through parent 0002: %v", serr)
				}
				continue
			}
			for what, e := range map[string]error{"GetRelSize": err, "GetDbSize": derr, "GetSlruSegment": serr} {
				if net.CodeOf(e) != net.InvalidArgument {
					t.Errorf("%s through parent 0102: %v, want InvalidArgument (only shard 0 answers)", what, e)
				}
			}
		}
	})
}

// TestRoutedStreams: a stream open to the parent when the split commits
// ends with Unavailable (the client retries), and a new one is routed; a
// routed stream ends with Unavailable when a child it reads from goes
// away, and a new one is refused Unavailable while the children are not
// all here.
func TestRoutedStreams(t *testing.T) {
	runNode(t, Config{}, func(f *nodeFixture) {
		h := &splitHarness{t: t, f: f, at: 0x100}
		pid := tsidOf(shard.ShardIndex{})
		h.attach(shard.ShardIndex{}, 0, 3)
		h.round(0x10, true)
		open := func() *pageStream {
			ctx := pageapi.WithTarget(f.ctx, pageapi.Target{Shard: pid, Timeline: timelineA}, "")
			s, err := net.StreamProto[*pageapi.GetPageRequest, *pageapi.GetPageResponse](ctx, f.page, pageapi.PageService_GetPages_FullMethodName)
			if err != nil {
				t.Fatal(err)
			}
			return s
		}
		ask := func(s *pageStream, blocks ...uint32) (*pageapi.GetPageResponse, error) {
			// A Send to a stream the server ended fails with io.EOF; its
			// status comes from Recv.
			_ = s.Send(getPageReq(1, h.at, blocks...))
			return s.Recv()
		}
		s := open()
		if r, err := ask(s, 0, 1); err != nil || r.StatusCode != pageapi.GetPageStatusCode_GET_PAGE_STATUS_CODE_OK {
			t.Fatalf("before the split: %v %v", r, err)
		}
		if err := f.do("PUT", splitURL(pid), pageapi.ShardSplitRequest{NewShardCount: 2, NewStripeSize: u32(1)}, nil); err != nil {
			t.Fatal(err)
		}
		if _, err := ask(s, 0, 1); net.CodeOf(err) != net.Unavailable {
			t.Errorf("the stream open across the split: %v, want Unavailable", err)
		}
		s = open()
		if r, err := ask(s, 0, 1); err != nil || r.StatusCode != pageapi.GetPageStatusCode_GET_PAGE_STATUS_CODE_OK || !bytes.Equal(r.Page[1].Image, h.want(1, h.at)) {
			t.Fatalf("a new stream after the split: %v %v", r, err)
		}
		kid := shard.TenantShardID{TenantID: tenantA, Shard: shard.ShardIndex{Number: 1, Count: 2}}
		if err := f.do("PUT", "/v1/tenant/"+kid.String()+"/location_config", pageapi.LocationConfig{Mode: pageapi.ModeDetached}, nil); err != nil {
			t.Fatal(err)
		}
		if _, err := ask(s, 0); net.CodeOf(err) != net.Unavailable {
			t.Errorf("a routed stream whose child went away: %v, want Unavailable", err)
		}
		if _, err := ask(open(), 0); net.CodeOf(err) != net.Unavailable {
			t.Errorf("a new stream while a child is not here: %v, want Unavailable", err)
		}
	})
}

// TestPlantedRouteWithParentStripe: routing a split parent's request by
// the parent's stripe instead of the children's (the split changed it)
// sends blocks to children that do not own them: the request fails, and
// with a child that serves what it does not own too, pages come back
// stale. The fixed routing answers every block as written.
func TestPlantedRouteWithParentStripe(t *testing.T) {
	for _, tc := range []struct {
		name string
		bugs Bugs
	}{
		{"fixed", Bugs{}},
		{"RouteWithParentStripe", Bugs{RouteWithParentStripe: true}},
		{"RouteWithParentStripe and ChildServesUnownedKey", Bugs{RouteWithParentStripe: true, ChildServesUnownedKey: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			runNode(t, Config{Bugs: tc.bugs}, func(f *nodeFixture) {
				h := splitUnsharded(t, f, 2)
				h.round(0x70, true)
				bad := 0
				var blocks []uint32
				for b := range uint32(splitBlocks) {
					blocks = append(blocks, b)
				}
				at := h.lsns()[len(h.lsns())-1]
				r, err := h.read(tsidOf(shard.ShardIndex{}), at, blocks...)
				if err != nil {
					t.Fatal(err)
				}
				if r.StatusCode != pageapi.GetPageStatusCode_GET_PAGE_STATUS_CODE_OK {
					bad = len(blocks)
				} else {
					for i, b := range blocks {
						if !bytes.Equal(r.Page[i].Image, h.want(b, at)) {
							bad++
						}
					}
				}
				if planted := tc.bugs.RouteWithParentStripe; (bad > 0) != planted {
					t.Errorf("%d of %d pages wrong or failed (%v %q); planted %v", bad, len(blocks), r.StatusCode, r.Reason, planted)
				}
			})
		})
	}
}

// TestPlantedChildServesUnownedKey: a child asked directly for a block it
// does not own answers it from the parent's layers it started with —
// stale once the owner ingested a later write. The fixed child refuses
// (INVALID_REQUEST naming the owner).
func TestPlantedChildServesUnownedKey(t *testing.T) {
	for _, planted := range []bool{false, true} {
		runNode(t, Config{Bugs: Bugs{ChildServesUnownedKey: planted}}, func(f *nodeFixture) {
			h := splitUnsharded(t, f, 2)
			h.round(0x70, true)
			child := shard.ShardIdentity{Number: 0, Count: 2, StripeSize: 1}
			var blk uint32
			for child.Owns(keys.RelBlockKey(testRel, blk)) {
				blk++
			}
			at := h.at
			r, err := h.read(tsidOf(child.Index()), at, blk)
			if err != nil {
				t.Fatal(err)
			}
			switch {
			case !planted && r.StatusCode != pageapi.GetPageStatusCode_GET_PAGE_STATUS_CODE_INVALID_REQUEST:
				t.Errorf("fixed: a child asked for block %d it does not own: %v, want INVALID_REQUEST", blk, r.StatusCode)
			case planted && (r.StatusCode != pageapi.GetPageStatusCode_GET_PAGE_STATUS_CODE_OK || bytes.Equal(r.Page[0].Image, h.want(blk, at))):
				t.Errorf("planted: %v, want a stale page for block %d (the bug's wrong answer)", r.StatusCode, blk)
			}
		})
	}
}
