package cluster

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/stratadb/strata/disk/objstore"
	"github.com/stratadb/strata/engine/keys"
	"github.com/stratadb/strata/engine/lsn"
	"github.com/stratadb/strata/engine/shard"
	"github.com/stratadb/strata/net"
	"github.com/stratadb/strata/nodes/broker"
	"github.com/stratadb/strata/nodes/node"
	ps "github.com/stratadb/strata/nodes/pageserver"
	"github.com/stratadb/strata/nodes/pageserver/pageapi"
	"github.com/stratadb/strata/nodes/safekeeper"
	"github.com/stratadb/strata/nodes/storcon"
	"github.com/stratadb/strata/nodes/storcon/storconapi"
	"github.com/stratadb/strata/sim"
	"github.com/stratadb/strata/sim/scenarios/pagecheck"
	"github.com/stratadb/strata/sim/simnet"
)

// Planted bug names.
const (
	BugDeleteWithoutValidation   = "cluster-delete-without-validation"
	BugIndexBeforeLayers         = "cluster-index-before-layers"
	BugLoadIndexAboveGeneration  = "cluster-load-index-above-generation"
	BugTrimAboveRemoteConsistent = "cluster-trim-above-remote-consistent"
	BugStaleUploads              = "cluster-stale-uploads"
)

// Checker errors.
var (
	ErrDeletedLive        = errors.New("cluster: an object the newest index of the current generation names was deleted")
	ErrUnvalidatedDelete  = errors.New("cluster: a pageserver deleted an object without its generation validated after the index that stopped naming it")
	ErrIndexBeforeLayers  = errors.New("cluster: an index reached object storage before a layer of its own generation it names")
	ErrIndexAboveGen      = errors.New("cluster: a pageserver loaded an index of a generation above any it was given")
	ErrStaleUpload        = errors.New("cluster: an AttachedStale location uploaded")
	ErrMissingObject      = errors.New("cluster: the newest index of the current generation names an object that is not in object storage")
	ErrNoProgress         = errors.New("cluster: no progress after healing")
	ErrRetriedInternal    = errors.New("cluster: the page client retried an Internal error")
	errUndecodableTraffic = errors.New("cluster: a spy could not decode what it saw")
)

// Node ids, addresses and the tenant.
const (
	brokerID       = "broker"
	brokerAddr     = "broker:50051"
	controllerID   = "storcon"
	controllerAddr = "storcon:1234"
	computeID      = "compute"
	hookAddr       = "compute:8080"
	clientID       = "client"
	startLSN       = lsn.LSN(0x1000)
	// blocks is how many blocks of the one relation the workload writes.
	blocks = 32
	// maxBatch bounds the blocks of one client read.
	maxBatch = 8
	// opTimeout bounds one append, commit wait, controller call or direct
	// page request.
	opTimeout = 3 * time.Second
	// livenessBudget bounds each convergence wait after healing.
	livenessBudget = 60 * time.Second
)

func tenant() shard.TenantID       { return shard.TenantID{0xc1, 0x57, 0xe4} }
func timelineID() shard.TimelineID { return shard.TimelineID{0x7e, 0x11} }
func relation() keys.RelTag {
	return keys.RelTag{SpcNode: 1663, DbNode: 5, RelNode: 16402, ForkNum: keys.ForkMain}
}
func ptr[T any](v T) *T { return &v }

// Scenario returns the registered cluster scenario.
func Scenario() sim.Scenario {
	return sim.Scenario{
		Name: "cluster",
		Doc:  "a compute writes through safekeepers (offload and WAL removal on) and reads through 2-3 pageservers under the storage controller, with object store faults, pageserver crashes with and without their disks, migrations, drains and fills; every read correct, no live object deleted, no stale or unvalidated delete, no stale upload, no acknowledged WAL lost, remote_consistent_lsn catches up",
		Bugs: []sim.Bug{
			{Name: BugDeleteWithoutValidation, Doc: "the deletion queue executes its lists without asking the controller (caught: a delete with no validation after the index that stopped naming the object)"},
			{Name: BugIndexBeforeLayers, Doc: "a layer counts as uploaded when its Put starts, so an index naming it can go out first (caught: an index put before a layer of its generation)"},
			{Name: BugLoadIndexAboveGeneration, Doc: "attach loads the timeline's newest index whatever its generation (caught: a pageserver read an index above every generation it was given, after a delayed location_config)"},
			{Name: BugTrimAboveRemoteConsistent, Doc: "safekeepers remove WAL above the pageservers' remote_consistent_lsn (caught: a pageserver that restarts or re-attaches from object storage cannot reach the commit LSN)"},
			{Name: BugStaleUploads, Doc: "an AttachedStale location keeps uploading (caught: a put after the location acknowledged AttachedStale)"},
		},
		Run:            run,
		MaxVirtualTime: 5 * time.Minute,
		CISeeds:        4,
		BugSeeds:       30,
	}
}

// cluster is one seed's world.
type cluster struct {
	w       *sim.World
	h       *pagecheck.History
	o       *observer
	sks     []string
	skAddrs []string
	nPS     int
	shards  shard.ShardCount
	stripe  uint32
	conf    pageapi.TenantConf
	segSize int64
	// safety is true during the fault phase; storeFaults are the object
	// store's faults now (the observer reads around them).
	safety      bool
	storeFaults objstore.FaultConfig
	// wipe marks pageservers whose next start begins with an empty disk.
	wipe map[int]bool
	// replayProb is the chance that an attached location_config is
	// delivered a second time, late.
	replayProb float64

	bugs struct {
		ps ps.Bugs
		sk safekeeper.Bugs
	}
	reader *pagecheck.Reader
	op     pagecheck.Operator
	opr    *operator
}

func run(w *sim.World) error {
	rng := w.Rand()
	c := &cluster{w: w, h: &pagecheck.History{Start: startLSN}, wipe: map[int]bool{}}
	c.o = newObserver(c)
	nSK := sim.Swarm(w, "safekeepers", []int{1, 3}[rng.IntN(2)])
	c.nPS = sim.Swarm(w, "pageservers", 2+rng.IntN(2))
	c.shards = shard.ShardCount(sim.Swarm(w, "shards", []int{0, 0, 2}[rng.IntN(3)]))
	c.stripe = sim.Swarm(w, "stripe_pages", uint32(1+rng.IntN(4)))
	c.segSize = sim.Swarm(w, "wal_segment_bytes", int64(16<<10)<<rng.IntN(3))
	c.replayProb = sim.Swarm(w, "replay_prob", []float64{0, 0.1, 0.3}[rng.IntN(3)])
	safety := sim.Swarm(w, "safety", time.Duration(10+rng.IntN(8))*time.Second)
	expiry := sim.Swarm(w, "feedback_expiry", time.Duration(6+rng.IntN(5))*time.Second)
	checkpoint := sim.Swarm(w, "checkpoint_distance", int64(16<<10)<<rng.IntN(3))
	horizon := sim.Swarm(w, "gc_horizon", uint64(8<<10)<<rng.IntN(4))
	threshold, images := 2+rng.IntN(3), 1+rng.IntN(3)
	c.conf = pageapi.TenantConf{
		CheckpointDistance: &checkpoint, CompactionThreshold: &threshold, ImageCreationThreshold: &images,
		GCHorizon: &horizon, CheckpointTimeout: ptr("2s"), CompactionPeriod: ptr("1s"), GCPeriod: ptr("2s"),
	}
	c.bugs.ps = ps.Bugs{DeleteWithoutValidation: w.Bug(BugDeleteWithoutValidation), IndexBeforeLayers: w.Bug(BugIndexBeforeLayers),
		LoadIndexAboveGeneration: w.Bug(BugLoadIndexAboveGeneration), StaleUploads: w.Bug(BugStaleUploads)}
	c.bugs.sk = safekeeper.Bugs{TrimAboveRemoteConsistent: w.Bug(BugTrimAboveRemoteConsistent)}
	if w.Bug(BugLoadIndexAboveGeneration) {
		c.replayProb = 0.3 // the bug shows only in a stale attach
	}

	lat := simnet.Latency{
		Base:     time.Duration(100+rng.IntN(400)) * time.Microsecond,
		Jitter:   time.Duration(100+rng.IntN(1900)) * time.Microsecond,
		TailProb: 0.02 * rng.Float64(),
		Tail:     time.Duration(1+rng.IntN(30)) * time.Millisecond,
	}
	sim.Swarm(w, "net_latency", fmt.Sprintf("%v+%v tail %.3f/%v", lat.Base, lat.Jitter, lat.TailProb, lat.Tail))
	w.UseNet(simnet.Options{Latency: lat, DeadLinkTimeout: 3 * time.Second})
	skew := func(n *sim.Node) {
		n.SetClock(time.Duration(rng.IntN(2000)-1000)*time.Millisecond, float64(rng.IntN(400)-200)*1e-6)
	}

	w.AddNode(brokerID, func(env node.Env) error {
		b, err := broker.New(env, broker.Config{ListenAddr: brokerAddr, EntryTTL: 5 * time.Second})
		if err != nil {
			return err
		}
		return b.Start()
	})
	for i := 1; i <= nSK; i++ {
		id, addr := pagecheck.SafekeeperID(i), pagecheck.SafekeeperAddr(i)
		c.sks, c.skAddrs = append(c.sks, id), append(c.skAddrs, addr)
		skew(w.AddNode(id, func(env node.Env) error {
			sk, err := safekeeper.New(env, safekeeper.Config{NodeID: id, ListenAddr: addr, BrokerAddr: brokerAddr,
				PublishInterval: 200 * time.Millisecond, CallTimeout: time.Second, SegmentBytes: c.segSize,
				Offload: true, OffloadInterval: 500 * time.Millisecond, RemovalInterval: time.Second, FeedbackExpiry: expiry,
				Bugs: c.bugs.sk})
			if err != nil {
				return err
			}
			return sk.Start(context.Background())
		}))
	}
	skew(w.AddNode(controllerID, func(env node.Env) error {
		_, err := storcon.Start(env, c.controllerConfig(env))
		return err
	}))
	var pss []string
	for i := 1; i <= c.nPS; i++ {
		skew(w.AddNode(pagecheck.PageserverID(i), func(env node.Env) error { return c.startPageserver(env, i) }))
		pss = append(pss, pagecheck.PageserverID(i))
	}
	cl := w.AddNode(clientID, func(node.Env) error { return nil })
	c.op = pagecheck.Operator{Env: cl.Env(), API: storconapi.Client{HTTP: net.DialHTTP{Net: cl.Env().Net, Addr: controllerAddr}},
		Sleep: w.Sleep, OpTimeout: opTimeout}
	init := startLSN
	if err := c.op.CreateTenant(storconapi.TenantCreateRequest{NewTenantID: tenant(), Config: &c.conf,
		ShardParameters: storconapi.ShardParameters{Count: uint8(c.shards), StripeSize: c.stripe}},
		pageapi.TimelineCreateRequest{NewTimelineID: timelineID(), InitLSN: &init}, 300); err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	c.reader = &pagecheck.Reader{Tenant: tenant(), Timeline: timelineID(), Rel: relation(), Blocks: blocks, MaxBatch: maxBatch,
		Controller: controllerAddr, HookAddr: hookAddr, PageAddr: func(n uint64) string { return pagecheck.PageserverPageAddr(int(n)) },
		OpTimeout: opTimeout, History: c.h, Probe: 6}
	w.AddNode(computeID, func(env node.Env) error {
		wr := &pagecheck.Writer{ID: computeID, Tenant: tenant(), Timeline: timelineID(), Start: startLSN, Safekeepers: c.skAddrs,
			Rel: relation(), Blocks: blocks, OpTimeout: opTimeout, History: c.h, Preload: true}
		env.Clock.Go(context.Background(), "writer", func(ctx context.Context) { wr.Run(ctx, env) })
		env.Clock.Go(context.Background(), "reader", func(ctx context.Context) { c.reader.Run(ctx, env) })
		return nil
	})
	if err := c.waitUploaded(); err != nil {
		return err
	}

	nem := sim.Nemesis{
		Crashable:     append([]string{controllerID}, pss...),
		CrashMean:     time.Duration(3000+rng.IntN(5000)) * time.Millisecond,
		TearProb:      rng.Float64(),
		StopProb:      0.2 * rng.Float64(),
		RestartAfter:  time.Duration(100+rng.IntN(1200)) * time.Millisecond,
		Linked:        append(append([]string{controllerID, computeID, clientID, brokerID}, pss...), c.sks...),
		PartitionMean: time.Duration(2+rng.IntN(4)) * time.Second,
		PartitionFor:  time.Duration(100+rng.IntN(1500)) * time.Millisecond,
		OneWayProb:    0.3,
		BreakMean:     time.Duration(1+rng.IntN(4)) * time.Second,
		SlowMean:      time.Duration(1+rng.IntN(5)) * time.Second,
		SlowLatency:   simnet.Latency{Base: 5 * time.Millisecond, Jitter: 40 * time.Millisecond},
		StoreFaults: objstore.FaultConfig{
			LatencyMin:      time.Duration(rng.IntN(1000)) * time.Microsecond,
			Throttle:        0.05 * rng.Float64(),
			TransientBefore: 0.05 * rng.Float64(),
			TransientAfter:  0.05 * rng.Float64(),
			Missing:         []float64{0, 0, 0.02}[rng.IntN(3)],
		},
	}
	nem.StoreFaults.LatencyMax = nem.StoreFaults.LatencyMin + time.Duration(rng.IntN(20))*time.Millisecond
	sim.Swarm(w, "nemesis", nem.String())
	sim.Swarm(w, "store_latency", fmt.Sprintf("%v..%v missing=%.2f", nem.StoreFaults.LatencyMin, nem.StoreFaults.LatencyMax, nem.StoreFaults.Missing))

	w.Phase("safety")
	c.safety = true
	if err := w.StartNemesis(nem); err != nil {
		return err
	}
	c.storeFaults = nem.StoreFaults
	c.opr = newOperator(c)
	w.Go("operator", func(context.Context) { c.opr.run() })
	w.Sleep(safety)
	if err := c.failure(); err != nil {
		return err
	}

	w.Phase("liveness")
	c.safety = false
	w.HealAll()
	c.storeFaults = objstore.FaultConfig{}
	return c.liveness()
}

// failure is the first violation any checker recorded.
func (c *cluster) failure() error {
	if err := c.h.Failure(); err != nil {
		return err
	}
	return c.o.failure()
}

func (c *cluster) controllerConfig(env node.Env) storcon.Config {
	cfg := pagecheck.ControllerConfig(controllerAddr, func(addr string) net.HTTPClient {
		return psSpy{c: c, inner: net.DialHTTP{Net: env.Net, Addr: addr}, node: pagecheck.PageserverOfAddr(addr)}
	}, net.DialHTTP{Net: env.Net, Addr: hookAddr})
	cfg.DrainFillConcurrency = 2
	return cfg
}

// startPageserver boots pageserver i with the spies on its object store
// and control-plane client, first emptying its disk if it was marked as
// lost (the wipe is made durable before the mark is cleared, so a crash
// during it wipes again).
func (c *cluster) startPageserver(env node.Env, i int) error {
	if c.wipe[i] {
		if err := pagecheck.WipeDisk(env); err != nil {
			return err
		}
		delete(c.wipe, i)
		env.Log.Info("started with an empty disk (the old one was lost)")
	}
	env.Store = storeSpy{c: c, inner: env.Store, node: i}
	_, err := ps.Start(env, ps.Config{
		NodeID: uint64(i), PageAddr: pagecheck.PageserverPageAddr(i), HTTPAddr: pagecheck.PageserverHTTPAddr(i),
		ControlPlane:    cpSpy{c: c, inner: net.DialHTTP{Net: env.Net, Addr: controllerAddr}, node: i},
		ReAttachRetries: 1000, ReAttachBackoff: 100 * time.Millisecond, ReAttachBackoffMax: time.Second, ReAttachTimeout: 3 * time.Second,
		PageService: ps.PageServiceConfig{WaitLSNTimeout: 2 * time.Second},
		WALReceiver: ps.WALReceiverConfig{BrokerAddr: brokerAddr, PollInterval: 200 * time.Millisecond,
			StallTimeout: 2 * time.Second, CallTimeout: time.Second},
		RemoteStorage: ps.RemoteStorageConfig{UploadBackoffMax: 2 * time.Second, ValidateInterval: 300 * time.Millisecond,
			DeletionFlushInterval: time.Second, ShutdownUploadTimeout: 2 * time.Second},
		Bugs: c.bugs.ps,
	})
	return err
}

// waitUploaded waits until every shard of the tenant has uploaded an
// index (remote_consistent_lsn above 0): the faults start once the tenant
// is durable in object storage (a timeline that never uploaded an index
// lives only on its pageserver's disk, which a fault may take away).
func (c *cluster) waitUploaded() error {
	for range 600 {
		td, ok := c.describe()
		done := ok && len(td.Shards) > 0
		for _, s := range td.Shards {
			if !done {
				break
			}
			list, err := c.op.Timelines(pagecheck.PageserverHTTPAddr(int(*s.NodeAttached)), s.TenantShardID)
			done = err == nil && len(list) == 1 && list[0].RemoteConsistentLSN > 0
		}
		if done {
			return nil
		}
		c.w.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("%w: the tenant's shards uploaded no index within a minute", ErrNoProgress)
}
