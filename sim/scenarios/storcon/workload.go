package storcon

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/stratadb/strata/clock"
	"github.com/stratadb/strata/engine/placement"
	"github.com/stratadb/strata/engine/shard"
	"github.com/stratadb/strata/net"
	"github.com/stratadb/strata/nodes/node"
	"github.com/stratadb/strata/nodes/pageserver/pageapi"
	"github.com/stratadb/strata/nodes/storcon/storconapi"
	"github.com/stratadb/strata/sim"
	"github.com/stratadb/strata/sim/scenarios/pagecheck"
)

// workload drives the controller's API from the client node: tenants
// (sharded and not) created and deleted, timelines created and deleted,
// placement and scheduling policies changed, shards migrated, nodes
// drained, filled and paused. Every call's outcome goes into the model; a
// call whose outcome is unknown (it timed out, the connection broke)
// leaves the tenant marked unknown, and the describer or the liveness
// phase resolves it from what the controller then describes.
type workload struct {
	c   *cluster
	env node.Env
	api storconapi.Client
	rng *rand.Rand

	stopped bool
	running int
	// unknownSince is when each tenant's last call of unknown outcome
	// ended: the describer resolves it once settle has passed (a late
	// request can no longer land).
	unknownSince map[shard.TenantID]time.Duration
	outcomes     map[string]int
}

// Workload bounds.
const (
	// opTimeout bounds one API call: above the controller's ReconcileWait
	// so that a call that waits for its reconciles normally answers.
	opTimeout = 8 * time.Second
	// maxTenants bounds the tenants alive at once.
	maxTenants = 12
	// settle is how long after a call of unknown outcome the describer
	// trusts a describe to tell its outcome.
	settle = 3 * opTimeout
)

func (wl *workload) count(op string, err error) {
	k := op + " ok"
	if err != nil {
		k = op + " " + net.CodeOf(err).String()
	}
	wl.outcomes[k]++
}

func (wl *workload) ctx() (context.Context, context.CancelFunc) {
	return clock.WithTimeout(wl.env.Clock, context.Background(), opTimeout)
}

// definite reports whether a failed call certainly did nothing: refused
// before it changed anything (bad request, conflict, precondition, not
// found).
func definite(err error) bool {
	switch net.CodeOf(err) {
	case net.InvalidArgument, net.AlreadyExists, net.FailedPrecondition, net.NotFound:
		return true
	}
	return false
}

// worker runs operations until the workload stops.
func (wl *workload) worker(think time.Duration) {
	wl.running++
	defer func() { wl.running-- }()
	w := wl.c.w
	for !wl.stopped {
		w.Sleep(time.Duration(wl.rng.ExpFloat64() * float64(think)))
		if wl.stopped {
			return
		}
		wl.step()
	}
}

// step runs one operation drawn by weight.
func (wl *workload) step() {
	type op struct {
		weight int
		fn     func()
	}
	live := wl.c.m.liveTenants()
	ops := []op{
		{20, wl.create},
		{5, wl.deleteTenant},
		{8, wl.createTimeline},
		{3, wl.deleteTimeline},
		{10, wl.setPolicy},
		{18, wl.migrate},
		{6, wl.drain},
		{4, wl.fill},
		{3, wl.nodePolicy},
	}
	if len(live) == 0 {
		ops = ops[:1]
	}
	total := 0
	for _, o := range ops {
		total += o.weight
	}
	r := wl.rng.IntN(total)
	for _, o := range ops {
		if r < o.weight {
			o.fn()
			return
		}
		r -= o.weight
	}
}

func (wl *workload) pickLive() *tenantModel {
	live := wl.c.m.liveTenants()
	if len(live) == 0 {
		return nil
	}
	return live[wl.rng.IntN(len(live))]
}

func (wl *workload) pickNode() uint64 { return uint64(1 + wl.rng.IntN(wl.c.nPS)) }

func (wl *workload) markUnknown(t shard.TenantID) { wl.unknownSince[t] = wl.c.w.Now() }

func (wl *workload) attachedPolicy() placement.Policy {
	if wl.c.nPS > 1 && wl.rng.IntN(3) == 0 {
		return placement.Attached(1)
	}
	return placement.Attached(0)
}

func (wl *workload) create() {
	m := wl.c.m
	if len(m.liveTenants()) >= maxTenants {
		return
	}
	var id shard.TenantID
	id[0], id[1] = 0x5c, byte(len(m.order))
	for i := 2; i < len(id); i++ {
		id[i] = byte(wl.rng.Uint32())
	}
	t := &tenantModel{id: id, count: []shard.ShardCount{0, 0, 2, 4}[wl.rng.IntN(4)], policy: wl.attachedPolicy(), createUnknown: true}
	if t.count > 0 {
		t.stripe = []uint32{8, 256, shard.DefaultStripeSize}[wl.rng.IntN(3)]
	}
	m.add(t)
	ctx, cancel := wl.ctx()
	_, err := wl.api.CreateTenant(ctx, storconapi.TenantCreateRequest{NewTenantID: id,
		ShardParameters: storconapi.ShardParameters{Count: uint8(t.count), StripeSize: t.stripe}, PlacementPolicy: &t.policy})
	cancel()
	t.version++
	wl.count("create", err)
	switch {
	case err == nil:
		t.created, t.createUnknown = true, false
	case definite(err):
		// All or nothing: a refused create stored nothing.
		t.createUnknown = false
	default:
		wl.markUnknown(id)
	}
}

func (wl *workload) deleteTenant() {
	t := wl.pickLive()
	if t == nil {
		return
	}
	t.inFlight++
	ctx, cancel := wl.ctx()
	err := wl.api.DeleteTenant(ctx, t.id)
	cancel()
	t.inFlight--
	t.version++
	wl.count("delete", err)
	switch {
	case err == nil, net.CodeOf(err) == net.NotFound:
		// Not found: an earlier delete of unknown outcome finished.
		t.deleted, t.deleteUnknown = true, false
	default:
		t.deleteUnknown = true
		wl.markUnknown(t.id)
	}
}

func (wl *workload) createTimeline() {
	t := wl.pickLive()
	if t == nil || len(t.timelines) >= 3 {
		return
	}
	var tl shard.TimelineID
	for i := range tl {
		tl[i] = byte(wl.rng.Uint32())
	}
	ctx, cancel := wl.ctx()
	_, err := wl.api.CreateTimeline(ctx, t.id, pageapi.TimelineCreateRequest{NewTimelineID: tl})
	cancel()
	wl.count("timeline_create", err)
	if err == nil {
		t.timelines = append(t.timelines, tl)
	}
}

func (wl *workload) deleteTimeline() {
	t := wl.pickLive()
	if t == nil || len(t.timelines) == 0 {
		return
	}
	tl := t.timelines[wl.rng.IntN(len(t.timelines))]
	ctx, cancel := wl.ctx()
	err := wl.api.DeleteTimeline(ctx, t.id, tl)
	cancel()
	wl.count("timeline_delete", err)
	if err == nil {
		// By value: another worker may have changed the list meanwhile.
		t.timelines = slices.DeleteFunc(t.timelines, func(x shard.TimelineID) bool { return x == tl })
	}
}

func (wl *workload) setPolicy() {
	t := wl.pickLive()
	if t == nil {
		return
	}
	var req storconapi.TenantPolicyRequest
	p := wl.attachedPolicy()
	switch wl.rng.IntN(8) {
	case 0:
		p = placement.Secondary()
	case 1:
		p = placement.Detached()
	}
	if wl.rng.IntN(4) != 0 {
		req.Placement = &p
	}
	sched := placement.ShardActive
	if wl.rng.IntN(3) == 0 {
		sched = []placement.ShardSchedulingPolicy{placement.ShardEssential, placement.ShardPause, placement.ShardStop}[wl.rng.IntN(3)]
	}
	if req.Placement == nil || wl.rng.IntN(3) == 0 {
		req.Scheduling = &sched
	}
	t.inFlight++
	ctx, cancel := wl.ctx()
	err := wl.api.SetTenantPolicy(ctx, t.id, req)
	cancel()
	t.inFlight--
	t.version++
	wl.count("policy", err)
	switch {
	case err == nil:
		if req.Placement != nil {
			t.policy = p
		}
		if req.Scheduling != nil {
			t.sched = sched
		}
	case net.CodeOf(err) == net.InvalidArgument:
	default:
		t.policyUnknown = true
		wl.markUnknown(t.id)
	}
}

func (wl *workload) migrate() {
	t := wl.pickLive()
	if t == nil {
		return
	}
	ids := t.shardIDs()
	ctx, cancel := wl.ctx()
	err := wl.api.Migrate(ctx, ids[wl.rng.IntN(len(ids))], wl.pickNode())
	cancel()
	wl.count("migrate", err)
}

func (wl *workload) drain() {
	ctx, cancel := wl.ctx()
	err := wl.api.Drain(ctx, wl.pickNode(), wl.rng.IntN(5) == 0)
	cancel()
	wl.count("drain", err)
}

func (wl *workload) fill() {
	ctx, cancel := wl.ctx()
	err := wl.api.Fill(ctx, wl.pickNode(), wl.rng.IntN(5) == 0)
	cancel()
	wl.count("fill", err)
}

func (wl *workload) nodePolicy() {
	p := []placement.NodePolicy{placement.NodeActive, placement.NodePause}[wl.rng.IntN(2)]
	ctx, cancel := wl.ctx()
	err := wl.api.NodeConfig(ctx, wl.pickNode(), storconapi.NodeConfigRequest{Scheduling: &p})
	cancel()
	wl.count("node_policy", err)
}

// describer lists every tenant now and then: each shard's generation is
// checked (it never falls below one handed out), and tenants whose last
// call's outcome was unknown are resolved once settle has passed.
func (wl *workload) describer(every time.Duration, stop *bool) {
	w, o := wl.c.w, wl.c.o
	for !*stop {
		w.Sleep(every)
		before := o.snapshot()
		sent, versions := w.Now(), wl.c.m.versions()
		ctx, cancel := wl.ctx()
		list, err := wl.api.ListTenants(ctx)
		cancel()
		if err != nil {
			continue
		}
		present := map[shard.TenantID]storconapi.TenantDescribe{}
		for _, d := range list {
			present[d.TenantID] = d
			for _, sd := range d.Shards {
				o.describedShard(sd, before)
			}
		}
		if err := wl.resolve(present, false, sent, versions); err != nil {
			o.fail(err)
			return
		}
	}
}

// resolve settles the model's unknown outcomes from a tenant list (all of
// the controller's tenants): during the safety phase only those whose call
// ended more than settle ago, and never a create (a tenant is listed
// before its rows are durable); in the liveness phase (final) all of them,
// and then a tenant acknowledged as created and never deleted must be
// listed, and one acknowledged as deleted must not.
//
// sent is when the list was asked for and versions the tenants' versions
// then: a tenant with a call ended or under way since is left alone.
func (wl *workload) resolve(present map[shard.TenantID]storconapi.TenantDescribe, final bool, sent time.Duration, versions map[shard.TenantID]int) error {
	for _, id := range wl.c.m.order {
		t := wl.c.m.tenants[id]
		d, listed := present[id]
		since, unknown := wl.unknownSince[id]
		if !final && (!unknown || sent-since < settle || t.inFlight > 0 || t.version != versions[id] || t.createUnknown) {
			continue
		}
		switch {
		case listed && t.deleted:
			return fmt.Errorf("%w: tenant %s was deleted (acknowledged) but the controller still lists it", ErrLostTenant, id)
		case !listed && t.created && !t.deleted && !t.deleteUnknown:
			return fmt.Errorf("%w: tenant %s was created (acknowledged) and never deleted, but the controller does not list it", ErrLostTenant, id)
		case listed:
			t.created, t.createUnknown, t.deleteUnknown, t.policyUnknown = true, false, false, false
			t.policy, t.sched = d.Shards[0].Policy, d.Shards[0].Scheduling
		default:
			t.deleted = t.created || t.deleteUnknown
			t.createUnknown, t.deleteUnknown, t.policyUnknown = false, false, false
		}
		delete(wl.unknownSince, id)
	}
	return nil
}

// prober polls every pageserver's locations and asks the controller — and,
// during a hand-over, the old one too — to validate, in one call, every
// generation it saw held in an attached mode: a generation below one
// handed out earlier, or below the shared database's when the call was
// made, must be invalid, and two nodes holding one shard in
// AttachedSingle must never both be valid.
func (wl *workload) prober(every time.Duration, stop *bool) {
	w, o := wl.c.w, wl.c.o
	for !*stop {
		w.Sleep(every)
		holders := map[genKey][]uint64{}
		var req storconapi.ValidateRequest
		asked := map[genKey]bool{}
		for i := 1; i <= wl.c.nPS; i++ {
			node := uint64(i)
			before := o.listVersions(node)
			list, err := wl.listLocations(i, time.Second)
			if err != nil {
				continue
			}
			o.listed(node, list, before, "poll")
			for _, l := range list.TenantShards {
				c := l.Config
				if c == nil || !c.Mode.Attached() || c.Generation == nil {
					continue
				}
				id, err := shard.ParseTenantShardID(l.ID)
				if err != nil {
					continue
				}
				k := genKey{id, *c.Generation}
				if c.Mode == pageapi.ModeAttachedSingle {
					holders[k] = append(holders[k], node)
				}
				if !asked[k] {
					asked[k] = true
					req.Tenants = append(req.Tenants, storconapi.ValidateTenant{ID: id, Gen: k.gen})
				}
			}
		}
		if len(req.Tenants) == 0 {
			continue
		}
		// Every controller a pageserver may reach is asked: during a
		// hand-over the old one too.
		for _, slot := range wl.c.controllers() {
			before, dbBefore := o.snapshot(), o.dbSnapshot()
			resp, err := wl.validateAt(slot, req)
			if err != nil {
				continue
			}
			o.validatedBatch(ctlID(slot), req, resp, before, dbBefore, holders)
		}
	}
}

// listLocations reads pageserver i's locations.
func (wl *workload) listLocations(i int, timeout time.Duration) (pageapi.LocationConfigList, error) {
	var list pageapi.LocationConfigList
	ctx, cancel := clock.WithTimeout(wl.env.Clock, context.Background(), timeout)
	defer cancel()
	hc := net.DialHTTP{Net: wl.env.Net, Addr: pagecheck.PageserverHTTPAddr(i)}
	_, err := hc.Do(ctx, &net.HTTPRequest{Method: "GET", Path: "/v1/location_config"}, nil, &list)
	return list, err
}

func (wl *workload) stats() {
	for _, k := range slices.Sorted(maps.Keys(wl.outcomes)) {
		sim.Stat(wl.c.w, "op "+k, wl.outcomes[k])
	}
}
