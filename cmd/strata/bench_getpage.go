package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	stdnet "net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	"github.com/stratadb/strata/disk"
	"github.com/stratadb/strata/engine/keys"
	"github.com/stratadb/strata/engine/lsn"
	"github.com/stratadb/strata/engine/shard"
	"github.com/stratadb/strata/engine/skproto"
	"github.com/stratadb/strata/engine/walrec"
	"github.com/stratadb/strata/net"
	"github.com/stratadb/strata/net/grpcx"
	"github.com/stratadb/strata/net/httpx"
	"github.com/stratadb/strata/nodes/broker"
	"github.com/stratadb/strata/nodes/compute/walproposer"
	"github.com/stratadb/strata/nodes/pageserver"
	"github.com/stratadb/strata/nodes/pageserver/pageapi"
	"github.com/stratadb/strata/nodes/safekeeper"
)

func init() { benchSubcommands = append(benchSubcommands, newBenchGetPageCmd) }

// localCluster is a broker, safekeepers and a pageserver in this process,
// on loopback gRPC with real clocks and disks (under dir); the pageserver's
// management API is served over real HTTP. Tests and `strata bench getpage`
// run against it.
type localCluster struct {
	broker   *broker.Broker
	sks      []*safekeeper.Safekeeper
	skAddrs  []string
	ps       *pageserver.Node
	http     *http.Server
	httpAddr string // http://host:port
	pageAddr string
}

// localClusterPublish is how often the local safekeepers publish to the
// broker and the pageserver polls it: short, so a new timeline's WAL
// receiver finds its safekeeper at once.
const localClusterPublish = 100 * time.Millisecond

// startLocalCluster starts a broker, n safekeepers and a pageserver with
// their data under dir.
func startLocalCluster(dir string, n int) (_ *localCluster, err error) {
	c := &localCluster{}
	defer func() {
		if err != nil {
			c.Close()
		}
	}()
	if c.broker, err = broker.New(benchEnv("broker", nil), broker.Config{ListenAddr: "127.0.0.1:0"}); err != nil {
		return nil, err
	}
	if err = c.broker.Start(); err != nil {
		return nil, err
	}
	for i := 1; i <= n; i++ {
		sub := filepath.Join(dir, fmt.Sprintf("sk-%d", i))
		if err = os.MkdirAll(sub, 0o755); err != nil {
			return nil, err
		}
		sk, err := safekeeper.New(benchEnv(sub, disk.Dir(sub)), safekeeper.Config{NodeID: fmt.Sprintf("sk-%d", i),
			ListenAddr: "127.0.0.1:0", BrokerAddr: c.broker.Addr(), SegmentBytes: 64 << 20, PublishInterval: localClusterPublish})
		if err != nil {
			return nil, err
		}
		if err = sk.Start(context.Background()); err != nil {
			return nil, err
		}
		c.sks = append(c.sks, sk)
		c.skAddrs = append(c.skAddrs, sk.Addr())
	}
	psDir := filepath.Join(dir, "pageserver")
	if err = os.MkdirAll(psDir, 0o755); err != nil {
		return nil, err
	}
	if c.ps, err = pageserver.Start(benchEnv("pageserver", disk.Dir(psDir)), pageserver.Config{NodeID: 1, PageAddr: "127.0.0.1:0",
		WALReceiver: pageserver.WALReceiverConfig{BrokerAddr: c.broker.Addr(), PollInterval: localClusterPublish}}); err != nil {
		return nil, err
	}
	c.pageAddr = c.ps.PageAddr()
	lis, err := stdnet.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	c.http = &http.Server{Handler: httpx.Router(c.ps.Router()), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = c.http.Serve(lis) }()
	c.httpAddr = "http://" + lis.Addr().String()
	return c, nil
}

// Close stops everything that started.
func (c *localCluster) Close() {
	if c.http != nil {
		_ = c.http.Close()
	}
	if c.ps != nil {
		c.ps.Close()
	}
	for _, sk := range c.sks {
		_ = sk.Stop(context.Background())
	}
	if c.broker != nil {
		_ = c.broker.Stop()
	}
}

// benchGetPageFlags are `strata bench getpage`'s flags.
type benchGetPageFlags struct {
	dir              string
	duration         time.Duration
	pages, ingestMiB int
	writeBytes       int
	inflight, batch  int
	batchInflight    int
	safekeepers      int
	rounds           int
	json             bool
	cpuProfile       string
}

func (f benchGetPageFlags) validate() error {
	if f.duration <= 0 || f.duration > maxBenchDuration {
		return fmt.Errorf("%w: --duration %v not in (0, %v]", errBenchFlag, f.duration, maxBenchDuration)
	}
	for _, v := range []struct {
		name      string
		n, lo, hi int
	}{{"--pages", f.pages, 1, 1 << 20}, {"--ingest-mib", f.ingestMiB, 1, 16 << 10}, {"--write-bytes", f.writeBytes, 1, walrec.PageSize},
		{"--inflight", f.inflight, 1, pageserver.DefaultMaxInflightPerStream}, {"--batch", f.batch, 1, pageserver.DefaultMaxBlocksPerRequest},
		{"--batch-inflight", f.batchInflight, 1, pageserver.DefaultMaxInflightPerStream}, {"--safekeepers", f.safekeepers, 1, 5},
		{"--rounds", f.rounds, 1, 99}} {
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

// getPageResult is one measurement, on the pageserver and on the echo.
type getPageResult struct {
	Name string `json:"name"`
	// Unit is "us" (latency, lower is better) or "pages/s" or "MiB/s".
	Unit      string  `json:"unit"`
	Server    float64 `json:"pageserver"`
	Echo      float64 `json:"echo,omitempty"`
	Ratio     float64 `json:"ratio,omitempty"`
	Goal      string  `json:"goal"`
	Met       bool    `json:"met"`
	Extra     string  `json:"extra,omitempty"`
	ServerOps int     `json:"ops,omitempty"`
}

func newBenchGetPageCmd() *cobra.Command {
	var f benchGetPageFlags
	cmd := &cobra.Command{
		Use:   "getpage",
		Short: "Page service: GetPage latency and throughput against a bare gRPC echo, and WAL ingest",
		Long: `getpage starts, in this process, a broker, --safekeepers safekeepers and a
pageserver (real clocks, loopback gRPC, files in a temporary directory inside
--dir, removed afterwards), attaches a tenant and writes through the
walproposer a full image of each of --pages pages of one relation, then
--ingest-mib MiB of small page writes (--write-bytes each) to another. Only
then is the timeline created on the pageserver, so its WAL receiver finds all
the WAL committed: ingest of the small writes is timed from committed WAL to
readable pages.

Then the page service is measured with the standard generated gRPC client
over loopback, and the same calls against a bare gRPC echo that answers
every block with a constant 8 KiB page (the same gRPC stack and messages, no
page lookup), as the ceiling; each measurement runs --duration, in --rounds
rounds alternating the two sides, and the median round is reported:
  serial      one 1-block request at a time: p50 and p99 latency
  pipelined   1-block requests, --inflight in flight on one stream: pages/s
  batched     --batch-block requests, --batch-inflight in flight: pages/s
The ratio is pageserver / echo. Goals (2 cores, client on the same box):
serial p99 <= 200 us and <= 1.5x echo; pipelined >= 50k pages/s and >= 0.7x
echo; batched >= 90k pages/s and >= 0.8x echo; ingest >= 100 MiB/s.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := f.validate(); err != nil {
				return err
			}
			return benchRun(cmd, "getpage", f.dir, f.cpuProfile, f.json,
				func(dir string) ([]getPageResult, error) {
					return benchGetPage(cmd.Context(), dir, f, cmd.ErrOrStderr())
				},
				func(out io.Writer, results []getPageResult) error { return writeGetPageResults(out, f, results) })
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.dir, "dir", "", "existing directory for the nodes' files (a temporary directory inside it, removed afterwards; default: the system's)")
	fl.DurationVar(&f.duration, "duration", time.Second, fmt.Sprintf("time per GetPage measurement and round, (0, %v]", maxBenchDuration))
	fl.IntVar(&f.rounds, "rounds", 3, "rounds of every GetPage measurement on both sides; the median round is reported")
	fl.IntVar(&f.pages, "pages", 4096, "pages (8 KiB full page images) the GetPage measurements read from")
	fl.IntVar(&f.ingestMiB, "ingest-mib", 32, "MiB of WAL of small page writes for the ingest measurement")
	fl.IntVar(&f.writeBytes, "write-bytes", 64, "bytes each small page write changes")
	fl.IntVar(&f.inflight, "inflight", 32, "requests in flight on the stream in the pipelined measurement")
	fl.IntVar(&f.batch, "batch", 32, "blocks per request in the batched measurement")
	fl.IntVar(&f.batchInflight, "batch-inflight", 4, "requests in flight in the batched measurement")
	fl.IntVar(&f.safekeepers, "safekeepers", 1, "safekeepers the WAL is committed to")
	fl.BoolVar(&f.json, "json", false, "one JSON object per measurement")
	fl.StringVar(&f.cpuProfile, "cpuprofile", "", "write a CPU profile of the whole run (server and client share the process) to this file")
	return cmd
}

func writeGetPageResults(w io.Writer, f benchGetPageFlags, rs []getPageResult) error {
	load := "unknown"
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		load = strings.Join(strings.Fields(string(b))[:3], " ")
	}
	fmt.Fprintf(w, "bench getpage: %d pages of 8 KiB over loopback gRPC, median of %d rounds of %v per measurement (each after a %v warm-up); %d CPUs, load average %s\n",
		f.pages, f.rounds, f.duration, benchWarmUp, runtime.NumCPU(), load)
	fmt.Fprintln(w, "echo: the same client, gRPC stack and messages against a server answering every block with one constant 8 KiB page (the ceiling)")
	var buf bytes.Buffer
	tw := tabwriter.NewWriter(&buf, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "measurement\tpageserver\techo\tratio\tgoal\t")
	for _, r := range rs {
		echo, ratio := "-", "-"
		if r.Echo > 0 {
			echo = formatMeasure(r.Echo, r.Unit)
			ratio = fmt.Sprintf("%.2fx", r.Ratio)
		}
		met := "met"
		if !r.Met {
			met = "MISSED"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Name, formatMeasure(r.Server, r.Unit), echo, ratio, r.Goal, met, r.Extra)
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

func formatMeasure(v float64, unit string) string {
	switch unit {
	case "us":
		return fmt.Sprintf("%.1f µs", v)
	case "MiB/s":
		return fmt.Sprintf("%.1f MiB/s", v)
	}
	return fmt.Sprintf("%.0f %s", v, unit)
}

// Relations of the benchmark: the pages read, and the small writes.
var (
	benchReadRel  = keys.RelTag{SpcNode: 1663, DbNode: 5, RelNode: 16384}
	benchWriteRel = keys.RelTag{SpcNode: 1663, DbNode: 5, RelNode: 16385}
)

// benchGetPage runs the whole benchmark.
func benchGetPage(ctx context.Context, dir string, f benchGetPageFlags, log io.Writer) ([]getPageResult, error) {
	c, err := startLocalCluster(dir, f.safekeepers)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	target := pageapi.Target{Shard: shard.UnshardedID(shard.TenantID{0xbe, 0x9c}), Timeline: shard.TimelineID{0xbe, 0x9c, 1}}
	mc, err := newMgmtClient(c.httpAddr, "")
	if err != nil {
		return nil, err
	}
	conf, _ := attachConf(target.Shard, 1, 0, "")
	if err := mc.setLocation(ctx, target.Shard, conf); err != nil {
		return nil, err
	}

	// Commit all the WAL first.
	fmt.Fprintf(log, "bench getpage: committing %d page images and %d MiB of %d-byte page writes to %d safekeeper(s)...\n", f.pages, f.ingestMiB, f.writeBytes, f.safekeepers)
	start := walproposer.DefaultStartLSN
	wp, err := walproposer.New(benchEnv("compute", nil), walproposer.Config{ID: "bench-getpage", TenantID: target.Shard.TenantID.String(),
		TimelineID: target.Timeline.String(), StartLSN: start, Safekeepers: c.skAddrs, MaxAppendBytes: 1 << 20, MaxInflightBytes: 16 << 20,
		MaxBufferBytes: 256 << 20, MaxUncommittedBytes: 64 << 20})
	if err != nil {
		return nil, err
	}
	wp.Start(context.Background())
	defer wp.Stop()
	appendAll := func(recs []walrec.Record) (lsn.LSN, error) {
		enc := make([][]byte, len(recs))
		for i, r := range recs {
			enc[i] = walrec.Encode(r)
		}
		return wp.Append(ctx, enc)
	}
	var imagesEnd lsn.LSN
	for b := 0; b < f.pages; b += 64 {
		var recs []walrec.Record
		for i := b; i < min(b+64, f.pages); i++ {
			recs = append(recs, walrec.FullPageImage{Rel: benchReadRel, Blk: uint32(i), Page: fillPage(uint64(i))})
		}
		if imagesEnd, err = appendAll(recs); err != nil {
			return nil, err
		}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	data := make([]byte, f.writeBytes)
	recBytes := skproto.FrameHeaderBytes + len(walrec.Encode(walrec.PageWrite{Rel: benchWriteRel, Data: data}))
	nWrites := f.ingestMiB << 20 / recBytes
	end := imagesEnd
	for done := 0; done < nWrites; {
		recs := make([]walrec.Record, 0, 1024)
		for ; len(recs) < cap(recs) && done < nWrites; done++ {
			d := make([]byte, f.writeBytes)
			d[0] = byte(done)
			recs = append(recs, walrec.PageWrite{Rel: benchWriteRel, Blk: uint32(rng.IntN(f.pages)), Offset: uint16(rng.IntN(walrec.PageSize - f.writeBytes + 1)), Data: d})
		}
		if end, err = appendAll(recs); err != nil {
			return nil, err
		}
	}
	if err := wp.WaitCommitted(ctx, end); err != nil {
		return nil, err
	}

	// Ingest: create the timeline; its WAL receiver streams the committed
	// WAL. Poll last_record_lsn (in this process, through the router).
	init := start
	if _, err := mc.createTimeline(ctx, target.Shard, pageapi.TimelineCreateRequest{NewTimelineID: target.Timeline, InitLSN: &init}); err != nil {
		return nil, err
	}
	var tImages, tEnd time.Time
	deadline := time.Now().Add(10 * time.Minute)
	for {
		infos, err := routerTimelines(ctx, c.ps, target.Shard)
		if err != nil {
			return nil, err
		}
		now := time.Now()
		last := infos[0].LastRecordLSN
		if tImages.IsZero() && last >= imagesEnd {
			tImages = now
		}
		if last >= end {
			tEnd = now
			break
		}
		if now.After(deadline) {
			return nil, fmt.Errorf("bench getpage: ingest stuck at %s, want %s", last, end)
		}
		time.Sleep(time.Millisecond)
	}
	ingestSecs := tEnd.Sub(tImages).Seconds()
	ingestBytes := float64(end - imagesEnd)
	ingest := getPageResult{Name: fmt.Sprintf("ingest %d-byte page writes", f.writeBytes), Unit: "MiB/s",
		Server: ingestBytes / (1 << 20) / ingestSecs, Goal: ">= 100 MiB/s",
		Extra: fmt.Sprintf("(%d records, %.0f records/s, %d-byte frames)", nWrites, float64(nWrites)/ingestSecs, recBytes)}
	ingest.Met = ingest.Server >= 100

	// The echo: the same stack and messages, answering constant pages.
	echoLis, err := grpcx.New(grpcx.Options{}).Listen("127.0.0.1:0", echoPageMux())
	if err != nil {
		return nil, err
	}
	defer echoLis.Close()
	var results []getPageResult
	// Each measurement runs on the pageserver and then at once on the
	// echo, so both see the same machine (other load drifts over a run).
	var sides [2]*getPageClient
	for i, addr := range []string{c.pageAddr, echoLis.Addr()} {
		if sides[i], err = newGetPageClient(ctx, addr, target, end, f.pages); err != nil {
			return nil, err
		}
		defer sides[i].close()
	}
	// Rounds alternate the sides too, and the median round of each side
	// is reported: a burst of other load on the machine moves one round,
	// not the figure.
	var rounds [2][3][]measured
	for k := range 3 {
		for r := range f.rounds {
			for i, name := range []string{"pageserver", "echo"} {
				fmt.Fprintf(log, "bench getpage: %s, measurement %d of 3, round %d of %d...\n", name, k+1, r+1, f.rounds)
				var m measured
				switch k {
				case 0:
					m, err = sides[i].serial(f.duration)
				case 1:
					m, err = sides[i].pipelined(1, f.inflight, f.duration)
				case 2:
					m, err = sides[i].pipelined(f.batch, f.batchInflight, f.duration)
				}
				if err != nil {
					return nil, fmt.Errorf("%s: %w", name, err)
				}
				rounds[i][k] = append(rounds[i][k], m)
			}
		}
	}
	var ps, echo [3]measured
	for k := range 3 {
		ps[k], echo[k] = medianRound(rounds[0][k]), medianRound(rounds[1][k])
	}
	p50 := getPageResult{Name: "serial GetPage p50", Unit: "us", Server: ps[0].p50, Echo: echo[0].p50, Goal: "-", Met: true, ServerOps: ps[0].ops}
	p99 := getPageResult{Name: "serial GetPage p99", Unit: "us", Server: ps[0].p99, Echo: echo[0].p99, Goal: "<= 200 µs, <= 1.5x", ServerOps: ps[0].ops}
	pipe := getPageResult{Name: fmt.Sprintf("pipelined, %d in flight", f.inflight), Unit: "pages/s", Server: ps[1].rate, Echo: echo[1].rate, Goal: ">= 50k, >= 0.7x", ServerOps: ps[1].ops}
	batch := getPageResult{Name: fmt.Sprintf("batches of %d, %d in flight", f.batch, f.batchInflight), Unit: "pages/s", Server: ps[2].rate, Echo: echo[2].rate, Goal: ">= 90k, >= 0.8x", ServerOps: ps[2].ops}
	for _, r := range []*getPageResult{&p50, &p99, &pipe, &batch} {
		r.Ratio = r.Server / r.Echo
	}
	p99.Met = p99.Server <= 200 && p99.Ratio <= 1.5
	pipe.Met = pipe.Server >= 50_000 && pipe.Ratio >= 0.7
	batch.Met = batch.Server >= 90_000 && batch.Ratio >= 0.8
	results = append(results, p50, p99, pipe, batch, ingest)
	return results, nil
}

// medianRound is the median of each figure over the rounds.
func medianRound(ms []measured) measured {
	med := func(f func(measured) float64) float64 {
		v := make([]float64, len(ms))
		for i, m := range ms {
			v[i] = f(m)
		}
		slices.Sort(v)
		return v[len(v)/2]
	}
	return measured{p50: med(func(m measured) float64 { return m.p50 }), p99: med(func(m measured) float64 { return m.p99 }),
		rate: med(func(m measured) float64 { return m.rate }), ops: int(med(func(m measured) float64 { return float64(m.ops) }))}
}

// routerTimelines lists the shard's timelines through the node's router
// (in this process: no HTTP round trip in the polling loop).
func routerTimelines(ctx context.Context, n *pageserver.Node, id shard.TenantShardID) ([]pageapi.TimelineInfo, error) {
	resp, err := n.Router().Serve(ctx, &net.HTTPRequest{Method: "GET", Path: "/v1/tenant/" + id.String() + "/timeline"})
	if err != nil {
		return nil, err
	}
	var infos []pageapi.TimelineInfo
	if err := json.Unmarshal(resp.Body, &infos); err != nil {
		return nil, err
	}
	if len(infos) == 0 {
		return nil, errors.New("bench getpage: the timeline is not listed")
	}
	return infos, nil
}

// echoPageMux answers GetPages like a pageserver whose every page is the
// same 8 KiB, looking nothing up.
func echoPageMux() *net.Mux {
	page := fillPage(7)
	m := net.NewMux()
	net.HandleStreamProto(m, pageapi.PageService_GetPages_FullMethodName, func(ctx context.Context, s *net.ServerStreamOf[*pageapi.GetPageRequest, *pageapi.GetPageResponse]) error {
		for {
			req, err := s.Recv()
			if err == io.EOF {
				return nil
			}
			if err != nil {
				return err
			}
			resp := &pageapi.GetPageResponse{RequestId: req.RequestId, StatusCode: pageapi.GetPageStatusCode_GET_PAGE_STATUS_CODE_OK, Rel: req.Rel,
				Page: make([]*pageapi.Page, len(req.BlockNumber))}
			for i, b := range req.BlockNumber {
				resp.Page[i] = &pageapi.Page{BlockNumber: b, Image: page}
			}
			if err := s.Send(resp); err != nil {
				return err
			}
		}
	})
	return m
}

// measured is one measurement on one side: latency in µs or a rate.
type measured struct {
	p50, p99, rate float64
	ops            int
}

// getPageClient is the standard generated client on one connection.
type getPageClient struct {
	cc     *grpc.ClientConn
	client pageapi.PageServiceClient
	ctx    context.Context // carries the addressing metadata
	at     lsn.LSN
	pages  int
	rng    *rand.Rand
	nextID uint64
}

func newGetPageClient(ctx context.Context, addr string, t pageapi.Target, at lsn.LSN, pages int) (*getPageClient, error) {
	cc, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(net.MaxMessageBytes)))
	if err != nil {
		return nil, err
	}
	mctx := metadata.AppendToOutgoingContext(ctx, pageapi.HeaderTenantID, t.Shard.TenantID.String(),
		pageapi.HeaderTimelineID, t.Timeline.String(), pageapi.HeaderShardID, t.Shard.Shard.String())
	return &getPageClient{cc: cc, client: pageapi.NewPageServiceClient(cc), ctx: mctx, at: at, pages: pages, rng: rand.New(rand.NewPCG(3, 4))}, nil
}

func (g *getPageClient) close() { _ = g.cc.Close() }

// req is a request for n random blocks.
func (g *getPageClient) req(n int) *pageapi.GetPageRequest {
	blocks := make([]uint32, n)
	for i := range blocks {
		blocks[i] = uint32(g.rng.IntN(g.pages))
	}
	g.nextID++
	return &pageapi.GetPageRequest{RequestId: &pageapi.RequestID{Id: g.nextID}, ReadLsn: &pageapi.ReadLsn{RequestLsn: uint64(g.at)},
		Rel: relProto(benchReadRel), BlockNumber: blocks}
}

// benchWarmUp runs before each measurement's clock starts.
const benchWarmUp = 200 * time.Millisecond

// serial sends one 1-block request at a time for d (after a warm-up) and
// returns the latency percentiles.
func (g *getPageClient) serial(d time.Duration) (measured, error) {
	ctx, cancel := context.WithCancel(g.ctx)
	defer cancel()
	st, err := g.client.GetPages(ctx)
	if err != nil {
		return measured{}, err
	}
	reqs := make([]*pageapi.GetPageRequest, 4096)
	for i := range reqs {
		reqs[i] = g.req(1)
	}
	var lats []time.Duration
	begin := time.Now()
	for i := 0; time.Since(begin) < d+benchWarmUp; i++ {
		t0 := time.Now()
		if err := st.Send(reqs[i%len(reqs)]); err != nil {
			return measured{}, err
		}
		r, err := st.Recv()
		if err != nil {
			return measured{}, err
		}
		if r.StatusCode != pageapi.GetPageStatusCode_GET_PAGE_STATUS_CODE_OK || len(r.Page) != 1 || len(r.Page[0].Image) != walrec.PageSize {
			return measured{}, fmt.Errorf("serial read: status %v, %s", r.StatusCode, r.Reason)
		}
		if t0.Sub(begin) >= benchWarmUp {
			lats = append(lats, time.Since(t0))
		}
	}
	if len(lats) == 0 {
		return measured{}, errors.New("no request completed")
	}
	slices.Sort(lats)
	us := func(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
	return measured{p50: us(lats[len(lats)/2]), p99: us(lats[len(lats)*99/100]), ops: len(lats)}, nil
}

// pipelined keeps inflight requests of n blocks outstanding on one stream
// for d (after a warm-up) and returns the pages per second.
func (g *getPageClient) pipelined(n, inflight int, d time.Duration) (measured, error) {
	ctx, cancel := context.WithCancel(g.ctx)
	defer cancel()
	st, err := g.client.GetPages(ctx)
	if err != nil {
		return measured{}, err
	}
	// Requests are built before the clock starts: the measurement is of
	// the service, not of the client's request building.
	reqs := make([]*pageapi.GetPageRequest, 4096)
	for i := range reqs {
		reqs[i] = g.req(n)
	}
	slots := make(chan struct{}, inflight)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case slots <- struct{}{}:
			case <-stop:
				return
			}
			// A failed send breaks the stream, which Recv reports.
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
	var counted time.Time
	pages := 0
	for {
		r, err := st.Recv()
		if err != nil {
			return measured{}, err
		}
		if r.StatusCode != pageapi.GetPageStatusCode_GET_PAGE_STATUS_CODE_OK || len(r.Page) != n {
			return measured{}, fmt.Errorf("status %v, %d pages: %s", r.StatusCode, len(r.Page), r.Reason)
		}
		<-slots
		now := time.Now()
		switch {
		case now.Sub(begin) < benchWarmUp:
		case counted.IsZero():
			counted = now
		default:
			pages += n
		}
		if !counted.IsZero() && now.Sub(counted) >= d {
			return measured{rate: float64(pages) / now.Sub(counted).Seconds(), ops: pages}, nil
		}
	}
}
