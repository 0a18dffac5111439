package split

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/stratadb/strata/engine/keys"
	"github.com/stratadb/strata/engine/lsn"
	"github.com/stratadb/strata/engine/shard"
	"github.com/stratadb/strata/net"
	"github.com/stratadb/strata/nodes/broker"
	"github.com/stratadb/strata/nodes/compute/pageclient"
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
	BugChildServesUnownedKey = "split-child-serves-unowned-key"
	BugReassembleOutOfOrder  = "split-reassemble-out-of-order"
	BugClientRetriesInternal = "split-client-retries-internal"
	BugCommitSplitEarly      = "split-commit-early"
	BugRouteWithParentStripe = "split-route-parent-stripe"
)

// Checker errors.
var (
	ErrSplit           = errors.New("split: a split neither committed nor rolled back")
	ErrGeneration      = errors.New("split: a generation went down")
	ErrMap             = errors.New("split: the compute's shard count went down")
	ErrRetriedInternal = errors.New("split: the page client retried an Internal error")
	ErrNoProgress      = errors.New("split: no progress after healing")
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
	// opTimeout bounds one append, commit wait or direct page request.
	opTimeout = 3 * time.Second
	// livenessBudget bounds each convergence wait after healing.
	livenessBudget = 60 * time.Second
)

func tenant() shard.TenantID       { return shard.TenantID{0x5b, 0x11, 7} }
func timelineID() shard.TimelineID { return shard.TimelineID{0x71, 0x5b} }
func relation() keys.RelTag {
	return keys.RelTag{SpcNode: 1663, DbNode: 5, RelNode: 16401, ForkNum: keys.ForkMain}
}
func ptr[T any](v T) *T { return &v }
func tsid(idx shard.ShardIndex) shard.TenantShardID {
	return shard.TenantShardID{TenantID: tenant(), Shard: idx}
}

// Scenario returns the registered split scenario.
func Scenario() sim.Scenario {
	return sim.Scenario{
		Name: "split",
		Doc:  "the controller splits a tenant (0→2→4 or 2→4) on 2-3 pageservers while a compute writes and reads through the rich page client, under controller and pageserver crashes (some right at a split), partitions, slow links and object store use; every read correct, every split all-or-nothing, generations and shard counts never go down",
		Bugs: []sim.Bug{
			{Name: BugChildServesUnownedKey, Doc: "a split child answers a block another child owns (caught: a probe answered instead of refused)"},
			{Name: BugReassembleOutOfOrder, Doc: "the page client puts a split batch's answers back in shard order, not request order (caught: a page that is not the block's)"},
			{Name: BugClientRetriesInternal, Doc: "the page client retries an attempt that failed Internal (caught: a retry counted under Internal)"},
			{Name: BugCommitSplitEarly, Doc: "the controller commits the split in its store before every parent has split on its pageserver; a crash in between leaves children without data (caught: wrong or missing pages, or no progress)"},
			{Name: BugRouteWithParentStripe, Doc: "the pageserver routes a request addressed to a split parent by the parent's stripe, not the children's (caught: a read refused as sent to the wrong shard)"},
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
	// initial is the tenant's shard count at creation (0 or 2), stripe
	// its stripe; newStripe the stripe of the first split from unsharded
	// (0: keep).
	initial   shard.ShardCount
	stripe    uint32
	newStripe uint32
	conf      pageapi.TenantConf
	safety    bool

	// Targeted controller crashes around a pageserver's shard_split call.
	targetRand *rand.Rand
	targetProb float64
	targeted   int

	bugs struct {
		ps     ps.Bugs
		sc     storcon.Bugs
		client pageclient.Bugs
	}
	comp *compute
}

func run(w *sim.World) error {
	rng := w.Rand()
	c := &cluster{w: w, h: &pagecheck.History{Start: startLSN}, targetRand: w.NewRand("targeted-crash")}
	c.o = newObserver(c)
	nSK := sim.Swarm(w, "safekeepers", []int{1, 3}[rng.IntN(2)])
	c.nPS = sim.Swarm(w, "pageservers", 2+rng.IntN(2))
	initial := []int{0, 2}[rng.IntN(2)]
	if w.Bug(BugRouteWithParentStripe) {
		initial = 0 // the bug needs a split that changes the stripe
	}
	c.initial = shard.ShardCount(sim.Swarm(w, "initial_shards", initial))
	c.stripe = sim.Swarm(w, "stripe_pages", uint32(1+rng.IntN(4)))
	if c.initial == 0 && (rng.IntN(2) == 0 || w.Bug(BugRouteWithParentStripe)) {
		c.newStripe = c.stripe + uint32(1+rng.IntN(3))
	}
	sim.Swarm(w, "new_stripe_pages", c.newStripe)
	c.targetProb = sim.Swarm(w, "targeted_crash_prob", []float64{0.1, 0.3, 0.6}[rng.IntN(3)])
	safety := sim.Swarm(w, "safety", time.Duration(15+rng.IntN(15))*time.Second)
	checkpoint := sim.Swarm(w, "checkpoint_distance", int64(16<<10)<<rng.IntN(3))
	horizon := sim.Swarm(w, "gc_horizon", uint64(8<<10)<<rng.IntN(4))
	threshold, images := 2+rng.IntN(3), 1+rng.IntN(3)
	c.conf = pageapi.TenantConf{
		CheckpointDistance: &checkpoint, CompactionThreshold: &threshold, ImageCreationThreshold: &images,
		GCHorizon: &horizon, CheckpointTimeout: ptr("2s"), CompactionPeriod: ptr("1s"), GCPeriod: ptr("2s"),
	}
	c.bugs.ps = ps.Bugs{ChildServesUnownedKey: w.Bug(BugChildServesUnownedKey), RouteWithParentStripe: w.Bug(BugRouteWithParentStripe)}
	c.bugs.sc = storcon.Bugs{CommitSplitEarly: w.Bug(BugCommitSplitEarly)}
	c.bugs.client = pageclient.Bugs{ReassembleOutOfOrder: w.Bug(BugReassembleOutOfOrder), RetryInternal: w.Bug(BugClientRetriesInternal)}

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
				PublishInterval: 200 * time.Millisecond, CallTimeout: time.Second})
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
		skew(w.AddNode(pagecheck.PageserverID(i), func(env node.Env) error {
			_, err := ps.Start(env, c.pageserverConfig(env, i))
			return err
		}))
		pss = append(pss, pagecheck.PageserverID(i))
	}
	cl := w.AddNode(clientID, func(node.Env) error { return nil })
	api := storconapi.Client{HTTP: net.DialHTTP{Net: cl.Env().Net, Addr: controllerAddr}}
	d := &driver{c: c, env: cl.Env(), api: api, op: pagecheck.Operator{Env: cl.Env(), API: api, Sleep: w.Sleep, OpTimeout: opTimeout}}
	if err := d.setup(); err != nil {
		return err
	}
	c.comp = newCompute(c)
	w.AddNode(computeID, c.comp.start)
	if err := d.waitUploaded(); err != nil {
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
	}
	sim.Swarm(w, "nemesis", nem.String())

	w.Phase("safety")
	c.safety = true
	if err := w.StartNemesis(nem); err != nil {
		return err
	}
	w.Go("splitter", func(context.Context) { d.splitter(safety) })
	w.Sleep(safety)
	if err := c.failure(); err != nil {
		return err
	}

	w.Phase("liveness")
	c.safety = false
	w.HealAll()
	return d.liveness()
}

// failure is the first violation any checker recorded.
func (c *cluster) failure() error {
	if err := c.h.Failure(); err != nil {
		return err
	}
	return c.o.failure()
}

func (c *cluster) controllerConfig(env node.Env) storcon.Config {
	cfg := pagecheck.ControllerConfig(controllerAddr,
		func(addr string) net.HTTPClient { return psSpy{c: c, inner: net.DialHTTP{Net: env.Net, Addr: addr}} },
		hookSpy{o: c.o, inner: net.DialHTTP{Net: env.Net, Addr: hookAddr}})
	cfg.Bugs = c.bugs.sc
	return cfg
}

func (c *cluster) pageserverConfig(env node.Env, i int) ps.Config {
	return ps.Config{
		NodeID: uint64(i), PageAddr: pagecheck.PageserverPageAddr(i), HTTPAddr: pagecheck.PageserverHTTPAddr(i),
		ControlPlane:    net.DialHTTP{Net: env.Net, Addr: controllerAddr},
		ReAttachRetries: 1000, ReAttachBackoff: 100 * time.Millisecond, ReAttachBackoffMax: time.Second, ReAttachTimeout: 3 * time.Second,
		PageService: ps.PageServiceConfig{WaitLSNTimeout: 2 * time.Second},
		WALReceiver: ps.WALReceiverConfig{BrokerAddr: brokerAddr, PollInterval: 200 * time.Millisecond,
			StallTimeout: 2 * time.Second, CallTimeout: time.Second},
		Bugs: c.bugs.ps,
	}
}
