package cluster

import (
	"context"
	"fmt"
	"time"

	"github.com/stratadb/strata/disk/objstore"
	"github.com/stratadb/strata/engine/layer"
	"github.com/stratadb/strata/engine/lsn"
	"github.com/stratadb/strata/engine/remote"
	"github.com/stratadb/strata/nodes/storcon/storconapi"
	"github.com/stratadb/strata/sim"
	"github.com/stratadb/strata/sim/scenarios/pagecheck"
)

// describeAny is the controller's view of the tenant.
func (c *cluster) describeAny() (storconapi.TenantDescribe, error) {
	var td storconapi.TenantDescribe
	err := c.op.Call("describe", 1, func(ctx context.Context) (err error) {
		td, err = c.op.API.DescribeTenant(ctx, tenant())
		return err
	})
	return td, err
}

// describe returns the controller's view of the tenant and whether it is
// settled: every shard attached, nothing reconciling, dirty or waiting to
// notify the compute.
func (c *cluster) describe() (storconapi.TenantDescribe, bool) {
	td, err := c.describeAny()
	if err != nil || len(td.Shards) != max(int(c.shards), 1) {
		return td, false
	}
	for _, s := range td.Shards {
		if s.IsReconciling || s.IsDirty || s.PendingComputeNotification || s.NodeAttached == nil {
			return td, false
		}
	}
	return td, true
}

// liveness runs after healing: the cluster settles, a pageserver that
// loses its disk comes back from object storage and catches up while the
// compute writes (after the safekeepers removed WAL), the committed WAL
// read back holds every acknowledged commit, every shard ingests all of
// it, every read was right and every block reads back, every timeline's
// remote_consistent_lsn reaches its disk_consistent_lsn, and the newest
// index of each shard names only objects that exist.
func (c *cluster) liveness() error {
	w := c.w
	deadline := w.Now() + livenessBudget
	until := func(what string, cond func() (bool, string)) error {
		for {
			if err := c.failure(); err != nil {
				return err
			}
			ok, last := cond()
			if ok {
				return nil
			}
			if w.Now() >= deadline {
				return fmt.Errorf("%w: %s within %v: %s", ErrNoProgress, what, livenessBudget, last)
			}
			w.Sleep(200 * time.Millisecond)
		}
	}
	fresh := func(what string) error {
		base := c.h.MaxCommit()
		return until(what, func() (bool, string) { return c.h.MaxCommit() > base, c.h.MaxCommit().String() })
	}
	settled := func() (storconapi.TenantDescribe, error) {
		var td storconapi.TenantDescribe
		err := until("the tenant settles", func() (bool, string) {
			var ok bool
			td, ok = c.describe()
			return ok, fmt.Sprintf("%+v", td)
		})
		return td, err
	}
	if err := fresh("a fresh record commits"); err != nil {
		return err
	}
	td, err := settled()
	if err != nil {
		return err
	}
	// A lost disk while the compute writes: the shard comes back from
	// object storage and must reach a commit made after it (the
	// safekeepers have removed WAL below what was remote by now).
	lost := int(*td.Shards[0].NodeAttached)
	w.Log().Info("liveness: pageserver loses its disk", "node", lost)
	c.wipe[lost] = true
	w.Restart(pagecheck.PageserverID(lost))
	if err := fresh("a record commits after the lost disk"); err != nil {
		return err
	}
	target := c.h.MaxCommit()
	if td, err = settled(); err != nil {
		return err
	}
	if err := c.ingested(td, target, until); err != nil {
		return err
	}

	c.h.Stop()
	rb := pagecheck.WAL{Env: c.op.Env, Safekeepers: c.skAddrs, Tenant: tenant(), Timeline: timelineID(), Start: startLSN,
		Sleep: w.Sleep, Now: w.Now, Store: w.Store(), SegmentBytes: lsn.LSN(c.segSize)}
	commit, err := rb.FinalCommit(context.Background(), c.h.MaxCommit(), deadline)
	if err != nil {
		return err
	}
	wal, err := rb.Committed(context.Background(), commit, deadline)
	if err != nil {
		return err
	}
	m, err := pagecheck.NewModel(wal, startLSN)
	if err != nil {
		return err
	}
	if err := c.h.CheckAcked(m); err != nil {
		return err
	}
	if td, err = settled(); err != nil {
		return err
	}
	if err := c.ingested(td, commit, until); err != nil {
		return err
	}
	want, _ := pagecheck.MapFromDescribe(td, func(n uint64) string { return pagecheck.PageserverPageAddr(int(n)) })
	if err := until("the compute's map is the controller's", func() (bool, string) {
		cl := c.reader.Client()
		return cl != nil && cl.ShardMap().String() == want.String(), fmt.Sprintf("want %s", want)
	}); err != nil {
		return err
	}
	if err := until("every block reads back", func() (bool, string) {
		err := c.reader.ReadAll(context.Background(), commit)
		return err == nil, fmt.Sprint(err)
	}); err != nil {
		return err
	}
	counts, err := c.h.Verify(m)
	if err != nil {
		return err
	}
	if n := pagecheck.RetriedInternal(w.Node(computeID).Env()); n > 0 {
		return fmt.Errorf("%w: %v retries counted under Internal", ErrRetriedInternal, n)
	}
	for _, s := range td.Shards {
		node := int(*s.NodeAttached)
		if err := until(fmt.Sprintf("shard %s's remote_consistent_lsn reaches its disk_consistent_lsn", s.TenantShardID), func() (bool, string) {
			list, err := c.op.Timelines(pagecheck.PageserverHTTPAddr(node), s.TenantShardID)
			ok := err == nil && len(list) == 1 && list[0].DiskConsistentLSN > 0 && list[0].RemoteConsistentLSN >= list[0].DiskConsistentLSN
			return ok, fmt.Sprintf("%+v %v", list, err)
		}); err != nil {
			return err
		}
		if err := c.objectsExist(s); err != nil {
			return err
		}
	}
	w.Log().Info("cluster checked", "commit", commit, "records", m.Records(), "reads", c.h.Reads(), "answers", fmt.Sprint(counts),
		"client_errors", c.reader.Errors(), "spies", c.o.summary(), "store_faults", fmt.Sprintf("%+v", w.Store().Stats()))
	w.Note(uint64(commit), uint64(c.h.Reads()))
	c.stats()
	if counts["OK"] < blocks {
		return fmt.Errorf("cluster: only %d pages checked (%v)", counts["OK"], counts)
	}
	return c.failure()
}

// ingested waits until each shard's attached pageserver has ingested up
// to target.
func (c *cluster) ingested(td storconapi.TenantDescribe, target lsn.LSN, until func(string, func() (bool, string)) error) error {
	for _, s := range td.Shards {
		node := int(*s.NodeAttached)
		if err := until(fmt.Sprintf("shard %s on pageserver %d ingests up to %s", s.TenantShardID, node, target), func() (bool, string) {
			list, err := c.op.Timelines(pagecheck.PageserverHTTPAddr(node), s.TenantShardID)
			return err == nil && len(list) == 1 && list[0].LastRecordLSN >= target, fmt.Sprintf("%+v %v", list, err)
		}); err != nil {
			return err
		}
	}
	return nil
}

// objectsExist checks that every layer the newest index of shard s's
// current generation names is in object storage.
func (c *cluster) objectsExist(s storconapi.ShardDescribe) error {
	c.o.mu.Lock()
	gen := c.o.issued[s.TenantShardID]
	c.o.mu.Unlock()
	if s.Generation != nil {
		gen = max(gen, *s.Generation)
	}
	ip, g, found, err := c.newestIndex(s.TenantShardID, timelineID(), layer.Generation(gen))
	if err != nil {
		return err
	}
	if !found {
		return fmt.Errorf("%w: shard %s has no index at or below generation %d", ErrMissingObject, s.TenantShardID, gen)
	}
	return c.peek(func(st objstore.Store) error {
		for _, l := range ip.Layers {
			key := remote.Layout{}.LayerKey(s.TenantShardID.TenantID, timelineID(), l.LayerID)
			if _, err := st.Head(context.Background(), key); err != nil {
				return fmt.Errorf("%w: %s (index of generation %s): %v", ErrMissingObject, key, g, err)
			}
		}
		return nil
	})
}

// stats records the run's counts beside the seed's result: what the spies
// saw, what the operator did, and how much WAL the safekeepers removed.
func (c *cluster) stats() {
	w := c.w
	c.o.mu.Lock()
	st := c.o.stats
	c.o.mu.Unlock()
	sim.Stat(w, "deletes", st.deletes)
	sim.Stat(w, "invalid_validations", st.invalid)
	sim.Stat(w, "stale_acks", st.staleAcks)
	sim.Stat(w, "replays", st.replaysAcked)
	removed := 0.0
	for _, id := range c.sks {
		mfs, err := w.Node(id).Env().Metrics.Gather()
		if err != nil {
			continue
		}
		for _, mf := range mfs {
			if mf.GetName() == "safekeeper_wal_removed_segments_total" {
				for _, m := range mf.GetMetric() {
					removed += m.GetCounter().GetValue()
				}
			}
		}
	}
	sim.Stat(w, "wal_removed_segments", int(removed))
	if c.opr != nil {
		sim.Stat(w, "operator", c.opr.summary())
	}
}
