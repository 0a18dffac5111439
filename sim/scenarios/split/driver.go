package split

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/stratadb/strata/clock"
	"github.com/stratadb/strata/engine/lsn"
	"github.com/stratadb/strata/engine/shard"
	"github.com/stratadb/strata/nodes/node"
	"github.com/stratadb/strata/nodes/pageserver/pageapi"
	"github.com/stratadb/strata/nodes/storcon/storconapi"
	"github.com/stratadb/strata/sim/scenarios/pagecheck"
)

// driver is the operator's client: it creates the tenant, asks for the
// splits, and runs the liveness phase and the final checks.
type driver struct {
	c   *cluster
	env node.Env
	api storconapi.Client
	op  pagecheck.Operator
	// wanted is the largest count a split was asked for (0: none yet);
	// seen the largest count the controller reported.
	wanted shard.ShardCount
	seen   int
}

func (d *driver) setup() error {
	c := d.c
	init := startLSN
	return d.op.CreateTenant(storconapi.TenantCreateRequest{NewTenantID: tenant(), Config: &c.conf,
		ShardParameters: storconapi.ShardParameters{Count: uint8(c.initial), StripeSize: c.stripe}},
		pageapi.TimelineCreateRequest{NewTimelineID: timelineID(), InitLSN: &init}, 300)
}

// waitUploaded waits until every shard of the tenant has uploaded an
// index (remote_consistent_lsn above 0). A timeline that never uploaded
// one exists only on its pageserver's disk, and a shard moved off a
// pageserver that stays down would come up without it (docs/simulator.md,
// split scenario): the faults start once the tenant is durable.
func (d *driver) waitUploaded() error {
	for range 600 {
		td, ok := d.describe(true)
		done := ok && len(td.Shards) > 0
		for _, s := range td.Shards {
			if !done {
				break
			}
			list, err := d.op.Timelines(pagecheck.PageserverHTTPAddr(int(*s.NodeAttached)), s.TenantShardID)
			done = err == nil && len(list) == 1 && list[0].RemoteConsistentLSN > 0
		}
		if done {
			return nil
		}
		d.c.w.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("%w: the tenant's shards uploaded no index within a minute", ErrNoProgress)
}

// targets are the counts the seed splits to, in order.
func (d *driver) targets() []shard.ShardCount {
	if d.c.initial == 0 {
		return []shard.ShardCount{2, 4}
	}
	return []shard.ShardCount{4}
}

func (d *driver) splitRequest(to shard.ShardCount) storconapi.ShardSplitRequest {
	req := storconapi.ShardSplitRequest{NewShardCount: to}
	if d.c.initial == 0 && to == 2 && d.c.newStripe != 0 {
		req.NewStripeSize = ptr(d.c.newStripe)
	}
	return req
}

// split asks for a split to "to" once; a success is checked against the
// controller's description when it answers.
func (d *driver) split(to shard.ShardCount) error {
	ctx, cancel := clock.WithTimeout(d.env.Clock, context.Background(), 4*opTimeout)
	defer cancel()
	d.wanted = max(d.wanted, to)
	resp, err := d.api.ShardSplit(ctx, tenant(), d.splitRequest(to))
	if err != nil {
		return err
	}
	if len(resp.NewShards) != int(to) {
		d.c.o.fail(fmt.Errorf("%w: a split to %d answered %d shards: %v", ErrSplit, to, len(resp.NewShards), resp.NewShards))
	}
	d.c.w.Log().Info("split: committed", "to", to)
	return nil
}

// splitter asks for each split at a random moment of the safety phase,
// retrying a failed call, and between calls checks the tenant's shape.
func (d *driver) splitter(safety time.Duration) {
	c := d.c
	rng := c.w.NewRand("splitter")
	end := c.w.Now() + safety
	for _, to := range d.targets() {
		c.w.Sleep(time.Duration(1+rng.IntN(int(safety/time.Second)/2+1)) * time.Second)
		for c.safety {
			err := d.split(to)
			d.describe(false)
			if err == nil {
				break
			}
			c.w.Log().Info("split: failed, retrying", "to", to, "err", err)
			c.w.Sleep(time.Duration(200+rng.IntN(800)) * time.Millisecond)
		}
	}
	for c.safety && c.w.Now() < end {
		d.describe(false)
		c.w.Sleep(500 * time.Millisecond)
	}
}

// describe checks the controller's view of the tenant when it answers:
// the count never goes down; once no shard is marked splitting, the
// shards are exactly those of one count (split, or rolled back). With
// settled it also requires that (and returns false while it does not
// hold).
func (d *driver) describe(settled bool) (storconapi.TenantDescribe, bool) {
	ctx, cancel := clock.WithTimeout(d.env.Clock, context.Background(), opTimeout)
	defer cancel()
	td, err := d.api.DescribeTenant(ctx, tenant())
	if err != nil {
		return td, false
	}
	if int(td.ShardCount) < d.seen {
		d.c.o.fail(fmt.Errorf("%w: the controller reports %d shards after %d", ErrSplit, td.ShardCount, d.seen))
	}
	d.seen = max(d.seen, int(td.ShardCount))
	splitting := slices.ContainsFunc(td.Shards, func(s storconapi.ShardDescribe) bool { return s.IsSplitting })
	if splitting {
		return td, false
	}
	var got []string
	for _, s := range td.Shards {
		got = append(got, s.TenantShardID.Shard.String())
	}
	var want []string
	for n := range max(int(td.ShardCount), 1) {
		want = append(want, shard.ShardIndex{Number: shard.ShardNumber(n), Count: shard.ShardCount(td.ShardCount)}.String())
	}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		d.c.o.fail(fmt.Errorf("%w: nothing is marked splitting, yet the shards are %v (count %d wants %v)", ErrSplit, got, td.ShardCount, want))
		return td, false
	}
	if settled {
		for _, s := range td.Shards {
			if s.IsReconciling || s.IsDirty || s.PendingComputeNotification || s.NodeAttached == nil {
				return td, false
			}
		}
	}
	return td, true
}

// liveness heals, finishes the last split asked for, and checks
// everything converged and every block reads back correctly.
func (d *driver) liveness() error {
	c, w := d.c, d.c.w
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
	base := c.h.MaxCommit()
	if err := until("a fresh record commits", func() (bool, string) {
		return c.h.MaxCommit() > base, c.h.MaxCommit().String()
	}); err != nil {
		return err
	}
	final := d.wanted
	if final == 0 {
		final = c.initial
	}
	if d.wanted != 0 {
		if err := until("the last split asked for commits", func() (bool, string) {
			err := d.split(d.wanted)
			return err == nil, fmt.Sprint(err)
		}); err != nil {
			return err
		}
	}
	var td storconapi.TenantDescribe
	if err := until("the tenant settles", func() (bool, string) {
		var ok bool
		td, ok = d.describe(true)
		return ok && td.ShardCount == uint8(final), fmt.Sprintf("%+v", td)
	}); err != nil {
		return err
	}
	want, _ := pagecheck.MapFromDescribe(td, func(n uint64) string { return pagecheck.PageserverPageAddr(int(n)) })
	if err := until("the pageservers hold attached exactly the final shards", func() (bool, string) {
		got, err := d.attachedEverywhere()
		return err == nil && slices.Equal(got, want.Addrs), fmt.Sprintf("%v %v, want %v", got, err, want.Addrs)
	}); err != nil {
		return err
	}
	if err := until("the compute's map is the controller's", func() (bool, string) {
		cl := c.comp.reader.Client()
		return cl != nil && cl.ShardMap().String() == want.String(), fmt.Sprintf("want %s", want)
	}); err != nil {
		return err
	}
	c.h.Stop()
	rb := pagecheck.WAL{Env: d.env, Safekeepers: c.skAddrs, Tenant: tenant(), Timeline: timelineID(), Start: startLSN, Sleep: w.Sleep, Now: w.Now}
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
	for n := range want.Shards() {
		id := tsid(want.Index(shard.ShardNumber(n)))
		if err := until(fmt.Sprintf("shard %s ingests up to %s", id, commit), func() (bool, string) {
			return d.ingested(want.Addrs[n], id, commit)
		}); err != nil {
			return err
		}
	}
	// Every block reads back through the client at the final commit.
	if err := until("every block reads back", func() (bool, string) {
		err := c.comp.reader.ReadAll(context.Background(), commit)
		return err == nil, fmt.Sprint(err)
	}); err != nil {
		return err
	}
	counts, err := c.h.Verify(m)
	if err != nil {
		return err
	}
	if n := pagecheck.RetriedInternal(c.w.Node(computeID).Env()); n > 0 {
		return fmt.Errorf("%w: %v retries counted under Internal", ErrRetriedInternal, n)
	}
	c.o.mu.Lock()
	stats := fmt.Sprintf("splits=%d notifies=%d targeted=%d", c.o.splits, c.o.notifies, c.targeted)
	c.o.mu.Unlock()
	errs := c.comp.reader.Errors()
	w.Log().Info("split checked", "commit", commit, "records", m.Records(), "reads", c.h.Reads(), "answers", fmt.Sprint(counts),
		"final_count", final, "client_errors", errs, "stats", stats)
	w.Note(uint64(commit), uint64(c.h.Reads()))
	if counts["OK"] < blocks {
		return fmt.Errorf("split: only %d pages checked (%v)", counts["OK"], counts)
	}
	return c.failure()
}

// attachedEverywhere lists, per shard number of the tenant's pageserver
// locations in an attached mode, the page address of the node holding it;
// an error if a shard is attached twice or shards of two counts are.
func (d *driver) attachedEverywhere() ([]string, error) {
	var out []string
	count := -1
	for i := 1; i <= d.c.nPS; i++ {
		list, err := d.op.Locations(pagecheck.PageserverHTTPAddr(i))
		if err != nil {
			return nil, err
		}
		for _, l := range list.TenantShards {
			id, err := shard.ParseTenantShardID(l.ID)
			if err != nil || id.TenantID != tenant() || l.Config == nil || !l.Config.Mode.Attached() {
				continue
			}
			n, cnt := int(id.Shard.Number), int(id.Shard.Count)
			if count != -1 && cnt != count {
				return nil, fmt.Errorf("shards of counts %d and %d attached", count, cnt)
			}
			count = cnt
			for len(out) <= n {
				out = append(out, "")
			}
			if out[n] != "" {
				return nil, fmt.Errorf("shard %s attached on %s and %s", id, out[n], pagecheck.PageserverPageAddr(i))
			}
			out[n] = pagecheck.PageserverPageAddr(i)
		}
	}
	return out, nil
}

func (d *driver) ingested(pageAddr string, id shard.TenantShardID, commit lsn.LSN) (bool, string) {
	var node int
	if _, err := fmt.Sscanf(pageAddr, "ps-%d:", &node); err != nil {
		return false, err.Error()
	}
	list, err := d.op.Timelines(pagecheck.PageserverHTTPAddr(node), id)
	return err == nil && len(list) == 1 && list[0].LastRecordLSN >= commit, fmt.Sprintf("%+v %v", list, err)
}
