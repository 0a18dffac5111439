package placement

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/stratadb/strata/engine/invariants"
	"github.com/stratadb/strata/engine/shard"
)

// ErrInconsistent is wrapped by Check when the incremental counts differ
// from a recount of every intent.
var ErrInconsistent = errors.New("placement: scheduler counts differ from a recount")

// Scheduler chooses nodes for shard locations. It keeps, per node, how many
// intents name it (all locations and attached ones) and, per tenant and
// node, how many of the tenant's locations are there. ShardState's intent
// methods keep these counts in step with every intent change; nothing
// rebuilds them (Check recounts, to verify).
//
// A Scheduler is not safe for concurrent use; the controller owns it with
// its shard states.
type Scheduler struct {
	nodes   []*schedNode // sorted by id: the order every scan uses
	byID    map[NodeID]*schedNode
	tenants map[shard.TenantID]*tenantRefs
}

type schedNode struct {
	Node
	shards   int // intents naming the node (attached or secondary)
	attached int // intents attached to the node
	// utilShards is the most shards the node held (by intent) since its
	// last utilization report: placements raise the node's effective score
	// at once, removals only at the next report, because the node still
	// holds a removed shard until a reconcile detaches it.
	utilShards int
}

// tenantRefs lists, sorted by node id, how many of a tenant's locations
// each node holds (entries with a count are kept; zeros are removed).
type tenantRefs struct {
	nodes []nodeRef
}

type nodeRef struct {
	node NodeID
	n    int
}

// NodeState is a node as the scheduler sees it, for dumps and the drain and
// fill workflows.
type NodeState struct {
	Node
	// Shards counts the intents naming the node; Attached those attached to
	// it.
	Shards   int `json:"shard_count"`
	Attached int `json:"attached_shard_count"`
	// Score is the utilization score scheduling uses: the reported score,
	// raised for shards placed since the report when MaxShardCount is known.
	Score uint64 `json:"effective_utilization_score"`
}

// NewScheduler returns a scheduler with no nodes.
func NewScheduler() *Scheduler {
	return &Scheduler{byID: map[NodeID]*schedNode{}, tenants: map[shard.TenantID]*tenantRefs{}}
}

// UpsertNode adds a node or replaces what is known of it (availability,
// policy, AZ, utilization); its counts are kept. Every call counts as a
// fresh utilization report.
func (s *Scheduler) UpsertNode(n Node) error {
	if err := n.Validate(); err != nil {
		return err
	}
	if sn := s.byID[n.ID]; sn != nil {
		sn.Node = n
		sn.utilShards = sn.shards
		return nil
	}
	sn := &schedNode{Node: n}
	i, _ := slices.BinarySearchFunc(s.nodes, n.ID, func(x *schedNode, id NodeID) int { return cmpID(x.ID, id) })
	s.nodes = slices.Insert(s.nodes, i, sn)
	s.byID[n.ID] = sn
	return nil
}

// RemoveNode forgets a node that no intent names.
func (s *Scheduler) RemoveNode(id NodeID) error {
	sn := s.byID[id]
	if sn == nil {
		return fmt.Errorf("%w: %d", ErrUnknownNode, id)
	}
	if sn.shards > 0 {
		return fmt.Errorf("%w: node %d holds %d shards (%d attached)", ErrNodeInUse, id, sn.shards, sn.attached)
	}
	delete(s.byID, id)
	s.nodes = slices.DeleteFunc(s.nodes, func(x *schedNode) bool { return x.ID == id })
	return nil
}

// Node returns what the scheduler knows of node id.
func (s *Scheduler) Node(id NodeID) (NodeState, bool) {
	sn := s.byID[id]
	if sn == nil {
		return NodeState{}, false
	}
	return sn.state(), true
}

// Nodes lists every node, by id.
func (s *Scheduler) Nodes() []NodeState {
	out := make([]NodeState, len(s.nodes))
	for i, sn := range s.nodes {
		out[i] = sn.state()
	}
	return out
}

// Has reports whether id is a known node.
func (s *Scheduler) Has(id NodeID) bool { return s.byID[id] != nil }

// Available reports whether id is known and available (Active).
func (s *Scheduler) Available(id NodeID) bool {
	sn := s.byID[id]
	return sn != nil && sn.Available()
}

// MaySchedule reports whether id is known and may take new shards.
func (s *Scheduler) MaySchedule(id NodeID) bool {
	sn := s.byID[id]
	return sn != nil && sn.MaySchedule()
}

// TenantLocations returns how many of tenant's locations intent puts on
// node id.
func (s *Scheduler) TenantLocations(tenant shard.TenantID, id NodeID) int {
	r := s.tenants[tenant]
	if r == nil {
		return 0
	}
	if i, ok := r.find(id); ok {
		return r.nodes[i].n
	}
	return 0
}

func (sn *schedNode) state() NodeState {
	return NodeState{Node: sn.Node, Shards: sn.shards, Attached: sn.attached, Score: sn.score()}
}

// score is the effective utilization score: Neon's adjustment of the
// reported shard count up to the controller's own count, so that a burst
// of placements between two heartbeats spreads instead of landing on the
// node that looked emptiest at the last report.
func (sn *schedNode) score() uint64 {
	s := sn.Utilization.Score
	if m := sn.Utilization.MaxShardCount; m > 0 {
		if adj := uint64(sn.utilShards) * FullScore / m; adj > s {
			s = adj
		}
	}
	return s
}

func cmpID(a, b NodeID) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func (r *tenantRefs) find(id NodeID) (int, bool) {
	return slices.BinarySearchFunc(r.nodes, id, func(x nodeRef, id NodeID) int { return cmpID(x.node, id) })
}

// refChange is one edit of an intent, as the counts see it.
type refChange uint8

const (
	refAttach          refChange = iota // a new attached location
	refDetach                           // an attached location leaves intent
	refPromote                          // a secondary becomes the attached location
	refDemote                           // the attached location becomes a secondary
	refAddSecondary                     // a new secondary location
	refRemoveSecondary                  // a secondary leaves intent
)

// ref applies one intent edit of tenant's shard on node id to the counts.
// Callers have checked the node exists; a missing one, or a count going
// negative, is an invariant violation.
func (s *Scheduler) ref(tenant shard.TenantID, id NodeID, c refChange) error {
	// Each check tests its condition before calling invariants.Check, so
	// that the message arguments are boxed only on failure: this runs for
	// every intent edit.
	sn := s.byID[id]
	if sn == nil {
		return invariants.Check(false, "placement: intent edit %d of tenant %s on unknown node %d", c, tenant, id)
	}
	var dShards, dAttached int
	switch c {
	case refAttach:
		dShards, dAttached = 1, 1
	case refDetach:
		dShards, dAttached = -1, -1
	case refPromote:
		dAttached = 1
	case refDemote:
		dAttached = -1
	case refAddSecondary:
		dShards = 1
	case refRemoveSecondary:
		dShards = -1
	}
	sn.shards += dShards
	sn.attached += dAttached
	sn.utilShards = max(sn.utilShards, sn.shards)
	if dShards != 0 {
		if err := s.refTenant(tenant, id, dShards); err != nil {
			return err
		}
	}
	if sn.attached < 0 || sn.attached > sn.shards {
		return invariants.Check(false, "placement: node %d counts shards=%d attached=%d after edit %d of tenant %s",
			id, sn.shards, sn.attached, c, tenant)
	}
	return nil
}

func (s *Scheduler) refTenant(tenant shard.TenantID, id NodeID, d int) error {
	r := s.tenants[tenant]
	if r == nil {
		r = &tenantRefs{}
		s.tenants[tenant] = r
	}
	i, ok := r.find(id)
	if !ok {
		r.nodes = slices.Insert(r.nodes, i, nodeRef{node: id})
	}
	r.nodes[i].n += d
	n := r.nodes[i].n
	if n == 0 {
		r.nodes = slices.Delete(r.nodes, i, i+1)
		if len(r.nodes) == 0 {
			delete(s.tenants, tenant)
		}
	}
	if n < 0 {
		return invariants.Check(false, "placement: tenant %s has %d locations on node %d", tenant, n, id)
	}
	return nil
}

// score is a candidate node's rank for one placement: lower wins, fields
// compared in order.
type score struct {
	az       int8   // 0 best: see azRank
	affinity int    // this tenant's locations already on the node
	util     uint64 // effective utilization score
	count    int    // attached locations (attached); all locations (secondary)
	id       NodeID // makes the order total, hence deterministic
}

func (a score) less(b score) bool {
	switch {
	case a.az != b.az:
		return a.az < b.az
	case a.affinity != b.affinity:
		return a.affinity < b.affinity
	case a.util != b.util:
		return a.util < b.util
	case a.count != b.count:
		return a.count < b.count
	}
	return a.id < b.id
}

// azRank ranks a node's AZ against want: 0 for a match, 1 when either is
// unknown, 2 for a mismatch. A secondary passes avoid=true, which swaps
// match and mismatch: it should sit in another AZ than the attachment.
func azRank(node, want AZ, avoid bool) int8 {
	switch {
	case node == "" || want == "":
		return 1
	case (node == want) != avoid:
		return 0
	}
	return 2
}

// ScheduleAttached chooses a node for tenant's attached location: the
// lowest of (AZ match with preferredAZ: yes, unknown, no; the tenant's
// locations already on the node; utilization; attached count; node id)
// among nodes that may schedule and are not in exclude. Overloaded nodes
// are chosen only if no other node qualifies. It changes no count: the
// intent edit that uses the node does.
func (s *Scheduler) ScheduleAttached(tenant shard.TenantID, preferredAZ AZ, exclude []NodeID) (NodeID, error) {
	return s.pick(tenant, preferredAZ, exclude, false)
}

// ScheduleSecondary chooses a node for a secondary location of tenant's:
// the lowest of (AZ other than avoidAZ: other, unknown, same; the tenant's
// locations on the node; utilization; all locations on the node; node id),
// with overloaded nodes last, as ScheduleAttached. Callers exclude the
// shard's own nodes, the attached one first.
func (s *Scheduler) ScheduleSecondary(tenant shard.TenantID, avoidAZ AZ, exclude []NodeID) (NodeID, error) {
	return s.pick(tenant, avoidAZ, exclude, true)
}

func (s *Scheduler) pick(tenant shard.TenantID, az AZ, exclude []NodeID, secondary bool) (NodeID, error) {
	var refs []nodeRef
	if r := s.tenants[tenant]; r != nil {
		refs = r.nodes
	}
	var best, bestOver score
	found, foundOver := false, false
	j := 0
	for _, sn := range s.nodes {
		// Both lists are sorted by node id: one merge walk finds each
		// node's tenant affinity.
		for j < len(refs) && refs[j].node < sn.ID {
			j++
		}
		if !sn.MaySchedule() || slices.Contains(exclude, sn.ID) {
			continue
		}
		sc := score{az: azRank(sn.AZ, az, secondary), util: sn.score(), count: sn.attached, id: sn.ID}
		if secondary {
			sc.count = sn.shards
		}
		if j < len(refs) && refs[j].node == sn.ID {
			sc.affinity = refs[j].n
		}
		if sc.util >= OverloadedScore {
			if !foundOver || sc.less(bestOver) {
				bestOver, foundOver = sc, true
			}
		} else if !found || sc.less(best) {
			best, found = sc, true
		}
	}
	switch {
	case found:
		return best.id, nil
	case foundOver:
		return bestOver.id, nil
	}
	// A copy in the message keeps exclude from escaping: callers pass
	// small stack buffers.
	return NoNode, fmt.Errorf("%w: %d nodes, none may take the shard (excluding %v)", ErrNoSchedulableNode, len(s.nodes), slices.Clone(exclude))
}

// preferred returns the candidate with the best attached score among those
// that may schedule (a secondary to promote), or NoNode.
func (s *Scheduler) preferred(tenant shard.TenantID, preferredAZ AZ, candidates []NodeID) NodeID {
	var best score
	found := false
	for _, id := range candidates {
		sn := s.byID[id]
		if sn == nil || !sn.MaySchedule() {
			continue
		}
		sc := score{az: azRank(sn.AZ, preferredAZ, false), affinity: s.TenantLocations(tenant, id),
			util: sn.score(), count: sn.attached, id: id}
		if sc.util >= OverloadedScore {
			// An overloaded secondary is still better than none: rank it
			// behind every other candidate.
			sc.az += 3
		}
		if !found || sc.less(best) {
			best, found = sc, true
		}
	}
	if !found {
		return NoNode
	}
	return best.id
}

// Check recounts every count from shards' intents and compares: the error
// (wrapping ErrInconsistent) names every difference, including intents
// that name unknown nodes or name a node twice. shards must be every shard
// whose intent was built on this scheduler.
func (s *Scheduler) Check(shards []*ShardState) error {
	type counts struct{ shards, attached int }
	type tn struct {
		t  shard.TenantID
		id NodeID
	}
	perNode := map[NodeID]*counts{}
	perTenant := map[tn]int{}
	var diffs []string
	add := func(id NodeID, attached bool, st *ShardState) {
		c := perNode[id]
		if c == nil {
			c = &counts{}
			perNode[id] = c
		}
		c.shards++
		if attached {
			c.attached++
		}
		perTenant[tn{st.ID.TenantID, id}]++
		if s.byID[id] == nil {
			diffs = append(diffs, fmt.Sprintf("shard %s: intent names unknown node %d", st.ID, id))
		}
	}
	for _, st := range shards {
		if st.attached != NoNode {
			add(st.attached, true, st)
		}
		for i, id := range st.secondaries {
			add(id, false, st)
			if id == st.attached || slices.Contains(st.secondaries[:i], id) {
				diffs = append(diffs, fmt.Sprintf("shard %s: node %d named twice in intent", st.ID, id))
			}
		}
	}
	for _, sn := range s.nodes {
		want := counts{}
		if c := perNode[sn.ID]; c != nil {
			want = *c
		}
		if sn.shards != want.shards || sn.attached != want.attached {
			diffs = append(diffs, fmt.Sprintf("node %d: shards %d attached %d, recount shards %d attached %d",
				sn.ID, sn.shards, sn.attached, want.shards, want.attached))
		}
	}
	// Per-tenant counts, both ways: every recounted pair must match, and
	// the scheduler must hold no pair the recount lacks.
	keys := slices.SortedFunc(maps.Keys(perTenant), func(a, b tn) int {
		if c := bytes.Compare(a.t[:], b.t[:]); c != 0 {
			return c
		}
		return cmpID(a.id, b.id)
	})
	for _, k := range keys {
		if got := s.TenantLocations(k.t, k.id); got != perTenant[k] {
			diffs = append(diffs, fmt.Sprintf("tenant %s on node %d: %d locations, recount %d", k.t, k.id, got, perTenant[k]))
		}
	}
	tenants := slices.SortedFunc(maps.Keys(s.tenants), func(a, b shard.TenantID) int { return bytes.Compare(a[:], b[:]) })
	for _, t := range tenants {
		for _, r := range s.tenants[t].nodes {
			if _, ok := perTenant[tn{t, r.node}]; !ok {
				diffs = append(diffs, fmt.Sprintf("tenant %s on node %d: %d locations, recount 0", t, r.node, r.n))
			}
		}
	}
	if len(diffs) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %s", ErrInconsistent, strings.Join(diffs, "; "))
}
