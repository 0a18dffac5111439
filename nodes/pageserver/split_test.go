package pageserver

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stratadb/strata/clock"
	"github.com/stratadb/strata/engine/keys"
	"github.com/stratadb/strata/engine/lsn"
	"github.com/stratadb/strata/engine/remote"
	"github.com/stratadb/strata/engine/shard"
	"github.com/stratadb/strata/engine/walrec"
	"github.com/stratadb/strata/net"
	"github.com/stratadb/strata/nodes/pageserver/pageapi"
)

// splitWAL is the WAL the split tests ingest: full page images of blocks
// 0..splitBlocks-1 in rounds, each round at higher LSNs, with the
// relation's size after the first round.
const splitBlocks = 16

type splitWrite struct {
	at   lsn.LSN
	blk  uint32
	fill byte
}

// splitHarness drives a pageserver holding tenantA's shards: it ingests
// the same WAL into every attached shard of the tenant (what each shard's
// WAL receiver would do; each keeps only its own keys) and remembers it,
// so a read of any block at any LSN has an expected page.
type splitHarness struct {
	t      *testing.T
	f      *nodeFixture
	writes []splitWrite
	at     lsn.LSN
}

func tsidOf(idx shard.ShardIndex) shard.TenantShardID {
	return shard.TenantShardID{TenantID: tenantA, Shard: idx}
}

func splitURL(id shard.TenantShardID) string { return "/v1/tenant/" + id.String() + "/shard_split" }

// attach attaches shard idx (generation g, stripe) and creates timelineA.
func (h *splitHarness) attach(idx shard.ShardIndex, stripe uint32, g uint32) {
	h.t.Helper()
	conf := pageapi.LocationConfig{Mode: pageapi.ModeAttachedSingle, Generation: gen(g), TenantConf: quietConf(),
		ShardNumber: uint8(idx.Number), ShardCount: uint8(idx.Count), ShardStripeSize: stripe}
	base := "/v1/tenant/" + tsidOf(idx).String()
	if err := h.f.do("PUT", base+"/location_config", conf, nil); err != nil {
		h.t.Fatalf("attach %s: %v", idx, err)
	}
	if err := h.f.do("POST", base+"/timeline", pageapi.TimelineCreateRequest{NewTimelineID: timelineA}, nil); err != nil {
		h.t.Fatalf("create timeline on %s: %v", idx, err)
	}
}

// serving lists tenantA's shards that serve on the current incarnation.
func (h *splitHarness) serving() []*shardTimeline {
	m := h.f.node.tenants
	m.mu.Lock()
	ids := slices.SortedFunc(func(yield func(shard.TenantShardID) bool) {
		for id := range m.shards {
			if !yield(id) {
				return
			}
		}
	}, shard.TenantShardID.Compare)
	m.mu.Unlock()
	var out []*shardTimeline
	for _, id := range ids {
		ts, err := m.get(id)
		if err != nil {
			continue
		}
		if st, err := ts.lookup(timelineA); err == nil {
			out = append(out, st)
		}
	}
	return out
}

// round ingests one round of writes into every serving shard and, with
// flush, flushes them.
func (h *splitHarness) round(fill byte, flush bool) {
	h.t.Helper()
	sts := h.serving()
	if len(sts) == 0 {
		h.t.Fatal("no shard serves")
	}
	for blk := range uint32(splitBlocks) {
		h.at += 0x10
		rec := walrec.FullPageImage{Rel: testRel, Blk: blk, Page: testPage(fill + byte(blk))}
		for _, st := range sts {
			if err := st.Ingest(h.at, rec); err != nil {
				h.t.Fatal(err)
			}
		}
		h.writes = append(h.writes, splitWrite{h.at, blk, fill + byte(blk)})
	}
	h.at += 0x10
	for _, st := range sts {
		if err := st.Ingest(h.at, walrec.RelSizeChange{Rel: testRel, NBlocks: splitBlocks}); err != nil {
			h.t.Fatal(err)
		}
		if flush {
			if err := st.tl.Flush(); err != nil {
				h.t.Fatal(err)
			}
		}
	}
}

// want is block blk's page as of at (nil: not written yet).
func (h *splitHarness) want(blk uint32, at lsn.LSN) []byte {
	var out []byte
	for _, w := range h.writes {
		if w.blk == blk && w.at <= at {
			out = testPage(w.fill)
		}
	}
	return out
}

// lsns are the LSNs the tests read at: after each round so far.
func (h *splitHarness) lsns() []lsn.LSN {
	var out []lsn.LSN
	for i, w := range h.writes {
		if (i+1)%splitBlocks == 0 {
			out = append(out, w.at)
		}
	}
	return out
}

// read sends one GetPages request for blocks at LSN at to shard id and
// returns the response (or the error that ended the stream).
func (h *splitHarness) read(id shard.TenantShardID, at lsn.LSN, blocks ...uint32) (*pageapi.GetPageResponse, error) {
	ctx, cancel := clock.WithTimeout(h.f.w.Clock(), h.f.ctx, time.Minute)
	defer cancel()
	ctx = pageapi.WithTarget(ctx, pageapi.Target{Shard: id, Timeline: timelineA}, "")
	s, err := net.StreamProto[*pageapi.GetPageRequest, *pageapi.GetPageResponse](ctx, h.f.page, pageapi.PageService_GetPages_FullMethodName)
	if err != nil {
		return nil, err
	}
	defer s.CloseSend()
	if err := s.Send(getPageReq(1, at, blocks...)); err != nil {
		return nil, err
	}
	return s.Recv()
}

// checkShardReads reads every block at every LSN from shard ident: a block
// it owns must come back as written, one it does not own must be refused
// (INVALID_REQUEST naming its owner), never answered.
func (h *splitHarness) checkShardReads(ident shard.ShardIdentity) {
	h.t.Helper()
	id := tsidOf(ident.Index())
	for _, at := range h.lsns() {
		for blk := range uint32(splitBlocks) {
			r, err := h.read(id, at, blk)
			if err != nil {
				h.t.Fatalf("read block %d at %s from %s: %v", blk, at, id, err)
			}
			if ident.Owns(keys.RelBlockKey(testRel, blk)) {
				if r.StatusCode != pageapi.GetPageStatusCode_GET_PAGE_STATUS_CODE_OK || len(r.Page) != 1 || !bytes.Equal(r.Page[0].Image, h.want(blk, at)) {
					h.t.Fatalf("block %d at %s from %s: %v %q, want the page written", blk, at, id, r.StatusCode, r.Reason)
				}
			} else if r.StatusCode != pageapi.GetPageStatusCode_GET_PAGE_STATUS_CODE_INVALID_REQUEST || len(r.Page) != 0 {
				h.t.Fatalf("block %d (not owned) at %s from %s: %v, want INVALID_REQUEST", blk, at, id, r.StatusCode)
			}
		}
	}
}

// checkParentReads reads every block the parent owned, at every LSN,
// through the parent's id: served by the children (route.go).
func (h *splitHarness) checkParentReads(parent shard.ShardIdentity) {
	h.t.Helper()
	id := tsidOf(parent.Index())
	var owned []uint32
	for blk := range uint32(splitBlocks) {
		if parent.Count < 2 || parent.Owns(keys.RelBlockKey(testRel, blk)) {
			owned = append(owned, blk)
		}
	}
	for _, at := range h.lsns() {
		r, err := h.read(id, at, owned...)
		if err != nil {
			h.t.Fatalf("read %v at %s through the parent %s: %v", owned, at, id, err)
		}
		if r.StatusCode != pageapi.GetPageStatusCode_GET_PAGE_STATUS_CODE_OK || len(r.Page) != len(owned) {
			h.t.Fatalf("read through the parent %s at %s: %v %q", id, at, r.StatusCode, r.Reason)
		}
		for i, blk := range owned {
			if r.Page[i].BlockNumber != blk || !bytes.Equal(r.Page[i].Image, h.want(blk, at)) {
				h.t.Fatalf("read through the parent %s at %s: page %d is block %d, want block %d as written", id, at, i, r.Page[i].BlockNumber, blk)
			}
		}
	}
}

type splitCase struct {
	name      string
	from      shard.ShardCount // 0: one unsharded parent
	stripe    uint32           // the parents' stripe
	to        shard.ShardCount
	newStripe *uint32
}

func u32(v uint32) *uint32 { return &v }

var splitCases = []splitCase{
	{"unsharded 1→2 new stripe", 0, 0, 2, u32(1)},
	{"0001 1→2", 1, 2, 2, nil},
	{"2→4", 2, 1, 4, nil},
	{"1→4 new stripe", 1, shard.DefaultStripeSize, 4, u32(2)},
}

// parents are the case's parent shard identities.
func (c splitCase) parents() []shard.ShardIdentity {
	if c.from == 0 {
		return []shard.ShardIdentity{shard.Unsharded()}
	}
	var out []shard.ShardIdentity
	for n := range uint8(c.from) {
		out = append(out, shard.ShardIdentity{Number: shard.ShardNumber(n), Count: c.from, StripeSize: c.stripe})
	}
	return out
}

func (c splitCase) childStripe() uint32 {
	if c.newStripe != nil {
		return *c.newStripe
	}
	return c.stripe
}

// runSplitCase attaches the case's parents, writes two flushed rounds and
// one unflushed, splits every parent and checks reads, then writes after
// the split and restarts.
func runSplitCase(t *testing.T, f *nodeFixture, c splitCase, store *testStore) {
	h := &splitHarness{t: t, f: f, at: 0x100}
	for _, p := range c.parents() {
		h.attach(p.Index(), c.stripe, 5)
	}
	h.round(0x10, true)
	h.round(0x40, true)
	h.round(0x70, false)
	var children []shard.ShardIdentity
	for _, p := range c.parents() {
		pid := tsidOf(p.Index())
		var resp pageapi.ShardSplitResponse
		if err := f.do("PUT", splitURL(pid), pageapi.ShardSplitRequest{NewShardCount: c.to, NewStripeSize: c.newStripe}, &resp); err != nil {
			t.Fatalf("split %s: %v", pid, err)
		}
		want, _ := pid.SplitChildren(c.to)
		if !slices.Equal(resp.NewShards, want) {
			t.Fatalf("split %s answered %v, want %v", pid, resp.NewShards, want)
		}
		for _, k := range want {
			children = append(children, shard.ShardIdentity{Number: k.Shard.Number, Count: k.Shard.Count, StripeSize: c.childStripe()})
		}
		// The parent keeps its files but no longer serves itself.
		if err := f.do("GET", "/v1/tenant/"+pid.String()+"/timeline", nil, nil); net.CodeOf(err) != net.FailedPrecondition || !strings.Contains(err.Error(), "split") {
			t.Errorf("timelines of the split parent %s: %v, want 412 naming the split", pid, err)
		}
		if _, err := f.ps.Disk().View().Stat("tenants/" + pid.String() + "/" + locationFile); err != nil {
			t.Errorf("the split parent's files are gone before it is detached: %v", err)
		}
		checkLinksAndIndexes(t, f, pid, want, store)
	}
	for _, k := range children {
		h.checkShardReads(k)
		// Every child is a shard with its own location (the parent's
		// generation), listed like any other.
		var locs pageapi.LocationConfigList
		if err := f.do("GET", "/v1/location_config", nil, &locs); err != nil {
			t.Fatal(err)
		}
		if !slices.ContainsFunc(locs.TenantShards, func(l pageapi.TenantShardLocation) bool {
			return l.ID == tsidOf(k.Index()).String() && l.Config != nil && *l.Config.Generation == 5 && l.Config.ShardStripeSize == k.StripeSize
		}) {
			t.Errorf("child %s not listed with generation 5 and stripe %d: %+v", k.Index(), k.StripeSize, locs)
		}
	}
	for _, p := range c.parents() {
		h.checkParentReads(p)
	}
	// Written after the split, read from the children.
	h.round(0xa0, true)
	for _, k := range children {
		h.checkShardReads(k)
	}
	f.w.Crash("ps", false)
	f.w.Restart("ps")
	f.waitUp(t)
	for _, k := range children {
		h.checkShardReads(k)
	}
	for _, p := range c.parents() {
		h.checkParentReads(p)
		if err := f.do("GET", "/v1/tenant/"+tsidOf(p.Index()).String()+"/timeline", nil, nil); net.CodeOf(err) != net.FailedPrecondition {
			t.Errorf("split parent %s after a restart: %v, want still split", p.Index(), err)
		}
	}
	// The controller's last step: detaching the parent removes its files.
	for _, p := range c.parents() {
		pid := tsidOf(p.Index())
		if err := f.do("PUT", "/v1/tenant/"+pid.String()+"/location_config", pageapi.LocationConfig{Mode: pageapi.ModeDetached}, nil); err != nil {
			t.Fatalf("detach parent %s: %v", pid, err)
		}
		if _, err := f.ps.Disk().View().Stat("tenants/" + pid.String()); err == nil {
			t.Errorf("parent %s still on disk after its detach", pid)
		}
	}
	for _, k := range children {
		h.checkShardReads(k)
	}
	for _, p := range c.parents() {
		h.checkParentReads(p) // routed although the parent is gone
	}
}

// checkLinksAndIndexes: each child's layer files are hard links of the
// parent's (no copy), and with remote storage each child's index, in the
// parent's generation, names the parent's layer objects (none copied).
func checkLinksAndIndexes(t *testing.T, f *nodeFixture, pid shard.TenantShardID, kids []shard.TenantShardID, store *testStore) {
	t.Helper()
	dir := "tenants/" + pid.String() + "/timelines/" + timelineA.String()
	ents, err := f.ps.Disk().View().ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	linked := 0
	for _, e := range ents {
		if e.Name() == "metadata" || strings.HasSuffix(e.Name(), ".tmp") {
			continue
		}
		for _, k := range kids {
			same, err := f.ps.Disk().SameFile(dir+"/"+e.Name(), "tenants/"+k.String()+"/timelines/"+timelineA.String()+"/"+e.Name())
			if err != nil || !same {
				t.Errorf("layer %s of %s: not the same file in child %s (%v)", e.Name(), pid, k, err)
			}
			linked++
		}
	}
	if linked == 0 {
		t.Errorf("parent %s has no layer files to link", pid)
	}
	if store == nil {
		return
	}
	for _, k := range kids {
		b, err := f.w.Store().Get(f.ctx, remote.Layout{}.IndexKey(k, timelineA, layerGen(5)))
		if err != nil {
			t.Fatalf("child %s index: %v", k, err)
		}
		ip, err := remote.Parse(b)
		if err != nil {
			t.Fatal(err)
		}
		if len(ip.Layers) == 0 {
			t.Errorf("child %s index names no layers", k)
		}
		for _, l := range ip.Layers {
			if l.Shard != pid.Shard {
				t.Errorf("child %s index names %s, want a layer of the parent %s", k, l.LayerID, pid.Shard)
			}
		}
		for _, key := range store.putKeys("/" + k.String() + "/") {
			// A child's own objects are its indexes (and its heatmap).
			if !strings.Contains(key, remote.IndexFileName) && !strings.HasSuffix(key, remote.HeatmapFileName) {
				t.Errorf("object %s copied for child %s", key, k)
			}
		}
	}
}

func TestShardSplit(t *testing.T) {
	for _, c := range splitCases {
		t.Run(c.name, func(t *testing.T) {
			runNode(t, Config{}, func(f *nodeFixture) { runSplitCase(t, f, c, nil) })
		})
		t.Run(c.name+" remote", func(t *testing.T) {
			runRemote(t, Config{}, false, func(f *remoteFixture) { runSplitCase(t, f.nodeFixture, c, f.store) })
		})
	}
}

// TestShardSplitRefusals: splits that cannot be are refused with 400 (and
// the package's sentinel in the message), an unknown shard with 404; a
// refused split changes nothing.
func TestShardSplitRefusals(t *testing.T) {
	runNode(t, Config{}, func(f *nodeFixture) {
		h := &splitHarness{t: t, f: f, at: 0x100}
		h.attach(shard.ShardIndex{Number: 0, Count: 2}, 8, 3)
		h.attach(shard.ShardIndex{Number: 1, Count: 2}, 8, 3)
		h.round(1, true)
		s0, s1 := tsidOf(shard.ShardIndex{Number: 0, Count: 2}), tsidOf(shard.ShardIndex{Number: 1, Count: 2})
		other := shard.TenantShardID{TenantID: shard.TenantID{0xee}}
		cases := []struct {
			name string
			id   shard.TenantShardID
			req  pageapi.ShardSplitRequest
			want net.Code
			msg  string
		}{
			{"shrink", s0, pageapi.ShardSplitRequest{NewShardCount: 1}, net.InvalidArgument, ErrSplitShrink.Error()},
			{"same count (a repeated split of a child)", s1, pageapi.ShardSplitRequest{NewShardCount: 2}, net.InvalidArgument, ErrSplitShrink.Error()},
			{"not a power of two", s0, pageapi.ShardSplitRequest{NewShardCount: 6}, net.InvalidArgument, ErrSplitRatio.Error()},
			{"not a multiple", s0, pageapi.ShardSplitRequest{NewShardCount: 3}, net.InvalidArgument, ErrSplitRatio.Error()},
			{"stripe change once sharded", s0, pageapi.ShardSplitRequest{NewShardCount: 4, NewStripeSize: u32(16)}, net.InvalidArgument, ErrSplitStripe.Error()},
			{"zero stripe", s0, pageapi.ShardSplitRequest{NewShardCount: 4, NewStripeSize: u32(0)}, net.InvalidArgument, "new_stripe_size 0"},
			{"unknown tenant", other, pageapi.ShardSplitRequest{NewShardCount: 2}, net.NotFound, "not attached"},
		}
		for _, tc := range cases {
			err := f.do("PUT", splitURL(tc.id), tc.req, nil)
			if net.CodeOf(err) != tc.want || !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("%s: %v, want %v naming %q", tc.name, err, tc.want, tc.msg)
			}
		}
		if got := f.node.tenants.count(); got != 2 {
			t.Errorf("%d shards after refused splits, want the 2 parents", got)
		}
		if got := metricValue(t, f.ps.Env().Metrics, "strata_pageserver_shard_splits_total", "result", "refused"); got != float64(len(cases)) {
			t.Errorf("refused splits counted %v, want %d", got, len(cases))
		}
		h.checkShardReads(shard.ShardIdentity{Number: 0, Count: 2, StripeSize: 8})

		// Same stripe stated explicitly is no change; a secondary cannot
		// be split.
		if err := f.do("PUT", splitURL(s0), pageapi.ShardSplitRequest{NewShardCount: 4, NewStripeSize: u32(8)}, nil); err != nil {
			t.Fatalf("split 0002 into 4 with its own stripe: %v", err)
		}
		sec := pageapi.LocationConfig{Mode: pageapi.ModeSecondary, SecondaryConf: &pageapi.SecondaryConf{Warm: true}, TenantConf: &pageapi.TenantConf{},
			ShardNumber: 1, ShardCount: 2, ShardStripeSize: 8}
		if err := f.do("PUT", "/v1/tenant/"+s1.String()+"/location_config", sec, nil); err != nil {
			t.Fatal(err)
		}
		if err := f.do("PUT", splitURL(s1), pageapi.ShardSplitRequest{NewShardCount: 4}, nil); net.CodeOf(err) != net.FailedPrecondition {
			t.Errorf("split of a secondary: %v, want 412", err)
		}
	})
}

// TestShardSplitRepeat: a split repeated once done answers the children
// again (the controller retrying after a lost answer); a different count
// is a conflict; a repeat with a child detached meanwhile is a conflict.
func TestShardSplitRepeat(t *testing.T) {
	runNode(t, Config{}, func(f *nodeFixture) {
		h := &splitHarness{t: t, f: f, at: 0x100}
		p := shard.ShardIndex{Number: 0, Count: 1}
		h.attach(p, 4, 2)
		h.round(1, true)
		pid := tsidOf(p)
		var first, again pageapi.ShardSplitResponse
		if err := f.do("PUT", splitURL(pid), pageapi.ShardSplitRequest{NewShardCount: 2}, &first); err != nil {
			t.Fatal(err)
		}
		if err := f.do("PUT", splitURL(pid), pageapi.ShardSplitRequest{NewShardCount: 2}, &again); err != nil || !slices.Equal(first.NewShards, again.NewShards) {
			t.Fatalf("repeat: %v %v, want %v", again.NewShards, err, first.NewShards)
		}
		if got := metricValue(t, f.ps.Env().Metrics, "strata_pageserver_shard_splits_total", "result", "repeat"); got != 1 {
			t.Errorf("repeats counted %v, want 1", got)
		}
		if err := f.do("PUT", splitURL(pid), pageapi.ShardSplitRequest{NewShardCount: 4}, nil); net.CodeOf(err) != net.AlreadyExists {
			t.Errorf("split again into 4: %v, want 409", err)
		}
		if err := f.do("PUT", "/v1/tenant/"+first.NewShards[1].String()+"/location_config", pageapi.LocationConfig{Mode: pageapi.ModeDetached}, nil); err != nil {
			t.Fatal(err)
		}
		if err := f.do("PUT", splitURL(pid), pageapi.ShardSplitRequest{NewShardCount: 2}, nil); net.CodeOf(err) != net.AlreadyExists {
			t.Errorf("repeat with a child gone: %v, want 409", err)
		}
		// Reads through the parent: the child left is not enough.
		if _, err := h.read(pid, h.at, 0); net.CodeOf(err) != net.Unavailable {
			t.Errorf("read through a parent whose children are not all here: %v, want Unavailable", err)
		}
	})
}

// TestShardSplitRollback: a location config attaching a split parent again
// (the controller rolling the split back) makes it serve again, and the
// children a later restart finds then are removed as uncommitted.
func TestShardSplitRollback(t *testing.T) {
	runNode(t, Config{}, func(f *nodeFixture) {
		h := &splitHarness{t: t, f: f, at: 0x100}
		h.attach(shard.ShardIndex{}, 0, 2)
		h.round(1, true)
		pid := tsidOf(shard.ShardIndex{})
		var resp pageapi.ShardSplitResponse
		if err := f.do("PUT", splitURL(pid), pageapi.ShardSplitRequest{NewShardCount: 2, NewStripeSize: u32(1)}, &resp); err != nil {
			t.Fatal(err)
		}
		conf := pageapi.LocationConfig{Mode: pageapi.ModeAttachedSingle, Generation: gen(2), TenantConf: quietConf()}
		if err := f.do("PUT", "/v1/tenant/"+pid.String()+"/location_config", conf, nil); err != nil {
			t.Fatalf("re-attach the parent: %v", err)
		}
		h.checkShardReads(shard.Unsharded())
		f.w.Crash("ps", false)
		f.w.Restart("ps")
		f.waitUp(t)
		h.checkShardReads(shard.Unsharded())
		for _, k := range resp.NewShards {
			if _, err := f.node.tenants.get(k); err == nil {
				t.Errorf("child %s of a rolled-back split still here after a restart", k)
			}
		}
	})
}

// TestShardSplitCrash: the pageserver crashes at each point of a split.
// Before the commit point the parent is the shard after the restart (it
// serves every block as before) and no child is here (none half-made
// serves); from the commit point on the children are complete and serve,
// and the parent is split.
func TestShardSplitCrash(t *testing.T) {
	for _, point := range []string{"child-built", "children-ready", "committed"} {
		for _, withStore := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s store=%v", point, withStore), func(t *testing.T) {
				runNodeWith(t, Config{}, withStore, func(f *nodeFixture) {
					h := &splitHarness{t: t, f: f, at: 0x100}
					p := shard.ShardIndex{Number: 0, Count: 1}
					h.attach(p, 2, 4)
					h.round(1, true)
					h.round(0x30, false)
					pid := tsidOf(p)
					f.node.tenants.splitHook = func(at string) {
						if at == point {
							f.w.Crash("ps", false)
						}
					}
					err := f.do("PUT", splitURL(pid), pageapi.ShardSplitRequest{NewShardCount: 4}, nil)
					if err == nil {
						t.Fatal("split answered although the pageserver crashed in it")
					}
					f.w.Restart("ps")
					f.waitUp(t)
					kids, _ := pid.SplitChildren(4)
					committed := point == "committed"
					for _, k := range kids {
						_, err := f.node.tenants.get(k)
						if (err == nil) != committed {
							t.Errorf("child %s here after the restart: %v, want %v", k, err == nil, committed)
						}
						if _, err := f.ps.Disk().View().Stat("tenants/" + k.String() + splitStagingSuffix); err == nil {
							t.Errorf("staging directory of %s left", k)
						}
					}
					if !committed {
						h.checkShardReads(shard.ShardIdentity{Number: 0, Count: 1, StripeSize: 2})
						// The split can be done again.
						if err := f.do("PUT", splitURL(pid), pageapi.ShardSplitRequest{NewShardCount: 4}, nil); err != nil {
							t.Fatalf("split after the crash: %v", err)
						}
					}
					for _, k := range kids {
						h.checkShardReads(shard.ShardIdentity{Number: k.Shard.Number, Count: 4, StripeSize: 2})
					}
					h.checkParentReads(shard.ShardIdentity{Number: 0, Count: 1, StripeSize: 2})
				})
			})
		}
	}
}

// TestSplitChildCompactionDropsOtherKeys: a child's compaction leaves the
// blocks other shards own out of what it writes (Options.KeepKey), so in
// time only its own keys remain; its own read as before.
func TestSplitChildCompactionDropsOtherKeys(t *testing.T) {
	runNode(t, Config{}, func(f *nodeFixture) {
		h := &splitHarness{t: t, f: f, at: 0x100}
		h.attach(shard.ShardIndex{}, 0, 2)
		h.round(1, true)
		h.round(0x20, true)
		pid := tsidOf(shard.ShardIndex{})
		if err := f.do("PUT", splitURL(pid), pageapi.ShardSplitRequest{NewShardCount: 2, NewStripeSize: u32(1)}, nil); err != nil {
			t.Fatal(err)
		}
		child := shard.ShardIdentity{Number: 1, Count: 2, StripeSize: 1}
		ts, err := f.node.tenants.get(tsidOf(child.Index()))
		if err != nil {
			t.Fatal(err)
		}
		st, err := ts.lookup(timelineA)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := st.tl.Compact(); err != nil {
			t.Fatal(err)
		}
		var own, other int
		err = st.tl.ScanRange(keys.Range{Start: keys.Min, End: keys.Max}, h.at, func(k keys.Key, _ []byte) error {
			if k.IsRelBlock() {
				if child.Owns(k) {
					own++
				} else {
					other++
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if other != 0 || own == 0 {
			t.Errorf("after compaction the child holds %d of its blocks and %d of others', want only its own", own, other)
		}
		h.checkShardReads(child)
	})
}

// TestShardSplitTwice: 0001 → 2 → 4 with remote storage: the second split
// splits the children of the first, whose indexes name objects the first
// parent wrote (the grandchildren's do too, with their writing shard), and
// reads through the first parent's id, after both parents are detached,
// are routed to the four grandchildren.
func TestShardSplitTwice(t *testing.T) {
	runRemote(t, Config{}, false, func(rf *remoteFixture) {
		f := rf.nodeFixture
		h := &splitHarness{t: t, f: f, at: 0x100}
		root := shard.ShardIndex{Number: 0, Count: 1}
		h.attach(root, 1, 6)
		h.round(0x10, true)
		if err := f.do("PUT", splitURL(tsidOf(root)), pageapi.ShardSplitRequest{NewShardCount: 2}, nil); err != nil {
			t.Fatal(err)
		}
		h.round(0x40, true)
		mid := []shard.ShardIndex{{Number: 0, Count: 2}, {Number: 1, Count: 2}}
		for _, m := range mid {
			if err := f.do("PUT", splitURL(tsidOf(m)), pageapi.ShardSplitRequest{NewShardCount: 4}, nil); err != nil {
				t.Fatalf("split %s: %v", m, err)
			}
		}
		h.round(0x70, true)
		for _, id := range append([]shard.ShardIndex{root}, mid...) {
			if err := f.do("PUT", "/v1/tenant/"+tsidOf(id).String()+"/location_config", pageapi.LocationConfig{Mode: pageapi.ModeDetached}, nil); err != nil {
				t.Fatal(err)
			}
		}
		for n := range uint8(4) {
			h.checkShardReads(shard.ShardIdentity{Number: shard.ShardNumber(n), Count: 4, StripeSize: 1})
		}
		h.checkParentReads(shard.ShardIdentity{Number: 0, Count: 1, StripeSize: 1})
		for _, m := range mid {
			h.checkParentReads(shard.ShardIdentity{Number: m.Number, Count: 2, StripeSize: 1})
		}
		// A grandchild's index names objects of the root and of its parent.
		b, err := f.w.Store().Get(f.ctx, remote.Layout{}.IndexKey(tsidOf(shard.ShardIndex{Number: 2, Count: 4}), timelineA, layerGen(6)))
		if err != nil {
			t.Fatal(err)
		}
		ip, err := remote.Parse(b)
		if err != nil {
			t.Fatal(err)
		}
		writers := map[shard.ShardIndex]bool{}
		for _, l := range ip.Layers {
			writers[l.Shard] = true
		}
		if !writers[root] || !writers[mid[0]] {
			t.Errorf("grandchild 0204's index names objects of %v, want the root's and 0002's", writers)
		}
		// After a restart from object storage alone (a lost disk), a
		// grandchild attaches from those objects.
		rf.wipe = true
		rf.restart(true)
		var locs pageapi.LocationConfigList
		if err := f.do("GET", "/v1/location_config", nil, &locs); err != nil || len(locs.TenantShards) != 0 {
			t.Fatalf("after the wipe: %+v %v", locs, err)
		}
		g := shard.ShardIndex{Number: 2, Count: 4}
		conf := pageapi.LocationConfig{Mode: pageapi.ModeAttachedSingle, Generation: gen(7), TenantConf: quietConf(), ShardNumber: 2, ShardCount: 4, ShardStripeSize: 1}
		if err := f.do("PUT", "/v1/tenant/"+tsidOf(g).String()+"/location_config", conf, nil); err != nil {
			t.Fatalf("attach 0204 from object storage: %v", err)
		}
		h.checkShardReads(shard.ShardIdentity{Number: 2, Count: 4, StripeSize: 1})
	})
}
