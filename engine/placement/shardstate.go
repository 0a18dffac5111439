package placement

import (
	"fmt"
	"slices"

	"github.com/stratadb/strata/engine/invariants"
	"github.com/stratadb/strata/engine/shard"
)

// ShardState is the controller's record of one tenant shard: policy,
// intent (where it should be), observed (what each node was last seen to
// hold), generation, the pending compute notification flag and the
// sequence number. Intent changes only through the methods that take the
// Scheduler, which keep its counts in step; observed, generation and the
// flags change through plain setters.
type ShardState struct {
	ID shard.TenantShardID
	// Identity is the shard's number, count and stripe size, as sent in
	// every location config.
	Identity shard.ShardIdentity
	// TenantConf is the tenant's tenant_conf as canonical JSON text
	// (opaque here; compared to observed confs).
	TenantConf string
	// Policy is what Schedule makes intent satisfy.
	Policy Policy
	// SchedulingPolicy may freeze intent (Pause, Stop) or reconciles
	// (Stop).
	SchedulingPolicy ShardSchedulingPolicy
	// PendingComputeNotification is set when a compute notification
	// failed, so that a later reconcile resends it.
	PendingComputeNotification bool

	attached    NodeID   // NoNode: none
	secondaries []NodeID // never contains attached or a duplicate
	preferredAZ AZ

	observed []ObservedLocation // sorted by node

	generation     Generation
	generationNode NodeID

	seq   uint64 // bumped by every intent change
	edits uint64 // intent edits made by the primitives
}

// NewShardState returns a shard with empty intent and observed state, no
// generation and sequence 1.
func NewShardState(id shard.TenantShardID, identity shard.ShardIdentity, policy Policy) *ShardState {
	return &ShardState{ID: id, Identity: identity, Policy: policy, seq: 1}
}

// Attached is the node intent attaches the shard to, or NoNode.
func (st *ShardState) Attached() NodeID { return st.attached }

// Secondaries lists the nodes intent keeps secondary locations on.
func (st *ShardState) Secondaries() []NodeID { return slices.Clone(st.secondaries) }

// PreferredAZ is the AZ intent would attach the shard in ("" for none).
func (st *ShardState) PreferredAZ() AZ { return st.preferredAZ }

// IntentNodes lists every node intent names: the attached one first.
func (st *ShardState) IntentNodes() []NodeID { return st.intentNodes(nil) }

func (st *ShardState) intentNodes(buf []NodeID) []NodeID {
	buf = buf[:0]
	if st.attached != NoNode {
		buf = append(buf, st.attached)
	}
	return append(buf, st.secondaries...)
}

// InIntent reports whether intent names node id.
func (st *ShardState) InIntent(id NodeID) bool {
	return id != NoNode && (id == st.attached || slices.Contains(st.secondaries, id))
}

// Sequence is the shard's sequence number: every intent change bumps it,
// so a caller that made a change can wait for a reconcile of at least this
// sequence.
func (st *ShardState) Sequence() uint64 { return st.seq }

// BumpSequence advances the sequence (for changes this package does not
// see, e.g. a tenant config update) and returns it.
func (st *ShardState) BumpSequence() uint64 {
	st.seq++
	return st.seq
}

// Generation is the shard's latest generation and the node it was issued
// to (NoNode if none).
func (st *ShardState) Generation() (Generation, NodeID) { return st.generation, st.generationNode }

// SetGeneration records a generation the store has issued (persisted)
// for node. Generations never go back: a lower one is an invariant
// violation.
func (st *ShardState) SetGeneration(g Generation, node NodeID) error {
	if err := invariants.Check(!st.generation.Valid || g.Valid && g.N >= st.generation.N,
		"placement: shard %s generation %s after %s", st.ID, g, st.generation); err != nil {
		return err
	}
	st.generation, st.generationNode = g, node
	return nil
}

// --- intent primitives: each keeps the counts in step; none bumps the
// sequence (the exported methods do, once per call). ---

func (st *ShardState) tenant() shard.TenantID { return st.ID.TenantID }

func (st *ShardState) attach(s *Scheduler, id NodeID) error {
	st.attached = id
	st.edits++
	return s.ref(st.tenant(), id, refAttach)
}

func (st *ShardState) detach(s *Scheduler) error {
	id := st.attached
	st.attached = NoNode
	st.edits++
	return s.ref(st.tenant(), id, refDetach)
}

// promote makes secondary id the attached location; there is none.
func (st *ShardState) promote(s *Scheduler, id NodeID) error {
	st.secondaries = slices.DeleteFunc(st.secondaries, func(x NodeID) bool { return x == id })
	st.attached = id
	st.edits++
	return s.ref(st.tenant(), id, refPromote)
}

// demote makes the attached location a secondary.
func (st *ShardState) demote(s *Scheduler) error {
	id := st.attached
	st.attached = NoNode
	st.secondaries = append(st.secondaries, id)
	st.edits++
	return s.ref(st.tenant(), id, refDemote)
}

func (st *ShardState) addSecondary(s *Scheduler, id NodeID) error {
	st.secondaries = append(st.secondaries, id)
	st.edits++
	return s.ref(st.tenant(), id, refAddSecondary)
}

func (st *ShardState) removeSecondary(s *Scheduler, i int) error {
	id := st.secondaries[i]
	st.secondaries = slices.Delete(st.secondaries, i, i+1)
	st.edits++
	return s.ref(st.tenant(), id, refRemoveSecondary)
}

// finish ends an exported intent method: bump the sequence if intent
// changed since edits0, then assert intent is well formed.
func (st *ShardState) finish(s *Scheduler, edits0 uint64, err error) error {
	if st.edits != edits0 {
		st.seq++
	}
	if invariants.Enabled {
		if cerr := st.checkIntent(s); cerr != nil {
			return cerr
		}
	}
	return err
}

// checkIntent asserts: every node intent names is known to s, the attached
// node is not a secondary and no secondary is named twice.
func (st *ShardState) checkIntent(s *Scheduler) error {
	bad := st.attached != NoNode && !s.Has(st.attached)
	for i, id := range st.secondaries {
		bad = bad || id == NoNode || id == st.attached || !s.Has(id) || slices.Contains(st.secondaries[:i], id)
	}
	if bad {
		return invariants.Check(false, "placement: shard %s intent attached %d secondaries %v: a node unknown or named twice",
			st.ID, st.attached, st.secondaries)
	}
	return nil
}

func (st *ShardState) known(s *Scheduler, id NodeID) error {
	if !s.Has(id) {
		return fmt.Errorf("%w: %d (shard %s)", ErrUnknownNode, id, st.ID)
	}
	return nil
}

// --- exported intent changes ---

// SetAttached makes id the attached location (NoNode: none). The previous
// attached location leaves intent; a secondary on id is promoted.
func (st *ShardState) SetAttached(s *Scheduler, id NodeID) (err error) {
	if id == st.attached {
		return nil
	}
	if id != NoNode {
		if err := st.known(s, id); err != nil {
			return err
		}
	}
	e := st.edits
	defer func() { err = st.finish(s, e, err) }()
	if st.attached != NoNode {
		if err := st.detach(s); err != nil {
			return err
		}
	}
	switch {
	case id == NoNode:
		return nil
	case slices.Contains(st.secondaries, id):
		return st.promote(s, id)
	}
	return st.attach(s, id)
}

// MoveAttached makes id the attached location and keeps the previous one
// as a secondary (the origin of a live migration stays warm until the
// workflow removes it). A secondary on id is promoted.
func (st *ShardState) MoveAttached(s *Scheduler, id NodeID) (err error) {
	if id == st.attached {
		return nil
	}
	if id == NoNode {
		return fmt.Errorf("%w: move shard %s to no node", ErrInvalid, st.ID)
	}
	if err := st.known(s, id); err != nil {
		return err
	}
	e := st.edits
	defer func() { err = st.finish(s, e, err) }()
	if st.attached != NoNode {
		if err := st.demote(s); err != nil {
			return err
		}
	}
	if slices.Contains(st.secondaries, id) {
		return st.promote(s, id)
	}
	return st.attach(s, id)
}

// DemoteAttached turns the attached location into a secondary.
func (st *ShardState) DemoteAttached(s *Scheduler) (err error) {
	if st.attached == NoNode {
		return nil
	}
	e := st.edits
	defer func() { err = st.finish(s, e, err) }()
	return st.demote(s)
}

// AddSecondary adds a secondary location on id (no-op if there is one). id
// must not be the attached node.
func (st *ShardState) AddSecondary(s *Scheduler, id NodeID) (err error) {
	if err := st.known(s, id); err != nil {
		return err
	}
	if id == st.attached {
		return fmt.Errorf("%w: shard %s is attached to node %d, which cannot also be its secondary", ErrIntentConflict, st.ID, id)
	}
	if slices.Contains(st.secondaries, id) {
		return nil
	}
	e := st.edits
	defer func() { err = st.finish(s, e, err) }()
	return st.addSecondary(s, id)
}

// RemoveSecondary drops the secondary location on id, if any.
func (st *ShardState) RemoveSecondary(s *Scheduler, id NodeID) (err error) {
	i := slices.Index(st.secondaries, id)
	if i < 0 {
		return nil
	}
	e := st.edits
	defer func() { err = st.finish(s, e, err) }()
	return st.removeSecondary(s, i)
}

// ClearIntent drops every location from intent (before the shard is
// forgotten: a forgotten shard must not leave counts behind).
func (st *ShardState) ClearIntent(s *Scheduler) (err error) {
	e := st.edits
	defer func() { err = st.finish(s, e, err) }()
	return st.clear(s)
}

func (st *ShardState) clear(s *Scheduler) error {
	if st.attached != NoNode {
		if err := st.detach(s); err != nil {
			return err
		}
	}
	for len(st.secondaries) > 0 {
		if err := st.removeSecondary(s, len(st.secondaries)-1); err != nil {
			return err
		}
	}
	return nil
}

// SetPreferredAZ sets the AZ intent attaches in. It moves nothing by
// itself: Schedule uses it for locations it chooses from now on.
func (st *ShardState) SetPreferredAZ(az AZ) {
	if az != st.preferredAZ {
		st.preferredAZ = az
		st.seq++
	}
}

// Schedule fills and repairs intent from the policy, choosing nodes with s:
//
//   - Attached{n}: an attached location (promoting the best schedulable
//     secondary if there is one, else a fresh node) and exactly n
//     secondaries on other nodes, dropping extras (those on unavailable
//     nodes first, then the newest).
//   - Secondary: no attached location (it becomes the secondary) and
//     exactly one secondary.
//   - Detached: no location.
//
// With the scheduling policy Pause or Stop it changes nothing. On
// ErrNoSchedulableNode intent keeps what was placed so far (counts stay
// consistent); calling Schedule again later continues.
func (st *ShardState) Schedule(s *Scheduler) (err error) {
	if !st.SchedulingPolicy.MaySchedule() {
		return nil
	}
	if err := st.Policy.Validate(); err != nil {
		return err
	}
	e := st.edits
	defer func() { err = st.finish(s, e, err) }()
	switch st.Policy.Kind {
	case PolicyAttached:
		if st.attached == NoNode {
			id, promote, err := st.chooseAttached(s, NoNode)
			if err != nil {
				return err
			}
			if err := st.place(s, id, promote); err != nil {
				return err
			}
		}
		if err := st.trimSecondaries(s, st.Policy.Secondaries); err != nil {
			return err
		}
		return st.fillSecondaries(s, st.Policy.Secondaries)
	case PolicySecondary:
		if st.attached != NoNode {
			// Keep the attached location (it holds the most data) as the
			// one secondary.
			if err := st.trimSecondaries(s, 0); err != nil {
				return err
			}
			if err := st.demote(s); err != nil {
				return err
			}
		}
		if err := st.trimSecondaries(s, 1); err != nil {
			return err
		}
		return st.fillSecondaries(s, 1)
	}
	return st.clear(s)
}

// chooseAttached finds the node for a new attached location without
// changing intent: the best schedulable secondary other than gone
// (promote=true), else a fresh node outside intent and gone.
func (st *ShardState) chooseAttached(s *Scheduler, gone NodeID) (id NodeID, promote bool, err error) {
	cands := make([]NodeID, 0, 4)
	for _, sec := range st.secondaries {
		if sec != gone {
			cands = append(cands, sec)
		}
	}
	if id := s.preferred(st.tenant(), st.preferredAZ, cands); id != NoNode {
		return id, true, nil
	}
	exclude := st.intentNodes(make([]NodeID, 0, 4))
	if gone != NoNode {
		exclude = append(exclude, gone)
	}
	id, err = s.ScheduleAttached(st.tenant(), st.preferredAZ, exclude)
	if err != nil {
		return NoNode, false, fmt.Errorf("shard %s attached location: %w", st.ID, err)
	}
	return id, false, nil
}

// place makes id the attached location; there is none.
func (st *ShardState) place(s *Scheduler, id NodeID, promote bool) error {
	if promote {
		return st.promote(s, id)
	}
	return st.attach(s, id)
}

// trimSecondaries drops secondaries beyond n: first those on nodes that
// are not available (the newest first), then the newest.
func (st *ShardState) trimSecondaries(s *Scheduler, n int) error {
	for len(st.secondaries) > n {
		i := len(st.secondaries) - 1
		for j := i; j >= 0; j-- {
			if !s.Available(st.secondaries[j]) {
				i = j
				break
			}
		}
		if err := st.removeSecondary(s, i); err != nil {
			return err
		}
	}
	return nil
}

// fillSecondaries adds secondaries until there are n, each on a node
// outside intent, preferring another AZ than the attachment's.
func (st *ShardState) fillSecondaries(s *Scheduler, n int) error {
	for len(st.secondaries) < n {
		id, err := s.ScheduleSecondary(st.tenant(), st.secondaryAvoidAZ(s), st.intentNodes(make([]NodeID, 0, 4)))
		if err != nil {
			return fmt.Errorf("shard %s secondary location: %w", st.ID, err)
		}
		if err := st.addSecondary(s, id); err != nil {
			return err
		}
	}
	return nil
}

// secondaryAvoidAZ is the AZ a secondary should avoid: the preferred AZ,
// else the attached node's.
func (st *ShardState) secondaryAvoidAZ(s *Scheduler) AZ {
	if st.preferredAZ != "" {
		return st.preferredAZ
	}
	if sn := s.byID[st.attached]; sn != nil {
		return sn.AZ
	}
	return ""
}

// NodeOffline handles node id going offline (the caller has already told
// the scheduler): the shard's location there becomes unknown, and if it was
// the attached one (and the scheduling policy allows changes), attachment
// moves — to the best schedulable secondary, else a fresh node — and the
// old location is kept as a secondary, then Schedule restores the policy's
// secondary count. If no node can take the attachment, intent is left as
// it was and the error wraps ErrNoSchedulableNode: call again later.
func (st *ShardState) NodeOffline(s *Scheduler, id NodeID) (err error) {
	st.MarkUnknown(id)
	if !st.SchedulingPolicy.MaySchedule() {
		return nil
	}
	if st.Policy.Kind != PolicyAttached || st.attached != id {
		return st.Schedule(s)
	}
	e := st.edits
	defer func() { err = st.finish(s, e, err) }()
	to, promote, err := st.chooseAttached(s, id)
	if err != nil {
		return err
	}
	if err := st.demote(s); err != nil {
		return err
	}
	if err := st.place(s, to, promote); err != nil {
		return err
	}
	return st.Schedule(s)
}

// IntentFromObserved builds intent from observed locations (controller
// start-up, before Schedule): attached where an attached mode with the
// highest generation was seen (the lowest node id on a tie), every other
// observed location — unknown ones too, they may hold usable data — a
// secondary. Intent must be empty.
func (st *ShardState) IntentFromObserved(s *Scheduler) (err error) {
	if st.attached != NoNode || len(st.secondaries) > 0 {
		return fmt.Errorf("%w: shard %s already has intent", ErrIntentConflict, st.ID)
	}
	for _, o := range st.observed {
		if err := st.known(s, o.Node); err != nil {
			return err
		}
	}
	e := st.edits
	defer func() { err = st.finish(s, e, err) }()
	best := -1
	for i, o := range st.observed {
		if o.Known && o.Conf.Mode.Attached() &&
			(best < 0 || o.Conf.Generation.N > st.observed[best].Conf.Generation.N) {
			best = i
		}
	}
	if best >= 0 {
		if err := st.attach(s, st.observed[best].Node); err != nil {
			return err
		}
	}
	for i, o := range st.observed {
		if i != best {
			if err := st.addSecondary(s, o.Node); err != nil {
				return err
			}
		}
	}
	return nil
}

// ShardSnapshot is a copy of a shard's state for dumps (the controller's
// tenant describe and debug routes). Attached and GenerationNode are 0 for
// none.
type ShardSnapshot struct {
	ID                         shard.TenantShardID   `json:"tenant_shard_id"`
	Identity                   shard.ShardIdentity   `json:"shard"`
	Policy                     Policy                `json:"policy"`
	SchedulingPolicy           ShardSchedulingPolicy `json:"scheduling_policy"`
	Attached                   NodeID                `json:"attached"`
	Secondaries                []NodeID              `json:"secondaries"`
	PreferredAZ                AZ                    `json:"preferred_az_id"`
	Observed                   []ObservedLocation    `json:"observed"`
	Generation                 Generation            `json:"generation"`
	GenerationNode             NodeID                `json:"generation_pageserver"`
	PendingComputeNotification bool                  `json:"pending_compute_notification"`
	Sequence                   uint64                `json:"sequence"`
}

// Snapshot copies the shard's state.
func (st *ShardState) Snapshot() ShardSnapshot {
	return ShardSnapshot{
		ID: st.ID, Identity: st.Identity, Policy: st.Policy, SchedulingPolicy: st.SchedulingPolicy,
		Attached: st.attached, Secondaries: st.Secondaries(), PreferredAZ: st.preferredAZ,
		Observed: st.ObservedLocations(), Generation: st.generation, GenerationNode: st.generationNode,
		PendingComputeNotification: st.PendingComputeNotification, Sequence: st.seq,
	}
}
