package pageserver

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/stratadb/strata/clock"
	"github.com/stratadb/strata/disk"
	"github.com/stratadb/strata/engine/shard"
	"github.com/stratadb/strata/net"
	"github.com/stratadb/strata/nodes/pageserver/pageapi"
	"github.com/stratadb/strata/nodes/storcon/storconapi"
)

// Re-attach at start-up (docs/pageserver.md, "Re-attach at start-up").
// With a storage controller configured, the node asks it, before loading
// any shard, which shards it holds and with which generation: the
// controller increments the generation of every shard attached here and
// answers the attached ones (with the new generation) and the secondaries.
// The node then makes its disk match: listed shards get the answered mode
// and generation in their location file (created if missing), and shards
// not listed are removed. A generation never goes backwards: a local
// location file holding a higher generation than the answer is a
// controller bug, and that shard is refused (broken), not downgraded.

// ErrReAttach: the re-attach upcall failed (after its retries, or at once
// for an answer no retry can change); Start fails with it.
var ErrReAttach = errors.New("pageserver: re-attach to the storage controller failed")

// ErrReAttachRefused: the controller's answer for a shard cannot be
// applied (a generation below the local one, another shard identity, an
// invalid entry); the shard is broken with this reason.
var ErrReAttachRefused = errors.New("pageserver: re-attach answer refused")

// validateReAttach checks the re-attach settings of a defaulted c.
func (c Config) validateReAttach() error {
	switch {
	case c.ReAttachRetries < 0:
		return fmt.Errorf("%w: ReAttachRetries %d < 0", ErrConfig, c.ReAttachRetries)
	case c.ReAttachBackoff < 0:
		return fmt.Errorf("%w: ReAttachBackoff %v < 0", ErrConfig, c.ReAttachBackoff)
	case c.ReAttachBackoffMax < c.ReAttachBackoff:
		return fmt.Errorf("%w: ReAttachBackoffMax %v < ReAttachBackoff %v", ErrConfig, c.ReAttachBackoffMax, c.ReAttachBackoff)
	case c.ReAttachTimeout < 0:
		return fmt.Errorf("%w: ReAttachTimeout %v < 0", ErrConfig, c.ReAttachTimeout)
	case c.ControlPlane == nil:
		return nil
	}
	for _, a := range []struct{ name, addr string }{{"AdvertiseHTTPAddr", c.AdvertiseHTTPAddr}, {"AdvertisePageAddr", c.AdvertisePageAddr}} {
		if err := concreteAddr(a.addr); err != nil {
			return fmt.Errorf("%w: %s %q: %v (the storage controller must be able to reach it)", ErrConfig, a.name, a.addr, err)
		}
	}
	return nil
}

// concreteAddr accepts a "host:port" another node can dial: a host that is
// not a wildcard and a port that is not 0.
func concreteAddr(addr string) error {
	host, _, err := storconapi.SplitHostPort(addr)
	if err != nil {
		return err
	}
	switch host {
	case "", "0.0.0.0", "::":
		return fmt.Errorf("host %q is a wildcard, not an address", host)
	}
	return nil
}

// registerRequest is the register part of re-attach: where the node's
// management API and page service are reached, and its zone. Called on a
// validated config (the addresses split).
func (c Config) registerRequest() storconapi.NodeRegisterRequest {
	hh, hp, _ := storconapi.SplitHostPort(c.AdvertiseHTTPAddr)
	ph, pp, _ := storconapi.SplitHostPort(c.AdvertisePageAddr)
	return storconapi.NodeRegisterRequest{NodeID: c.NodeID, ListenHTTPAddr: hh, ListenHTTPPort: hp,
		ListenGRPCAddr: ph, ListenGRPCPort: pp, AvailabilityZoneID: c.AvailabilityZone}
}

// reAttachFatal reports an error no retry can change: the request or the
// credentials are wrong, or the address is not a storage controller.
func reAttachFatal(err error) bool {
	switch net.CodeOf(err) {
	case net.InvalidArgument, net.Unauthenticated, net.PermissionDenied, net.NotFound, net.Unimplemented:
		return true
	}
	return false
}

// callReAttach sends the re-attach upcall, retrying failures with doubling
// back-off (ReAttachBackoff up to ReAttachBackoffMax) at most
// ReAttachRetries times.
func (m *tenantManager) callReAttach(emptyDisk bool) (storconapi.ReAttachResponse, error) {
	cli := storconapi.Client{HTTP: m.cfg.ControlPlane, Token: m.cfg.ControlPlaneToken}
	reg := m.cfg.registerRequest()
	req := storconapi.ReAttachRequest{NodeID: m.cfg.NodeID, Register: &reg, EmptyLocalDisk: emptyDisk}
	wait := m.cfg.ReAttachBackoff
	for attempt := 1; ; attempt++ {
		ctx, cancel := clock.WithTimeout(m.clk, context.Background(), m.cfg.ReAttachTimeout)
		resp, err := cli.ReAttach(ctx, req)
		cancel()
		switch {
		case err == nil:
			return resp, nil
		case reAttachFatal(err):
			return resp, fmt.Errorf("%w: %s: %v (not retried)", ErrReAttach, m.cfg.ControlPlane, err)
		case attempt > m.cfg.ReAttachRetries:
			return resp, fmt.Errorf("%w: %s: %d attempts, the last: %v", ErrReAttach, m.cfg.ControlPlane, attempt, err)
		}
		m.log.Warn("re-attach failed; retrying", "controller", fmt.Sprint(m.cfg.ControlPlane), "attempt", attempt, "retry_in", wait, "err", err)
		if err := clock.Sleep(context.Background(), m.clk, wait); err != nil {
			return resp, fmt.Errorf("%w: %v", ErrReAttach, err)
		}
		wait = min(2*wait, m.cfg.ReAttachBackoffMax)
	}
}

// assignedConfig is the location config an answer entry asks for (its
// tenant_conf the defaults: a shard with a local file keeps its own), or
// why the entry is unusable.
func assignedConfig(t storconapi.ReAttachTenant) (pageapi.LocationConfig, error) {
	conf := pageapi.LocationConfig{Mode: t.Mode, Generation: t.Gen, ShardNumber: uint8(t.ID.Shard.Number),
		ShardCount: uint8(t.ID.Shard.Count), ShardStripeSize: t.StripeSize, TenantConf: &pageapi.TenantConf{}}
	switch {
	case t.Mode == pageapi.ModeSecondary:
		conf.SecondaryConf = &pageapi.SecondaryConf{Warm: true}
	case !t.Mode.Attached():
		return conf, fmt.Errorf("%w: mode %q (want an attached mode or Secondary)", ErrReAttachRefused, t.Mode)
	}
	if err := conf.Validate(t.ID); err != nil {
		return conf, fmt.Errorf("%w: %v", ErrReAttachRefused, err)
	}
	return conf, nil
}

// reAttach calls the controller and makes the local shards match its
// answer: a local shard not listed is removed (its data deleted, as a
// detach does); a listed one gets the answer as ts.assigned, applied to
// its location file by startLocation; a listed shard with no local state
// is added. It returns the shards to load, sorted by id; one the answer
// cannot be applied to comes back broken. Only a failed upcall is an
// error: nothing has been loaded or changed on disk then.
func (m *tenantManager) reAttach(local []*tenantShard) ([]*tenantShard, error) {
	resp, err := m.callReAttach(len(local) == 0)
	if err != nil {
		return nil, err
	}
	listed := map[shard.TenantShardID]*tenantShard{}
	for _, t := range resp.Tenants {
		if ts := listed[t.ID]; ts != nil {
			ts.assigned, ts.broken = nil, fmt.Errorf("%w: %v: listed twice by the controller", ErrBroken, ErrReAttachRefused)
			continue
		}
		ts := &tenantShard{id: t.ID, op: clock.NewMutex(m.clk)}
		listed[t.ID] = ts
		conf, err := assignedConfig(t)
		if err != nil {
			ts.broken = fmt.Errorf("%w: %v", ErrBroken, err)
			continue
		}
		ts.assigned = &conf
	}
	var removed, created int
	var out []*tenantShard
	for _, ts := range local {
		if listed[ts.id] != nil {
			continue // loaded from the listed entry, with the answer
		}
		m.log.Warn("tenant shard not listed by the storage controller: removing its local data", "tenant_shard_id", ts.id)
		if err := m.detach(ts); err != nil {
			// Never served; the next start retries the removal.
			ts.broken = fmt.Errorf("%w: not listed by the storage controller, and removing its local data failed: %v", ErrBroken, err)
			m.log.Error("tenant shard broken", "tenant_shard_id", ts.id, "err", ts.broken)
			out = append(out, ts)
			continue
		}
		removed++
	}
	have := map[shard.TenantShardID]bool{}
	for _, ts := range local {
		have[ts.id] = true
	}
	for _, id := range slices.SortedFunc(maps.Keys(listed), shard.TenantShardID.Compare) {
		ts := listed[id]
		if !have[id] {
			created++
			// Local shards always load (as without a controller); a new
			// one beyond the limit is refused.
			if ts.broken == nil && len(out) >= m.cfg.MaxTenantShards {
				ts.assigned, ts.broken = nil, fmt.Errorf("%w: %v: %d tenant shards, limit %d", ErrBroken, ErrLimit, len(out), m.cfg.MaxTenantShards)
			}
		}
		if ts.broken != nil {
			m.log.Error("tenant shard broken", "tenant_shard_id", id, "err", ts.broken)
		}
		out = append(out, ts)
	}
	slices.SortFunc(out, func(a, b *tenantShard) int { return a.id.Compare(b.id) })
	m.log.Info("re-attached to the storage controller", "controller", fmt.Sprint(m.cfg.ControlPlane),
		"listed", len(resp.Tenants), "local", len(local), "removed", removed, "new", created)
	return out, nil
}

// startLocation sets the shard's location config at start-up: the
// controller's answer applied to the local file if there is one
// (applyAssigned), else the local file as it is (readLocation).
func (m *tenantManager) startLocation(ts *tenantShard) error {
	ts.mu.Lock()
	a := ts.assigned
	ts.mu.Unlock()
	if a == nil {
		return m.readLocation(ts)
	}
	return m.applyAssigned(ts, *a)
}

// applyAssigned persists the controller's answer a as the shard's location
// config, then takes it. A local file keeps its tenant_conf and identity;
// its mode and generation become the answer's. A local generation above
// the answer's, or another shard identity, is refused
// (ErrReAttachRefused) and the file is left as it is; a local file that
// cannot be read is an error too (transient ones are retried by the
// caller).
func (m *tenantManager) applyAssigned(ts *tenantShard, a pageapi.LocationConfig) error {
	conf := a
	local, err := m.readLocationFile(ts)
	switch {
	case errors.Is(err, disk.ErrNotExist):
		// No local state (or a creation that crashed before its file was
		// written): the shard starts empty.
	case err != nil:
		return fmt.Errorf("re-attach: local location config: %w", err)
	default:
		if local.Generation != nil && a.Generation != nil && *local.Generation > *a.Generation {
			return fmt.Errorf("%w: %w: local location holds generation %d, the controller answered %d",
				ErrReAttachRefused, ErrStaleGeneration, *local.Generation, *a.Generation)
		}
		if !sameShard(local.Identity(), a.Identity()) {
			return fmt.Errorf("%w: local shard identity %s, the controller answered %s", ErrReAttachRefused, local.Identity(), a.Identity())
		}
		conf = local
		conf.Mode, conf.Generation, conf.SecondaryConf = a.Mode, a.Generation, a.SecondaryConf
	}
	if err := m.persistLocation(ts, conf); err != nil {
		return err
	}
	ts.mu.Lock()
	ts.conf, ts.assigned = conf, nil
	ts.mu.Unlock()
	m.log.Info("re-attach applied", "tenant_shard_id", ts.id, "mode", conf.Mode, "generation", generationText(conf.Generation),
		"local_generation", generationText(local.Generation))
	return nil
}

// sameShard compares identities; the stripe matters only with two shards
// or more.
func sameShard(a, b shard.ShardIdentity) bool {
	return a.Number == b.Number && a.Count == b.Count && (a.Count < 2 || a.StripeSize == b.StripeSize)
}
