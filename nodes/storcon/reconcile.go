package storcon

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/stratadb/strata/clock"
	"github.com/stratadb/strata/engine/placement"
	"github.com/stratadb/strata/engine/shard"
)

// errStale: a reconcile found the shard changed under it (another
// generation was issued meanwhile); it ends and runs again after
// StaleRetryBackoff.
var errStale = errors.New("storcon: shard changed during reconcile")

// StaleRetryBackoff is the pause before a reconcile that found its shard
// changed under it runs again.
const StaleRetryBackoff = 500 * time.Millisecond

// shardEntry is one shard under management: the placement core's state
// plus the service's bookkeeping of reconciles.
type shardEntry struct {
	st *placement.ShardState
	// creating: scheduled in memory while its row is being inserted; not
	// reconciled until the insert succeeded.
	creating bool
	// splitting mirrors the store's splitting column: set while a split
	// of the shard runs (split.go; it also holds reconciling, so nothing
	// else acts on the shard), and kept after a rollback the store did not
	// take, until start-up rolls it back.
	splitting bool
	// reconciling: a reconcile or a live migration owns the shard's
	// pageserver calls; nothing else sends it location configs.
	reconciling bool
	// again: the shard changed while reconciling; reconcile once more.
	again bool
	// runs counts the reconciles and live migrations started on the shard:
	// with reconciling, it tells whether the one running now is the one
	// that ran earlier (waitRunsEnded).
	runs uint64
	// queued: waiting in state.delayed for a slot.
	queued bool
	// doneSeq is the sequence the last finished reconcile started from,
	// doneErr its outcome: a caller that made a change at sequence n waits
	// until doneSeq >= n (waitReconciled).
	doneSeq uint64
	doneErr error
}

// tenantEntry holds a tenant's locks and its shards.
type tenantEntry struct {
	// op serializes the tenant's operations (create, delete, policy,
	// location_config, timelines, migrate, shard split).
	op *clock.Mutex
	// notify serializes compute notifications so an older one is never
	// sent after a newer one.
	notify *clock.Mutex
	// shards are the tenant's shards, by shard index.
	shards []*shardEntry
	// refs counts the callers holding or waiting for op (lockTenant): the
	// entry is removed once it has no shards and no such caller, so
	// operations on tenants that do not exist (or no longer do) leave
	// nothing behind.
	refs int
	// unsure: a write of the tenant's rows failed with an unknown outcome
	// and they could not be read back; memory may differ from the store
	// until they are (unsure.go). An entry without shards is kept while
	// it is set (a create whose insert may have been stored).
	unsure bool
}

// shardKey names a shard and the sequence to wait for.
type shardKey struct {
	id  shard.TenantShardID
	seq uint64
}

func compareShardIDs(a, b shard.TenantShardID) int { return a.Compare(b) }

// sortedShardIDs lists every shard by id. Called with s.mu held.
func (st *state) sortedShardIDs() []shard.TenantShardID {
	return slices.SortedFunc(maps.Keys(st.shards), compareShardIDs)
}

// tenant returns tenant t's entry, creating it. Called with s.mu held.
func (s *Service) tenantLocked(t shard.TenantID) *tenantEntry {
	te := s.state.tenants[t]
	if te == nil {
		te = &tenantEntry{op: clock.NewMutex(s.clk), notify: clock.NewMutex(s.clk)}
		s.state.tenants[t] = te
	}
	return te
}

// dropTenantIfUnusedLocked removes tenant t's entry if it has no shards
// and nobody holds or waits for its operation lock. Called with s.mu held.
func (s *Service) dropTenantIfUnusedLocked(t shard.TenantID) {
	if te := s.state.tenants[t]; te != nil && te.refs == 0 && len(te.shards) == 0 && !te.unsure {
		delete(s.state.tenants, t)
	}
}

// addShardLocked puts a shard under management. Called with s.mu held.
func (s *Service) addShardLocked(e *shardEntry) {
	s.state.shards[e.st.ID] = e
	te := s.tenantLocked(e.st.ID.TenantID)
	i, _ := slices.BinarySearchFunc(te.shards, e.st.ID, func(x *shardEntry, id shard.TenantShardID) int { return x.st.ID.Compare(id) })
	te.shards = slices.Insert(te.shards, i, e)
}

// removeShardLocked forgets a shard; its intent must be clear. Called with
// s.mu held.
func (s *Service) removeShardLocked(id shard.TenantShardID) {
	delete(s.state.shards, id)
	if te := s.state.tenants[id.TenantID]; te != nil {
		te.shards = slices.DeleteFunc(te.shards, func(x *shardEntry) bool { return x.st.ID == id })
	}
	s.changed.Broadcast()
}

// scheduleReconcileLocked starts a reconcile of e if it needs one, or
// records that it needs another if one runs; priority work may take a
// priority slot when the normal ones are full, the rest waits in the
// delayed queue (dropped, and counted, when that is full: reconcile_all
// picks it up). A shard that needs nothing is marked reconciled at its
// sequence. Called with s.mu held.
func (s *Service) scheduleReconcileLocked(e *shardEntry, priority bool) {
	switch {
	case e.creating || s.state.shuttingDown:
		return
	case e.reconciling:
		e.again = true
		return
	case !s.needsReconcileLocked(e):
		e.doneSeq, e.doneErr = e.st.Sequence(), nil
		s.changed.Broadcast()
		return
	case e.queued:
		return
	}
	switch {
	case s.slots.TryAcquire(1):
		s.startReconcileLocked(e, s.slots)
	case priority && s.prioSlots.TryAcquire(1):
		s.startReconcileLocked(e, s.prioSlots)
	case len(s.state.delayed) >= s.cfg.MaxDelayedReconciles:
		s.metrics.reconcileDropped.Inc()
	default:
		e.queued = true
		s.state.delayed = append(s.state.delayed, e.st.ID)
	}
}

// needsReconcileLocked is placement's NeedsReconcile with one refinement:
// a pending compute notification counts only when a reconcile can act on
// it — the tenant's map is complete (every shard attached in place), or
// the shard's policy has no attachment (the reconcile clears the flag). A
// tenant still missing an attachment would otherwise be reconciled every
// reconcile_all for nothing; the reconcile that completes it, or the
// first reconcile_all after it is complete, sends the notification.
// Called with s.mu held.
func (s *Service) needsReconcileLocked(e *shardEntry) bool {
	st := e.st
	switch {
	case st.SchedulingPolicy == placement.ShardStop:
		return false
	case st.Dirty(s.state.sched):
		return true
	case !st.PendingComputeNotification:
		return false
	case st.Policy.Kind != placement.PolicyAttached:
		return true // nothing to tell: the reconcile clears the flag
	}
	te := s.state.tenants[st.ID.TenantID]
	if te == nil {
		return false
	}
	_, complete := s.notifyRequestLocked(te)
	return complete
}

// requestReconcileLocked asks for a reconcile of e that starts after this
// call and returns the key to wait for. The sequence is bumped first, so
// neither a reconcile that already finished at the old sequence nor one
// running now (which runs again) can answer the waiter with its older
// outcome. Called with s.mu held.
func (s *Service) requestReconcileLocked(e *shardEntry, priority bool) shardKey {
	e.st.BumpSequence()
	s.scheduleReconcileLocked(e, priority)
	return shardKey{e.st.ID, e.st.Sequence()}
}

// scheduleAllLocked schedules every shard (intent repairs: shards left on
// offline nodes, policies not yet satisfied) and reconciles those that
// need it. It returns how many reconciles it started or queued. Called
// with s.mu held.
func (s *Service) scheduleAllLocked() int {
	if !s.state.ready {
		return 0 // start-up builds intent from observed first
	}
	n := 0
	for _, sid := range s.state.sortedShardIDs() {
		e := s.state.shards[sid]
		if e.creating || e.splitting && e.reconciling {
			continue // a split owns the shard's intent until it ends
		}
		s.repairIntentLocked(e)
		if !e.reconciling && !e.queued && s.needsReconcileLocked(e) {
			n++
		}
		s.scheduleReconcileLocked(e, false)
	}
	s.refreshGauges()
	return n
}

// repairIntentLocked moves a shard off an offline attached node (a
// failover that found no room earlier) and fills its policy. Called with
// s.mu held.
func (s *Service) repairIntentLocked(e *shardEntry) {
	if a := e.st.Attached(); a != placement.NoNode {
		if n, ok := s.state.schedNode(a); ok && n.Availability == placement.Offline {
			if err := e.st.NodeOffline(s.state.sched, a); err != nil {
				s.log.Debug("shard still attached to an offline node", "tenant_shard_id", e.st.ID, "node_id", a, "err", err)
			}
			return
		}
	}
	if err := e.st.Schedule(s.state.sched); err != nil {
		s.log.Debug("shard not fully placed", "tenant_shard_id", e.st.ID, "err", err)
	}
}

// reconcileLoop runs reconcile_all every ReconcileAllInterval.
func (s *Service) reconcileLoop(ctx context.Context) {
	for {
		s.lock()
		s.scheduleAllLocked()
		s.mu.Unlock()
		if err := clock.Sleep(ctx, s.clk, s.cfg.ReconcileAllInterval); err != nil {
			return
		}
	}
}

// reconcileAll is POST /debug/v1/reconcile_all.
func (s *Service) reconcileAll() int {
	s.lock()
	defer s.mu.Unlock()
	return s.scheduleAllLocked()
}

// reconcileJob is what a reconcile needs, copied under the lock: it works
// from the copy and applies each result under the lock as it gets it.
type reconcileJob struct {
	id       shard.TenantShardID
	seq      uint64
	attached placement.NodeID
	// wantAttached is the conf intent wants on the attached node, with the
	// generation the shard had when the job was made.
	wantAttached  placement.LocationConf
	wantSecondary placement.LocationConf
	secondaries   []placement.NodeID
	observed      []placement.ObservedLocation
	gen           placement.Generation
	genNode       placement.NodeID
	// clients of the nodes involved that are available (Active).
	clients map[placement.NodeID]psClient
	notify  bool // a compute notification is pending
	// noAttachment: the policy has no attached location (Secondary,
	// Detached): there is nothing to tell compute.
	noAttachment bool
}

func (s *Service) jobLocked(e *shardEntry) *reconcileJob {
	st := e.st
	j := &reconcileJob{
		id: st.ID, seq: st.Sequence(), attached: st.Attached(), secondaries: st.Secondaries(),
		observed: st.ObservedLocations(), notify: st.PendingComputeNotification,
		noAttachment: st.Policy.Kind != placement.PolicyAttached,
		clients:      map[placement.NodeID]psClient{},
	}
	j.gen, j.genNode = st.Generation()
	if j.attached != placement.NoNode {
		j.wantAttached = st.Wanted(j.attached)
	}
	j.wantSecondary = placement.LocationConf{Mode: placement.ModeSecondary, Warm: true, Shard: st.Identity, TenantConf: st.TenantConf}
	add := func(id placement.NodeID) {
		if ne := s.state.nodes[id]; ne != nil && s.state.sched.Available(id) {
			j.clients[id] = ne.client
		}
	}
	for _, id := range st.IntentNodes() {
		add(id)
	}
	for _, o := range j.observed {
		add(o.Node)
	}
	return j
}

func (j *reconcileJob) observedOn(id placement.NodeID) (placement.ObservedLocation, bool) {
	i := slices.IndexFunc(j.observed, func(o placement.ObservedLocation) bool { return o.Node == id })
	if i < 0 {
		return placement.ObservedLocation{}, false
	}
	return j.observed[i], true
}

func (j *reconcileJob) setObserved(id placement.NodeID, o placement.ObservedLocation, present bool) {
	j.observed = slices.DeleteFunc(j.observed, func(x placement.ObservedLocation) bool { return x.Node == id })
	if present {
		j.observed = append(j.observed, o)
		slices.SortFunc(j.observed, func(a, b placement.ObservedLocation) int { return cmpNode(a.Node, b.Node) })
	}
}

func cmpNode(a, b placement.NodeID) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// startReconcileLocked marks e reconciling and starts its task, which
// holds one unit of sem until it ends. Called with s.mu held.
func (s *Service) startReconcileLocked(e *shardEntry, sem *clock.Semaphore) {
	e.reconciling, e.again = true, false
	e.runs++
	s.state.running++
	s.state.started++
	job := s.jobLocked(e)
	s.metrics.reconcileSpawn.Inc()
	s.spawn("reconcile "+job.id.String(), func(ctx context.Context) {
		err := s.reconcile(ctx, job)
		s.finishReconcile(job, err, sem)
	})
}

// finishReconcile applies a reconcile's end: the shard is no longer
// reconciling, its doneSeq/doneErr tell waiters, it runs again if it
// changed meanwhile, and the freed slot goes to the delayed queue.
func (s *Service) finishReconcile(job *reconcileJob, err error, sem *clock.Semaphore) {
	s.lock()
	defer s.mu.Unlock()
	s.state.running--
	status := "ok"
	switch {
	case errors.Is(err, context.Canceled):
		status = "cancelled"
	case err != nil:
		status = "error"
		s.log.Info("reconcile failed", "tenant_shard_id", job.id, "err", err)
	}
	s.metrics.reconcileComplete.WithLabelValues(status).Inc()
	if e := s.state.shards[job.id]; e != nil {
		e.reconciling = false
		stale := errors.Is(err, errStale)
		if !stale {
			e.doneSeq, e.doneErr = job.seq, err
		}
		switch {
		case e.again:
			s.scheduleReconcileLocked(e, false)
		case stale:
			// Whatever made it stale (a re-attach issuing generations) may
			// still be going on: run again after a pause, not at once.
			id := job.id
			s.spawn("reconcile retry "+id.String(), func(ctx context.Context) {
				if clock.Sleep(ctx, s.clk, StaleRetryBackoff) != nil {
					return
				}
				s.lock()
				defer s.mu.Unlock()
				if e := s.state.shards[id]; e != nil {
					s.scheduleReconcileLocked(e, false)
				}
			})
		}
	}
	sem.Release(1)
	s.startDelayedLocked()
	s.changed.Broadcast()
	s.refreshGauges()
}

// startDelayedLocked gives free slots to the delayed queue, oldest first.
// Called with s.mu held.
func (s *Service) startDelayedLocked() {
	for len(s.state.delayed) > 0 && s.slots.TryAcquire(1) {
		id := s.state.delayed[0]
		s.state.delayed = s.state.delayed[1:]
		e := s.state.shards[id]
		if e == nil {
			s.slots.Release(1)
			continue
		}
		e.queued = false
		if e.creating || e.reconciling || !s.needsReconcileLocked(e) || s.state.shuttingDown {
			s.slots.Release(1)
			if !e.reconciling {
				e.doneSeq, e.doneErr = e.st.Sequence(), nil
			}
			continue
		}
		s.startReconcileLocked(e, s.slots)
	}
}

// reconcile makes the pageservers hold what the job's intent wants:
//
//  1. observed locations that are unknown are read back from their nodes;
//  2. the attached node: if it does not already hold the shard's current
//     generation (issued to it) in an attached mode, a new generation is
//     persisted FIRST and only then sent; a config-only change keeps the
//     generation;
//  3. secondary nodes get a warm Secondary;
//  4. locations intent no longer names are detached — only once the
//     attached location is in place, so a shard is never left without one.
//  5. compute is notified if the attached location changed or a
//     notification is pending.
//
// Unavailable nodes are skipped (their locations stay as they are until
// they return). Each result is applied under the lock as it arrives.
func (s *Service) reconcile(ctx context.Context, j *reconcileJob) error {
	var errs []error
	// 1. Refresh unknown observed state.
	for _, o := range slices.Clone(j.observed) {
		c, ok := j.clients[o.Node]
		if o.Known || !ok {
			continue
		}
		locs, err := c.listLocations(ctx, s.cfg.PageserverTimeout)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		conf, listed := locs[j.id]
		var lc placement.LocationConf
		if listed && conf != nil {
			lc, err = fromPageAPI(conf)
			if err != nil {
				errs = append(errs, err)
				continue
			}
		}
		if !listed {
			lc = detachedConf(j.wantSecondary.Shard)
		} else if conf == nil {
			continue // the node itself does not know: stays unknown
		}
		s.applyObserved(j, o.Node, lc, nil)
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}

	// 2. The attached location.
	attachOK, attachedChanged := true, false
	if c, ok := j.clients[j.attached]; ok {
		o, _ := j.observedOn(j.attached)
		want := j.wantAttached
		// In place only with a generation issued to this node: one issued
		// to no one (onboarding, a policy flip) is not listed by the node's
		// re-attach, which would drop the shard.
		if !(o.Known && o.Conf == want && j.genNode == j.attached) {
			attachedChanged = true
			if err := s.attach(ctx, j, c, o, want); err != nil {
				errs = append(errs, err)
				attachOK = false
				s.pendingAfterFailedAttach(j.id)
			}
		}
	} else if j.attached != placement.NoNode {
		attachOK = false // nothing can be done until the node is back
	} else if !j.noAttachment {
		// The policy wants an attachment that intent has not placed (no
		// node may take it, or the intent is frozen): whatever a node holds
		// attached is all there is, so nothing is detached or demoted.
		attachOK = false
	}

	// 3. Secondaries. One that holds (or may hold) the shard attached —
	// the origin of a migration that failed part-way, say — keeps it until
	// the attached location is in place: demoting it first could leave no
	// attached location at all.
	for _, id := range j.secondaries {
		c, ok := j.clients[id]
		if !ok {
			continue
		}
		o, _ := j.observedOn(id)
		if o.Known && o.Conf == j.wantSecondary {
			continue
		}
		if !attachOK && (!o.Known || o.Conf.Mode.Attached()) {
			continue
		}
		err := c.locationConfig(ctx, j.id, j.wantSecondary)
		s.applyObserved(j, id, j.wantSecondary, err)
		if err != nil {
			errs = append(errs, err)
		}
	}

	// 4. Detach what intent no longer names.
	if attachOK {
		for _, o := range slices.Clone(j.observed) {
			c, ok := j.clients[o.Node]
			if !ok || o.Node == j.attached || slices.Contains(j.secondaries, o.Node) {
				continue
			}
			if err := s.stillCurrent(j); err != nil {
				errs = append(errs, err)
				break
			}
			conf := detachedConf(j.wantSecondary.Shard)
			err := c.locationConfig(ctx, j.id, conf)
			s.applyObserved(j, o.Node, conf, err)
			if err != nil {
				errs = append(errs, err)
			}
		}
	}

	// 5. Tell compute.
	switch {
	case attachOK && j.attached != placement.NoNode && (attachedChanged || j.notify):
		// Bounded: a failure leaves the pending flag for a later reconcile
		// rather than holding this slot through every retry.
		nctx, cancel := clock.WithTimeout(s.clk, ctx, s.cfg.ReconcileNotifyTimeout)
		_ = s.notifyTenant(nctx, j.id.TenantID)
		cancel()
	case j.notify && j.attached == placement.NoNode && j.noAttachment:
		// Nothing to attach, nothing to tell: the flag would only make the
		// shard need reconciles forever. (A shard that should be attached
		// but is not placed yet keeps it: compute is told once it is.)
		s.lock()
		if e := s.state.shards[j.id]; e != nil {
			e.st.PendingComputeNotification = false
		}
		s.mu.Unlock()
	}
	return errors.Join(errs...)
}

// attach sends the attached location, with a new generation unless the
// node already holds the shard's current one (issued to it) in an
// attached mode.
func (s *Service) attach(ctx context.Context, j *reconcileJob, c psClient, o placement.ObservedLocation, want placement.LocationConf) error {
	needGen := !(o.Known && o.Conf.Mode.Attached() && j.gen.Valid && o.Conf.Generation == j.gen && j.genNode == j.attached)
	if !needGen {
		err := c.locationConfig(ctx, j.id, want)
		s.applyObserved(j, j.attached, want, err)
		return err
	}
	if s.cfg.Bugs.GenerationPersistAfterAttach {
		return s.attachPersistAfter(ctx, j, c, want)
	}
	if err := s.stillCurrent(j); err != nil {
		return err
	}
	g, err := s.issueGeneration(ctx, j.id, j.attached)
	if err != nil {
		return err
	}
	want.Generation = g
	err = c.locationConfig(ctx, j.id, want)
	s.applyObserved(j, j.attached, want, err)
	return err
}

// pendingAfterFailedAttach sets shard id's pending compute notification
// after an attach that failed: the node may hold the new attachment all
// the same (the answer was lost), and the reconcile that then finds it in
// place has no change of its own to tell compute about.
func (s *Service) pendingAfterFailedAttach(id shard.TenantShardID) {
	if s.hook == nil {
		return
	}
	s.lock()
	defer s.mu.Unlock()
	if e := s.state.shards[id]; e != nil {
		e.st.PendingComputeNotification = true
	}
}

// stillCurrent reports errStale if shard j.id's intent (attached and
// secondary nodes) changed since the job was made: a generation issued,
// or a location detached, on the strength of an old snapshot could serve
// an intent that no longer exists (detach a node intent now attaches). The
// reconcile stops; the one the change scheduled runs with the new intent.
// (Sequence bumps that leave intent as it was — a caller asking for a
// reconcile, a config change — do not stop it.)
func (s *Service) stillCurrent(j *reconcileJob) error {
	s.lock()
	defer s.mu.Unlock()
	e := s.state.shards[j.id]
	if e == nil {
		return fmt.Errorf("%w: shard %s", ErrNotFound, j.id)
	}
	if a := e.st.Attached(); a != j.attached || !slices.Equal(e.st.Secondaries(), j.secondaries) {
		return fmt.Errorf("%w: intent now attached %d secondaries %v, the reconcile started with %d %v",
			errStale, a, e.st.Secondaries(), j.attached, j.secondaries)
	}
	return nil
}

// issueGeneration persists the shard's next generation for node, then
// records it in memory: the store's increment is one atomic step, and
// nothing is sent to a pageserver before it is durable.
func (s *Service) issueGeneration(ctx context.Context, id shard.TenantShardID, node placement.NodeID) (placement.Generation, error) {
	g, err := s.store.IncrementGeneration(ctx, id, persistNode(node))
	if err != nil {
		return placement.Generation{}, err
	}
	gen := placement.Gen(uint32(g))
	s.lock()
	defer s.mu.Unlock()
	e := s.state.shards[id]
	if e == nil {
		return placement.Generation{}, fmt.Errorf("%w: shard %s", ErrNotFound, id)
	}
	if cur, _ := e.st.Generation(); cur.Valid && cur.N >= gen.N {
		// A re-attach issued a newer one meanwhile: start over from it.
		return placement.Generation{}, fmt.Errorf("%w: generation %s issued while %s was", errStale, cur, gen)
	}
	if err := e.st.SetGeneration(gen, node); err != nil {
		return placement.Generation{}, err
	}
	return gen, nil
}

// attachPersistAfter is the planted bug GenerationPersistAfterAttach: the
// generation is bumped in memory, sent, and persisted only afterwards — a
// crash in between lets the store issue the same generation again.
func (s *Service) attachPersistAfter(ctx context.Context, j *reconcileJob, c psClient, want placement.LocationConf) error {
	s.lock()
	e := s.state.shards[j.id]
	if e == nil {
		s.mu.Unlock()
		return fmt.Errorf("%w: shard %s", ErrNotFound, j.id)
	}
	cur, _ := e.st.Generation()
	gen := placement.Gen(cur.N + 1)
	err := e.st.SetGeneration(gen, j.attached)
	s.mu.Unlock()
	if err != nil {
		return err
	}
	want.Generation = gen
	err = c.locationConfig(ctx, j.id, want)
	s.applyObserved(j, j.attached, want, err)
	g, perr := s.store.IncrementGeneration(ctx, j.id, persistNode(j.attached))
	if perr == nil && uint32(g) > gen.N {
		s.lock()
		if e := s.state.shards[j.id]; e != nil {
			_ = e.st.SetGeneration(placement.Gen(uint32(g)), j.attached)
		}
		s.mu.Unlock()
	}
	return errors.Join(err, perr)
}

// applyObserved records the outcome of a location config sent to node:
// the conf on success, unknown on failure (the node may have applied it
// or not).
func (s *Service) applyObserved(j *reconcileJob, node placement.NodeID, conf placement.LocationConf, err error) {
	o := placement.ObservedLocation{Node: node}
	if err == nil {
		o.Known, o.Conf = true, conf
	}
	j.setObserved(node, o, err != nil || conf.Mode != placement.ModeDetached)
	s.lock()
	defer s.mu.Unlock()
	e := s.state.shards[j.id]
	if e == nil || s.state.nodes[node] == nil {
		return
	}
	if err != nil {
		e.st.SetObservedUnknown(node)
		return
	}
	e.st.SetObserved(node, conf)
}

// waitReconciled waits until a reconcile that started at sequence seq or
// later has finished for shard id and returns its error; ErrTimeout when
// ctx ends first.
func (s *Service) waitReconciled(ctx context.Context, id shard.TenantShardID, seq uint64) error {
	s.lock()
	defer s.mu.Unlock()
	for {
		e := s.state.shards[id]
		switch {
		case e == nil:
			return fmt.Errorf("%w: shard %s", ErrNotFound, id)
		case e.doneSeq >= seq && !e.creating:
			return e.doneErr
		case s.state.shuttingDown:
			return ErrShuttingDown
		}
		if err := s.changed.Wait(ctx); err != nil {
			return fmt.Errorf("%w: shard %s not reconciled to sequence %d: %w", ErrTimeout, id, seq, err)
		}
	}
}

// runMark names the run (reconcile or live migration) a shard had under
// way at some moment.
type runMark struct {
	id  shard.TenantShardID
	run uint64
}

// waitRunsEnded waits until every run of marks has ended (its shard is no
// longer reconciling, runs another since, or is gone), whatever its
// outcome; ErrTimeout when ctx ends first.
func (s *Service) waitRunsEnded(ctx context.Context, marks []runMark) error {
	s.lock()
	defer s.mu.Unlock()
	for _, m := range marks {
		for {
			e := s.state.shards[m.id]
			if e == nil || !e.reconciling || e.runs != m.run {
				break
			}
			if s.state.shuttingDown {
				return ErrShuttingDown
			}
			if err := s.changed.Wait(ctx); err != nil {
				return fmt.Errorf("%w: shard %s: a reconcile started before the change still runs: %w", ErrTimeout, m.id, err)
			}
		}
	}
	return nil
}

// waitAll waits for every shard of keys (waitReconciled) and joins the
// errors.
func (s *Service) waitAll(ctx context.Context, keys []shardKey) error {
	var errs []error
	for _, k := range keys {
		if err := s.waitReconciled(ctx, k.id, k.seq); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
