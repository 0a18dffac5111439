package pageclient

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/stratadb/strata/engine/lsn"
	"github.com/stratadb/strata/net"
	"github.com/stratadb/strata/nodes/pageserver/pageapi"
)

// TestPlantedBugs: each planted bug changes what the caller gets, and the
// client without it does not — so a checker that sees the difference can
// catch it.
func TestPlantedBugs(t *testing.T) {
	t.Run("ReassembleOutOfOrder", func(t *testing.T) {
		const at = lsn.LSN(0x7000)
		m := ShardMap{Count: 4, StripeSize: 1}
		for _, bug := range []bool{false, true} {
			var fakes []*fake
			for n := range int(m.Count) {
				fakes = append(fakes, newFake(fmt.Sprintf("ps-%d", n), m.StripeSize))
			}
			m.Addrs = nil
			for _, f := range fakes {
				m.Addrs = append(m.Addrs, f.addr)
			}
			runWorld(t, fakes, func(w *world) {
				c := w.client(Config{Bugs: Bugs{ReassembleOutOfOrder: bug}}, m)
				defer c.Close()
				blocks := mixedBatch(m.StripeSize)
				out, err := c.GetPages(w.ctx, Request{Rel: testRel, Blocks: blocks, LSN: ReadLSN{Request: at}})
				if err != nil {
					t.Fatalf("bug %v: GetPages: %v", bug, err)
				}
				wrong := 0
				for i, b := range blocks {
					if !bytes.Equal(out[i], fakePage(b, at)) {
						wrong++
					}
				}
				if (wrong > 0) != bug {
					t.Errorf("bug %v: %d of %d pages in the wrong place", bug, wrong, len(blocks))
				}
			})
		}
	})
	t.Run("RetryInternal", func(t *testing.T) {
		for _, bug := range []bool{false, true} {
			f := newFake("ps-0", 1)
			f.misbehave = func(n int, _ *pageapi.GetPageRequest, r *pageapi.GetPageResponse) (*pageapi.GetPageResponse, error) {
				if n < 1 {
					return &pageapi.GetPageResponse{RequestId: r.RequestId, StatusCode: pageapi.GetPageStatusCode_GET_PAGE_STATUS_CODE_INTERNAL_ERROR, Reason: "planted"}, nil
				}
				return r, nil
			}
			runWorld(t, []*fake{f}, func(w *world) {
				c := w.client(Config{Bugs: Bugs{RetryInternal: bug}}, one(f))
				defer c.Close()
				_, err := c.GetPages(w.ctx, Request{Rel: testRel, Blocks: []uint32{7}, LSN: ReadLSN{Request: 0x100}})
				internal := net.CodeOf(err) == net.Internal
				retried := counterValue(t, c.m.retries, "GetPages", "Internal")
				if internal == bug || (retried > 0) != bug {
					t.Errorf("bug %v: error %v, %v retries counted under Internal", bug, err, retried)
				}
			})
		}
	})
}
