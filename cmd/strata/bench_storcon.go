package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"

	"github.com/stratadb/strata/disk"
	"github.com/stratadb/strata/engine/shard"
	"github.com/stratadb/strata/net"
	"github.com/stratadb/strata/nodes/pageserver/pageapi"
	"github.com/stratadb/strata/nodes/storcon"
	"github.com/stratadb/strata/nodes/storcon/storconapi"
	"github.com/stratadb/strata/sim/simdisk"
)

func init() { benchSubcommands = append(benchSubcommands, newBenchStorconCmd) }

// Bounds of `strata bench storcon`'s flags.
const (
	maxBenchStorconNodes  = 10_000
	maxBenchStorconShards = 1_000_000
	maxBenchConcurrency   = 4096
)

// benchStorconFlags are `strata bench storcon`'s flags.
type benchStorconFlags struct {
	nodes, shards, perTenant, concurrency int
	store, dir                            string
	json                                  bool
}

func (f benchStorconFlags) validate() error {
	switch {
	case f.nodes < 1 || f.nodes > maxBenchStorconNodes:
		return fmt.Errorf("%w: --nodes %d not in [1, %d]", errBenchFlag, f.nodes, maxBenchStorconNodes)
	case f.perTenant < 1 || f.perTenant > 255:
		return fmt.Errorf("%w: --shards-per-tenant %d not in [1, 255]", errBenchFlag, f.perTenant)
	case f.shards < f.perTenant || f.shards > maxBenchStorconShards || f.shards%f.perTenant != 0:
		return fmt.Errorf("%w: --shards %d: want a multiple of --shards-per-tenant %d, at most %d", errBenchFlag, f.shards, f.perTenant, maxBenchStorconShards)
	case f.concurrency < 1 || f.concurrency > maxBenchConcurrency:
		return fmt.Errorf("%w: --concurrency %d not in [1, %d]", errBenchFlag, f.concurrency, maxBenchConcurrency)
	case f.store != "memory" && f.store != "disk":
		return fmt.Errorf("%w: --store %q: want memory or disk", errBenchFlag, f.store)
	case f.dir != "" && f.store != "disk":
		return fmt.Errorf("%w: --dir is for --store disk", errBenchFlag)
	}
	return nil
}

// storconBenchResult is what `strata bench storcon` measures.
type storconBenchResult struct {
	Nodes   int     `json:"nodes"`
	Shards  int     `json:"shards"`
	Tenants int     `json:"tenants"`
	Store   string  `json:"store"`
	Seconds float64 `json:"seconds"`
	// ShardsPerSec is placement throughput end to end: tenant creation
	// through the API, scheduling, generations persisted, location_config
	// to the (fake) pageservers, results applied.
	ShardsPerSec float64 `json:"shards_per_sec"`
	// BytesPerShard is the live heap's growth (after GC) per shard placed:
	// the controller's memory per shard, plus the store's in-memory log
	// with --store memory.
	BytesPerShard float64 `json:"bytes_per_shard"`
	P50Millis     float64 `json:"create_p50_ms"`
	P99Millis     float64 `json:"create_p99_ms"`
	// MinAttached and MaxAttached are the fewest and most attached shards
	// on one node: placement spreads them.
	MinAttached int `json:"min_attached"`
	MaxAttached int `json:"max_attached"`
	// LocationConfigs counts the location_config calls the fake
	// pageservers answered during the run.
	LocationConfigs int64 `json:"location_config_calls"`
}

func (r storconBenchResult) String() string {
	return fmt.Sprintf("placed %d shards (%d tenants) on %d nodes in %.3fs: %.0f shards/s, %.0f B/shard (%.1f KiB), "+
		"create p50 %.2f ms p99 %.2f ms, attached per node %d..%d, %d location_config calls (store %s)",
		r.Shards, r.Tenants, r.Nodes, r.Seconds, r.ShardsPerSec, r.BytesPerShard, r.BytesPerShard/1024,
		r.P50Millis, r.P99Millis, r.MinAttached, r.MaxAttached, r.LocationConfigs, r.Store)
}

func newBenchStorconCmd() *cobra.Command {
	f := benchStorconFlags{}
	cmd := &cobra.Command{
		Use:   "storcon",
		Short: "Storage controller: place shards end to end on fake pageservers; time and memory per shard",
		Long: `storcon starts the storage controller service in this process (real clock)
with --nodes fake pageservers (in-process routers that answer
location_config and utilization at once, keeping nothing), registers them
through the API, then creates tenants of --shards-per-tenant shards through
the API with --concurrency callers until --shards shards are placed. It
reports the wall time, the live heap's growth per shard after a GC, and how
evenly attached shards were spread. The controller's goals at 10k shards on
100 nodes are 1 s and 20 KiB per shard.

--store memory (the default) keeps the embedded store on an in-memory disk,
so the time is the controller's own and the memory includes the store's
log; --store disk puts it in --dir (default a temporary directory) on this
machine's disk, with an fsync per generation.`,
		Example: `  strata bench storcon
  strata bench storcon --nodes 100 --shards 10000 --store disk --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := f.validate(); err != nil {
				return err
			}
			r, err := benchStorcon(cmd.Context(), f, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			if f.json {
				return writeJSON(cmd.OutOrStdout(), r)
			}
			_, err = fmt.Fprintln(cmd.OutOrStdout(), r)
			return err
		},
	}
	fl := cmd.Flags()
	fl.IntVar(&f.nodes, "nodes", 100, "fake pageservers")
	fl.IntVar(&f.shards, "shards", 10_000, "shards to place")
	fl.IntVar(&f.perTenant, "shards-per-tenant", 4, "shards per tenant (1: unsharded tenants)")
	fl.IntVar(&f.concurrency, "concurrency", 64, "tenant creations in flight")
	fl.StringVar(&f.store, "store", "memory", "embedded store on memory or disk")
	fl.StringVar(&f.dir, "dir", "", "directory for --store disk (default: a temporary directory)")
	fl.BoolVar(&f.json, "json", false, "print JSON")
	return cmd
}

// routerHTTP calls a net.Router in-process with JSON bodies, as the seam
// does: the same encoding and decoding as over HTTP, no sockets.
type routerHTTP struct{ rt *net.Router }

func (c routerHTTP) Do(ctx context.Context, r *net.HTTPRequest, in, out any) (int, error) {
	req := *r
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return 0, err
		}
		req.Body = b
	}
	resp, err := c.rt.Serve(ctx, &req)
	if err != nil {
		return 0, net.ToStatus(err)
	}
	if out != nil && len(resp.Body) > 0 {
		if err := json.Unmarshal(resp.Body, out); err != nil {
			return resp.Status, net.Errorf(net.Internal, "%s %s: bad response body: %v", r.Method, r.Path, err)
		}
	}
	return resp.Status, nil
}

// fakePageserver answers what the controller asks of a pageserver while
// placing shards, at once, keeping nothing: location_config echoes the
// placement, the location list is empty, utilization reports an idle node.
func fakePageserver(id uint64, calls *atomic.Int64) *net.Router {
	rt := net.NewRouter()
	net.HandleJSON(rt, "PUT /v1/tenant/{tenant_shard_id}/location_config", 200,
		func(_ context.Context, r *net.HTTPRequest, conf pageapi.LocationConfig) (*pageapi.LocationConfigResponse, error) {
			calls.Add(1)
			if conf.Mode == pageapi.ModeDetached {
				return nil, nil
			}
			resp := &pageapi.LocationConfigResponse{Shards: []pageapi.ShardLocation{{ShardID: r.Param("tenant_shard_id"), NodeID: id}}}
			if conf.Mode != pageapi.ModeSecondary && conf.ShardCount > 1 {
				s := conf.ShardStripeSize
				resp.StripeSize = &s
			}
			return resp, nil
		})
	net.HandleJSON(rt, "GET /v1/location_config", 200, func(context.Context, *net.HTTPRequest, struct{}) (pageapi.LocationConfigList, error) {
		return pageapi.LocationConfigList{TenantShards: []pageapi.TenantShardLocation{}}, nil
	})
	net.HandleJSON(rt, "GET /v1/utilization", 200, func(context.Context, *net.HTTPRequest, struct{}) (pageapi.Utilization, error) {
		return pageapi.Utilization{FreeSpaceBytes: 1 << 40, DiskUsablePct: 90, MaxShardCount: 20_000, CapturedAt: "2026-01-01T00:00:00Z"}, nil
	})
	net.HandleJSON(rt, "GET /v1/tenant/{tenant_shard_id}/timeline", 200, func(context.Context, *net.HTTPRequest, struct{}) ([]pageapi.TimelineInfo, error) {
		return []pageapi.TimelineInfo{}, nil
	})
	return rt
}

// benchStorcon runs the measurement.
func benchStorcon(ctx context.Context, f benchStorconFlags, progress io.Writer) (storconBenchResult, error) {
	r := storconBenchResult{Nodes: f.nodes, Shards: f.shards, Tenants: f.shards / f.perTenant, Store: f.store}
	var fsys disk.FS
	if f.store == "memory" {
		fsys = simdisk.New(simdisk.Options{})
	} else {
		dir := f.dir
		if dir == "" {
			tmp, err := os.MkdirTemp("", "strata-bench-storcon")
			if err != nil {
				return r, err
			}
			defer os.RemoveAll(tmp)
			dir = tmp
		}
		fsys = disk.Dir(dir)
	}
	routers := make(map[string]*net.Router, f.nodes)
	var calls atomic.Int64
	for i := 1; i <= f.nodes; i++ {
		routers[fmt.Sprintf("ps-%d:9898", i)] = fakePageserver(uint64(i), &calls)
	}
	svc, err := storcon.Start(benchEnv("storcon", fsys), storcon.Config{
		DialPageserver: func(addr string) net.HTTPClient { return routerHTTP{rt: routers[addr]} },
		// Heartbeats make registered nodes Active; short, so the run
		// need not wait long for them.
		HeartbeatInterval: 100 * time.Millisecond, HeartbeatTimeout: 100 * time.Millisecond,
		MaxDelayedReconciles: max(storcon.DefaultMaxDelayedReconciles, 2*f.shards),
	})
	if err != nil {
		return r, err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		svc.Shutdown(sctx)
		cancel()
	}()
	api := storconapi.Client{HTTP: routerHTTP{rt: svc.Router()}}
	if err := waitFor(ctx, time.Minute, "controller ready", func() error {
		if !svc.Ready() {
			return fmt.Errorf("not ready")
		}
		return nil
	}); err != nil {
		return r, err
	}
	for i := 1; i <= f.nodes; i++ {
		if err := api.RegisterNode(ctx, storconapi.NodeRegisterRequest{NodeID: uint64(i), ListenHTTPAddr: fmt.Sprintf("ps-%d", i),
			ListenHTTPPort: 9898, ListenPGAddr: fmt.Sprintf("ps-%d", i), ListenPGPort: 6400, AvailabilityZoneID: fmt.Sprintf("az-%d", i%3)}); err != nil {
			return r, fmt.Errorf("register node %d: %w", i, err)
		}
	}
	if err := waitFor(ctx, time.Minute, "every node Active", func() error {
		nodes, err := api.ListNodes(ctx)
		if err != nil {
			return err
		}
		for _, n := range nodes {
			if n.Availability.String() != "Active" {
				return fmt.Errorf("node %d is %s", n.ID, n.Availability)
			}
		}
		if len(nodes) != f.nodes {
			return fmt.Errorf("%d nodes", len(nodes))
		}
		return nil
	}); err != nil {
		return r, err
	}

	count := uint8(f.perTenant)
	if f.perTenant == 1 {
		count = 0
	}
	var mem0, mem1 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&mem0)
	lat := make([]time.Duration, r.Tenants)
	calls0 := calls.Load()
	var next atomic.Int64
	var firstErr error
	var errOnce sync.Once
	var wg sync.WaitGroup
	start := time.Now()
	for w := 0; w < f.concurrency; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= r.Tenants || ctx.Err() != nil {
					return
				}
				var t shard.TenantID
				t[0], t[1], t[2], t[15] = byte(i>>16), byte(i>>8), byte(i), 0xbe
				t0 := time.Now()
				_, err := api.CreateTenant(ctx, storconapi.TenantCreateRequest{NewTenantID: t,
					ShardParameters: storconapi.ShardParameters{Count: count}})
				lat[i] = time.Since(t0)
				if err != nil {
					errOnce.Do(func() { firstErr = fmt.Errorf("create tenant %s: %w", t, err) })
					return
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	r.LocationConfigs = calls.Load() - calls0
	if firstErr != nil {
		return r, firstErr
	}
	runtime.GC()
	runtime.ReadMemStats(&mem1)
	r.Seconds = elapsed.Seconds()
	r.ShardsPerSec = float64(f.shards) / r.Seconds
	r.BytesPerShard = (float64(mem1.HeapAlloc) - float64(mem0.HeapAlloc)) / float64(f.shards)
	slices.Sort(lat)
	r.P50Millis = float64(lat[len(lat)/2].Microseconds()) / 1000
	r.P99Millis = float64(lat[len(lat)*99/100].Microseconds()) / 1000

	// Every shard placed and attached, spread over the nodes.
	nodes, err := api.ListNodes(ctx)
	if err != nil {
		return r, err
	}
	total := 0
	r.MinAttached = f.shards
	for _, n := range nodes {
		total += n.AttachedShards
		r.MinAttached = min(r.MinAttached, n.AttachedShards)
		r.MaxAttached = max(r.MaxAttached, n.AttachedShards)
	}
	if total != f.shards {
		return r, fmt.Errorf("nodes report %d attached shards, want %d", total, f.shards)
	}
	fmt.Fprintf(progress, "heap %d → %d bytes (%d objects → %d)\n", mem0.HeapAlloc, mem1.HeapAlloc, mem0.HeapObjects, mem1.HeapObjects)
	return r, nil
}

// waitFor polls check every 10 ms until it returns nil or d passes.
func waitFor(ctx context.Context, d time.Duration, what string, check func() error) error {
	deadline := time.Now().Add(d)
	for {
		err := check()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
