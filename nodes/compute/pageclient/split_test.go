package pageclient

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/stratadb/strata/engine/keys"
	"github.com/stratadb/strata/engine/lsn"
	"github.com/stratadb/strata/engine/shard"
	"github.com/stratadb/strata/net"
	"github.com/stratadb/strata/nodes/pageserver/pageapi"
)

// mixedBatch is a batch of 40 blocks spread over many stripes, out of
// order, with a repeated block, so that it straddles shards.
func mixedBatch(stripe uint32) []uint32 {
	var blocks []uint32
	for k := uint32(0); k < 39; k++ {
		s := (k * 7) % 23 // stripes visited out of order
		blocks = append(blocks, s*stripe+(k*13)%stripe)
	}
	return append(blocks, blocks[3]) // the same block twice
}

// splitCases are the stripe sizes and counts of the acceptance table.
func splitCases() []ShardMap {
	var ms []ShardMap
	for _, stripe := range []uint32{1, 2048} {
		for _, count := range []shard.ShardCount{2, 4, 8} {
			m := ShardMap{Count: count, StripeSize: stripe}
			for n := range int(count) {
				m.Addrs = append(m.Addrs, fmt.Sprintf("ps-%d:6400", n))
			}
			ms = append(ms, m)
		}
	}
	return ms
}

// answer is each part's correct answer.
func answers(parts []Part, l lsn.LSN) [][]*pageapi.Page {
	out := make([][]*pageapi.Page, len(parts))
	for i, p := range parts {
		for _, b := range p.Blocks {
			out[i] = append(out[i], &pageapi.Page{BlockNumber: b, Image: fakePage(b, l)})
		}
	}
	return out
}

// TestSplitReassembleTable: for stripes 1 and 2048 and counts 2, 4 and 8,
// a mixed batch splits into parts that each hold only their shard's
// blocks, in request order, covering every position once; the answers
// reassemble into request order; and a missing, extra, reordered or
// foreign page is refused Internal.
func TestSplitReassembleTable(t *testing.T) {
	const at = lsn.LSN(0x5000)
	for _, m := range splitCases() {
		t.Run(fmt.Sprintf("count%d/stripe%d", m.Count, m.StripeSize), func(t *testing.T) {
			blocks := mixedBatch(m.StripeSize)
			for _, maxBlocks := range []int{256, 3} {
				parts := Split(m, testRel, blocks, maxBlocks)
				shards := map[shard.ShardNumber]bool{}
				covered := make([]int, len(blocks))
				for _, p := range parts {
					shards[p.Shard] = true
					if len(p.Blocks) == 0 || len(p.Blocks) > maxBlocks || len(p.Blocks) != len(p.Positions) {
						t.Fatalf("part %+v: bad size (max %d)", p, maxBlocks)
					}
					if !slices.IsSorted(p.Positions) {
						t.Fatalf("part of shard %d lost the request order: positions %v", p.Shard, p.Positions)
					}
					for i, at := range p.Positions {
						covered[at]++
						if p.Blocks[i] != blocks[at] {
							t.Fatalf("part of shard %d: block %d at position %d, request has %d", p.Shard, p.Blocks[i], at, blocks[at])
						}
						if owner := shard.KeyToShard(keys.RelBlockKey(testRel, p.Blocks[i]), m.Count, m.StripeSize); owner != p.Shard {
							t.Fatalf("block %d in the part of shard %d, owned by %d", p.Blocks[i], p.Shard, owner)
						}
					}
				}
				for at, n := range covered {
					if n != 1 {
						t.Fatalf("position %d in %d parts", at, n)
					}
				}
				if len(shards) < 2 {
					t.Fatalf("batch is not mixed: one shard (%v)", shards)
				}
				if err := checkParts(len(blocks), blocks, parts); err != nil {
					t.Fatal(err)
				}
				out, err := Reassemble(len(blocks), parts, answers(parts, at))
				if err != nil {
					t.Fatalf("reassemble: %v", err)
				}
				checkPages(t, out, blocks, at)
			}

			// Wrong answers are Internal, never a page in the wrong place.
			parts := Split(m, testRel, blocks, 256)
			multi := slices.IndexFunc(parts, func(p Part) bool { return len(p.Blocks) >= 2 && p.Blocks[0] != p.Blocks[1] })
			if multi < 0 {
				t.Fatal("no part with two distinct blocks")
			}
			for _, bad := range []struct {
				name string
				edit func(a [][]*pageapi.Page)
			}{
				{"two pages swapped", func(a [][]*pageapi.Page) { a[multi][0], a[multi][1] = a[multi][1], a[multi][0] }},
				{"a page missing", func(a [][]*pageapi.Page) { a[multi] = a[multi][1:] }},
				{"an extra page", func(a [][]*pageapi.Page) { a[multi] = append(a[multi], a[multi][0]) }},
				{"another block's page", func(a [][]*pageapi.Page) { a[multi][1] = &pageapi.Page{BlockNumber: a[multi][1].BlockNumber + 1} }},
				{"a part unanswered", func(a [][]*pageapi.Page) { a[multi] = nil }},
			} {
				a := answers(parts, at)
				bad.edit(a)
				_, err := Reassemble(len(blocks), parts, a)
				if net.CodeOf(err) != net.Internal || !errors.Is(err, ErrBadResponse) {
					t.Errorf("%s: %v, want Internal wrapping ErrBadResponse", bad.name, err)
				}
			}
			// A part list that misses positions is refused too.
			if _, err := Reassemble(len(blocks), parts[1:], answers(parts[1:], at)); net.CodeOf(err) != net.Internal {
				t.Errorf("a part dropped: %v, want Internal", err)
			}
		})
	}
}

// TestClientSplitsAcrossShards: through the client, against one fake
// pageserver per shard (each refusing blocks its shard does not own, as a
// pageserver does), a mixed batch comes back in request order for every
// stripe and count of the table, the parts are sent in parallel, and each
// shard saw only its own blocks.
func TestClientSplitsAcrossShards(t *testing.T) {
	const at = lsn.LSN(0x7000)
	const delay = 10 * time.Millisecond
	for _, m := range splitCases() {
		t.Run(fmt.Sprintf("count%d/stripe%d", m.Count, m.StripeSize), func(t *testing.T) {
			var fakes []*fake
			for n := range int(m.Count) {
				f := newFake(fmt.Sprintf("ps-%d", n), m.StripeSize)
				f.delay = delay
				fakes = append(fakes, f)
			}
			runWorld(t, fakes, func(w *world) {
				c := w.client(Config{MaxBlocksPerRequest: 8}, m)
				defer c.Close()
				blocks := mixedBatch(m.StripeSize)
				start := w.env.Clock.Mono()
				out, err := c.GetPages(w.ctx, Request{Rel: testRel, Blocks: blocks, LSN: ReadLSN{Request: at}})
				if err != nil {
					t.Fatalf("GetPages: %v", err)
				}
				checkPages(t, out, blocks, at)
				// In parallel: one server delay (plus network), not one per part.
				if took := w.env.Clock.Mono() - start; took > 3*delay {
					t.Errorf("the call took %v: parts were not sent in parallel (server delay %v, %d parts)", took, delay, len(Split(m, testRel, blocks, 8)))
				}
				for n, f := range fakes {
					seen, _, _, _, _ := f.snapshot()
					for _, r := range seen {
						if r.shard != m.Index(shard.ShardNumber(n)).String() {
							t.Errorf("shard %d's server got a stream for %s", n, r.shard)
						}
						for _, b := range r.blocks {
							if m.ShardOf(testRel, b) != shard.ShardNumber(n) {
								t.Errorf("shard %d got block %d of shard %d", n, b, m.ShardOf(testRel, b))
							}
						}
					}
				}
				// Relation size, database size and SLRU segments go to shard
				// 0, addressed as shard 0 of the count.
				n, _, err := c.GetRelSize(w.ctx, testRel, ReadLSN{Request: at}, false)
				if err != nil || n != 42 {
					t.Fatalf("GetRelSize: %d, %v", n, err)
				}
				if b, err := c.GetDbSize(w.ctx, 5, ReadLSN{Request: at}); err != nil || b != 5*8192 {
					t.Fatalf("GetDbSize: %d, %v", b, err)
				}
				if seg, err := c.GetSlruSegment(w.ctx, 1, 3, ReadLSN{Request: at}); err != nil || string(seg) != "\x01\x03" {
					t.Fatalf("GetSlruSegment: %q, %v", seg, err)
				}
				for _, f := range fakes[1:] {
					if len(f.unary) != 0 {
						t.Errorf("%s got unary calls %v", f.name, f.unary)
					}
				}
				fakes[0].mu.Lock()
				unary := slices.Clone(fakes[0].unary)
				fakes[0].mu.Unlock()
				idx := m.Index(0).String()
				if want := []string{idx, "GetDbSize " + idx, "GetSlruSegment " + idx}; !slices.Equal(unary, want) {
					t.Errorf("shard 0 got unary calls %v, want %v", unary, want)
				}
			})
		})
	}
}

// TestClientAnswersOutOfOrderAreInternal: a server that answers a part's
// blocks in another order, or with a page missing, makes the call fail
// Internal — never a page in the wrong place — and the request is not
// retried.
func TestClientAnswersOutOfOrderAreInternal(t *testing.T) {
	for _, bad := range []struct {
		name string
		edit func(r *pageapi.GetPageResponse)
	}{
		{"reversed", func(r *pageapi.GetPageResponse) { slices.Reverse(r.Page) }},
		{"missing", func(r *pageapi.GetPageResponse) { r.Page = r.Page[1:] }},
		{"extra", func(r *pageapi.GetPageResponse) { r.Page = append(r.Page, r.Page[0]) }},
	} {
		t.Run(bad.name, func(t *testing.T) {
			f := newFake("ps-0", 1)
			f.misbehave = func(n int, req *pageapi.GetPageRequest, resp *pageapi.GetPageResponse) (*pageapi.GetPageResponse, error) {
				bad.edit(resp)
				return resp, nil
			}
			runWorld(t, []*fake{f}, func(w *world) {
				c := w.client(Config{}, ShardMap{Addrs: []string{f.addr}})
				defer c.Close()
				_, err := c.GetPages(w.ctx, Request{Rel: testRel, Blocks: []uint32{1, 2, 3}, LSN: ReadLSN{Request: 0x100}})
				if net.CodeOf(err) != net.Internal || !errors.Is(err, ErrBadResponse) {
					t.Fatalf("GetPages: %v, want Internal wrapping ErrBadResponse", err)
				}
				if seen, _, _, _, _ := f.snapshot(); len(seen) != 1 {
					t.Errorf("server saw %d requests, want 1 (Internal is never retried)", len(seen))
				}
			})
		})
	}
}

// TestSplitUnshardedFastPath: an unsharded map sends one part with every
// block, in order.
func TestSplitUnshardedFastPath(t *testing.T) {
	blocks := []uint32{9, 3, 9, 1}
	parts := Split(ShardMap{Addrs: []string{"a:1"}}, testRel, blocks, 256)
	if len(parts) != 1 || parts[0].Shard != 0 || !slices.Equal(parts[0].Blocks, blocks) || !slices.Equal(parts[0].Positions, []int{0, 1, 2, 3}) {
		t.Fatalf("parts %+v", parts)
	}
}
