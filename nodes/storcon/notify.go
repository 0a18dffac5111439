package storcon

import (
	"context"

	"github.com/stratadb/strata/engine/shard"
	"github.com/stratadb/strata/nodes/storcon/storconapi"
)

// notifyTenant tells compute where tenant t's shards are attached — only
// once every shard of the tenant's current count is attached with its
// current generation (compute given a partial map would route pages of the
// missing shards nowhere). Notifications of one tenant are serialized and
// each is built from the state at the time it is sent, so an older map is
// never sent after a newer one. A failure — the hook's answer, or ctx
// ending before this notification's turn — sets the shards' pending flag,
// which makes them need a reconcile: a later one (reconcile_all) resends.
// So does a map that is not complete yet (the change that made this call
// must still reach compute once it is, and the map may become complete
// without any reconcile: a node that comes back holding what intent
// wants). Only a success clears it. It returns the failure (nil also when
// there is nothing to send yet).
func (s *Service) notifyTenant(ctx context.Context, t shard.TenantID) error {
	s.lock()
	te := s.state.tenants[t]
	s.mu.Unlock()
	if te == nil {
		return nil
	}
	if err := te.notify.Lock(ctx); err != nil {
		s.lock()
		if _, ok := s.notifyRequestLocked(te); ok && s.hook != nil {
			s.setPendingLocked(te, true)
		}
		s.mu.Unlock()
		return err
	}
	defer te.notify.Unlock()
	s.lock()
	req, ok := s.notifyRequestLocked(te)
	switch {
	case s.hook == nil:
		s.setPendingLocked(te, false)
	case !ok:
		s.setPendingLocked(te, true)
	}
	s.mu.Unlock()
	if !ok || s.hook == nil {
		return nil
	}
	err := s.hook.Notify(ctx, req)
	s.lock()
	defer s.mu.Unlock()
	if err != nil {
		s.log.Warn("compute notification failed; will retry", "tenant_id", t, "err", err)
	}
	s.setPendingLocked(te, err != nil)
	return err
}

func (s *Service) setPendingLocked(te *tenantEntry, pending bool) {
	for _, e := range te.shards {
		e.st.PendingComputeNotification = pending
	}
}

// notifyRequestLocked builds tenant te's notification; false if not every
// shard of the tenant's count is attached yet (with the planted bug
// NotifyBeforeAllShards: if none is). Called with s.mu held.
func (s *Service) notifyRequestLocked(te *tenantEntry) (storconapi.NotifyAttachRequest, bool) {
	var req storconapi.NotifyAttachRequest
	if len(te.shards) == 0 {
		return req, false
	}
	first := te.shards[0].st
	count := first.Identity.Count
	req.TenantID = first.ID.TenantID
	if az := first.PreferredAZ(); az != "" {
		a := string(az)
		req.PreferredAZ = &a
	}
	if count > 1 {
		stripe := first.Identity.StripeSize
		req.StripeSize = &stripe
	}
	req.Shards = []storconapi.NotifyAttachShard{}
	for _, e := range te.shards {
		if e.st.Identity.Count != count {
			continue // a split's other generation of shards
		}
		if !s.attachedReadyLocked(e) {
			if s.cfg.Bugs.NotifyBeforeAllShards {
				continue
			}
			return req, false
		}
		req.Shards = append(req.Shards, storconapi.NotifyAttachShard{NodeID: uint64(e.st.Attached()), ShardNumber: e.st.Identity.Number})
	}
	if len(req.Shards) == 0 || (len(req.Shards) < max(int(count), 1) && !s.cfg.Bugs.NotifyBeforeAllShards) {
		return req, false
	}
	return req, true
}
