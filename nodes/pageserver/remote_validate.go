package pageserver

import (
	"context"
	"fmt"
	"maps"
	"slices"

	"github.com/stratadb/strata/clock"
	"github.com/stratadb/strata/engine/layer"
	"github.com/stratadb/strata/engine/lsn"
	"github.com/stratadb/strata/engine/shard"
	"github.com/stratadb/strata/nodes/storcon/storconapi"
)

// The validator (docs/remote-storage.md, "Validating generations") asks
// the storage controller whether the generations this node uploads and
// deletes under are still current, through POST /upcall/v1/validate, in
// batches: an uploaded remote_consistent_lsn becomes visible (reported to
// safekeepers and in the timeline list) only after its generation
// validated, and a deletion list is executed only for the tenants whose
// generation validated (the others' entries are dropped: a leak, never a
// wrong delete). A shard the controller omits counts as invalid.
//
// Without a controller (Config.ControlPlane nil) the local location files
// are authoritative and there is no one to ask: an uploaded
// remote_consistent_lsn is visible at once, and a deletion list entry is
// valid iff the shard is attached here with the same generation.

// genKey is one (tenant shard, generation) pair to validate.
type genKey struct {
	id  shard.TenantShardID
	gen layer.Generation
}

func compareGenKey(a, b genKey) int {
	if c := a.id.Compare(b.id); c != 0 {
		return c
	}
	return int(int64(a.gen) - int64(b.gen))
}

type rclUpdate struct {
	q *uploadQueue
	l lsn.LSN
}

type validator struct {
	rs  *remoteStorage
	ctl *storconapi.Client // nil: no controller
	// localGen reports the generation a shard is attached with here
	// (ok false: not attached). Set by the tenant manager.
	localGen func(shard.TenantShardID) (layer.Generation, bool)

	mu   *clock.Mutex
	cond *clock.Cond
	// rcl are uploaded remote_consistent_lsn values waiting for their
	// generation to validate, one per queue (the newest).
	rcl    []rclUpdate
	kicked bool // the deletion queue has lists to validate
}

func newValidator(rs *remoteStorage, ctl *storconapi.Client) *validator {
	mu := clock.NewMutex(rs.clk)
	return &validator{rs: rs, ctl: ctl, mu: mu, cond: clock.NewCond(mu)}
}

// projectRCL records that q's index up to l is uploaded: l becomes q's
// visible remote_consistent_lsn once q's generation validates after now.
func (v *validator) projectRCL(q *uploadQueue, l lsn.LSN) {
	if v.ctl == nil {
		q.setVisible(l)
		return
	}
	_ = v.mu.Lock(context.Background())
	defer v.mu.Unlock()
	for i := range v.rcl {
		if v.rcl[i].q == q {
			v.rcl[i].l = max(v.rcl[i].l, l)
			v.cond.Broadcast()
			return
		}
	}
	v.rcl = append(v.rcl, rclUpdate{q, l})
	v.cond.Broadcast()
}

// kick says the deletion queue has written a list to validate.
func (v *validator) kick() {
	_ = v.mu.Lock(context.Background())
	defer v.mu.Unlock()
	v.kicked = true
	v.cond.Broadcast()
}

// run is the validator's loop (a node task): wait for work, gather more
// for ValidateInterval, validate it in one call, apply the answer.
func (v *validator) run(ctx context.Context) {
	failures := 0
	for {
		if err := v.mu.Lock(ctx); err != nil {
			return
		}
		for len(v.rcl) == 0 && !v.kicked {
			if err := v.cond.Wait(ctx); err != nil {
				v.mu.Unlock()
				return
			}
		}
		v.mu.Unlock()
		if clock.Sleep(ctx, v.rs.clk, v.rs.cfg.ValidateInterval) != nil {
			return
		}
		_ = v.mu.Lock(context.Background())
		rcl := v.rcl
		v.rcl = nil
		v.kicked = false
		v.mu.Unlock()
		lists := v.rs.deletions.unvalidated()
		keys := map[genKey]bool{}
		for _, u := range rcl {
			keys[genKey{u.q.tsid, u.q.rt.gen}] = true
		}
		for _, l := range lists {
			for _, k := range l.genKeys() {
				keys[k] = true
			}
		}
		valid, err := v.validate(ctx, keys)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			failures++
			v.rs.metrics.validations.WithLabelValues("error").Inc()
			wait := v.rs.cfg.backoff(failures)
			v.rs.log.Warn("validating generations failed; will retry", "failures", failures, "wait", wait, "err", err)
			v.requeue(rcl, len(lists) > 0)
			if clock.Sleep(ctx, v.rs.clk, wait) != nil {
				return
			}
			continue
		}
		failures = 0
		for _, u := range rcl {
			if valid[genKey{u.q.tsid, u.q.rt.gen}] {
				u.q.setVisible(u.l)
			} else {
				u.q.log.Warn("generation no longer valid: remote_consistent_lsn not reported", "generation", u.q.rt.gen, "uploaded", u.l)
			}
		}
		if len(lists) > 0 {
			v.rs.deletions.applyValidation(lists, valid)
		}
	}
}

// requeue puts back work a failed validation did not get through.
func (v *validator) requeue(rcl []rclUpdate, lists bool) {
	for _, u := range rcl {
		v.projectRCL(u.q, u.l)
	}
	if lists {
		v.kick()
	}
}

// validate answers, for each key, whether its generation is current: the
// controller's answer (an omitted shard is invalid), or without a
// controller whether the shard is attached here with that generation.
func (v *validator) validate(ctx context.Context, keys map[genKey]bool) (map[genKey]bool, error) {
	sorted := slices.SortedFunc(maps.Keys(keys), compareGenKey)
	out := map[genKey]bool{}
	if v.ctl == nil {
		for _, k := range sorted {
			g, ok := v.localGen(k.id)
			out[k] = ok && g == k.gen
		}
		return out, nil
	}
	// The controller answers per shard, so each shard is asked about once,
	// with its highest generation here: a lower one cannot be current
	// (generations only grow, and this node holds the higher one).
	var ask []genKey
	for i, k := range sorted {
		if i+1 < len(sorted) && sorted[i+1].id == k.id {
			out[k] = false
			continue
		}
		ask = append(ask, k)
	}
	for start := 0; start < len(ask); start += storconapi.MaxValidateTenants {
		chunk := ask[start:min(start+storconapi.MaxValidateTenants, len(ask))]
		req := storconapi.ValidateRequest{Tenants: make([]storconapi.ValidateTenant, len(chunk))}
		for i, k := range chunk {
			req.Tenants[i] = storconapi.ValidateTenant{ID: k.id, Gen: uint32(k.gen)}
		}
		resp, err := v.ctl.Validate(ctx, req)
		if err != nil {
			return nil, fmt.Errorf("validate %d generations: %w", len(chunk), err)
		}
		answered := map[shard.TenantShardID]bool{}
		for _, t := range resp.Tenants {
			answered[t.ID] = t.Valid
		}
		for _, k := range chunk {
			out[k] = answered[k.id] // omitted: invalid
		}
	}
	for _, k := range sorted {
		result := "invalid"
		if out[k] {
			result = "valid"
		}
		v.rs.metrics.validations.WithLabelValues(result).Inc()
	}
	return out, nil
}
