package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"

	"github.com/stratadb/strata/clock"
	"github.com/stratadb/strata/engine/lsn"
	"github.com/stratadb/strata/engine/shard"
	"github.com/stratadb/strata/engine/walrec"
	"github.com/stratadb/strata/net/grpcx"
	"github.com/stratadb/strata/nodes/compute/pageclient"
	"github.com/stratadb/strata/nodes/compute/walproposer"
	"github.com/stratadb/strata/nodes/node"
	"github.com/stratadb/strata/nodes/pageserver"
	"github.com/stratadb/strata/nodes/pageserver/pageapi"
)

func init() { benchSubcommands = append(benchSubcommands, newBenchPageClientCmd) }

// benchShards is the shard count of the sharded tenant of `strata bench
// pageclient`.
const benchShards = 4

// benchPageClientFlags are `strata bench pageclient`'s flags.
type benchPageClientFlags struct {
	dir                   string
	duration              time.Duration
	rounds, pages, stripe int
	callers, batch        int
	batchCallers          int
	streams, inflight     int
	json                  bool
	cpuProfile            string
}

func (f benchPageClientFlags) validate() error {
	if f.duration <= 0 || f.duration > maxBenchDuration {
		return fmt.Errorf("%w: --duration %v not in (0, %v]", errBenchFlag, f.duration, maxBenchDuration)
	}
	for _, v := range []struct {
		name      string
		n, lo, hi int
	}{{"--rounds", f.rounds, 1, 99}, {"--pages", f.pages, 1, 1 << 20}, {"--stripe", f.stripe, 1, 1 << 20},
		{"--callers", f.callers, 1, 1024}, {"--batch", f.batch, 1, pageserver.DefaultMaxBlocksPerRequest},
		{"--batch-callers", f.batchCallers, 1, 1024}, {"--streams", f.streams, 0, 1024}, {"--inflight", f.inflight, 0, pageserver.DefaultMaxInflightPerStream}} {
		if v.n < v.lo || v.n > v.hi {
			return fmt.Errorf("%w: %s %d not in [%d, %d]", errBenchFlag, v.name, v.n, v.lo, v.hi)
		}
	}
	if f.dir != "" {
		fi, err := os.Stat(f.dir)
		if err != nil {
			return fmt.Errorf("%w: --dir %s: %w (it must exist)", errBenchFlag, f.dir, err)
		}
		if !fi.IsDir() {
			return fmt.Errorf("%w: --dir %s is not a directory", errBenchFlag, f.dir)
		}
	}
	return nil
}

// pageClientResult is one figure on the three sides.
type pageClientResult struct {
	Name string `json:"name"`
	// Unit is "pages/s" or "us" (latency, lower is better).
	Unit string `json:"unit"`
	// Raw is the page service without the client: the generated gRPC
	// client on one GetPages stream, unsharded tenant.
	Raw float64 `json:"raw"`
	// Client1 and Client4 are the page client against the unsharded
	// tenant and the 4-shard tenant; the ratios are client / raw.
	Client1 float64 `json:"client_1_shard"`
	Ratio1  float64 `json:"ratio_1_shard"`
	Client4 float64 `json:"client_4_shards"`
	Ratio4  float64 `json:"ratio_4_shards"`
}

func newBenchPageClientCmd() *cobra.Command {
	var f benchPageClientFlags
	cmd := &cobra.Command{
		Use:   "pageclient",
		Short: "The compute's page client against 1 and 4 shards beside the bare page service: pages/s and p99",
		Long: `pageclient starts, in this process, a broker, a safekeeper and a pageserver
(real clocks, loopback gRPC, files in a temporary directory inside --dir,
removed afterwards). The pageserver holds two tenants with the same --pages
full page images of one relation, written through the walproposer: one
unsharded, one of 4 shards with a --stripe-page stripe (all four on this
pageserver, so the figures are the client's, not a network's).

Three sides are measured in the same run, each measurement --duration, in
--rounds rounds alternating the sides, the median round reported:
  raw        the page service without the client: the generated gRPC client
             on one GetPages stream, the unsharded tenant, as many requests
             in flight as there are callers (one: send, receive, repeat)
  client 1   the page client (nodes/compute/pageclient), unsharded tenant
  client 4   the page client, 4-shard tenant: a request of random blocks is
             split by shard, the parts sent in parallel and reassembled
for requests of random blocks:
  1 block,  1 caller:              pages/s, p50 and p99 latency
  1 block,  --callers callers:     pages/s and p99
  --batch blocks, --batch-callers: pages/s and p99
The ratio is client / raw (for pages/s, the share of the bare service's
throughput the client keeps; for latency, how much longer a call takes).
Every page the client returns is checked against its block.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := f.validate(); err != nil {
				return err
			}
			return benchRun(cmd, "pageclient", f.dir, f.cpuProfile, f.json,
				func(dir string) ([]pageClientResult, error) {
					return benchPageClient(cmd.Context(), dir, f, cmd.ErrOrStderr())
				},
				func(out io.Writer, results []pageClientResult) error { return writePageClientResults(out, f, results) })
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.dir, "dir", "", "existing directory for the nodes' files (a temporary directory inside it, removed afterwards; default: the system's)")
	fl.DurationVar(&f.duration, "duration", time.Second, fmt.Sprintf("time per measurement and round, (0, %v]", maxBenchDuration))
	fl.IntVar(&f.rounds, "rounds", 3, "rounds of every measurement on every side; the median round is reported")
	fl.IntVar(&f.pages, "pages", 4096, "pages (8 KiB full page images) of each tenant")
	fl.IntVar(&f.stripe, "stripe", 8, "stripe of the 4-shard tenant, in pages")
	fl.IntVar(&f.callers, "callers", 32, "concurrent callers of 1-block requests")
	fl.IntVar(&f.batch, "batch", 32, "blocks per request in the batch measurement")
	fl.IntVar(&f.batchCallers, "batch-callers", 4, "concurrent callers of --batch-block requests")
	fl.IntVar(&f.streams, "streams", 0, fmt.Sprintf("the client's GetPages streams per shard and pool (0: its default, %d normal, %d bulk)", pageclient.DefaultStreamsPerShard, pageclient.DefaultBulkStreamsPerShard))
	fl.IntVar(&f.inflight, "inflight", 0, fmt.Sprintf("the client's requests in flight per stream (0: its default, %d)", pageclient.DefaultInflightPerStream))
	fl.BoolVar(&f.json, "json", false, "one JSON object per figure")
	fl.StringVar(&f.cpuProfile, "cpuprofile", "", "write a CPU profile of the whole run (servers and clients share the process) to this file")
	return cmd
}

func writePageClientResults(w io.Writer, f benchPageClientFlags, rs []pageClientResult) error {
	load := "unknown"
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		load = strings.Join(strings.Fields(string(b))[:3], " ")
	}
	fmt.Fprintf(w, "bench pageclient: %d pages of 8 KiB per tenant over loopback gRPC, one pageserver; 4-shard tenant striped by %d pages; median of %d rounds of %v (each after a %v warm-up); %d CPUs, load average %s\n",
		f.pages, f.stripe, f.rounds, f.duration, benchWarmUp, runtime.NumCPU(), load)
	fmt.Fprintln(w, "raw: the page service without the client (generated gRPC client, one GetPages stream, unsharded tenant); ratio: client / raw")
	var buf bytes.Buffer
	tw := tabwriter.NewWriter(&buf, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "measurement\traw\tclient, 1 shard\tratio\tclient, 4 shards\tratio\t")
	for _, r := range rs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%.2fx\t%s\t%.2fx\t\n", r.Name, formatMeasure(r.Raw, r.Unit), formatMeasure(r.Client1, r.Unit), r.Ratio1,
			formatMeasure(r.Client4, r.Unit), r.Ratio4)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, l := range strings.SplitAfter(buf.String(), "\n") {
		if _, err := io.WriteString(w, strings.TrimRight(l, " \n")+strings.Repeat("\n", strings.Count(l, "\n"))); err != nil {
			return err
		}
	}
	return nil
}

// benchTenant is one tenant of the benchmark: its shards' ids and the
// LSN its WAL ends at.
type benchTenant struct {
	target pageapi.Target // shard part: the unsharded id, or shard 0
	shards []shard.TenantShardID
	end    lsn.LSN
}

// benchPageClient runs the whole benchmark.
func benchPageClient(ctx context.Context, dir string, f benchPageClientFlags, log io.Writer) ([]pageClientResult, error) {
	c, err := startLocalCluster(dir, 1)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	mc, err := newMgmtClient(c.httpAddr, "")
	if err != nil {
		return nil, err
	}
	tl := shard.TimelineID{0xbe, 0xc1, 1}
	unsharded := &benchTenant{target: pageapi.Target{Shard: shard.UnshardedID(shard.TenantID{0xbe, 0xc1, 0}), Timeline: tl}}
	unsharded.shards = []shard.TenantShardID{unsharded.target.Shard}
	sharded := &benchTenant{}
	sid := shard.TenantID{0xbe, 0xc1, 4}
	for n := range benchShards {
		sharded.shards = append(sharded.shards, shard.TenantShardID{TenantID: sid, Shard: shard.ShardIndex{Number: shard.ShardNumber(n), Count: benchShards}})
	}
	sharded.target = pageapi.Target{Shard: sharded.shards[0], Timeline: tl}
	for _, t := range []*benchTenant{unsharded, sharded} {
		for _, id := range t.shards {
			conf, err := attachConf(id, 1, uint32(f.stripe), "")
			if err != nil {
				return nil, err
			}
			if err := mc.setLocation(ctx, id, conf); err != nil {
				return nil, err
			}
		}
		fmt.Fprintf(log, "bench pageclient: committing %d page images for tenant %s...\n", f.pages, t.target.Shard.TenantID)
		// The proposer stays up until the end: the safekeeper announces
		// the timeline to the broker (where the WAL receivers find it)
		// while its compute is connected.
		wp, end, err := commitBenchPages(ctx, c, t.target, f.pages)
		if err != nil {
			return nil, err
		}
		defer wp.Stop()
		t.end = end
		init := walproposer.DefaultStartLSN
		for _, id := range t.shards {
			if _, err := mc.createTimeline(ctx, id, pageapi.TimelineCreateRequest{NewTimelineID: tl, InitLSN: &init}); err != nil {
				return nil, err
			}
		}
	}
	fmt.Fprintf(log, "bench pageclient: waiting for ingest...\n")
	for _, t := range []*benchTenant{unsharded, sharded} {
		for _, id := range t.shards {
			if err := waitIngested(ctx, c.ps, id, t.end); err != nil {
				return nil, err
			}
		}
	}

	raw, err := newGetPageClient(ctx, c.pageAddr, unsharded.target, unsharded.end, f.pages)
	if err != nil {
		return nil, err
	}
	defer raw.close()
	var clients [2]*pageclient.Client
	maps := [2]pageclient.ShardMap{{Addrs: []string{c.pageAddr}}, {Count: benchShards, StripeSize: uint32(f.stripe)}}
	for range benchShards {
		maps[1].Addrs = append(maps[1].Addrs, c.pageAddr)
	}
	for i, t := range []*benchTenant{unsharded, sharded} {
		env := node.Env{ID: "compute", Clock: clock.NewReal(), Net: grpcx.New(grpcx.Options{}), Rand: rand.New(rand.NewPCG(5, uint64(i))),
			Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Metrics: prometheus.NewRegistry()}
		cfg := pageclient.Config{Tenant: t.target.Shard.TenantID, Timeline: tl, StreamsPerShard: f.streams, BulkStreamsPerShard: f.streams, InflightPerStream: f.inflight}
		if clients[i], err = pageclient.New(env, cfg, maps[i]); err != nil {
			return nil, err
		}
		defer clients[i].Close()
	}
	ends := [2]lsn.LSN{unsharded.end, sharded.end}

	type mode struct {
		name             string
		blocks, inflight int
	}
	modes := []mode{{"1 block, 1 caller", 1, 1}, {fmt.Sprintf("1 block, %d callers", f.callers), 1, f.callers},
		{fmt.Sprintf("%d blocks, %d callers", f.batch, f.batchCallers), f.batch, f.batchCallers}}
	sideNames := []string{"raw", "client 1 shard", "client 4 shards"}
	var rounds [3][3][]measured // [mode][side]
	for k, md := range modes {
		for r := range f.rounds {
			for side, name := range sideNames {
				fmt.Fprintf(log, "bench pageclient: %s, %s, round %d of %d...\n", md.name, name, r+1, f.rounds)
				var m measured
				switch {
				case side == 0 && md.inflight == 1:
					// One goroutine sending and receiving in turn: the
					// bare service's serial latency.
					if m, err = raw.serial(f.duration); err == nil {
						m.rate = float64(m.ops) / f.duration.Seconds()
					}
				case side == 0:
					m, err = raw.load(md.blocks, md.inflight, f.duration)
				default:
					m, err = clientLoad(ctx, clients[side-1], ends[side-1], f.pages, md.blocks, md.inflight, f.duration)
				}
				if err != nil {
					return nil, fmt.Errorf("%s, %s: %w", md.name, name, err)
				}
				rounds[k][side] = append(rounds[k][side], m)
			}
		}
	}
	var results []pageClientResult
	for k, md := range modes {
		var med [3]measured
		for side := range 3 {
			med[side] = medianRound(rounds[k][side])
		}
		add := func(name, unit string, v func(measured) float64) {
			r := pageClientResult{Name: md.name + ": " + name, Unit: unit, Raw: v(med[0]), Client1: v(med[1]), Client4: v(med[2])}
			r.Ratio1, r.Ratio4 = r.Client1/r.Raw, r.Client4/r.Raw
			results = append(results, r)
		}
		add("pages/s", "pages/s", func(m measured) float64 { return m.rate })
		if md.inflight == 1 {
			add("p50", "us", func(m measured) float64 { return m.p50 })
		}
		add("p99", "us", func(m measured) float64 { return m.p99 })
	}
	return results, nil
}

// commitBenchPages writes a full image of each of pages blocks of
// benchReadRel to t's timeline through a walproposer and returns the
// proposer (still running: the caller stops it) and the LSN the WAL ends
// at, committed.
func commitBenchPages(ctx context.Context, c *localCluster, t pageapi.Target, pages int) (*walproposer.WALProposer, lsn.LSN, error) {
	wp, err := walproposer.New(benchEnv("compute", nil), walproposer.Config{ID: "bench-pageclient-" + t.Shard.TenantID.String(),
		TenantID: t.Shard.TenantID.String(), TimelineID: t.Timeline.String(), StartLSN: walproposer.DefaultStartLSN, Safekeepers: c.skAddrs,
		MaxAppendBytes: 1 << 20, MaxInflightBytes: 16 << 20, MaxBufferBytes: 256 << 20, MaxUncommittedBytes: 64 << 20})
	if err != nil {
		return nil, 0, err
	}
	wp.Start(context.Background())
	var end lsn.LSN
	for b := 0; b < pages; b += 64 {
		var recs [][]byte
		for i := b; i < min(b+64, pages); i++ {
			recs = append(recs, walrec.Encode(walrec.FullPageImage{Rel: benchReadRel, Blk: uint32(i), Page: fillPage(uint64(i))}))
		}
		if end, err = wp.Append(ctx, recs); err != nil {
			wp.Stop()
			return nil, 0, err
		}
	}
	if err := wp.WaitCommitted(ctx, end); err != nil {
		wp.Stop()
		return nil, 0, err
	}
	return wp, end, nil
}

// waitIngested polls until id's timeline has ingested up to end.
func waitIngested(ctx context.Context, ps *pageserver.Node, id shard.TenantShardID, end lsn.LSN) error {
	deadline := time.Now().Add(10 * time.Minute)
	for {
		infos, err := routerTimelines(ctx, ps, id)
		if err != nil {
			return err
		}
		if infos[0].LastRecordLSN >= end {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("bench pageclient: %s: ingest stuck at %s, want %s", id, infos[0].LastRecordLSN, end)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Millisecond):
		}
	}
}

// pageTag is the first 8 bytes of fillPage(blk): enough to tell a page
// for another block apart.
func pageTag(blk uint32) uint64 { return uint64(blk) * 0x9E3779B97F4A7C15 }

// randomRequests are 4096 requests of n random blocks below pages, built
// before a measurement's clock starts.
func randomRequests(rng *rand.Rand, n, pages int) [][]uint32 {
	reqs := make([][]uint32, 4096)
	for i := range reqs {
		reqs[i] = make([]uint32, n)
		for j := range reqs[i] {
			reqs[i][j] = uint32(rng.IntN(pages))
		}
	}
	return reqs
}

// clientLoad runs callers goroutines, each calling GetPages with n random
// blocks one call at a time, for d after a warm-up; it returns the pages
// per second and the latency percentiles. Every page is checked.
func clientLoad(ctx context.Context, c *pageclient.Client, at lsn.LSN, pages, n, callers int, d time.Duration) (measured, error) {
	reqs := randomRequests(rand.New(rand.NewPCG(7, uint64(n))), n, pages)
	var (
		mu      sync.Mutex
		lats    []time.Duration
		counted int
		first   error
	)
	begin := time.Now()
	var wg sync.WaitGroup
	for w := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []time.Duration
			got := 0
			for i := w * 97; ; i++ {
				t0 := time.Now()
				if t0.Sub(begin) >= d+benchWarmUp {
					break
				}
				blocks := reqs[i%len(reqs)]
				out, err := c.GetPages(ctx, pageclient.Request{Rel: benchReadRel, Blocks: blocks, LSN: pageclient.ReadLSN{Request: at}})
				if err == nil {
					for j, b := range blocks {
						if len(out[j]) != walrec.PageSize || binary.LittleEndian.Uint64(out[j]) != pageTag(b) {
							err = fmt.Errorf("block %d: wrong page", b)
							break
						}
					}
				}
				if err != nil {
					mu.Lock()
					first = cmpOr(first, err)
					mu.Unlock()
					return
				}
				if t0.Sub(begin) >= benchWarmUp {
					mine = append(mine, time.Since(t0))
					got += n
				}
			}
			mu.Lock()
			lats = append(lats, mine...)
			counted += got
			mu.Unlock()
		}()
	}
	wg.Wait()
	if first != nil {
		return measured{}, first
	}
	return summarize(lats, counted, d)
}

func cmpOr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

// summarize turns latencies and pages counted over d into a measurement.
func summarize(lats []time.Duration, pages int, d time.Duration) (measured, error) {
	if len(lats) == 0 {
		return measured{}, errors.New("no request completed")
	}
	slices.Sort(lats)
	us := func(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
	return measured{p50: us(lats[len(lats)/2]), p99: us(lats[len(lats)*99/100]), rate: float64(pages) / d.Seconds(), ops: len(lats)}, nil
}

// load keeps inflight requests of n random blocks outstanding on one
// stream of the generated client for d after a warm-up, and returns the
// pages per second and the latency percentiles (answers come in order, so
// each is matched to its send time).
func (g *getPageClient) load(n, inflight int, d time.Duration) (measured, error) {
	ctx, cancel := context.WithCancel(g.ctx)
	defer cancel()
	st, err := g.client.GetPages(ctx)
	if err != nil {
		return measured{}, err
	}
	reqs := make([]*pageapi.GetPageRequest, 4096)
	for i := range reqs {
		reqs[i] = g.req(n)
	}
	sent := make(chan time.Time, inflight) // send times, in order; its capacity bounds what is in flight
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case sent <- time.Now():
			case <-stop:
				return
			}
			if err := st.Send(reqs[i%len(reqs)]); err != nil {
				return
			}
		}
	}()
	defer func() {
		close(stop)
		cancel()
		wg.Wait()
	}()
	begin := time.Now()
	var lats []time.Duration
	pages := 0
	for {
		r, err := st.Recv()
		if err != nil {
			return measured{}, err
		}
		t0 := <-sent
		if r.StatusCode != pageapi.GetPageStatusCode_GET_PAGE_STATUS_CODE_OK || len(r.Page) != n {
			return measured{}, fmt.Errorf("status %v, %d pages: %s", r.StatusCode, len(r.Page), r.Reason)
		}
		now := time.Now()
		if t0.Sub(begin) >= benchWarmUp {
			lats = append(lats, now.Sub(t0))
			pages += n
		}
		if now.Sub(begin) >= d+benchWarmUp {
			return summarize(lats, pages, now.Sub(begin)-benchWarmUp)
		}
	}
}
