package pageserver

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/stratadb/strata/clock"
	"github.com/stratadb/strata/engine/keys"
	"github.com/stratadb/strata/engine/lsn"
	"github.com/stratadb/strata/engine/shard"
	"github.com/stratadb/strata/engine/timeline"
	"github.com/stratadb/strata/net"
	"github.com/stratadb/strata/nodes/broker"
	"github.com/stratadb/strata/nodes/node"
	ps "github.com/stratadb/strata/nodes/pageserver"
	"github.com/stratadb/strata/nodes/pageserver/pageapi"
	"github.com/stratadb/strata/nodes/safekeeper"
	"github.com/stratadb/strata/sim"
	"github.com/stratadb/strata/sim/scenarios/pagecheck"
	"github.com/stratadb/strata/sim/simdisk"
	"github.com/stratadb/strata/sim/simnet"
)

// Planted bug names.
const (
	BugNoWaitForIngest    = "ps-no-wait-for-ingest"
	BugResumeWrongLSN     = "ps-resume-wrong-lsn"
	BugServeOtherShards   = "ps-serve-other-shards"
	BugDCLBeforeLayerSync = "ps-dcl-before-layer-sync"
)

// Scenario constants.
const (
	brokerID   = "broker"
	brokerAddr = "broker:50051"
	computeID  = "compute"
	startLSN   = lsn.LSN(0x1000)
	// blocks is how many blocks of the one relation the workload writes.
	blocks = 24
	// livenessBudget bounds each convergence wait after healing.
	livenessBudget = 40 * time.Second
	// opTimeout bounds one append, commit wait or page request.
	opTimeout = 3 * time.Second
)

func tenant() shard.TenantID {
	return shard.TenantID{0x5a, 0x9e, 1}
}

func timelineID() shard.TimelineID { return shard.TimelineID{0x71, 0x9e} }

func relation() keys.RelTag {
	return keys.RelTag{SpcNode: 1663, DbNode: 5, RelNode: 16400, ForkNum: keys.ForkMain}
}

// Scenario returns the registered pageserver scenario.
func Scenario() sim.Scenario {
	return sim.Scenario{
		Name: "pageserver",
		Doc:  "WAL through safekeepers into 1-2 pageservers (unsharded or 2 shards), pages read back and checked against the committed WAL, under crashes, partitions, slow links and disk faults",
		Bugs: []sim.Bug{
			{Name: BugNoWaitForIngest, Doc: "the page service answers a read above the last ingested LSN at once, from older data"},
			{Name: BugResumeWrongLSN, Doc: "a WAL receiver (re)connecting resumes at the safekeeper's commit LSN instead of where ingest stands"},
			{Name: BugServeOtherShards, Doc: "the page service answers blocks its shard does not own"},
			{Name: BugDCLBeforeLayerSync, Doc: "a flush makes disk_consistent_lsn durable before its layer file is synced; a crash loses the layer the metadata lists"},
		},
		Run:            run,
		MaxVirtualTime: 3 * time.Minute,
		CISeeds:        6,
		BugSeeds:       60,
	}
}

// cluster is the drawn shape.
type cluster struct {
	w       *sim.World
	sks     []string
	skAddrs []string
	nPS     int
	shards  []shard.ShardIdentity
	// placement[i] is the pageserver (1-based) holding shard i.
	placement []int
	conf      pageapi.TenantConf
}

func (c *cluster) shardID(i int) shard.TenantShardID {
	return shard.TenantShardID{TenantID: tenant(), Shard: c.shards[i].Index()}
}

// owner returns the index of the shard that owns blk.
func (c *cluster) owner(blk uint32) int {
	if len(c.shards) == 1 {
		return 0
	}
	return int(c.shards[0].ShardOf(keys.RelBlockKey(relation(), blk)))
}

func run(w *sim.World) error {
	rng := w.Rand()
	c := &cluster{w: w}
	nSK := sim.Swarm(w, "safekeepers", []int{1, 3, 3, 5}[rng.IntN(4)])
	c.nPS = sim.Swarm(w, "pageservers", 1+rng.IntN(2))
	nShards := sim.Swarm(w, "shards", []int{1, 2}[rng.IntN(2)])
	stripe := uint32(1 + rng.IntN(4))
	if nShards == 1 {
		c.shards = []shard.ShardIdentity{shard.Unsharded()}
		c.placement = []int{1}
	} else {
		sim.Swarm(w, "stripe_pages", stripe)
		for i := range nShards {
			c.shards = append(c.shards, shard.ShardIdentity{Number: shard.ShardNumber(i), Count: shard.ShardCount(nShards), StripeSize: stripe})
			c.placement = append(c.placement, 1+i%c.nPS)
		}
	}
	syncMax := sim.Swarm(w, "sync_max", time.Duration(1+rng.IntN(8))*time.Millisecond)
	safety := sim.Swarm(w, "safety", time.Duration(8+rng.IntN(8))*time.Second)
	checkpoint := sim.Swarm(w, "checkpoint_distance", int64(16<<10)<<rng.IntN(3))
	horizon := sim.Swarm(w, "gc_horizon", uint64(8<<10)<<rng.IntN(4))
	threshold := 2 + rng.IntN(3)
	images := 1 + rng.IntN(3)
	c.conf = pageapi.TenantConf{
		CheckpointDistance: &checkpoint, CompactionThreshold: &threshold, ImageCreationThreshold: &images,
		GCHorizon: &horizon, CheckpointTimeout: ptr(sim.Swarm(w, "checkpoint_timeout", fmt.Sprintf("%ds", 1+rng.IntN(3)))),
		CompactionPeriod: ptr("1s"), GCPeriod: ptr(sim.Swarm(w, "gc_period", fmt.Sprintf("%ds", 1+rng.IntN(3)))),
	}
	lat := simnet.Latency{
		Base:     time.Duration(100+rng.IntN(400)) * time.Microsecond,
		Jitter:   time.Duration(100+rng.IntN(1900)) * time.Microsecond,
		TailProb: 0.02 * rng.Float64(),
		Tail:     time.Duration(1+rng.IntN(30)) * time.Millisecond,
	}
	sim.Swarm(w, "net_latency", fmt.Sprintf("%v+%v tail %.3f/%v", lat.Base, lat.Jitter, lat.TailProb, lat.Tail))
	w.UseNet(simnet.Options{Latency: lat, DeadLinkTimeout: 3 * time.Second})

	for i := 1; i <= nSK; i++ {
		c.sks, c.skAddrs = append(c.sks, pagecheck.SafekeeperID(i)), append(c.skAddrs, pagecheck.SafekeeperAddr(i))
	}
	var pss []string
	for i := 1; i <= c.nPS; i++ {
		pss = append(pss, pagecheck.PageserverID(i))
	}
	nem := sim.Nemesis{
		Crashable:     append(append(append([]string(nil), c.sks...), pss...), computeID, brokerID),
		CrashMean:     time.Duration(800+rng.IntN(3000)) * time.Millisecond,
		TearProb:      rng.Float64(),
		StopProb:      0.2 * rng.Float64(),
		RestartAfter:  time.Duration(50+rng.IntN(700)) * time.Millisecond,
		PartitionMean: time.Duration(1+rng.IntN(4)) * time.Second,
		PartitionFor:  time.Duration(100+rng.IntN(1500)) * time.Millisecond,
		OneWayProb:    0.4,
		BreakMean:     time.Duration(1+rng.IntN(4)) * time.Second,
		SlowMean:      time.Duration(1+rng.IntN(5)) * time.Second,
		SlowLatency:   simnet.Latency{Base: 10 * time.Millisecond, Jitter: 60 * time.Millisecond},
		DiskFaults: simdisk.Faults{
			ReadEIO:  0.002 * rng.Float64(),
			WriteEIO: 0.001 * rng.Float64(),
			SyncEIO:  0.001 * rng.Float64(),
		},
	}
	if rng.IntN(3) == 0 {
		nem.DiskFaults = simdisk.Faults{}
	}
	sim.Swarm(w, "nemesis", nem.String())
	bugs := ps.Bugs{
		NoWaitForIngest:  w.Bug(BugNoWaitForIngest),
		ResumeWrongLSN:   w.Bug(BugResumeWrongLSN),
		ServeOtherShards: w.Bug(BugServeOtherShards),
		Engine:           timeline.Bugs{DCLBeforeLayerSync: w.Bug(BugDCLBeforeLayerSync)},
	}

	w.AddNode(brokerID, func(env node.Env) error {
		b, err := broker.New(env, broker.Config{ListenAddr: brokerAddr, EntryTTL: 5 * time.Second})
		if err != nil {
			return err
		}
		return b.Start()
	})
	for i, id := range c.sks {
		addr := c.skAddrs[i]
		n := w.AddNode(id, func(env node.Env) error {
			sk, err := safekeeper.New(env, safekeeper.Config{NodeID: id, ListenAddr: addr, BrokerAddr: brokerAddr,
				PublishInterval: 200 * time.Millisecond, CallTimeout: time.Second})
			if err != nil {
				return err
			}
			return sk.Start(context.Background())
		})
		n.SetClock(time.Duration(rng.IntN(2000)-1000)*time.Millisecond, float64(rng.IntN(400)-200)*1e-6)
	}
	// A small open-file limit makes reads reopen layer files under crashes
	// and disk faults; the default never closes one.
	maxOpen := sim.Swarm(w, "max_open_layer_files", []int{2, 4, 16, ps.DefaultMaxOpenLayerFiles}[rng.IntN(4)])
	// Half the seeds give the pageservers the world's object store (they
	// upload, and attach from it after a crash). Not with the planted
	// DCL-before-layer-sync bug: a layer the local disk lost is then
	// downloaded again, which heals exactly what that bug plants. A rand of
	// its own keeps the other draws of each seed as they were.
	remoteStorage := sim.Swarm(w, "remote_storage", !w.Bug(BugDCLBeforeLayerSync) && w.NewRand("remote_storage").IntN(2) == 0)
	// With object storage, a third of the seeds give the pageservers a
	// local disk budget of a few layers: layers are evicted and read back
	// on demand under the faults (a rand of its own, as above).
	var localBudget int64
	if remoteStorage {
		localBudget = []int64{0, 0, 0, 0, 24 << 10, 96 << 10}[w.NewRand("local_budget").IntN(6)]
	}
	sim.Swarm(w, "max_local_layer_bytes", localBudget)
	for i := 1; i <= c.nPS; i++ {
		n := w.AddNode(pagecheck.PageserverID(i), func(env node.Env) error {
			if !remoteStorage {
				env.Store = nil
			}
			_, err := ps.Start(env, ps.Config{NodeID: uint64(i), PageAddr: pagecheck.PageserverPageAddr(i), HTTPAddr: pagecheck.PageserverHTTPAddr(i), MaxOpenLayerFiles: maxOpen,
				PageService: ps.PageServiceConfig{WaitLSNTimeout: 2 * time.Second},
				WALReceiver: ps.WALReceiverConfig{BrokerAddr: brokerAddr, PollInterval: 200 * time.Millisecond,
					StallTimeout: 2 * time.Second, CallTimeout: time.Second},
				RemoteStorage: ps.RemoteStorageConfig{MaxLocalLayerBytes: localBudget, EvictionInterval: time.Second},
				Bugs:          bugs})
			return err
		})
		n.SetClock(time.Duration(rng.IntN(2000)-1000)*time.Millisecond, float64(rng.IntN(400)-200)*1e-6)
		n.SetDiskLatency(func(op string) time.Duration {
			if op == "sync" || op == "syncdir" {
				return time.Duration(1 + n.FaultRand().Int64N(int64(syncMax)))
			}
			return 0
		})
	}
	h := &pagecheck.History{Start: startLSN}
	cl := w.AddNode("client", func(node.Env) error { return nil })
	ctl := &controller{c: c, env: cl.Env()}
	if err := ctl.setup(); err != nil {
		return err
	}
	comp := &compute{c: c, h: h}
	w.AddNode(computeID, func(env node.Env) error {
		wr := &pagecheck.Writer{ID: computeID, Tenant: tenant(), Timeline: timelineID(), Start: startLSN, Safekeepers: c.skAddrs,
			Rel: relation(), Blocks: blocks, OpTimeout: opTimeout, History: h}
		env.Clock.Go(context.Background(), "workload", func(ctx context.Context) { wr.Run(ctx, env) })
		env.Clock.Go(context.Background(), "reader", func(ctx context.Context) { comp.read(ctx, env) })
		return nil
	})
	nem.Linked = append(append(append([]string(nil), c.sks...), pss...), computeID, brokerID, "client")

	w.Phase("safety")
	if err := w.StartNemesis(nem); err != nil {
		return err
	}
	w.Sleep(safety)
	if err := h.Failure(); err != nil {
		return err
	}

	w.Phase("liveness")
	w.HealAll()
	a := &auditor{c: c, h: h, env: cl.Env()}
	return a.check()
}

func ptr[T any](v T) *T { return &v }

// controller plays the storage controller's part: it attaches each shard
// to its pageserver and creates the timeline, retrying until they answer.
type controller struct {
	c   *cluster
	env node.Env
}

func (ctl *controller) mgmt(ctx context.Context, i int) (net.HTTPClient, func(), error) {
	conn, err := ctl.env.Net.Dial(ctx, pagecheck.PageserverHTTPAddr(i))
	if err != nil {
		return nil, nil, err
	}
	return net.SeamHTTP{Conn: conn}, func() { conn.Close() }, nil
}

func (ctl *controller) setup() error {
	c := ctl.c
	for si, id := range c.shards {
		tsid := c.shardID(si)
		conf := pageapi.LocationConfig{Mode: pageapi.ModeAttachedSingle, Generation: ptr(uint32(1)),
			ShardNumber: uint8(id.Number), ShardCount: uint8(id.Count), ShardStripeSize: id.StripeSize, TenantConf: &c.conf}
		init := startLSN
		steps := []struct {
			method, path string
			body         any
		}{
			{"PUT", "/v1/tenant/" + tsid.String() + "/location_config", conf},
			{"POST", "/v1/tenant/" + tsid.String() + "/timeline", pageapi.TimelineCreateRequest{NewTimelineID: timelineID(), InitLSN: &init}},
		}
		for _, st := range steps {
			for attempt := 0; ; attempt++ {
				ctx, cancel := clock.WithTimeout(ctl.env.Clock, context.Background(), opTimeout)
				hc, done, err := ctl.mgmt(ctx, c.placement[si])
				if err == nil {
					_, err = hc.Do(ctx, &net.HTTPRequest{Method: st.method, Path: st.path}, st.body, nil)
					done()
				}
				cancel()
				if err == nil || net.CodeOf(err) == net.AlreadyExists {
					break
				}
				if attempt > 200 {
					return fmt.Errorf("pageserver: %s %s: %w", st.method, st.path, err)
				}
				c.w.Sleep(50 * time.Millisecond)
			}
		}
	}
	return nil
}

// compute reads pages back (its Writer writes).
type compute struct {
	c *cluster
	h *pagecheck.History
}

// read reads random blocks at committed LSNs from their owners (and now
// and then from a shard that does not own them), recording every answer.
func (cp *compute) read(ctx context.Context, env node.Env) {
	conns := map[int]net.Conn{}
	defer func() {
		for _, i := range slices.Sorted(maps.Keys(conns)) {
			conns[i].Close()
		}
	}()
	for clock.Sleep(ctx, env.Clock, time.Duration(5+env.Rand.IntN(40))*time.Millisecond) == nil {
		at, ok := cp.h.ReadLSN(env.Rand.IntN(4) == 0, 0, env.Rand.IntN)
		if !ok {
			continue
		}
		blk := uint32(env.Rand.IntN(blocks))
		si := cp.c.owner(blk)
		probe := len(cp.c.shards) > 1 && env.Rand.IntN(5) == 0
		if probe {
			si = (si + 1) % len(cp.c.shards)
		}
		pi := cp.c.placement[si]
		conn := conns[pi]
		if conn == nil {
			var err error
			if conn, err = env.Net.Dial(ctx, pagecheck.PageserverPageAddr(pi)); err != nil {
				continue
			}
			conns[pi] = conn
		}
		rctx, cancel := clock.WithTimeout(env.Clock, ctx, opTimeout)
		rctx = pageapi.WithTarget(rctx, pageapi.Target{Shard: cp.c.shardID(si), Timeline: timelineID()}, "")
		resp, err := pagecheck.GetPage(rctx, conn, relation(), at, blk)
		cancel()
		if err != nil {
			continue // the stream failed (a fault): nothing was answered
		}
		cp.h.Record(pagecheck.Read{At: at, Blk: blk, Shard: cp.c.shardID(si).String(), Probe: probe, Owner: cp.c.shardID(cp.c.owner(blk)).String(),
			Status: resp.StatusCode, Reason: resp.Reason, Page: pagecheck.PageOf(resp)})
	}
}

// auditor runs the liveness phase and the final checks.
type auditor struct {
	c   *cluster
	h   *pagecheck.History
	env node.Env
}

// ErrNoProgress is a liveness failure.
var ErrNoProgress = errors.New("pageserver: no progress after healing")

func (a *auditor) check() error {
	w := a.c.w
	ctx := context.Background()
	// A fresh record commits after healing.
	base := a.h.MaxCommit()
	deadline := w.Now() + livenessBudget
	for a.h.MaxCommit() <= base {
		if err := a.h.Failure(); err != nil {
			return err
		}
		if w.Now() >= deadline {
			return fmt.Errorf("%w: no record committed %v after healing (commit %s)", ErrNoProgress, livenessBudget, base)
		}
		w.Sleep(50 * time.Millisecond)
	}
	a.h.Stop()
	rb := pagecheck.WAL{Env: a.env, Safekeepers: a.c.skAddrs, Tenant: tenant(), Timeline: timelineID(), Start: startLSN, Sleep: w.Sleep, Now: w.Now}
	commit, err := rb.FinalCommit(ctx, a.h.MaxCommit(), deadline)
	if err != nil {
		return err
	}
	wal, err := rb.Committed(ctx, commit, deadline)
	if err != nil {
		return err
	}
	m, err := pagecheck.NewModel(wal, startLSN)
	if err != nil {
		return err
	}
	// Every shard's timeline catches up.
	for si := range a.c.shards {
		if err := a.waitIngested(ctx, si, commit, deadline); err != nil {
			return err
		}
	}
	// Every block reads back from its owner as the committed WAL says.
	for blk := range uint32(blocks) {
		si := a.c.owner(blk)
		r, err := a.readFinal(ctx, si, commit, blk, deadline)
		if err != nil {
			return err
		}
		a.h.Record(r)
	}
	counts, err := a.h.Verify(m)
	if err != nil {
		return err
	}
	w.Log().Info("pageserver checked", "commit", commit, "records", m.Records(), "reads", a.h.Reads(), "answers", fmt.Sprint(counts))
	w.Note(uint64(commit), uint64(a.h.Reads()))
	// What the disk budget did (the pageservers' current incarnations).
	var evictions, onDemand float64
	for i := 1; i <= a.c.nPS; i++ {
		evictions += counter(w.Node(pagecheck.PageserverID(i)).Env(), "strata_pageserver_resident_layer_evictions_total")
		onDemand += counter(w.Node(pagecheck.PageserverID(i)).Env(), "strata_pageserver_ondemand_layer_downloads_total")
	}
	sim.Stat(w, "layer_evictions", evictions)
	sim.Stat(w, "ondemand_downloads", onDemand)
	if counts["OK"] < blocks/2 {
		// The final reads alone give one OK per block written: a run with
		// fewer checked pages proves too little.
		return fmt.Errorf("pageserver: only %d pages checked (%v)", counts["OK"], counts)
	}
	return a.h.Failure()
}

// counter is the value of a node's counter (0 if it has none).
func counter(env node.Env, name string) float64 {
	mfs, err := env.Metrics.Gather()
	if err != nil {
		return 0
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	return 0
}

func (a *auditor) waitIngested(ctx context.Context, si int, commit lsn.LSN, deadline time.Duration) error {
	w := a.c.w
	ctl := &controller{c: a.c, env: a.env}
	var last string
	for {
		cctx, cancel := clock.WithTimeout(a.env.Clock, ctx, opTimeout)
		hc, done, err := ctl.mgmt(cctx, a.c.placement[si])
		var list []pageapi.TimelineInfo
		if err == nil {
			_, err = hc.Do(cctx, &net.HTTPRequest{Method: "GET", Path: "/v1/tenant/" + a.c.shardID(si).String() + "/timeline"}, nil, &list)
			done()
		}
		cancel()
		if err == nil && len(list) == 1 && list[0].LastRecordLSN >= commit {
			return nil
		}
		last = fmt.Sprintf("%+v %v", list, err)
		if w.Now() >= deadline {
			return fmt.Errorf("%w: shard %s on %s did not ingest up to %s within %v: %s", ErrNoProgress, a.c.shardID(si), pagecheck.PageserverID(a.c.placement[si]), commit, livenessBudget, last)
		}
		w.Sleep(100 * time.Millisecond)
	}
}

func (a *auditor) readFinal(ctx context.Context, si int, at lsn.LSN, blk uint32, deadline time.Duration) (pagecheck.Read, error) {
	w := a.c.w
	for {
		cctx, cancel := clock.WithTimeout(a.env.Clock, ctx, opTimeout)
		conn, err := a.env.Net.Dial(cctx, pagecheck.PageserverPageAddr(a.c.placement[si]))
		var resp *pageapi.GetPageResponse
		if err == nil {
			rctx := pageapi.WithTarget(cctx, pageapi.Target{Shard: a.c.shardID(si), Timeline: timelineID()}, "")
			resp, err = pagecheck.GetPage(rctx, conn, relation(), at, blk)
			conn.Close()
		}
		cancel()
		if err == nil && resp.StatusCode != pageapi.GetPageStatusCode_GET_PAGE_STATUS_CODE_INTERNAL_ERROR {
			return pagecheck.Read{At: at, Blk: blk, Shard: a.c.shardID(si).String(), Status: resp.StatusCode, Reason: resp.Reason, Page: pagecheck.PageOf(resp), Final: true}, nil
		}
		if w.Now() >= deadline {
			return pagecheck.Read{}, fmt.Errorf("%w: block %d at %s from shard %s unreadable: %v %v", ErrNoProgress, blk, at, a.c.shardID(si), resp, err)
		}
		w.Sleep(100 * time.Millisecond)
	}
}
