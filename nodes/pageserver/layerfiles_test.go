package pageserver

import (
	"bytes"
	"errors"
	"testing"

	"github.com/stratadb/strata/engine/keys"
	"github.com/stratadb/strata/engine/lsn"
	"github.com/stratadb/strata/engine/shard"
	"github.com/stratadb/strata/engine/walrec"
	"github.com/stratadb/strata/nodes/pageserver/pageapi"
)

func TestMaxOpenLayerFilesConfig(t *testing.T) {
	base := Config{NodeID: 1, PageAddr: "ps:1"}
	if got := base.withDefaults().MaxOpenLayerFiles; got != DefaultMaxOpenLayerFiles {
		t.Errorf("default MaxOpenLayerFiles %d, want %d", got, DefaultMaxOpenLayerFiles)
	}
	for _, n := range []int{-1, -1000} {
		c := base
		c.MaxOpenLayerFiles = n
		if err := c.Validate(); !errors.Is(err, ErrConfig) {
			t.Errorf("MaxOpenLayerFiles %d: %v, want ErrConfig", n, err)
		}
		if c.MaxOpenLayerFiles != n {
			t.Errorf("Validate changed MaxOpenLayerFiles to %d", c.MaxOpenLayerFiles)
		}
	}
	c := base
	c.MaxOpenLayerFiles = 1
	if err := c.Validate(); err != nil {
		t.Errorf("MaxOpenLayerFiles 1: %v", err)
	}
}

// TestOpenLayerFilesSharedAcrossTenants: two tenant shards with more layer
// files together than the node's MaxOpenLayerFiles share one open-file
// cache: every page reads back right, the files open never exceed the
// limit, and the node's metrics report it.
func TestOpenLayerFilesSharedAcrossTenants(t *testing.T) {
	const limit, flushes = 3, 8
	tenantB, _ := shard.ParseTenantID("fedcba9876543210fedcba9876543210")
	runNode(t, Config{MaxOpenLayerFiles: limit}, func(f *nodeFixture) {
		var sts []*shardTimeline
		for _, tid := range []shard.TenantID{tenantA, tenantB} {
			base := "/v1/tenant/" + shard.UnshardedID(tid).String()
			if err := f.do("PUT", base+"/location_config", attachedConf(1), nil); err != nil {
				t.Fatalf("attach: %v", err)
			}
			if err := f.do("POST", base+"/timeline", pageapi.TimelineCreateRequest{NewTimelineID: timelineA}, nil); err != nil {
				t.Fatalf("create timeline: %v", err)
			}
			sts = append(sts, f.node.tenants.shards[shard.UnshardedID(tid)].timelines[timelineA])
		}
		// Each flush writes one L0 per tenant; block i is written in
		// flush i, so reading every block walks every layer.
		for i := range flushes {
			for j, st := range sts {
				if err := st.Ingest(lsn.LSN(0x10*(i+1)), walrec.FullPageImage{Rel: testRel, Blk: uint32(i), Page: testPage(byte(i + 10*j))}); err != nil {
					t.Fatal(err)
				}
				if err := st.tl.Flush(); err != nil {
					t.Fatal(err)
				}
			}
		}
		for round := range 2 {
			for j, st := range sts {
				for i := range flushes {
					got, err := st.AppendPage(nil, keys.RelBlockKey(testRel, uint32(i)), lsn.LSN(0x10*flushes))
					if err != nil || !bytes.Equal(got, testPage(byte(i+10*j))) {
						t.Fatalf("round %d tenant %d block %d: %v", round, j, i, err)
					}
				}
			}
		}
		cs := f.node.tenants.layers.Stats()
		if cs.Handles < 2*flushes || cs.Peak > limit || cs.Open > limit || cs.Reopens == 0 {
			t.Fatalf("node's layer cache %+v: want both tenants' %d layers in it, at most %d open, some reopened", cs, 2*flushes, limit)
		}
		mfs, err := f.ps.Env().Metrics.Gather()
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]float64{}
		for _, mf := range mfs {
			for _, m := range mf.GetMetric() {
				got[mf.GetName()] = m.GetGauge().GetValue() + m.GetCounter().GetValue()
			}
		}
		if v, ok := got["strata_pageserver_open_layer_files"]; !ok || v < 1 || v > limit {
			t.Errorf("strata_pageserver_open_layer_files = %v (present %v), want 1..%d", v, ok, limit)
		}
		if got["strata_pageserver_layer_file_reopens_total"] != float64(cs.Reopens) || got["strata_pageserver_layer_file_evictions_total"] == 0 {
			t.Errorf("reopen/eviction metrics %v, cache %+v", got, cs)
		}
	})
}
