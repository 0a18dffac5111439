package storcon

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/stratadb/strata/engine/shard"
	"github.com/stratadb/strata/net"
	"github.com/stratadb/strata/nodes/node"
	ps "github.com/stratadb/strata/nodes/pageserver"
	"github.com/stratadb/strata/nodes/storcon"
	"github.com/stratadb/strata/nodes/storcon/computehook"
	"github.com/stratadb/strata/nodes/storcon/storconapi"
	"github.com/stratadb/strata/sim"
	"github.com/stratadb/strata/sim/scenarios/pagecheck"
	"github.com/stratadb/strata/sim/simnet"
)

// Planted bug names (storcon.Bugs). BugValidateMemoryOnly needs a second
// controller process: with one, memory takes each generation right after
// the store does, so validating from memory answers what validating from
// the store would; it is caught in the shared-database seeds, where a
// fenced hand-over leaves an old controller running with memory the
// database has moved past (handover.go).
const (
	BugGenerationPersistAfterAttach = "storcon-generation-persist-after-attach"
	BugReAttachNoBump               = "storcon-reattach-no-bump"
	BugValidateMemoryOnly           = "storcon-validate-memory-only"
	BugNotifyBeforeAllShards        = "storcon-notify-before-all-shards"
	BugDrainDetachFirst             = "storcon-drain-detach-first"
	BugIgnoreLostWrites             = "storcon-ignore-lost-writes"
)

// Node ids and addresses (the controllers': ctlID, ctlAddr).
const (
	hookID   = "compute-hook"
	hookAddr = "compute-hook:8080"
	clientID = "client"
)

// Scenario returns the registered storcon scenario.
func Scenario() sim.Scenario {
	return sim.Scenario{
		Name: "storcon",
		Doc:  "the storage controller placing sharded and unsharded tenants on 2-5 pageservers (create, delete, timelines, policies, migrate, drain, fill) under controller and pageserver crashes (incl. lost disks), partitions and slow links, and (half the seeds) leadership hand-overs between controllers sharing a database; generations only increase, never two valid AttachedSingle, compute told the truth, intent reached after healing",
		Bugs: []sim.Bug{
			{Name: BugGenerationPersistAfterAttach, Doc: "a new generation is bumped in memory and sent to the pageserver before it is persisted; a controller crash in between hands the same generation out again (caught: a generation described or validated below one already handed out, or one generation on two nodes)"},
			{Name: BugReAttachNoBump, Doc: "re-attach answers the stored generation instead of a new one (caught: a re-attach answer not above the generation the node was given before)"},
			{Name: BugValidateMemoryOnly, Doc: "validate trusts the controller's memory and never reads the store (caught in the shared-database seeds: an old controller, fenced off during a hand-over while some pageservers still reach it, validates a generation the database had moved past before the call)"},
			{Name: BugNotifyBeforeAllShards, Doc: "compute is notified as soon as any shard of a tenant is attached (caught: a notification that lacks some of the tenant's shards)"},
			{Name: BugDrainDetachFirst, Doc: "a drain detaches the old location before the new one is attached (caught: a move that takes a must-stay-attached shard's only attached location away from a live node)"},
			{Name: BugIgnoreLostWrites, Doc: "a store write whose answer was lost counts as not done: memory is never brought back to the store (caught in the shared-database seeds, whose database is faulted: no convergence after healing, or a tenant lost or resurrected)"},
		},
		Run:            run,
		MaxVirtualTime: 5 * time.Minute,
		CISeeds:        4,
		BugSeeds:       20,
	}
}

// cluster is one seed's world: the drawn shape, the model and the
// checkers' observer.
type cluster struct {
	w   *sim.World
	m   *model
	o   *observer
	nPS int
	// wipe marks pageservers whose next start begins with an empty disk.
	wipe map[int]bool
	recv *computehook.Receiver
	// safety is true while faults are injected.
	safety bool

	// Targeted controller crashes: right after a location_config that
	// handed out a new generation, with probability targetProb, at most
	// maxTargeted times, also cutting the controller off from that
	// pageserver for a while.
	targetRand  *rand.Rand
	targetProb  float64
	targeted    int
	maxTargeted int

	timing controllerTiming
	bugs   storcon.Bugs

	// shared: the controllers keep their state in the shared database (the
	// db node) and leadership hand-overs run (handover.go); otherwise one
	// controller keeps it in its embedded store.
	shared bool
	// dbLostProb: the share of the shared database's committed writes
	// whose answer is lost (dbSpy).
	dbLostProb float64
	// leader is the controller slot whose node runs the controller; old is
	// the slot being replaced during a hand-over (-1: none), fenced whether
	// that hand-over cut it off. handing: hand-overs are still to come or
	// under way.
	leader, old     int
	fenced, handing bool
	// psCtl is the controller slot each pageserver's control-plane address
	// leads to.
	psCtl map[int]int
	// Hand-over counts.
	handoverCount, fencedHandovers, steppedDown int
}

// controllerTiming are the controller's intervals and timeouts, short so
// that a seed covers many heartbeats, reconciles and restarts in virtual
// time.
type controllerTiming struct {
	heartbeat, offlineAfter, reconcileAll time.Duration
}

func (c *cluster) controllerConfig(env node.Env, slot int) storcon.Config {
	t := c.timing
	return storcon.Config{
		ListenAddr: ctlAddr(slot),
		DialPageserver: func(addr string) net.HTTPClient {
			return psSpy{o: c.o, inner: net.DialHTTP{Net: env.Net, Addr: addr}, node: uint64(pagecheck.PageserverOfAddr(addr)),
				afterNewGen: func(node uint64, id shard.TenantShardID) { c.afterNewGen(slot, node, id) }}
		},
		ComputeHook:                hookSpy{o: c.o, inner: net.DialHTTP{Net: env.Net, Addr: hookAddr}},
		HeartbeatInterval:          t.heartbeat,
		HeartbeatTimeout:           t.heartbeat / 2,
		OfflineAfter:               t.offlineAfter,
		WarmingUpTimeout:           4 * t.offlineAfter,
		LocationConfigTimeout:      time.Second,
		LocationConfigBackoff:      100 * time.Millisecond,
		PageserverTimeout:          time.Second,
		ReconcileAllInterval:       t.reconcileAll,
		ReconcileWait:              4 * time.Second,
		StartupBudget:              4 * time.Second,
		StartupNodeTimeout:         500 * time.Millisecond,
		StartupNodeRetries:         2,
		StartupWait:                5 * time.Second,
		ComputeHookTimeout:         500 * time.Millisecond,
		ComputeHookRetries:         4,
		ComputeHookBusyWait:        200 * time.Millisecond,
		MaxConcurrentNotifications: 4,
		MigrationLSNWait:           time.Second,
		MigrationTimeout:           10 * time.Second,
		DrainFillConcurrency:       2,
		NodeDeleteTimeout:          20 * time.Second,
		Bugs:                       c.bugs,
	}
}

func (c *cluster) pageserverConfig(env node.Env, i int) ps.Config {
	return ps.Config{
		NodeID: uint64(i), PageAddr: pagecheck.PageserverPageAddr(i), HTTPAddr: pagecheck.PageserverHTTPAddr(i),
		ControlPlane:    cpSpy{o: c.o, inner: ctlClient{env: env, target: func() int { return c.psCtl[i] }}, node: uint64(i)},
		ReAttachRetries: 1000, ReAttachBackoff: 100 * time.Millisecond, ReAttachBackoffMax: time.Second, ReAttachTimeout: 3 * time.Second,
	}
}

// startPageserver boots pageserver i, first emptying its disk if it was
// marked as lost (the wipe is made durable before the mark is cleared, so
// a crash during it wipes again).
func (c *cluster) startPageserver(env node.Env, i int) error {
	if c.wipe[i] {
		if err := pagecheck.WipeDisk(env); err != nil {
			return err
		}
		delete(c.wipe, i)
		env.Log.Info("started with an empty disk (the old one was lost)")
	}
	_, err := ps.Start(env, c.pageserverConfig(env, i))
	return err
}

// afterNewGen is the targeted crash: called in controller slot's task once
// a location_config handing out a new generation was answered.
func (c *cluster) afterNewGen(slot int, node uint64, id shard.TenantShardID) {
	if !c.safety || c.targeted >= c.maxTargeted || c.targetRand.Float64() >= c.targetProb {
		return
	}
	c.targeted++
	w := c.w
	d := time.Duration(500+c.targetRand.IntN(4000)) * time.Millisecond
	tear := c.targetRand.IntN(2) == 0
	w.Log().Info("targeted crash: controller right after handing out a new generation", "node", node, "tenant_shard_id", id, "isolate", d)
	from, to := ctlID(slot), pagecheck.PageserverID(int(node))
	heal1, heal2 := w.Net().Cut(from, to), w.Net().Cut(to, from)
	w.Go("targeted-heal", func(context.Context) {
		w.Sleep(d)
		heal1()
		heal2()
	})
	w.Crash(ctlID(slot), tear) // does not return
}

// diskLoss crashes a random pageserver now and then and marks its disk
// lost; the nemesis' supervisor restarts it on an empty one.
func (c *cluster) diskLoss(mean time.Duration) {
	w := c.w
	rng := w.NewRand("disk-loss")
	for c.safety {
		w.Sleep(time.Duration(rng.ExpFloat64() * float64(mean)))
		if !c.safety {
			return
		}
		i := 1 + rng.IntN(c.nPS)
		w.Log().Info("nemesis: pageserver loses its disk", "target", pagecheck.PageserverID(i))
		c.wipe[i] = true
		w.Crash(pagecheck.PageserverID(i), false)
	}
}

func run(w *sim.World) error {
	rng := w.Rand()
	c := &cluster{w: w, m: newModel(), wipe: map[int]bool{}, recv: computehook.NewReceiver(""), targetRand: w.NewRand("targeted-crash"),
		old: -1, psCtl: map[int]int{}}
	c.o = newObserver(w, c.m)
	c.nPS = sim.Swarm(w, "pageservers", 2+rng.IntN(4))
	c.timing = controllerTiming{
		heartbeat:    time.Duration(300+rng.IntN(700)) * time.Millisecond,
		offlineAfter: time.Duration(2+rng.IntN(3)) * time.Second,
		reconcileAll: time.Duration(1+rng.IntN(3)) * time.Second,
	}
	sim.Swarm(w, "timing", fmt.Sprintf("heartbeat=%v offline=%v reconcile_all=%v", c.timing.heartbeat, c.timing.offlineAfter, c.timing.reconcileAll))
	safety := sim.Swarm(w, "safety", time.Duration(20+rng.IntN(20))*time.Second)
	workers := sim.Swarm(w, "workers", 1+rng.IntN(3))
	think := sim.Swarm(w, "think", time.Duration(50+rng.IntN(300))*time.Millisecond)
	c.targetProb = sim.Swarm(w, "targeted_crash_prob", []float64{0.05, 0.15, 0.3}[rng.IntN(3)])
	c.maxTargeted = 3
	diskLossMean := sim.Swarm(w, "disk_loss_mean", time.Duration(5+rng.IntN(20))*time.Second)
	c.bugs = storcon.Bugs{
		GenerationPersistAfterAttach: w.Bug(BugGenerationPersistAfterAttach),
		ReAttachNoBump:               w.Bug(BugReAttachNoBump),
		ValidateMemoryOnly:           w.Bug(BugValidateMemoryOnly),
		NotifyBeforeAllShards:        w.Bug(BugNotifyBeforeAllShards),
		DrainDetachFirst:             w.Bug(BugDrainDetachFirst),
		IgnoreLostWrites:             w.Bug(BugIgnoreLostWrites),
	}

	lat := simnet.Latency{
		Base:     time.Duration(100+rng.IntN(400)) * time.Microsecond,
		Jitter:   time.Duration(100+rng.IntN(1900)) * time.Microsecond,
		TailProb: 0.02 * rng.Float64(),
		Tail:     time.Duration(1+rng.IntN(30)) * time.Millisecond,
	}
	sim.Swarm(w, "net_latency", fmt.Sprintf("%v+%v tail %.3f/%v", lat.Base, lat.Jitter, lat.TailProb, lat.Tail))
	w.UseNet(simnet.Options{Latency: lat, DeadLinkTimeout: 2 * time.Second})

	skew := func(n *sim.Node) {
		n.SetClock(time.Duration(rng.IntN(4000)-2000)*time.Millisecond, float64(rng.IntN(400)-200)*1e-6)
	}
	syncLatency := func(n *sim.Node, maxSync time.Duration) {
		n.SetDiskLatency(func(op string) time.Duration {
			if op == "sync" || op == "syncdir" {
				return time.Duration(1 + n.FaultRand().Int64N(int64(maxSync)))
			}
			return 0
		})
	}

	w.AddNode(hookID, func(env node.Env) error {
		rt := net.NewRouter()
		c.recv.Register(rt)
		mux := net.NewMux()
		rt.Register(mux)
		_, err := env.Net.Listen(hookAddr, mux)
		return err
	})
	// The shared-database mode draws from its own source, so that the
	// other seeds draw exactly what they drew before it existed.
	srng := w.NewRand("shared-db")
	c.shared = sim.Swarm(w, "shared_db", srng.IntN(2) == 0)
	ctlSlots := 1
	if c.shared {
		ctlSlots = 2
		c.dbLostProb = sim.Swarm(w, "db_lost_answers", []float64{0.01, 0.03, 0.08}[srng.IntN(3)])
		db := w.AddNode(dbID, c.startDB)
		syncLatency(db, time.Duration(1+srng.IntN(5))*time.Millisecond)
	}
	ctl := w.AddNode(ctlID(0), func(env node.Env) error { return c.startController(env, 0) })
	skew(ctl)
	syncLatency(ctl, time.Duration(1+rng.IntN(5))*time.Millisecond)
	var ctls []string
	for slot := range ctlSlots {
		ctls = append(ctls, ctlID(slot))
		if slot > 0 {
			n := w.AddNode(ctlID(slot), func(env node.Env) error { return c.startController(env, slot) })
			n.SetClock(time.Duration(srng.IntN(4000)-2000)*time.Millisecond, float64(srng.IntN(400)-200)*1e-6)
		}
	}
	var pss []string
	for i := 1; i <= c.nPS; i++ {
		n := w.AddNode(pagecheck.PageserverID(i), func(env node.Env) error { return c.startPageserver(env, i) })
		skew(n)
		syncLatency(n, 2*time.Millisecond)
		pss = append(pss, pagecheck.PageserverID(i))
	}
	cl := w.AddNode(clientID, func(node.Env) error { return nil })
	wl := &workload{c: c, env: cl.Env(), rng: w.NewRand("workload"),
		api:          storconapi.Client{HTTP: ctlClient{env: cl.Env(), target: func() int { return c.leader }}},
		unknownSince: map[shard.TenantID]time.Duration{}, outcomes: map[string]int{}}

	// The shared database is faulted like the rest: a crash or a cut
	// link loses the answers of store writes that took effect, which the
	// controller must resolve (nodes/storcon/unsure.go).
	var dbs []string
	if c.shared {
		dbs = []string{dbID}
	}
	nem := sim.Nemesis{
		Crashable:     append(append(slices.Clone(ctls), pss...), dbs...),
		CrashMean:     time.Duration(2000+rng.IntN(5000)) * time.Millisecond,
		TearProb:      rng.Float64(),
		StopProb:      0.2 * rng.Float64(),
		RestartAfter:  time.Duration(100+rng.IntN(1400)) * time.Millisecond,
		Linked:        append(append(append(slices.Clone(ctls), hookID, clientID), pss...), dbs...),
		PartitionMean: time.Duration(1+rng.IntN(5)) * time.Second,
		PartitionFor:  time.Duration(200+rng.IntN(2000)) * time.Millisecond,
		OneWayProb:    0.3,
		BreakMean:     time.Duration(1+rng.IntN(4)) * time.Second,
		SlowMean:      time.Duration(1+rng.IntN(5)) * time.Second,
		SlowLatency:   simnet.Latency{Base: 5 * time.Millisecond, Jitter: 40 * time.Millisecond},
	}
	sim.Swarm(w, "nemesis", nem.String())

	w.Phase("safety")
	c.safety = true
	stopPollers := false
	w.Go("describer", func(context.Context) { wl.describer(time.Duration(200+rng.IntN(300))*time.Millisecond, &stopPollers) })
	w.Go("prober", func(context.Context) { wl.prober(time.Duration(100+rng.IntN(300))*time.Millisecond, &stopPollers) })
	for i := range workers {
		w.Go(fmt.Sprintf("worker-%d", i), func(context.Context) { wl.worker(think) })
	}
	if err := w.StartNemesis(nem); err != nil {
		return err
	}
	w.Go("disk-loss", func(context.Context) { c.diskLoss(diskLossMean) })
	if c.shared {
		n := sim.Swarm(w, "handovers", 1+srng.IntN(3))
		c.handing = true
		w.Go("hand-overs", func(context.Context) { c.handovers(n, safety/time.Duration(n+1)) })
	}
	w.Sleep(safety)

	w.Phase("liveness")
	c.safety = false
	for c.handing {
		w.Sleep(100 * time.Millisecond) // a hand-over under way ends first
	}
	wl.stopped = true
	w.HealAll()
	err := c.liveness(wl)
	stopPollers = true
	c.o.stats()
	wl.stats()
	if c.shared {
		sim.Stat(w, "handovers", c.handoverCount)
		sim.Stat(w, "handovers_fenced", c.fencedHandovers)
		sim.Stat(w, "stepped_down", c.steppedDown)
	}
	return err
}
