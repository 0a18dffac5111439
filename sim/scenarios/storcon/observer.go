package storcon

import (
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/stratadb/strata/engine/shard"
	"github.com/stratadb/strata/nodes/pageserver/pageapi"
	"github.com/stratadb/strata/nodes/storcon/storconapi"
	"github.com/stratadb/strata/sim"
)

// Checker failures. Each wraps one of these so tests can classify them.
var (
	// ErrGeneration: a generation was handed out that is not strictly
	// higher than every generation of the shard before it, the same
	// generation reached two nodes, or a controller reported or validated
	// a generation below one already handed out (or validated one below
	// the shared database's).
	ErrGeneration = errors.New("storcon scenario: generation not strictly increasing")
	// ErrSplitBrain: two pageservers held one shard in AttachedSingle
	// with generations the controller validated at once.
	ErrSplitBrain = errors.New("storcon scenario: two valid AttachedSingle locations")
	// ErrNotify: compute was told something that was not true: a
	// notification that lacks some of the tenant's shards, or that names
	// a node the shard was never attached to.
	ErrNotify = errors.New("storcon scenario: bad compute notification")
	// ErrDetachedFirst: a tenant that must stay attached lost its last
	// attached location to a move, while the node holding it was alive.
	ErrDetachedFirst = errors.New("storcon scenario: attached location detached before its replacement was attached")
	// ErrLostTenant: the controller lost a tenant whose creation it
	// acknowledged, or kept one whose deletion it acknowledged.
	ErrLostTenant = errors.New("storcon scenario: tenant lost or resurrected")
	// ErrNoProgress: the liveness phase did not converge.
	ErrNoProgress = errors.New("storcon scenario: no convergence after healing")
)

// nodeShard is one shard on one pageserver.
type nodeShard struct {
	node uint64
	id   shard.TenantShardID
}

// genKey is one generation of one shard.
type genKey struct {
	id  shard.TenantShardID
	gen uint32
}

// told is what a pageserver was last told to hold of a shard (by a
// location_config the controller sent and the node acknowledged, by a
// re-attach answer, or by a listing of the node's locations).
type told struct {
	mode pageapi.LocationMode
	gen  uint32 // 0: none
}

func (t told) attached() bool { return t.mode.Attached() }

// observer holds everything the checkers know. Only one task runs at a
// time in the simulator, so it needs no lock; every method runs to
// completion between two yields.
type observer struct {
	w *sim.World
	m *model

	// maxSeen is the highest generation of each shard seen anywhere so
	// far: sent by the controller, answered to a re-attach, listed by a
	// pageserver, described or validated by the controller.
	maxSeen map[shard.TenantShardID]uint32
	// owner is the node each generation was first seen with.
	owner map[genKey]uint64
	// dbGen is the highest generation of each shard the shared database
	// committed (shared-database seeds): ground truth, recorded by the
	// database's own store as it commits.
	dbGen map[shard.TenantShardID]uint32

	// locs is what each node was last told (see told). A crash keeps it:
	// the disk keeps the location, and the node's re-attach replaces it.
	locs map[uint64]map[shard.TenantShardID]told
	// putVersion counts acknowledged location_config calls per node and
	// shard, and putsInFlight the ones under way, so that a listing that
	// raced a call does not overwrite its outcome.
	putVersion   map[nodeShard]uint64
	putsInFlight map[nodeShard]int
	// everAttached: the node was told at least once to hold the shard in
	// an attached mode.
	everAttached map[nodeShard]bool

	// notifications counts notify-attach requests the controller sent.
	notifications int
	// given counts generations handed out (location_config or re-attach
	// with a generation above every earlier one).
	given, reAttaches, validated, described int
	// psValidates counts validate upcalls the pageservers made (before
	// deleting remote objects) that got an answer.
	psValidates int
}

func newObserver(w *sim.World, m *model) *observer {
	return &observer{w: w, m: m,
		maxSeen: map[shard.TenantShardID]uint32{}, owner: map[genKey]uint64{}, dbGen: map[shard.TenantShardID]uint32{},
		locs: map[uint64]map[shard.TenantShardID]told{}, putVersion: map[nodeShard]uint64{}, putsInFlight: map[nodeShard]int{},
		everAttached: map[nodeShard]bool{}}
}

func (o *observer) fail(err error) {
	o.w.Log().Error("checker failure", "err", err)
	o.w.Fail(err)
}

func (o *observer) now() string { return fmt.Sprintf("%.3fs", o.w.Now().Seconds()) }

// seen records generation gen of id at node (0: node unknown) from source,
// checking that no other node was seen with the same generation.
func (o *observer) seen(id shard.TenantShardID, node uint64, gen uint32, source string) {
	if gen == 0 {
		return
	}
	k := genKey{id, gen}
	if prev, ok := o.owner[k]; ok && node != 0 && prev != 0 && prev != node {
		o.fail(fmt.Errorf("%w: shard %s generation %d reached node %d (%s at %s) but was already node %d's",
			ErrGeneration, id, gen, node, source, o.now(), prev))
		return
	}
	if node != 0 && o.owner[k] == 0 {
		o.owner[k] = node
	}
	o.maxSeen[id] = max(o.maxSeen[id], gen)
}

// snapshot copies maxSeen for the shards of ids (taken when a request is
// sent; the answer is checked against it).
func (o *observer) snapshot() map[shard.TenantShardID]uint32 { return maps.Clone(o.maxSeen) }

// dbCommitted records that the shared database committed generation gen
// of id.
func (o *observer) dbCommitted(id shard.TenantShardID, gen uint32) {
	o.dbGen[id] = max(o.dbGen[id], gen)
}

// dbSnapshot copies dbGen (taken when a validate is sent).
func (o *observer) dbSnapshot() map[shard.TenantShardID]uint32 { return maps.Clone(o.dbGen) }

// --- what the controller sends to pageservers --------------------------

// beforePut checks a location_config the controller is about to send to
// node: a generation must be a new one (above every one seen) or never
// seen on another node; a move must not leave a must-stay-attached shard with
// no attached location (checked when the node answers, checkDetach). It
// reports whether conf hands out a new generation.
func (o *observer) beforePut(node uint64, id shard.TenantShardID, conf pageapi.LocationConfig) (newGen bool) {
	if conf.Mode.Attached() {
		// Told, whether or not the answer comes back: a request whose
		// answer is lost may have been applied, and the controller may
		// then name the node to compute (its attach failed, so its
		// notification is pending).
		o.everAttached[nodeShard{node, id}] = true
	}
	if conf.Mode.Attached() && conf.Generation != nil {
		g := *conf.Generation
		k := genKey{id, g}
		prevOwner, known := o.owner[k]
		switch {
		case g > o.maxSeen[id]:
			newGen = true
			o.given++
		case known && prevOwner == node:
			// The node's own generation again (a mode change, a config
			// change, a retry).
		case known:
			o.fail(fmt.Errorf("%w: controller sent shard %s generation %d to node %d at %s, but that generation was node %d's",
				ErrGeneration, id, g, node, o.now(), prevOwner))
			return false
		default:
			// Below the highest, never seen: issued to this node before a
			// newer one, and sent late (a migration whose destination
			// re-attached meanwhile). Not a new generation: the pageserver
			// refuses it if it holds a newer one.
		}
		o.seen(id, node, g, "location_config")
		return newGen
	}
	return false
}

func (o *observer) putStarted(node uint64, id shard.TenantShardID) {
	o.putsInFlight[nodeShard{node, id}]++
}

// putDone records the outcome of a location_config call.
func (o *observer) putDone(node uint64, id shard.TenantShardID, conf pageapi.LocationConfig, err error) {
	k := nodeShard{node, id}
	o.putsInFlight[k]--
	if err != nil {
		return
	}
	o.putVersion[k]++
	o.checkDetach(node, id, conf)
	o.setLoc(node, id, conf.Mode, conf.Generation)
}

// checkDetach: node acknowledged a Secondary or Detached location for id
// (so it is alive). If it held the shard's only attached location and the
// tenant must stay attached, the move took the attachment away before a
// replacement was attached.
func (o *observer) checkDetach(node uint64, id shard.TenantShardID, conf pageapi.LocationConfig) {
	cur := o.locs[node][id]
	if conf.Mode.Attached() || !cur.attached() || !o.m.mustStayAttached(id.TenantID) {
		return
	}
	for _, n := range slices.Sorted(maps.Keys(o.locs)) {
		if n != node && o.locs[n][id].attached() {
			return
		}
	}
	o.fail(fmt.Errorf("%w: at %s node %d (alive: it answered) took %s for shard %s from the controller, replacing its only attached location (%s generation %d); tenant policy %s",
		ErrDetachedFirst, o.now(), node, conf.Mode, id, cur.mode, cur.gen, o.m.tenants[id.TenantID].policy))
}

func (o *observer) setLoc(node uint64, id shard.TenantShardID, mode pageapi.LocationMode, gen *uint32) {
	if o.locs[node] == nil {
		o.locs[node] = map[shard.TenantShardID]told{}
	}
	if mode == pageapi.ModeDetached || mode == "" {
		delete(o.locs[node], id)
		return
	}
	t := told{mode: mode}
	if mode.Attached() {
		o.everAttached[nodeShard{node, id}] = true
	}
	if gen != nil {
		t.gen = *gen
	}
	o.locs[node][id] = t
}

// listVersions snapshots the put versions of node before a listing.
func (o *observer) listVersions(node uint64) map[shard.TenantShardID]uint64 {
	out := map[shard.TenantShardID]uint64{}
	for k, v := range o.putVersion {
		if k.node == node {
			out[k.id] = v
		}
	}
	return out
}

// listed records a listing of node's locations (by the controller or the
// poller): generations are checked, and what the node holds replaces
// what it was told, except for shards a location_config raced with.
func (o *observer) listed(node uint64, list pageapi.LocationConfigList, before map[shard.TenantShardID]uint64, source string) {
	now := map[shard.TenantShardID]*pageapi.LocationConfig{}
	for _, l := range list.TenantShards {
		id, err := shard.ParseTenantShardID(l.ID)
		if err != nil {
			o.fail(fmt.Errorf("storcon scenario: node %d lists location %q: %w", node, l.ID, err))
			return
		}
		now[id] = l.Config
		if l.Config != nil && l.Config.Mode.Attached() && l.Config.Generation != nil {
			o.seen(id, node, *l.Config.Generation, source)
		}
	}
	raced := func(id shard.TenantShardID) bool {
		k := nodeShard{node, id}
		return o.putsInFlight[k] > 0 || o.putVersion[k] != before[id]
	}
	for _, id := range slices.SortedFunc(maps.Keys(o.locs[node]), shard.TenantShardID.Compare) {
		if _, ok := now[id]; !ok && !raced(id) {
			delete(o.locs[node], id)
		}
	}
	for _, id := range slices.SortedFunc(maps.Keys(now), shard.TenantShardID.Compare) {
		c := now[id]
		if c == nil || raced(id) {
			continue
		}
		o.setLoc(node, id, c.Mode, c.Generation)
	}
}

// --- re-attach answers, as the pageserver receives them ----------------

// reAttached checks a re-attach answer to node against the generations
// seen before the request was sent (before): every attached shard must
// get a generation above all of them. The answer becomes what the node
// holds.
func (o *observer) reAttached(node uint64, resp storconapi.ReAttachResponse, before map[shard.TenantShardID]uint32) {
	o.reAttaches++
	for _, t := range resp.Tenants {
		if t.Gen == nil || !t.Mode.Attached() {
			continue
		}
		if prev := before[t.ID]; *t.Gen <= prev {
			o.fail(fmt.Errorf("%w: re-attach of node %d at %s answered shard %s generation %d, not above generation %d (node %d) seen before the call",
				ErrGeneration, node, o.now(), t.ID, *t.Gen, prev, o.owner[genKey{t.ID, prev}]))
			return
		}
		o.given++
		o.seen(t.ID, node, *t.Gen, "re-attach")
	}
	o.locs[node] = map[shard.TenantShardID]told{}
	for _, t := range resp.Tenants {
		k := nodeShard{node, t.ID}
		o.putVersion[k]++
		o.setLoc(node, t.ID, t.Mode, t.Gen)
	}
}

// --- what the controller says ------------------------------------------

// describedShard checks one shard of a describe answered for a request
// sent when before was the state: the controller's generation never
// falls below one already handed out.
func (o *observer) describedShard(sd storconapi.ShardDescribe, before map[shard.TenantShardID]uint32) {
	o.described++
	id := sd.TenantShardID
	var g uint32
	if sd.Generation != nil {
		g = *sd.Generation
	}
	if prev := before[id]; g < prev {
		o.fail(fmt.Errorf("%w: at %s the controller describes shard %s with generation %d (node %d), below generation %d handed to node %d before the call",
			ErrGeneration, o.now(), id, g, sd.GenerationNode, prev, o.owner[genKey{id, prev}]))
		return
	}
	o.seen(id, sd.GenerationNode, g, "describe")
}

// validatedBatch checks controller ctl's validate answer for the pairs
// asked, sent when before was the state and dbBefore the shared database's
// generations. A generation below one handed out earlier must be invalid,
// and so must one the database had already moved past: a controller that
// reads the store after the call arrived cannot find it current (checking
// at the answer instead would blame a read that preceded a concurrent
// increment). At most one generation of a shard may be valid; holders maps
// each pair to the nodes holding it in AttachedSingle.
func (o *observer) validatedBatch(ctl string, req storconapi.ValidateRequest, resp storconapi.ValidateResponse, before, dbBefore map[shard.TenantShardID]uint32, holders map[genKey][]uint64) {
	// Match answers to the asked pairs: the controller answers each known
	// pair once, in request order.
	i := 0
	validGen := map[shard.TenantShardID][]uint32{}
	for _, q := range req.Tenants {
		if i >= len(resp.Tenants) {
			break
		}
		if resp.Tenants[i].ID != q.ID {
			continue // an unknown shard: omitted from the answer
		}
		if resp.Tenants[i].Valid {
			o.validated++
			validGen[q.ID] = append(validGen[q.ID], q.Gen)
		}
		i++
	}
	for _, id := range slices.SortedFunc(maps.Keys(validGen), shard.TenantShardID.Compare) {
		gens := validGen[id]
		for _, g := range gens {
			if prev := before[id]; g < prev {
				o.fail(fmt.Errorf("%w: at %s controller %s validated shard %s generation %d, below generation %d handed to node %d before the call",
					ErrGeneration, o.now(), ctl, id, g, prev, o.owner[genKey{id, prev}]))
				return
			}
			if db := dbBefore[id]; g < db {
				o.fail(fmt.Errorf("%w: at %s controller %s validated shard %s generation %d, but the shared database held generation %d before the call",
					ErrGeneration, o.now(), ctl, id, g, db))
				return
			}
		}
		var nodes []uint64
		for _, g := range gens {
			nodes = append(nodes, holders[genKey{id, g}]...)
		}
		slices.Sort(nodes)
		nodes = slices.Compact(nodes)
		if len(nodes) > 1 {
			o.fail(fmt.Errorf("%w: at %s shard %s is AttachedSingle on nodes %v and controller %s validated generations %v in one call",
				ErrSplitBrain, o.now(), id, nodes, ctl, gens))
			return
		}
	}
}

// --- compute notifications ---------------------------------------------

// notified checks a notify-attach request the controller is sending:
// every shard of the tenant's count is named exactly once, with the
// stripe size when sharded, and every node named was told, at some point,
// to hold that shard attached (a retry may carry a notification a later
// move made stale: the liveness phase checks the last one).
func (o *observer) notified(req storconapi.NotifyAttachRequest) {
	o.notifications++
	tm := o.m.tenants[req.TenantID]
	if tm == nil {
		o.fail(fmt.Errorf("%w: notification for tenant %s the workload never created", ErrNotify, req.TenantID))
		return
	}
	want := max(int(tm.count), 1)
	got := map[shard.ShardNumber]bool{}
	for _, s := range req.Shards {
		if int(s.ShardNumber) >= want || got[s.ShardNumber] {
			o.fail(fmt.Errorf("%w: at %s tenant %s (%d shards) notified with shards %+v", ErrNotify, o.now(), req.TenantID, want, req.Shards))
			return
		}
		got[s.ShardNumber] = true
	}
	if len(got) != want {
		o.fail(fmt.Errorf("%w: at %s tenant %s has %d shards but compute was told about %d: %+v (a notification before every shard was attached)",
			ErrNotify, o.now(), req.TenantID, want, len(got), req.Shards))
		return
	}
	if (tm.count > 1) != (req.StripeSize != nil) {
		o.fail(fmt.Errorf("%w: at %s tenant %s with %d shards notified with stripe size %v", ErrNotify, o.now(), req.TenantID, tm.count, req.StripeSize))
		return
	}
	for _, s := range req.Shards {
		id := tm.shardID(s.ShardNumber)
		if !o.everAttached[nodeShard{s.NodeID, id}] {
			o.fail(fmt.Errorf("%w: at %s compute told shard %s is on node %d, which was never told to hold it attached",
				ErrNotify, o.now(), id, s.NodeID))
			return
		}
	}
}

// stats records the checkers' counts.
func (o *observer) stats() {
	sim.Stat(o.w, "generations_given", o.given)
	sim.Stat(o.w, "re_attaches", o.reAttaches)
	sim.Stat(o.w, "notifications", o.notifications)
	sim.Stat(o.w, "validated_valid", o.validated)
	sim.Stat(o.w, "pageserver_validates", o.psValidates)
	sim.Stat(o.w, "shards_described", o.described)
}
