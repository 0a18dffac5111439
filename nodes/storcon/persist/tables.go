package persist

import (
	"cmp"
	"fmt"
	"maps"
	"math"
	"slices"

	"github.com/stratadb/strata/engine/layer"
	"github.com/stratadb/strata/engine/shard"
)

// txn is one transaction of the embedded store as its log records it: the
// after-image of every row it changes. Replaying it is applying it, so the
// log needs no logic of its own and a transaction is one record — all or
// nothing.
type txn struct {
	// Seq numbers transactions 1, 2, 3… with no gap; the snapshot records
	// the last one it covers.
	Seq       uint64                `json:"seq"`
	DelNodes  []NodeID              `json:"del_nodes,omitempty"`
	PutNodes  []Node                `json:"put_nodes,omitempty"`
	DelShards []shard.TenantShardID `json:"del_shards,omitempty"`
	PutShards []TenantShard         `json:"put_shards,omitempty"`
	// Gens are generation changes, kept apart from PutShards so that a
	// re-attach of a node holding thousands of shards stays a small record.
	Gens []genChange `json:"gens,omitempty"`
}

type genChange struct {
	ID         shard.TenantShardID `json:"id"`
	Generation layer.Generation    `json:"gen"`
	Node       NodeID              `json:"node"`
}

func (x *txn) empty() bool {
	return len(x.DelNodes)+len(x.PutNodes)+len(x.DelShards)+len(x.PutShards)+len(x.Gens) == 0
}

// tables is the embedded store's state in memory: the two tables of the
// schema. Its plan methods compute a transaction from the current state
// without changing it (or refuse with an argument error); apply changes it.
type tables struct {
	nodes   map[NodeID]Node
	tenants map[shard.TenantID]map[shard.ShardIndex]TenantShard
	shards  int // rows in tenants
}

func newTables() *tables {
	return &tables{nodes: map[NodeID]Node{}, tenants: map[shard.TenantID]map[shard.ShardIndex]TenantShard{}}
}

func cmpIndex(a, b shard.ShardIndex) int {
	if c := cmp.Compare(a.Number, b.Number); c != 0 {
		return c
	}
	return cmp.Compare(a.Count, b.Count)
}

func cmpTenant(a, b shard.TenantID) int { return slices.Compare(a[:], b[:]) }

func (t *tables) shard(id shard.TenantShardID) (TenantShard, bool) {
	s, ok := t.tenants[id.TenantID][id.Shard]
	return s, ok
}

// tenantShards lists one tenant's rows in shard order.
func (t *tables) tenantShards(tid shard.TenantID) []TenantShard {
	rows := t.tenants[tid]
	out := make([]TenantShard, 0, len(rows))
	for _, idx := range slices.SortedFunc(maps.Keys(rows), cmpIndex) {
		out = append(out, rows[idx])
	}
	return out
}

// listShards lists every row that keep accepts, in id order.
func (t *tables) listShards(keep func(TenantShard) bool) []TenantShard {
	var out []TenantShard
	for _, tid := range slices.SortedFunc(maps.Keys(t.tenants), cmpTenant) {
		for _, s := range t.tenantShards(tid) {
			if keep == nil || keep(s) {
				out = append(out, s)
			}
		}
	}
	return out
}

func (t *tables) listNodes() []Node {
	out := make([]Node, 0, len(t.nodes))
	for _, id := range slices.Sorted(maps.Keys(t.nodes)) {
		out = append(out, t.nodes[id])
	}
	return out
}

// selected lists the rows sel picks, in shard order.
func (t *tables) selected(sel Selector) []TenantShard {
	if sel.AllShards {
		return t.tenantShards(sel.Tenant)
	}
	if s, ok := t.shard(shard.TenantShardID{TenantID: sel.Tenant, Shard: sel.Shard}); ok {
		return []TenantShard{s}
	}
	return nil
}

// apply makes x's changes: deletions, then puts, then generation changes.
// It refuses (ErrCorrupt) a generation change that names a missing row or
// does not increase the generation, so a damaged log cannot lower one.
func (t *tables) apply(x *txn) error {
	for _, id := range x.DelNodes {
		delete(t.nodes, id)
	}
	for _, n := range x.PutNodes {
		t.nodes[n.ID] = n
	}
	for _, id := range x.DelShards {
		rows := t.tenants[id.TenantID]
		if _, ok := rows[id.Shard]; ok {
			delete(rows, id.Shard)
			t.shards--
		}
		if len(rows) == 0 {
			delete(t.tenants, id.TenantID)
		}
	}
	for _, s := range x.PutShards {
		rows := t.tenants[s.ID.TenantID]
		if rows == nil {
			rows = map[shard.ShardIndex]TenantShard{}
			t.tenants[s.ID.TenantID] = rows
		}
		if _, ok := rows[s.ID.Shard]; !ok {
			t.shards++
		}
		rows[s.ID.Shard] = s
	}
	for _, g := range x.Gens {
		s, ok := t.shard(g.ID)
		if !ok {
			return fmt.Errorf("%w: transaction %d sets the generation of missing shard %s", ErrCorrupt, x.Seq, g.ID)
		}
		if g.Generation <= s.Generation {
			return fmt.Errorf("%w: transaction %d moves shard %s's generation from %d to %d", ErrCorrupt, x.Seq, g.ID, s.Generation, g.Generation)
		}
		s.Generation, s.GenerationNode = g.Generation, g.Node
		t.tenants[g.ID.TenantID][g.ID.Shard] = s
	}
	return nil
}

// validateRows checks every row (a snapshot's or a replayed state's).
func (t *tables) validate() error {
	for _, n := range t.listNodes() {
		if err := ValidateNode(n); err != nil {
			return err
		}
	}
	for _, s := range t.listShards(nil) {
		if err := ValidateTenantShard(s); err != nil {
			return err
		}
	}
	return nil
}

func (t *tables) node(id NodeID) (Node, error) {
	if err := ValidateNodeID(id); err != nil {
		return Node{}, err
	}
	n, ok := t.nodes[id]
	if !ok {
		return Node{}, fmt.Errorf("%w: node %d", ErrNotFound, id)
	}
	return n, nil
}

func (t *tables) planUpsertNode(n Node) (*txn, error) {
	n.Lifecycle = LifecycleActive
	if err := ValidateNode(n); err != nil {
		return nil, err
	}
	return &txn{PutNodes: []Node{n}}, nil
}

// planNodeChange plans a change of one existing node row.
func (t *tables) planNodeChange(id NodeID, change func(*Node)) (*txn, error) {
	n, err := t.node(id)
	if err != nil {
		return nil, err
	}
	change(&n)
	if err := ValidateNode(n); err != nil {
		return nil, err
	}
	return &txn{PutNodes: []Node{n}}, nil
}

func (t *tables) planDeleteNode(id NodeID) (*txn, error) {
	if _, err := t.node(id); err != nil {
		return nil, err
	}
	return &txn{DelNodes: []NodeID{id}}, nil
}

func (t *tables) planInsertShards(rows []TenantShard) (*txn, error) {
	if err := ValidateInsert(rows); err != nil {
		return nil, err
	}
	seen := make(map[shard.TenantShardID]bool, len(rows))
	for _, s := range rows {
		if seen[s.ID] {
			return nil, fmt.Errorf("%w: shard %s twice in one insert", ErrExists, s.ID)
		}
		seen[s.ID] = true
		if _, ok := t.shard(s.ID); ok {
			return nil, fmt.Errorf("%w: shard %s", ErrExists, s.ID)
		}
	}
	return &txn{PutShards: slices.Clone(rows)}, nil
}

func (t *tables) planDeleteTenant(tid shard.TenantID) (*txn, error) {
	rows := t.tenantShards(tid)
	if len(rows) == 0 {
		return nil, fmt.Errorf("%w: tenant %s", ErrNotFound, tid)
	}
	x := &txn{}
	for _, s := range rows {
		x.DelShards = append(x.DelShards, s.ID)
	}
	return x, nil
}

func (t *tables) planUpdate(sel Selector, u ShardUpdate) (*txn, error) {
	if err := ValidateUpdate(u); err != nil {
		return nil, err
	}
	rows := t.selected(sel)
	if len(rows) == 0 {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, sel)
	}
	x := &txn{}
	for _, s := range rows {
		if u.Generation != nil && *u.Generation < s.Generation {
			return nil, fmt.Errorf("%w: shard %s: setting generation %d below the stored %d", ErrConflict, s.ID, *u.Generation, s.Generation)
		}
		if u.PlacementPolicy != nil {
			s.PlacementPolicy = *u.PlacementPolicy
		}
		if u.Config != nil {
			s.Config = *u.Config
		}
		if u.SchedulingPolicy != nil {
			s.SchedulingPolicy = *u.SchedulingPolicy
		}
		if u.PreferredAZ != nil {
			s.PreferredAZ = *u.PreferredAZ
		}
		if u.Generation != nil {
			s.Generation = *u.Generation
		}
		if u.ClearGenerationNode {
			s.GenerationNode = 0
		}
		x.PutShards = append(x.PutShards, s)
	}
	return x, nil
}

// nextGeneration is g + 1, or ErrGenerationExhausted.
func nextGeneration(id shard.TenantShardID, g layer.Generation) (layer.Generation, error) {
	if g == math.MaxUint32 {
		return 0, fmt.Errorf("%w: shard %s holds generation %d", ErrGenerationExhausted, id, g)
	}
	return g + 1, nil
}

func (t *tables) planIncrement(id shard.TenantShardID, node NodeID) (*txn, layer.Generation, error) {
	if err := id.Shard.Validate(); err != nil {
		return nil, 0, fmt.Errorf("%w: shard %s: %w", ErrInvalid, id, err)
	}
	if err := ValidateNodeID(node); err != nil {
		return nil, 0, err
	}
	s, ok := t.shard(id)
	if !ok {
		return nil, 0, fmt.Errorf("%w: shard %s", ErrNotFound, id)
	}
	g, err := nextGeneration(id, s.Generation)
	if err != nil {
		return nil, 0, err
	}
	return &txn{Gens: []genChange{{ID: id, Generation: g, Node: node}}}, g, nil
}

// planReAttach plans the increment of every shard whose generation node is
// node, and returns those rows as they will be after it.
func (t *tables) planReAttach(node NodeID) (*txn, []TenantShard, error) {
	if err := ValidateNodeID(node); err != nil {
		return nil, nil, err
	}
	x := &txn{}
	var rows []TenantShard
	for _, s := range t.listShards(func(s TenantShard) bool { return s.GenerationNode == node }) {
		g, err := nextGeneration(s.ID, s.Generation)
		if err != nil {
			return nil, nil, err
		}
		s.Generation = g
		x.Gens = append(x.Gens, genChange{ID: s.ID, Generation: g, Node: node})
		rows = append(rows, s)
	}
	return x, rows, nil
}

func (t *tables) planSetSplitting(tid shard.TenantID, splitting bool) (*txn, error) {
	rows := t.tenantShards(tid)
	if len(rows) == 0 {
		return nil, fmt.Errorf("%w: tenant %s", ErrNotFound, tid)
	}
	x := &txn{}
	for _, s := range rows {
		s.Splitting = splitting
		x.PutShards = append(x.PutShards, s)
	}
	return x, nil
}

func (t *tables) planBeginSplit(tid shard.TenantID, oldCount shard.ShardCount, children []TenantShard) (*txn, error) {
	if _, err := ValidateSplit(tid, oldCount, children); err != nil {
		return nil, err
	}
	var parents []TenantShard
	for _, s := range t.tenantShards(tid) {
		if s.ID.Shard.Count == oldCount {
			parents = append(parents, s)
		}
	}
	if len(parents) == 0 {
		return nil, fmt.Errorf("%w: tenant %s has no shards of count %d to split", ErrNotFound, tid, oldCount)
	}
	if want := int(max(uint8(oldCount), 1)); len(parents) != want {
		return nil, fmt.Errorf("%w: tenant %s has %d shards of count %d, want %d", ErrConflict, tid, len(parents), oldCount, want)
	}
	x := &txn{}
	for _, p := range parents {
		if p.Splitting {
			return nil, fmt.Errorf("%w: shard %s is already splitting", ErrConflict, p.ID)
		}
		p.Splitting = true
		x.PutShards = append(x.PutShards, p)
	}
	for _, c := range children {
		if _, ok := t.shard(c.ID); ok {
			return nil, fmt.Errorf("%w: shard %s", ErrExists, c.ID)
		}
		parent, _ := t.shard(shard.TenantShardID{TenantID: tid, Shard: ParentIndex(c.ID.Shard, oldCount)})
		c.Generation = parent.Generation // a child never starts below its parent
		c.Splitting = true
		x.PutShards = append(x.PutShards, c)
	}
	return x, nil
}

func (t *tables) planCommitSplit(tid shard.TenantID, oldCount shard.ShardCount) (*txn, error) {
	rows := t.tenantShards(tid)
	if len(rows) == 0 {
		return nil, fmt.Errorf("%w: tenant %s", ErrNotFound, tid)
	}
	x := &txn{}
	for _, s := range rows {
		switch {
		case s.ID.Shard.Count == oldCount:
			x.DelShards = append(x.DelShards, s.ID)
		case s.Splitting:
			s.Splitting = false
			x.PutShards = append(x.PutShards, s)
		}
	}
	return x, nil
}

func (t *tables) planAbortSplit(tid shard.TenantID, newCount shard.ShardCount) (*txn, SplitOutcome, error) {
	rows := t.tenantShards(tid)
	if len(rows) == 0 {
		return nil, 0, fmt.Errorf("%w: tenant %s", ErrNotFound, tid)
	}
	x := &txn{}
	parents := 0
	for _, s := range rows {
		if s.ID.Shard.Count == newCount {
			x.DelShards = append(x.DelShards, s.ID)
			continue
		}
		parents++
		if s.Splitting {
			s.Splitting = false
			x.PutShards = append(x.PutShards, s)
		}
	}
	if parents == 0 {
		return &txn{}, SplitCommitted, nil
	}
	if parents >= int(max(uint8(newCount), 1)) {
		return nil, 0, fmt.Errorf("%w: tenant %s has %d shards besides those of count %d: not a split into %d", ErrConflict, tid, parents, newCount, newCount)
	}
	return x, SplitAborted, nil
}
