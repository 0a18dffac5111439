package storcon

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/stratadb/strata/clock"
	"github.com/stratadb/strata/engine/layer"
	"github.com/stratadb/strata/engine/shard"
	"github.com/stratadb/strata/net"
	"github.com/stratadb/strata/nodes/node"
	"github.com/stratadb/strata/nodes/storcon"
	"github.com/stratadb/strata/nodes/storcon/persist"
	"github.com/stratadb/strata/nodes/storcon/storconapi"
	"github.com/stratadb/strata/sim/scenarios/pagecheck"
)

// Shared database and leadership hand-overs (seeds drawing shared_db).
//
// The controllers keep their state in a database several processes share
// — PostgreSQL in production, here persist.Remote to a persist.Server on
// the "db" node (a crash-safe DiskStore on that node's disk). Two
// controller slots exist (nodes "storcon" and "storcon-2"); the leader's
// node runs the controller, the other idles (its restarts start nothing).
// A hand-over starts the other slot's controller — its real start-up asks
// the old one to step down — while the old one may still run:
//
//   - clean: the old controller is reachable; once asked, it answers 503
//     to everything, and the pageservers, whose control-plane address
//     still leads to it, move to the new one at random moments within the
//     window. Should the step-down fail (a nemesis partition between the
//     two), the orchestrator stops the old process at once, as a rolling
//     deployment would, so no two controllers ever both reach the
//     database;
//   - fenced: a partition puts the old controller and a minority of the
//     pageservers on one side, the new controller, the database, the
//     compute hook and the other pageservers on the other (the client, an
//     observer, reaches both); the minority keeps talking to the old
//     controller for the whole window. The new controller gives up on
//     stepping it down, finds the minority unreachable and moves their
//     attached shards away with new generations. The old one, with
//     memory that no longer matches the database, still answers the
//     minority — and the prober — until the window ends and it is
//     stopped. A validate that trusts memory says valid to a generation
//     the database has moved past (the planted bug ValidateMemoryOnly).

// Node ids and addresses of the shared-database mode.
const (
	dbID   = "db"
	dbAddr = "db:5432"
)

func ctlID(slot int) string {
	if slot == 0 {
		return "storcon"
	}
	return fmt.Sprintf("storcon-%d", slot+1)
}

func ctlAddr(slot int) string { return ctlID(slot) + ":1234" }

// Hand-over bounds.
const (
	// stepDownTimeout bounds a new controller's attempts to step the old
	// one down (and, halved, the old one's wait for its calls under way).
	stepDownTimeout = 2 * time.Second
	// storeCallTimeout bounds one call to the shared database.
	storeCallTimeout = time.Second
	// stopSettle is how long the orchestrator waits, after stopping an old
	// controller that did not step down, before the new one goes on: a
	// store write the old one had started on the database ends meanwhile.
	stopSettle = 100 * time.Millisecond
)

// ctlClient is an HTTP client to whichever controller slot target names
// when a call is made: the pageservers' control-plane address, the
// client's API address.
type ctlClient struct {
	env    node.Env
	target func() int
}

func (c ctlClient) Do(ctx context.Context, req *net.HTTPRequest, in, out any) (int, error) {
	return net.DialHTTP{Net: c.env.Net, Addr: ctlAddr(c.target())}.Do(ctx, req, in, out)
}

func (c ctlClient) String() string { return "seam http " + ctlAddr(c.target()) }

// startController boots controller slot's node: the controller if the slot
// leads, nothing otherwise.
func (c *cluster) startController(env node.Env, slot int) error {
	if slot != c.leader {
		env.Log.Info("idle: another controller slot leads")
		return nil
	}
	cfg := c.controllerConfig(env, slot)
	if c.shared {
		st, err := persist.NewRemote(env.Clock, net.DialHTTP{Net: env.Net, Addr: dbAddr}, persist.RemoteConfig{CallTimeout: storeCallTimeout})
		if err != nil {
			return err
		}
		cfg.Store = st
		cfg.StepDownTimeout = stepDownTimeout
		if c.old >= 0 && c.old != slot {
			cfg.Predecessor = stepDownSpy{c: c, old: c.old, inner: net.DialHTTP{Net: env.Net, Addr: ctlAddr(c.old)}}
		}
	}
	_, err := storcon.Start(env, cfg)
	return err
}

// stepDownSpy is the new controller's client for the old one. It plays the
// orchestrator's part in a clean hand-over: a step-down that fails leaves
// a process that still reaches the database, so it is stopped.
type stepDownSpy struct {
	c     *cluster
	old   int
	inner net.HTTPClient
}

func (s stepDownSpy) Do(ctx context.Context, req *net.HTTPRequest, in, out any) (int, error) {
	st, err := s.inner.Do(ctx, req, in, out)
	c := s.c
	switch {
	case err == nil:
		c.steppedDown++
	case !c.fenced && c.old == s.old && c.w.Node(ctlID(s.old)).Up():
		c.w.Log().Info("hand-over: the old controller did not step down; the orchestrator stops it", "old", ctlID(s.old), "err", err)
		c.w.Stop(ctlID(s.old))
		c.w.Sleep(stopSettle)
	}
	return st, err
}

func (s stepDownSpy) String() string { return fmt.Sprint(s.inner) }

// startDB boots the shared database: a store server of a DiskStore on the
// node's disk, whose commits of generations the observer records.
func (c *cluster) startDB(env node.Env) error {
	srv := persist.NewServer(env.Clock, env.Log, func() (persist.Store, error) {
		ds, err := persist.OpenDisk(env.Clock, env.Disk, "storcon-db", persist.DiskConfig{})
		if err != nil {
			return nil, err
		}
		return dbSpy{Store: ds, o: c.o, clk: env.Clock, rng: env.Rand, lostProb: c.dbLostProb}, nil
	})
	if err := srv.Open(context.Background()); err != nil {
		return err
	}
	rt := net.NewRouter()
	srv.Register(rt)
	mux := net.NewMux()
	rt.Register(mux)
	_, err := env.Net.Listen(dbAddr, mux)
	return err
}

// dbSpy is the database's store, telling the observer every generation it
// commits: the ground truth a validate answer is checked against. It also
// loses answers: with probability lostProb a write that committed holds
// its answer past the caller's storeCallTimeout, so the controller sees an
// unknown outcome for a write that happened (FoundationDB's
// commit_unknown_result) — the case nodes/storcon/unsure.go resolves.
type dbSpy struct {
	persist.Store
	o        *observer
	clk      clock.Clock
	rng      *rand.Rand
	lostProb float64
}

// lostAnswerHold is how long a lost answer is held: past the caller's
// timeout.
const lostAnswerHold = 2 * storeCallTimeout

// answer returns err after a committed write, first holding it past the
// caller's timeout with probability lostProb.
func (d dbSpy) answer(ctx context.Context, err error) error {
	if err == nil && d.lostProb > 0 && d.rng.Float64() < d.lostProb {
		_ = clock.Sleep(ctx, d.clk, lostAnswerHold)
	}
	return err
}

func (d dbSpy) InsertTenantShards(ctx context.Context, rows []persist.TenantShard) error {
	return d.answer(ctx, d.Store.InsertTenantShards(ctx, rows))
}

func (d dbSpy) UpdateTenantShards(ctx context.Context, sel persist.Selector, u persist.ShardUpdate) error {
	return d.answer(ctx, d.Store.UpdateTenantShards(ctx, sel, u))
}

func (d dbSpy) DeleteTenant(ctx context.Context, t shard.TenantID) error {
	return d.answer(ctx, d.Store.DeleteTenant(ctx, t))
}

func (d dbSpy) SetNodeSchedulingPolicy(ctx context.Context, id persist.NodeID, policy string) error {
	return d.answer(ctx, d.Store.SetNodeSchedulingPolicy(ctx, id, policy))
}

func (d dbSpy) IncrementGeneration(ctx context.Context, id shard.TenantShardID, node persist.NodeID) (layer.Generation, error) {
	g, err := d.Store.IncrementGeneration(ctx, id, node)
	if err == nil {
		d.o.dbCommitted(id, uint32(g))
	}
	return g, d.answer(ctx, err)
}

func (d dbSpy) ReAttach(ctx context.Context, node persist.NodeID) ([]persist.TenantShard, error) {
	rows, err := d.Store.ReAttach(ctx, node)
	if err == nil {
		for _, r := range rows {
			d.o.dbCommitted(r.ID, uint32(r.Generation))
		}
	}
	return rows, err
}

// handovers runs n hand-overs, one after another, during the safety
// phase; each starts after a pause drawn with mean gap.
func (c *cluster) handovers(n int, gap time.Duration) {
	w := c.w
	rng := w.NewRand("handover")
	defer func() { c.handing = false }()
	for range n {
		w.Sleep(time.Duration((0.5 + rng.Float64()) * float64(gap)))
		if !c.safety {
			return
		}
		fence := rng.IntN(3) != 0
		window := time.Duration(1000+rng.IntN(3000)) * time.Millisecond
		var minority []int
		if fence {
			// Long enough for the new controller to give up on the old
			// one (stepDownTimeout), start and move the minority's shards.
			window = time.Duration(5000+rng.IntN(4000)) * time.Millisecond
			perm := rng.Perm(c.nPS)
			minority = perm[:1+rng.IntN(c.nPS-1)]
			for i := range minority {
				minority[i]++
			}
			slices.Sort(minority)
		}
		c.handover(rng, minority, window)
	}
}

// handover replaces the leading controller by the other slot's (see the
// top of this file); minority, if not empty, fences the old controller
// off with those pageservers for the window. rng draws when each other
// pageserver moves over.
func (c *cluster) handover(rng *rand.Rand, minority []int, window time.Duration) {
	w := c.w
	old, nw := c.leader, 1-c.leader
	fence := len(minority) > 0
	var heals []func()
	if fence {
		cutOff := []string{ctlID(nw), dbID, hookID}
		for i := 1; i <= c.nPS; i++ {
			if !slices.Contains(minority, i) {
				cutOff = append(cutOff, pagecheck.PageserverID(i))
			}
		}
		for _, id := range cutOff {
			heals = append(heals, w.Net().Cut(ctlID(old), id), w.Net().Cut(id, ctlID(old)))
		}
		// The minority is the old controller's side of the partition: the
		// new one cannot reach it either, so it learns what the old one did
		// there only once the partition heals (its locations unknown until
		// then), never before.
		for _, i := range minority {
			heals = append(heals, w.Net().Cut(ctlID(nw), pagecheck.PageserverID(i)), w.Net().Cut(pagecheck.PageserverID(i), ctlID(nw)))
		}
		c.fencedHandovers++
	}
	w.Log().Info("hand-over: a new controller takes over", "old", ctlID(old), "new", ctlID(nw), "fenced_with", minority, "window", window)
	c.handoverCount++
	c.old, c.fenced, c.leader = old, fence, nw
	w.Restart(ctlID(nw))
	for i := 1; i <= c.nPS; i++ {
		if slices.Contains(minority, i) {
			continue
		}
		d := time.Duration(rng.Float64() * float64(window))
		w.Go(fmt.Sprintf("hand-over ps-%d", i), func(context.Context) {
			w.Sleep(d)
			if c.old == old {
				c.psCtl[i] = nw
			}
		})
	}
	w.Sleep(window)
	w.Log().Info("hand-over: the old controller is stopped", "old", ctlID(old))
	w.Stop(ctlID(old))
	for _, h := range heals {
		h()
	}
	for i := 1; i <= c.nPS; i++ {
		c.psCtl[i] = nw
	}
	c.old, c.fenced = -1, false
}

// controllers lists the controller slots a pageserver may reach now: the
// leader and, during a hand-over, the old one.
func (c *cluster) controllers() []int {
	if c.old >= 0 {
		return []int{c.leader, c.old}
	}
	return []int{c.leader}
}

// validateAt asks controller slot to validate req.
func (wl *workload) validateAt(slot int, req storconapi.ValidateRequest) (storconapi.ValidateResponse, error) {
	ctx, cancel := wl.ctx()
	defer cancel()
	api := storconapi.Client{HTTP: net.DialHTTP{Net: wl.env.Net, Addr: ctlAddr(slot)}}
	return api.Validate(ctx, req)
}
