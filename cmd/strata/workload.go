package main

import (
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	stdnet "net"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"

	"github.com/stratadb/strata/clock"
	"github.com/stratadb/strata/engine/keys"
	"github.com/stratadb/strata/engine/lsn"
	"github.com/stratadb/strata/engine/skproto"
	"github.com/stratadb/strata/engine/walrec"
	"github.com/stratadb/strata/net"
	"github.com/stratadb/strata/net/grpcx"
	"github.com/stratadb/strata/net/httpx"
	"github.com/stratadb/strata/nodes/compute/pageclient"
	"github.com/stratadb/strata/nodes/compute/walproposer"
	"github.com/stratadb/strata/nodes/node"
	"github.com/stratadb/strata/nodes/pageserver"
	"github.com/stratadb/strata/nodes/pageserver/pageapi"
	"github.com/stratadb/strata/nodes/storcon/storconapi"
)

func init() { register(newWorkloadCmd) }

// Bounds of `strata workload`'s flags.
const (
	maxWorkloadBlocks   = 1 << 20 // 8 GiB of model pages at most
	maxWorkloadBatch    = 4096
	maxWorkloadDuration = 24 * time.Hour
	// maxReportedMismatches bounds the mismatches printed one by one (all
	// are counted).
	maxReportedMismatches = 10
	// workloadHistoryChecks bounds the verified checks kept to be read
	// again at the end.
	workloadHistoryChecks = 64
	// workloadCheckQueue bounds the checks handed to the reader and not yet
	// read; the writer skips a check rather than wait when it is full.
	workloadCheckQueue = 16
	// maxBlocksPerRead is the blocks one GetPage request of the final check
	// names.
	maxBlocksPerRead = 32
)

// errMismatch reports pages the pageserver answered differently from the
// workload's model.
var errMismatch = errors.New("workload: pages differ from what was committed")

// workloadConfig is `strata workload`'s flags, checked.
type workloadConfig struct {
	safekeepers               []string
	pageserver, pageserverURL string
	target                    pageapi.Target
	rel                       keys.RelTag
	blocks, batch, writeBytes int
	fullPagePct, readsPerLSN  int
	duration, readTimeout     time.Duration
	progress                  time.Duration
	maxLag                    uint64
	startLSN                  lsn.LSN
	generation                uint32
	skipSetup                 bool
	token                     string
	seed                      uint64
	// controller, when set, is the storage controller's URL: the tenant
	// is set up through it and the shard map comes from it (hookListen:
	// and follows its notifications).
	controller, controllerToken string
	hookListen, hookToken       string
}

// workloadFlags are the raw flags.
type workloadFlags struct {
	safekeepers, pageserver, pageserverURL, tenant, timeline, rel, startLSN, tok string
	controller, controllerTok, hookListen, hookTok                               string
	blocks, batch, writeBytes, fullPagePct, readsPerLSN, maxLagMiB               int
	duration, readTimeout, progress                                              time.Duration
	generation                                                                   int64
	skipSetup                                                                    bool
	seed                                                                         uint64
}

func (f workloadFlags) config() (workloadConfig, error) {
	c := workloadConfig{pageserver: f.pageserver, pageserverURL: f.pageserverURL, blocks: f.blocks, batch: f.batch,
		writeBytes: f.writeBytes, fullPagePct: f.fullPagePct, readsPerLSN: f.readsPerLSN, duration: f.duration,
		readTimeout: f.readTimeout, progress: f.progress, skipSetup: f.skipSetup, token: token(f.tok), seed: f.seed,
		maxLag: uint64(f.maxLagMiB) << 20}
	if err := requireFlags("safekeepers", f.safekeepers); err != nil {
		return c, err
	}
	if err := f.controllerConfig(&c); err != nil {
		return c, err
	}
	if err := requireFlags("tenant", f.tenant, "timeline", f.timeline); err != nil {
		return c, err
	}
	for _, a := range strings.Split(f.safekeepers, ",") {
		if a = strings.TrimSpace(a); a == "" {
			return c, fmt.Errorf("%w: --safekeepers %q has an empty address", errUsage, f.safekeepers)
		}
		c.safekeepers = append(c.safekeepers, a)
	}
	var err error
	if c.target, err = parseTarget(f.tenant, f.timeline); err != nil {
		return c, err
	}
	if !c.target.Shard.Shard.IsUnsharded() {
		return c, fmt.Errorf("%w: --tenant %s: the workload drives an unsharded tenant (a tenant id without -nncc)", errUsage, f.tenant)
	}
	if c.rel, err = parseRel(f.rel); err != nil {
		return c, err
	}
	if c.startLSN, err = parseLSN("start-lsn", f.startLSN); err != nil {
		return c, err
	}
	for _, v := range []struct {
		name      string
		n, lo, hi int
	}{{"blocks", f.blocks, 1, maxWorkloadBlocks}, {"batch", f.batch, 1, maxWorkloadBatch}, {"write-bytes", f.writeBytes, 1, walrec.PageSize},
		{"full-page-pct", f.fullPagePct, 0, 100}, {"reads-per-lsn", f.readsPerLSN, 0, maxBlocksPerRead}, {"max-lag-mib", f.maxLagMiB, 0, 1 << 20}} {
		if v.n < v.lo || v.n > v.hi {
			return c, fmt.Errorf("%w: --%s %d not in [%d, %d]", errUsage, v.name, v.n, v.lo, v.hi)
		}
	}
	switch {
	case c.startLSN == lsn.Invalid:
		return c, fmt.Errorf("%w: --start-lsn 0/0: the WAL must start above 0", errUsage)
	case f.duration <= 0 || f.duration > maxWorkloadDuration:
		return c, fmt.Errorf("%w: --duration %v not in (0, %v]", errUsage, f.duration, maxWorkloadDuration)
	case f.readTimeout <= 0:
		return c, fmt.Errorf("%w: --read-timeout %v must be positive", errUsage, f.readTimeout)
	case f.progress < 0:
		return c, fmt.Errorf("%w: --progress %v is negative", errUsage, f.progress)
	case f.generation < 0 || f.generation > maxGeneration:
		return c, fmt.Errorf("%w: --generation %d not in [0, %d]", errUsage, f.generation, int64(maxGeneration))
	}
	c.generation = uint32(f.generation)
	if c.seed == 0 {
		c.seed = uint64(time.Now().UnixNano())
	}
	return c, nil
}

// controllerConfig checks the flags that choose where the shard map comes
// from: --pageserver (one unsharded pageserver, as given) or --controller
// (the controller's view of the tenant, followed through the compute hook
// with --compute-hook-listen).
func (f workloadFlags) controllerConfig(c *workloadConfig) error {
	c.hookListen, c.hookToken = f.hookListen, f.hookTok
	if c.hookListen == "" {
		c.hookListen = os.Getenv(workloadHookListenEnv)
	}
	if c.hookToken == "" {
		c.hookToken = os.Getenv(workloadHookTokenEnv)
	}
	if f.controller == "" {
		switch {
		case f.pageserver == "":
			return fmt.Errorf("%w: --pageserver is required (or --controller)", errUsage)
		case !f.skipSetup && f.pageserverURL == "":
			return fmt.Errorf("%w: --pageserver-http is required to attach the tenant and create the timeline (or pass --skip-setup)", errUsage)
		case c.hookListen != "":
			return fmt.Errorf("%w: --compute-hook-listen needs --controller (the notifications name node ids the controller resolves)", errUsage)
		}
		return nil
	}
	if f.pageserver != "" || f.pageserverURL != "" {
		return fmt.Errorf("%w: --controller with --pageserver or --pageserver-http: choose one (with --controller the shard map comes from the controller)", errUsage)
	}
	if c.hookListen != "" {
		if _, _, err := stdnet.SplitHostPort(c.hookListen); err != nil {
			return fmt.Errorf("%w: --compute-hook-listen %q: want host:port: %v", errUsage, c.hookListen, err)
		}
	}
	url := f.controller
	if !strings.Contains(url, "://") {
		url = "http://" + url
	}
	if !strings.HasPrefix(url, "http://") && !strings.HasPrefix(url, "https://") {
		return fmt.Errorf("%w: --controller %q: want http://host:port", errUsage, f.controller)
	}
	c.controller = strings.TrimSuffix(url, "/")
	c.controllerToken = f.controllerTok
	if c.controllerToken == "" {
		c.controllerToken = os.Getenv(controllerTokenEnv)
	}
	return nil
}

func newWorkloadCmd() *cobra.Command {
	var f workloadFlags
	cmd := &cobra.Command{
		Use:   "workload --safekeepers A,B,C (--pageserver ADDR --pageserver-http URL | --controller URL [--compute-hook-listen ADDR]) --tenant T --timeline TL [--duration 10s] [--blocks N]",
		Short: "Write page records through the safekeepers and verify every page read back from the pageserver",
		Long: `workload is a compute-side driver. It attaches the tenant and creates the
timeline on the pageserver if they are missing (--skip-setup: don't), then
writes WAL through the safekeepers with the walproposer, as a compute does:
first the relation's size and a full page image of each of --blocks blocks,
then batches of --batch records, each a small page write (up to
--write-bytes bytes at a random offset) or, --full-page-pct percent of them,
a full page image. After each batch it hands --reads-per-lsn random blocks
and the batch's end LSN to a reader, which waits for that LSN to commit and
reads the blocks from the pageserver at it (the pageserver waits for its
ingest). Every page read is compared with the workload's own model (the redo
of what it committed). The writer stays at most --max-lag-mib MiB of WAL
ahead of the last LSN read back, so the rates printed are what the whole
path (commit, ingest, read) sustains. Writing ends when --duration has
passed or at the first SIGINT or SIGTERM (a second one aborts). Then it
waits for the last commit, reads every block and the relation's size at
it, reads a sample of 64 earlier LSNs' checks again (a pageserver
restarted meanwhile must still answer them the same; one refused as below
the GC cutoff is skipped), and prints a summary.

Pages are read through the compute's page client (nodes/compute/pageclient:
pooled, pipelined GetPages streams, answers checked against their requests),
which retries reads that fail because the pageserver is unreachable for
--read-timeout; reads the pageserver fails because its ingest is behind are
retried for --read-timeout too (so a pageserver or safekeeper may be
restarted meanwhile). A page that differs from the model is a mismatch: it
is printed, and the workload exits non-zero.

With --controller (a storage controller's URL) instead of --pageserver,
the tenant and timeline are set up through the controller (an unknown
tenant is created unsharded; --skip-setup: neither is created), and the
page client's shard map is the controller's view of the tenant: each
shard's attached node, its page service address from the controller's
node list. With --compute-hook-listen ADDR the workload is also the
compute the controller notifies (run the controller with
-compute-hook-url http://ADDR): every notify-attach — after a shard
split, a migration, a re-attach — becomes the page client's new map, each
change is printed, and the summary counts them. Reads in flight finish on
the old map; a pageserver still answers requests addressed to a split
parent from its children. The same address serves /metrics (the page
client's strata_pageclient_* and the walproposer's collectors, among
them strata_pageclient_shard_count and
strata_pageclient_shard_map_updates_total). The hook checks the bearer
token of --compute-hook-token (default $` + workloadHookTokenEnv + `) if
one is set: the controller's -compute-hook-token.`,
		Example: `  strata workload --safekeepers 127.0.0.1:5451,127.0.0.1:5452,127.0.0.1:5453 \
    --pageserver 127.0.0.1:6400 --pageserver-http http://127.0.0.1:9898 \
    --tenant 0a0b0c0d0e0f00010203040506070809 --timeline f0e0d0c0b0a090807060504030201000 --duration 10s

  # Through a storage controller started with -compute-hook-url http://127.0.0.1:7000;
  # meanwhile: strata ctl tenants split 0a0b0c0d0e0f00010203040506070809 --shard-count 4 --stripe-size 8;
  # Ctrl-C ends the writing, the final check and the summary follow.
  strata workload --safekeepers 127.0.0.1:5451,127.0.0.1:5452,127.0.0.1:5453 \
    --controller http://127.0.0.1:1234 --compute-hook-listen 127.0.0.1:7000 --max-lag-mib 1 \
    --tenant 0a0b0c0d0e0f00010203040506070809 --timeline f0e0d0c0b0a090807060504030201000 --duration 10m`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := f.config()
			if err != nil {
				return err
			}
			_, err = runWorkload(cmd.Context(), c, cmd.OutOrStdout(), cmd.ErrOrStderr())
			return err
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.safekeepers, "safekeepers", "", "safekeeper addresses, comma-separated (required)")
	fl.StringVar(&f.pageserver, "pageserver", "", "page service address host:port of the unsharded tenant (required unless --controller)")
	fl.StringVar(&f.pageserverURL, "pageserver-http", "", "pageserver management API URL (required with --pageserver unless --skip-setup)")
	fl.StringVar(&f.controller, "controller", "", "storage controller URL, http://host:port: set up the tenant through it and take the shard map from it (instead of --pageserver)")
	fl.StringVar(&f.controllerTok, "controller-token", "", "JWT for the controller (scope admin) (default $"+controllerTokenEnv+")")
	fl.StringVar(&f.hookListen, "compute-hook-listen", "", "with --controller: serve the compute hook (PUT "+storconapi.NotifyAttachPath+") and /metrics on this host:port (default $"+workloadHookListenEnv+")")
	fl.StringVar(&f.hookTok, "compute-hook-token", "", "bearer token the compute hook requires (default $"+workloadHookTokenEnv+"; empty: none)")
	fl.StringVar(&f.tenant, "tenant", "", "tenant id, 32 hex digits (required)")
	fl.StringVar(&f.timeline, "timeline", "", "timeline id, 32 hex digits (required)")
	fl.StringVar(&f.rel, "rel", "1663/5/16384", "relation the pages belong to, spc/db/rel[/fork]")
	fl.IntVar(&f.blocks, "blocks", 256, fmt.Sprintf("blocks of the relation written and read, 1..%d", maxWorkloadBlocks))
	fl.IntVar(&f.batch, "batch", 64, fmt.Sprintf("records per append, 1..%d", maxWorkloadBatch))
	fl.IntVar(&f.writeBytes, "write-bytes", 64, fmt.Sprintf("largest page write, 1..%d bytes", walrec.PageSize))
	fl.IntVar(&f.fullPagePct, "full-page-pct", 5, "percent of records that are full page images, 0..100")
	fl.IntVar(&f.readsPerLSN, "reads-per-lsn", 8, fmt.Sprintf("blocks read back at each batch's end LSN, 0..%d", maxBlocksPerRead))
	fl.IntVar(&f.maxLagMiB, "max-lag-mib", 32, "MiB of WAL the writer may be ahead of the last LSN read back (0: no bound)")
	fl.DurationVar(&f.duration, "duration", 10*time.Second, "how long to write")
	fl.DurationVar(&f.readTimeout, "read-timeout", time.Minute, "how long a read is retried while the pageserver is unreachable or behind")
	fl.DurationVar(&f.progress, "progress", time.Second, "print progress this often (0: never)")
	fl.StringVar(&f.startLSN, "start-lsn", walproposer.DefaultStartLSN.String(), "LSN the timeline's WAL starts at (the created timeline's init_lsn and the walproposer's start)")
	fl.Int64Var(&f.generation, "generation", 1, "generation to attach the tenant at, if it is not attached (with --pageserver)")
	fl.BoolVar(&f.skipSetup, "skip-setup", false, "do not attach the tenant or create the timeline")
	fl.StringVar(&f.tok, "token", "", "JWT for the pageserver (scope admin, or tenant for reads only with --skip-setup) (default $"+tokenEnv+")")
	fl.Uint64Var(&f.seed, "seed", 0, "seed of the records and reads (0: from the clock; printed)")
	return cmd
}

// workloadSummary is what a run measured.
type workloadSummary struct {
	Records, WALBytes     int64
	CommitLSN             lsn.LSN
	WriteSeconds          float64
	PagesRead, Retries    int64
	Mismatches            int64
	ReadSeconds           float64
	FinalBlocksVerified   int
	RecordsPerSec, MiBSec float64
	PagesPerSec           float64
	// MapUpdates is the shard map updates the page client applied; Shards
	// the shards of its map at the end.
	MapUpdates int64
	Shards     int
}

// readCheck is a set of blocks to read at an LSN and the pages the model
// holds for them there.
type readCheck struct {
	at     lsn.LSN
	blocks []uint32
	want   [][]byte
}

// workload is one run's state.
type workload struct {
	cfg      workloadConfig
	out, log io.Writer
	wp       *walproposer.WALProposer
	pc       *pageclient.Client
	rng      *rand.Rand
	model    [][]byte // the page of each block after every record appended

	// retries counts the reads retried here because the pageserver's
	// ingest was behind (the page client retries everything else itself
	// and counts it in its Stats).
	records, walBytes, pagesRead, retries, mismatches atomic.Int64
	// verified is the LSN of the last check read back (and compared).
	verified atomic.Uint64
	// history is the reader's sample of verified checks; seen counts the
	// checks it was drawn from.
	history  []readCheck
	seen     int
	histRng  *rand.Rand
	printMu  sync.Mutex
	reported int
}

func (w *workload) printf(format string, args ...any) {
	w.printMu.Lock()
	defer w.printMu.Unlock()
	fmt.Fprintf(w.out, format, args...)
}

// setup attaches the tenant and creates the timeline if they are missing.
func (w *workload) setup(ctx context.Context) error {
	mc, err := newMgmtClient(w.cfg.pageserverURL, w.cfg.token)
	if err != nil {
		return err
	}
	id := w.cfg.target.Shard
	locs, err := mc.locations(ctx)
	if err != nil {
		return err
	}
	attached := false
	for _, l := range locs.TenantShards {
		if l.ID == id.String() && l.Config != nil && l.Config.Mode.Attached() {
			attached = true
			w.printf("tenant %s already attached (%s, generation %s)\n", id, l.Config.Mode, generationText(l.Config.Generation))
		}
	}
	if !attached {
		conf, err := attachConf(id, w.cfg.generation, 0, "")
		if err != nil {
			return err
		}
		if err := mc.setLocation(ctx, id, conf); err != nil {
			return err
		}
		w.printf("attached tenant %s at generation %d\n", id, w.cfg.generation)
	}
	tls, err := mc.listTimelines(ctx, id)
	if err != nil {
		return err
	}
	for _, tl := range tls {
		if tl.TimelineID == w.cfg.target.Timeline {
			w.printf("timeline %s exists (last_record_lsn %s)\n", tl.TimelineID, tl.LastRecordLSN)
			return nil
		}
	}
	init := w.cfg.startLSN
	if _, err := mc.createTimeline(ctx, id, pageapi.TimelineCreateRequest{NewTimelineID: w.cfg.target.Timeline, InitLSN: &init}); err != nil {
		return err
	}
	w.printf("created timeline %s (init_lsn %s)\n", w.cfg.target.Timeline, init)
	return nil
}

func generationText(g *uint32) string {
	if g == nil {
		return "none"
	}
	return fmt.Sprint(*g)
}

// fillPage is a full page image distinguishable by seq.
func fillPage(seq uint64) []byte {
	p := make([]byte, walrec.PageSize)
	for i := 0; i < len(p); i += 8 {
		binary.LittleEndian.PutUint64(p[i:], seq*0x9E3779B97F4A7C15+uint64(i))
	}
	return p
}

// nextRecord draws a record, applies it to the model and returns it.
func (w *workload) nextRecord(seq uint64) walrec.Record {
	blk := uint32(w.rng.IntN(w.cfg.blocks))
	if w.rng.IntN(100) < w.cfg.fullPagePct {
		p := fillPage(seq)
		copy(w.model[blk], p)
		return walrec.FullPageImage{Rel: w.cfg.rel, Blk: blk, Page: p}
	}
	n := 1 + w.rng.IntN(w.cfg.writeBytes)
	off := w.rng.IntN(walrec.PageSize - n + 1)
	data := make([]byte, n)
	for i := range data {
		data[i] = byte(w.rng.Uint32())
	}
	copy(w.model[blk][off:], data)
	return walrec.PageWrite{Rel: w.cfg.rel, Blk: blk, Offset: uint16(off), Data: data}
}

// appendRecords appends recs and counts them; it returns the end LSN.
func (w *workload) appendRecords(ctx context.Context, recs []walrec.Record) (lsn.LSN, error) {
	enc := make([][]byte, len(recs))
	var n int64
	for i, r := range recs {
		enc[i] = walrec.Encode(r)
		n += int64(skproto.FrameHeaderBytes + len(enc[i]))
	}
	end, err := w.wp.Append(ctx, enc)
	if err != nil {
		return 0, fmt.Errorf("append: %w", err)
	}
	w.records.Add(int64(len(recs)))
	w.walBytes.Add(n)
	return end, nil
}

// read reads blocks at "at" through the page client, which retries what
// may heal (the pageserver unreachable or restarting) for up to
// --read-timeout. A read the pageserver fails because its ingest did not
// reach "at" in time (Internal, which the client never retries) is
// retried here within the same --read-timeout: the WAL is committed, so
// ingest catches up.
func (w *workload) read(ctx context.Context, blocks []uint32, at lsn.LSN) ([][]byte, error) {
	var firstFail, lastLog time.Time
	for {
		pages, err := w.pc.GetPages(ctx, pageclient.Request{Rel: w.cfg.rel, Blocks: blocks, LSN: pageclient.ReadLSN{Request: at}})
		if err == nil || !ingestBehind(err) || ctx.Err() != nil {
			return pages, err
		}
		now := time.Now()
		if firstFail.IsZero() {
			firstFail = now
		}
		if now.Sub(firstFail) > w.cfg.readTimeout {
			return nil, fmt.Errorf("read at %s still failing after %v: %w", at, w.cfg.readTimeout, err)
		}
		w.retries.Add(1)
		if now.Sub(lastLog) >= time.Second {
			lastLog = now
			fmt.Fprintf(w.log, "workload: read at %s failed, retrying: %v\n", at, err)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// ingestBehind reports a read the pageserver refused because its ingest
// had not reached the LSN within its wait timeout.
func ingestBehind(err error) bool {
	return net.CodeOf(err) == net.Internal && strings.Contains(err.Error(), pageserver.ErrWaitLSNTimeout.Error())
}

// totalRetries is the reads retried by the page client and here.
func (w *workload) totalRetries() int64 { return w.retries.Load() + w.pc.Stats().Retries }

// verify compares pages (in the order of blocks: the page client
// guarantees it) with want and reports each mismatch.
func (w *workload) verify(at lsn.LSN, blocks []uint32, pages [][]byte, want [][]byte) {
	for i, p := range pages {
		w.pagesRead.Add(1)
		if bytes.Equal(p, want[i]) {
			continue
		}
		w.mismatches.Add(1)
		w.printMu.Lock()
		if w.reported < maxReportedMismatches {
			w.reported++
			fmt.Fprintf(w.out, "MISMATCH block %d of %v at %s: %s\n", blocks[i], w.cfg.rel, at, describeDiff(p, want[i]))
		}
		w.printMu.Unlock()
	}
}

func describeDiff(p, want []byte) string {
	if len(p) != len(want) {
		return fmt.Sprintf("%d bytes, want %d", len(p), len(want))
	}
	for i := range want {
		if p[i] != want[i] {
			return fmt.Sprintf("first difference at byte %d: got 0x%02x, want 0x%02x", i, p[i], want[i])
		}
	}
	return "differs"
}

// reader serves checks until the channel closes or an error.
func (w *workload) reader(ctx context.Context, checks <-chan readCheck) error {
	for c := range checks {
		if err := w.wp.WaitCommitted(ctx, c.at); err != nil {
			return fmt.Errorf("wait for commit of %s: %w", c.at, err)
		}
		pages, err := w.read(ctx, c.blocks, c.at)
		if err != nil {
			return fmt.Errorf("read %d blocks at %s: %w", len(c.blocks), c.at, err)
		}
		w.verify(c.at, c.blocks, pages, c.want)
		w.verified.Store(max(w.verified.Load(), uint64(c.at)))
		w.keepHistory(c)
	}
	return nil
}

// keepHistory keeps the first workloadHistoryChecks/4 verified checks and
// a uniform sample (reservoir) of the others, up to workloadHistoryChecks
// in all, read again at the end: history written before a pageserver
// restart must still read the same.
func (w *workload) keepHistory(c readCheck) {
	const first = workloadHistoryChecks / 4
	w.seen++
	if len(w.history) < workloadHistoryChecks {
		w.history = append(w.history, c)
	} else if i := w.histRng.IntN(w.seen - first); i < workloadHistoryChecks-first {
		w.history[first+i] = c
	}
}

// recheckHistory reads the sampled checks again at their LSNs. A read the
// pageserver refuses because GC has moved its cutoff past the LSN is
// counted as skipped, not as a failure.
func (w *workload) recheckHistory(ctx context.Context) (checked, skipped int, err error) {
	slices.SortFunc(w.history, func(a, b readCheck) int { return cmp.Compare(a.at, b.at) })
	for _, c := range w.history {
		pages, err := w.read(ctx, c.blocks, c.at)
		if net.CodeOf(err) == net.InvalidArgument && strings.Contains(err.Error(), "GC cutoff") {
			skipped++
			continue
		}
		if err != nil {
			return checked, skipped, fmt.Errorf("history check at %s: %w", c.at, err)
		}
		w.verify(c.at, c.blocks, pages, c.want)
		checked++
	}
	return checked, skipped, nil
}

// progressLoop prints a line every interval until ctx ends.
func (w *workload) progressLoop(ctx context.Context, start time.Time, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	var lastRec, lastBytes, lastPages int64
	last := start
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			rec, b, pages := w.records.Load(), w.walBytes.Load(), w.pagesRead.Load()
			dt := now.Sub(last).Seconds()
			var commit lsn.LSN
			if st, err := w.wp.Status(ctx); err == nil {
				commit = st.CommitLSN
			}
			w.printf("%5.1fs  records %8d (%6.0f/s)  WAL %7.1f MiB (%5.1f MiB/s)  commit %-11s read at %-11s pages read %7d (%5.0f/s)  retries %d  mismatches %d  shards %d\n",
				now.Sub(start).Seconds(), rec, float64(rec-lastRec)/dt, float64(b)/(1<<20), float64(b-lastBytes)/(1<<20)/dt,
				commit, lsn.LSN(w.verified.Load()), pages, float64(pages-lastPages)/dt, w.totalRetries(), w.mismatches.Load(), w.pc.ShardMap().Shards())
			lastRec, lastBytes, lastPages, last = rec, b, pages, now
		}
	}
}

// onInterrupt waits for stop (the command's context) to end while ctx (the
// run's) lasts; then it says the writing stops, and cancels the run at the
// next SIGINT or SIGTERM.
func (w *workload) onInterrupt(stop, ctx context.Context, cancel context.CancelFunc) {
	select {
	case <-ctx.Done():
		return
	case <-stop.Done():
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sig)
	w.printf("interrupted: writing stops; reading back what was written (interrupt again to abort)\n")
	select {
	case <-ctx.Done():
	case <-sig:
		w.printf("interrupted again: aborting\n")
		cancel()
	}
}

// workloadEnv is the walproposer's seams: real clock and gRPC, warnings to
// log.
func workloadEnv(log io.Writer, seed uint64) node.Env {
	return node.Env{ID: "workload", Clock: clock.NewReal(), Net: grpcx.New(grpcx.Options{}), Rand: rand.New(rand.NewPCG(seed, 1)),
		Log: slog.New(slog.NewTextHandler(log, &slog.HandlerOptions{Level: slog.LevelWarn})), Metrics: prometheus.NewRegistry()}
}

// runWorkload runs the workload and prints its progress and summary to
// out (retries and the walproposer's warnings to log). A mismatch is an
// error wrapping errMismatch.
func runWorkload(ctx context.Context, cfg workloadConfig, out, log io.Writer) (workloadSummary, error) {
	var sum workloadSummary
	w := &workload{cfg: cfg, out: out, log: log, rng: rand.New(rand.NewPCG(cfg.seed, 2)), histRng: rand.New(rand.NewPCG(cfg.seed, 3)),
		model: make([][]byte, cfg.blocks)}
	w.printf("workload: tenant %s timeline %s, rel %v, %d blocks, seed %d\n", cfg.target.Shard, cfg.target.Timeline, cfg.rel, cfg.blocks, cfg.seed)
	initial := pageclient.ShardMap{Addrs: []string{cfg.pageserver}}
	var api storconapi.Client
	var resolve pageclient.Resolver
	if cfg.controller != "" {
		api = storconapi.Client{HTTP: httpx.Client{Base: cfg.controller}, Token: cfg.controllerToken}
		resolve = pageclient.ControllerResolver(api)
		sctx, cancel := context.WithTimeout(ctx, workloadControllerSetup)
		var err error
		if !cfg.skipSetup {
			err = w.controllerSetup(sctx, api)
		}
		if err == nil {
			initial, err = w.initialControllerMap(sctx, api, resolve)
		}
		cancel()
		if err != nil {
			return sum, fmt.Errorf("workload setup: %w", err)
		}
		w.printf("shard map from the controller: %s\n", initial)
	} else if !cfg.skipSetup {
		sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err := w.setup(sctx)
		cancel()
		if err != nil {
			return sum, fmt.Errorf("workload setup: %w", err)
		}
	}
	env := workloadEnv(log, cfg.seed)
	// The page client gets its own random source: the walproposer's
	// tasks use env.Rand, and a rand.Rand is not safe for concurrent use.
	pcEnv := env
	pcEnv.Rand = rand.New(rand.NewPCG(cfg.seed, 4))
	pc, err := pageclient.New(pcEnv, pageclient.Config{Tenant: cfg.target.Shard.TenantID, Timeline: cfg.target.Timeline, Token: cfg.token,
		CallTimeout: cfg.readTimeout, AttemptTimeout: min(pageclient.DefaultAttemptTimeout, cfg.readTimeout)}, initial)
	if err != nil {
		return sum, err
	}
	defer pc.Close()
	w.pc = pc
	var hook *hookServer
	if cfg.hookListen != "" {
		if hook, err = startHookServer(cfg.hookListen, w, cfg.hookToken, resolve, env.Metrics); err != nil {
			return sum, err
		}
		defer hook.close()
		w.printf("compute hook: listening on %s (PUT %s, /metrics)\n", hook.addr, storconapi.NotifyAttachPath)
	}
	var idb [4]byte
	binary.LittleEndian.PutUint32(idb[:], uint32(time.Now().UnixNano()))
	wp, err := walproposer.New(env, walproposer.Config{ID: fmt.Sprintf("workload-%x", idb),
		TenantID: cfg.target.Shard.TenantID.String(), TimelineID: cfg.target.Timeline.String(), StartLSN: cfg.startLSN,
		Safekeepers: cfg.safekeepers, PeerTimeout: 2 * time.Second, MaxReconnectBackoff: 500 * time.Millisecond})
	if err != nil {
		return sum, err
	}
	wp.Start(context.Background())
	defer wp.Stop()
	w.wp = wp

	// The command's context ending (SIGINT or SIGTERM) ends the writing
	// early, as --duration passing would: the reads queued, the final
	// check and the summary go on, until a second interrupt.
	stop := ctx
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	go w.onInterrupt(stop, ctx, cancel)
	checks := make(chan readCheck, workloadCheckQueue)
	readErr := make(chan error, 1)
	go func() {
		err := w.reader(ctx, checks)
		if err != nil {
			cancel() // stop the writer
			for range checks {
			}
		}
		readErr <- err
	}()
	start := time.Now()
	if cfg.progress > 0 {
		pctx, pcancel := context.WithCancel(ctx)
		defer pcancel()
		go w.progressLoop(pctx, start, cfg.progress)
	}
	end, werr := w.write(ctx, stop, checks, start)
	close(checks)
	rerr := <-readErr
	if rerr != nil {
		return sum, rerr
	}
	if werr != nil {
		return sum, werr
	}
	if err := wp.WaitCommitted(ctx, end); err != nil {
		return sum, fmt.Errorf("wait for the last commit %s: %w", end, err)
	}
	writeSecs := time.Since(start).Seconds()

	// Every block, and the relation's size, at the last commit.
	readStart := time.Now()
	for b := 0; b < cfg.blocks; b += maxBlocksPerRead {
		var blocks []uint32
		var want [][]byte
		for i := b; i < min(b+maxBlocksPerRead, cfg.blocks); i++ {
			blocks, want = append(blocks, uint32(i)), append(want, w.model[i])
		}
		pages, err := w.read(ctx, blocks, end)
		if err != nil {
			return sum, fmt.Errorf("final check: %w", err)
		}
		w.verify(end, blocks, pages, want)
	}
	histChecked, histSkipped, err := w.recheckHistory(ctx)
	if err != nil {
		return sum, err
	}
	nblocks, missing, err := pc.GetRelSize(ctx, cfg.rel, pageclient.ReadLSN{Request: end}, true)
	if err != nil {
		return sum, fmt.Errorf("final check: GetRelSize: %w", err)
	}
	if missing || nblocks != uint32(cfg.blocks) {
		w.mismatches.Add(1)
		w.printf("MISMATCH size of %v at %s: %d blocks (missing %v), want %d\n", cfg.rel, end, nblocks, missing, cfg.blocks)
	}
	sum = workloadSummary{Records: w.records.Load(), WALBytes: w.walBytes.Load(), CommitLSN: end, WriteSeconds: writeSecs,
		PagesRead: w.pagesRead.Load(), Retries: w.totalRetries(), Mismatches: w.mismatches.Load(),
		ReadSeconds: time.Since(start).Seconds(), FinalBlocksVerified: cfg.blocks}
	sum.RecordsPerSec = float64(sum.Records) / writeSecs
	sum.MiBSec = float64(sum.WALBytes) / (1 << 20) / writeSecs
	sum.PagesPerSec = float64(sum.PagesRead) / sum.ReadSeconds
	w.printf("summary: %d records (%.1f MiB of WAL) committed in %.1fs: %.0f records/s, %.2f MiB/s; commit LSN %s\n",
		sum.Records, float64(sum.WALBytes)/(1<<20), writeSecs, sum.RecordsPerSec, sum.MiBSec, end)
	w.printf("summary: %d pages read and compared with the model (%.0f pages/s), %d read retries; final check of all %d blocks and the size at %s, and %d earlier LSNs again (%d below the GC cutoff skipped), took %.2fs\n",
		sum.PagesRead, sum.PagesPerSec, sum.Retries, cfg.blocks, end, histChecked, histSkipped, time.Since(readStart).Seconds())
	st := pc.Stats()
	final := pc.ShardMap()
	w.printf("summary: page client: %d calls, %d retried by the client, %d shard map updates, %d shards, map %s\n", st.Requests, st.Retries, st.MapUpdates, final.Shards(), final)
	sum.MapUpdates, sum.Shards = st.MapUpdates, final.Shards()
	if hook != nil {
		w.printf("summary: compute hook: %d notifications for the tenant applied or unchanged\n", hook.recv.Received())
	}
	if sum.Mismatches > 0 {
		w.printf("summary: %d MISMATCHES\n", sum.Mismatches)
		return sum, fmt.Errorf("%w: %d mismatches (seed %d)", errMismatch, sum.Mismatches, cfg.seed)
	}
	w.printf("summary: 0 mismatches\n")
	return sum, nil
}

// write appends until --duration has passed or stop ends: the relation's
// size and a full image of every block first, then random batches, handing
// the reader a check after each. It returns the last end LSN.
func (w *workload) write(ctx, stop context.Context, checks chan<- readCheck, start time.Time) (lsn.LSN, error) {
	cfg := w.cfg
	seq := uint64(0)
	for i := range w.model {
		w.model[i] = make([]byte, walrec.PageSize)
	}
	end, err := w.appendRecords(ctx, []walrec.Record{walrec.RelSizeChange{Rel: cfg.rel, NBlocks: uint32(cfg.blocks)}})
	if err != nil {
		return 0, err
	}
	for b := 0; b < cfg.blocks; b += cfg.batch {
		var recs []walrec.Record
		for i := b; i < min(b+cfg.batch, cfg.blocks); i++ {
			seq++
			p := fillPage(seq)
			copy(w.model[i], p)
			recs = append(recs, walrec.FullPageImage{Rel: cfg.rel, Blk: uint32(i), Page: p})
		}
		if end, err = w.appendRecords(ctx, recs); err != nil {
			return 0, err
		}
	}
	w.verified.Store(uint64(end)) // the lag counts from here
	recs := make([]walrec.Record, cfg.batch)
	for time.Since(start) < cfg.duration && stop.Err() == nil {
		for i := range recs {
			seq++
			recs[i] = w.nextRecord(seq)
		}
		if end, err = w.appendRecords(ctx, recs); err != nil {
			return 0, err
		}
		if cfg.readsPerLSN == 0 {
			continue
		}
		lagging := cfg.maxLag > 0 && uint64(end)-w.verified.Load() > cfg.maxLag
		if !lagging && len(checks) == cap(checks) {
			continue // the reader is behind: skip this LSN rather than wait
		}
		c := readCheck{at: end}
		for range cfg.readsPerLSN {
			blk := uint32(w.rng.IntN(cfg.blocks))
			c.blocks = append(c.blocks, blk)
			c.want = append(c.want, bytes.Clone(w.model[blk]))
		}
		select {
		case checks <- c:
		case <-ctx.Done():
			return 0, ctx.Err()
		}
		// Too far ahead: wait for the reader, which has this LSN's check
		// queued, so the wait ends.
		for lagging && uint64(end)-w.verified.Load() > cfg.maxLag {
			select {
			case <-ctx.Done():
				return 0, ctx.Err()
			case <-time.After(time.Millisecond):
			}
		}
	}
	return end, nil
}
