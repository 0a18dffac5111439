package storcon

import (
	"context"
	"fmt"

	"github.com/stratadb/strata/engine/layer"
	"github.com/stratadb/strata/engine/placement"
	"github.com/stratadb/strata/engine/shard"
	"github.com/stratadb/strata/nodes/pageserver/pageapi"
	"github.com/stratadb/strata/nodes/storcon/persist"
	"github.com/stratadb/strata/nodes/storcon/storconapi"
)

// reAttach is POST /upcall/v1/re-attach, a pageserver's first call when it
// starts. Every shard whose generation was issued to the node gets a new
// one, in one store step, before anything is answered; the answer lists
// those as AttachedSingle with the new generation and the shards intent
// keeps a secondary on as Secondary (no generation). The pageserver drops
// every other local shard, so the controller forgets what it believed the
// node held besides the answer. The node is WarmingUp until its first
// heartbeat; a node that was paused for its restart, draining or filling
// goes back to policy Active (the restart is done, the operation with it).
// The shards answered attached get a pending compute notification: the
// node holds them now whatever compute last heard.
func (s *Service) reAttach(ctx context.Context, req storconapi.ReAttachRequest) (storconapi.ReAttachResponse, error) {
	var resp storconapi.ReAttachResponse
	if req.NodeID == 0 {
		return resp, fmt.Errorf("%w: node_id is required", storconapi.ErrBadRequest)
	}
	if err := s.waitReady(ctx); err != nil {
		return resp, err
	}
	if req.Register != nil {
		if req.Register.NodeID != req.NodeID {
			return resp, fmt.Errorf("%w: register names node %d, not %d", storconapi.ErrBadRequest, req.Register.NodeID, req.NodeID)
		}
		if err := s.registerNode(ctx, *req.Register); err != nil {
			return resp, err
		}
	}
	id := placement.NodeID(req.NodeID)
	if err := s.nodeMu.Lock(ctx); err != nil {
		return resp, err
	}
	defer s.nodeMu.Unlock()
	s.lock()
	e := s.state.nodes[id]
	var policy placement.NodePolicy
	if e != nil {
		n, _ := s.state.schedNode(id)
		policy = n.Policy
	}
	s.mu.Unlock()
	if e == nil {
		return resp, fmt.Errorf("%w: node %d is not registered", ErrNotFound, id)
	}
	switch policy {
	case placement.NodePauseForRestart, placement.NodeDraining, placement.NodeFilling:
		s.cancelNodeOp(id)
		if err := s.setNodePolicy(ctx, id, placement.NodeActive); err != nil {
			return resp, err
		}
	}

	rows, err := s.reAttachRows(ctx, id)
	if err != nil {
		return resp, err
	}
	s.lock()
	defer s.mu.Unlock()
	listed := map[string]bool{}
	for _, r := range rows {
		se := s.state.shards[r.ID]
		if se == nil {
			continue
		}
		gen := placement.Gen(uint32(r.Generation))
		if cur, _ := se.st.Generation(); !cur.Valid || cur.N <= gen.N {
			if err := se.st.SetGeneration(gen, id); err != nil {
				return storconapi.ReAttachResponse{}, err
			}
		}
		conf := placement.LocationConf{Mode: placement.ModeAttachedSingle, Generation: gen, Shard: se.st.Identity, TenantConf: se.st.TenantConf}
		if req.EmptyLocalDisk {
			se.st.SetObservedUnknown(id)
		} else {
			se.st.SetObserved(id, conf)
		}
		// The node now holds the shard attached without any reconcile
		// having attached it there (a move to it that failed part-way is
		// completed by this answer): compute may not know. The flag makes
		// a reconcile tell it once the tenant's map is complete (the
		// notifier sends nothing if compute already has that map).
		if s.hook != nil {
			se.st.PendingComputeNotification = true
		}
		g := gen.N
		resp.Tenants = append(resp.Tenants, storconapi.ReAttachTenant{ID: r.ID, Gen: &g, Mode: pageapi.ModeAttachedSingle, StripeSize: se.st.Identity.StripeSize})
		listed[r.ID.String()] = true
	}
	for _, sid := range s.state.sortedShardIDs() {
		se := s.state.shards[sid]
		if listed[sid.String()] {
			continue
		}
		if se.st.InIntent(id) && se.st.Attached() != id {
			resp.Tenants = append(resp.Tenants, storconapi.ReAttachTenant{ID: sid, Mode: pageapi.ModeSecondary, StripeSize: se.st.Identity.StripeSize})
			se.st.SetObservedUnknown(id)
			continue
		}
		// Not listed: the pageserver deletes it.
		se.st.ClearObserved(id)
	}
	now := s.clk.Mono()
	e.warmingSince, e.lastOK = now, now
	if err := s.state.updateNode(id, func(n *placement.Node) { n.Availability = placement.WarmingUp }); err != nil {
		return storconapi.ReAttachResponse{}, err
	}
	s.log.Info("node re-attached", "node_id", id, "attached", len(rows), "answered", len(resp.Tenants), "empty_local_disk", req.EmptyLocalDisk)
	if resp.Tenants == nil {
		resp.Tenants = []storconapi.ReAttachTenant{}
	}
	return resp, nil
}

// reAttachRows increments, in one store step, every generation issued to
// node and returns those rows. With the planted bug ReAttachNoBump it
// returns them unchanged.
func (s *Service) reAttachRows(ctx context.Context, node placement.NodeID) ([]persist.TenantShard, error) {
	if !s.cfg.Bugs.ReAttachNoBump {
		return s.store.ReAttach(ctx, persistNode(node))
	}
	all, err := s.store.ListTenantShards(ctx)
	if err != nil {
		return nil, err
	}
	var out []persist.TenantShard
	for _, r := range all {
		if r.GenerationNode == persistNode(node) && r.Generation != layer.GenerationNone {
			out = append(out, r)
		}
	}
	return out, nil
}

// validate is POST /upcall/v1/validate: a generation is valid only if it
// is the shard's current one both in memory and in the store (memory alone
// could be ahead of what is durable, or behind a re-attach another
// controller process answered). Shards the controller does not know are
// omitted, which the pageserver treats as invalid. With the planted bug
// ValidateMemoryOnly the store is never asked.
func (s *Service) validate(ctx context.Context, req storconapi.ValidateRequest) (storconapi.ValidateResponse, error) {
	resp := storconapi.ValidateResponse{Tenants: []storconapi.ValidateResponseTenant{}}
	if len(req.Tenants) > storconapi.MaxValidateTenants {
		return resp, fmt.Errorf("%w: %d tenants in one validate (limit %d)", storconapi.ErrBadRequest, len(req.Tenants), storconapi.MaxValidateTenants)
	}
	if err := s.waitReady(ctx); err != nil {
		return resp, err
	}
	type check struct {
		t   storconapi.ValidateTenant
		mem bool
	}
	checks := make([]check, 0, len(req.Tenants))
	s.lock()
	for _, t := range req.Tenants {
		e := s.state.shards[t.ID]
		if e == nil {
			continue
		}
		g, _ := e.st.Generation()
		checks = append(checks, check{t: t, mem: g.Valid && g.N == t.Gen})
	}
	s.mu.Unlock()
	// The store is read once per tenant (a sharded tenant's shards are
	// usually validated together), only for shards memory finds valid.
	stored := map[shard.TenantID]map[shard.TenantShardID]layer.Generation{}
	for _, c := range checks {
		valid := c.mem
		if valid && !s.cfg.Bugs.ValidateMemoryOnly {
			gens, ok := stored[c.t.ID.TenantID]
			if !ok {
				rows, err := s.store.TenantShards(ctx, c.t.ID.TenantID)
				if err != nil {
					return storconapi.ValidateResponse{}, err
				}
				gens = make(map[shard.TenantShardID]layer.Generation, len(rows))
				for _, r := range rows {
					gens[r.ID] = r.Generation
				}
				stored[c.t.ID.TenantID] = gens
			}
			g, ok := gens[c.t.ID]
			if !ok {
				continue // not in the store: omitted, as unknown shards are
			}
			valid = uint32(g) == c.t.Gen
		}
		resp.Tenants = append(resp.Tenants, storconapi.ValidateResponseTenant{ID: c.t.ID, Valid: valid})
	}
	return resp, nil
}
