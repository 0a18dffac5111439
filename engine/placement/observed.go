package placement

import "slices"

// ObservedLocation is what the controller last knew of the shard on one
// node. A node without an ObservedLocation holds nothing of the shard (as
// far as the controller knows for certain).
type ObservedLocation struct {
	Node NodeID `json:"node_id"`
	// Known is false when the node may hold something the controller does
	// not know: a request to it failed part-way, or it went offline. Conf
	// is then zero.
	Known bool `json:"known"`
	// Conf is the configuration last applied (or read back) there.
	Conf LocationConf `json:"conf"`
}

func (st *ShardState) findObserved(id NodeID) (int, bool) {
	return slices.BinarySearchFunc(st.observed, id, func(o ObservedLocation, id NodeID) int { return cmpID(o.Node, id) })
}

// Observed returns the shard's observed location on node id; false if the
// node holds nothing.
func (st *ShardState) Observed(id NodeID) (ObservedLocation, bool) {
	if i, ok := st.findObserved(id); ok {
		return st.observed[i], true
	}
	return ObservedLocation{}, false
}

// ObservedLocations lists the observed locations by node id.
func (st *ShardState) ObservedLocations() []ObservedLocation { return slices.Clone(st.observed) }

// SetObserved records that node id holds conf. A Detached conf means it
// holds nothing: the entry is removed.
func (st *ShardState) SetObserved(id NodeID, conf LocationConf) {
	if conf.Mode == ModeDetached {
		st.ClearObserved(id)
		return
	}
	st.upsertObserved(ObservedLocation{Node: id, Known: true, Conf: conf})
}

// SetObservedUnknown records that node id may hold something unknown.
func (st *ShardState) SetObservedUnknown(id NodeID) {
	st.upsertObserved(ObservedLocation{Node: id})
}

// MarkUnknown makes an observed location on id unknown; a node observed to
// hold nothing still holds nothing.
func (st *ShardState) MarkUnknown(id NodeID) {
	if i, ok := st.findObserved(id); ok {
		st.observed[i] = ObservedLocation{Node: id}
	}
}

// ClearObserved records that node id holds nothing of the shard.
func (st *ShardState) ClearObserved(id NodeID) {
	if i, ok := st.findObserved(id); ok {
		st.observed = slices.Delete(st.observed, i, i+1)
	}
}

func (st *ShardState) upsertObserved(o ObservedLocation) {
	i, ok := st.findObserved(o.Node)
	if ok {
		st.observed[i] = o
		return
	}
	st.observed = slices.Insert(st.observed, i, o)
}

// Wanted is the location conf intent wants on node id: AttachedSingle with
// the shard's generation on the attached node, a warm Secondary on a
// secondary node, Detached anywhere else.
func (st *ShardState) Wanted(id NodeID) LocationConf {
	switch {
	case id == NoNode:
		return LocationConf{Mode: ModeDetached}
	case id == st.attached:
		return LocationConf{Mode: ModeAttachedSingle, Generation: st.generation, Shard: st.Identity, TenantConf: st.TenantConf}
	case slices.Contains(st.secondaries, id):
		return LocationConf{Mode: ModeSecondary, Warm: true, Shard: st.Identity, TenantConf: st.TenantConf}
	}
	return LocationConf{Mode: ModeDetached}
}

// Dirty reports whether a reconcile has work to do on an available node:
// a node intent names whose observed conf is absent, unknown or differs
// from Wanted (an attachment without a generation, or whose generation was
// not issued to the attached node, always differs: one must be issued — a
// node holding a generation issued to no one is not handed the shard back
// by its re-attach), or a node holding a location (known or unknown) that
// intent does not name. Unavailable nodes are ignored: nothing can be done
// there until they return.
func (st *ShardState) Dirty(s *Scheduler) bool {
	if st.attached != NoNode && s.Available(st.attached) {
		if !st.generation.Valid || st.generationNode != st.attached || !st.observedIs(st.attached) {
			return true
		}
	}
	for _, id := range st.secondaries {
		if s.Available(id) && !st.observedIs(id) {
			return true
		}
	}
	for _, o := range st.observed {
		if !st.InIntent(o.Node) && s.Available(o.Node) {
			return true
		}
	}
	return false
}

// observedIs reports whether node id is observed to hold exactly what
// intent wants there.
func (st *ShardState) observedIs(id NodeID) bool {
	o, ok := st.Observed(id)
	return ok && o.Known && o.Conf == st.Wanted(id)
}

// NeedsReconcile reports whether a reconciler should run: the shard is
// dirty or a compute notification is pending, and the scheduling policy is
// not Stop.
func (st *ShardState) NeedsReconcile(s *Scheduler) bool {
	return st.SchedulingPolicy != ShardStop && (st.PendingComputeNotification || st.Dirty(s))
}

// StablyAttached returns the attached node if it is observed to hold the
// shard in an attached mode (what a compute notification may name), else
// NoNode.
func (st *ShardState) StablyAttached() NodeID {
	if st.attached == NoNode {
		return NoNode
	}
	if o, ok := st.Observed(st.attached); ok && o.Known && o.Conf.Mode.Attached() {
		return st.attached
	}
	return NoNode
}
