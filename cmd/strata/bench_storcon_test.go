package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"
)

func TestBenchStorconFlags(t *testing.T) {
	ok := benchStorconFlags{nodes: 100, shards: 10_000, perTenant: 4, concurrency: 64, store: "memory"}
	if err := ok.validate(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		change func(*benchStorconFlags)
		want   string
	}{
		{func(f *benchStorconFlags) { f.nodes = 0 }, "--nodes 0"},
		{func(f *benchStorconFlags) { f.shards = 10_001 }, "--shards 10001"},
		{func(f *benchStorconFlags) { f.perTenant = 0 }, "--shards-per-tenant 0"},
		{func(f *benchStorconFlags) { f.perTenant = 256 }, "--shards-per-tenant 256"},
		{func(f *benchStorconFlags) { f.concurrency = 0 }, "--concurrency 0"},
		{func(f *benchStorconFlags) { f.store = "tape" }, `--store "tape"`},
		{func(f *benchStorconFlags) { f.dir = "/tmp" }, "--dir is for --store disk"},
	} {
		f := ok
		tc.change(&f)
		if err := f.validate(); !errors.Is(err, errBenchFlag) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %q", f, err, tc.want)
		}
	}
}

// TestBenchStorconSmall runs the benchmark at a small scale through the
// CLI: every shard placed, spread over the nodes.
func TestBenchStorconSmall(t *testing.T) {
	code, out, errOut := runCLI(t, "bench", "storcon", "--nodes", "5", "--shards", "40", "--shards-per-tenant", "2", "--concurrency", "4", "--json")
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
	}
	var r storconBenchResult
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("%v:\n%s", err, out)
	}
	if r.Shards != 40 || r.Tenants != 20 || r.Nodes != 5 || r.Seconds <= 0 || r.ShardsPerSec <= 0 || r.LocationConfigs < 40 {
		t.Errorf("result %+v", r)
	}
	// 40 shards on 5 nodes: the scheduler spreads attached shards evenly.
	if r.MinAttached < 6 || r.MaxAttached > 10 {
		t.Errorf("attached per node %d..%d, want about 8 each", r.MinAttached, r.MaxAttached)
	}
	code, out, _ = runCLI(t, "bench", "storcon", "--nodes", "2", "--shards", "4", "--shards-per-tenant", "1", "--store", "disk", "--dir", t.TempDir())
	if code != 0 || !strings.Contains(out, "placed 4 shards (4 tenants) on 2 nodes") {
		t.Errorf("disk store, unsharded: exit %d\n%s", code, out)
	}
}

// BenchmarkStorconPlace10k places 10k shards (2500 tenants of 4) on 100
// fake pageservers through the controller's API; it reports the time per
// run and the live heap per shard.
func BenchmarkStorconPlace10k(b *testing.B) {
	f := benchStorconFlags{nodes: 100, shards: 10_000, perTenant: 4, concurrency: 64, store: "memory"}
	for range b.N {
		r, err := benchStorcon(context.Background(), f, io.Discard)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(r.BytesPerShard, "B/shard")
		b.ReportMetric(r.Seconds, "s/10k-shards")
	}
}
