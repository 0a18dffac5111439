package pageserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/stratadb/strata/clock"
	"github.com/stratadb/strata/disk"
	"github.com/stratadb/strata/disk/objstore"
	"github.com/stratadb/strata/engine/layer"
	"github.com/stratadb/strata/engine/remote"
	"github.com/stratadb/strata/engine/shard"
)

// The deletion queue (docs/remote-storage.md, "Deletion queue"). Upload
// queues hand it the objects an uploaded index no longer names. It
// gathers them in memory and writes them, at DeletionFlushKeys keys or
// once the oldest waited DeletionFlushInterval, as a numbered list on
// local disk:
//
//	deletion/<sequence 016x>-01.list  {version:1, sequence, tenants:{<tenant shard>:
//	                                    {timelines:{<timeline>:[object names]}, generation}}, size, validated?}
//	deletion/header-01                {version:1, validated_sequence}
//
// The validator then asks the controller about each list's generations;
// a tenant's entries are kept only if its generation is valid, otherwise
// dropped (counted: a leak, never a wrong delete). The filtered list is
// rewritten as validated, then the header records the validated
// sequence. The executor deletes a validated list's objects in batches of
// at most objstore.MaxDeleteBatch keys, retrying until they succeed, then
// removes the list file. After a restart, lists at or below the header's
// sequence (or marked validated) are executed; the others validated
// first. Keys still in memory when the node crashes are never deleted.

const (
	deletionDir        = "deletion"
	deletionHeaderName = deletionDir + "/header-01"
	deletionListSuffix = "-01.list"
	deletionVersion    = 1
)

// Files of the deletion queue, as persisted.
type (
	deletionListFile struct {
		Version  int    `json:"version"`
		Sequence uint64 `json:"sequence"`
		// Tenants by tenant shard id (encoding/json writes keys sorted).
		Tenants   map[string]*deletionTenantFile `json:"tenants"`
		Size      int                            `json:"size"`
		Validated bool                           `json:"validated,omitempty"`
	}
	deletionTenantFile struct {
		// Timelines: object names (layer name with generation suffix)
		// under the tenant shard's timeline prefix.
		Timelines  map[string][]string `json:"timelines"`
		Generation uint32              `json:"generation"`
	}
	deletionHeaderFile struct {
		Version           int    `json:"version"`
		ValidatedSequence uint64 `json:"validated_sequence"`
	}
)

// deletionList is one list written to disk.
type deletionList struct {
	file      deletionListFile
	validated bool
}

func deletionListName(seq uint64) string {
	return fmt.Sprintf("%s/%016x%s", deletionDir, seq, deletionListSuffix)
}

// genKeys lists the list's (tenant shard, generation) pairs, sorted.
func (l *deletionList) genKeys() []genKey {
	var out []genKey
	for _, tsid := range slices.Sorted(maps.Keys(l.file.Tenants)) {
		id, err := shard.ParseTenantShardID(tsid)
		if err != nil {
			continue // refused at load
		}
		out = append(out, genKey{id, layer.Generation(l.file.Tenants[tsid].Generation)})
	}
	return out
}

type deletionQueue struct {
	rs *remoteStorage

	mu   *clock.Mutex
	cond *clock.Cond
	// pending are objects not yet in a list: one generation per shard (a
	// push under another generation writes the pending list first).
	pending      map[string]*deletionTenantFile
	pendingKeys  int
	pendingSince time.Duration // when the oldest pending key came
	forced       bool          // flush now (flushAndWait)
	next         uint64        // the next list's sequence
	lists        []*deletionList
	validatedSeq uint64 // the header's
}

func newDeletionQueue(rs *remoteStorage) *deletionQueue {
	mu := clock.NewMutex(rs.clk)
	return &deletionQueue{rs: rs, mu: mu, cond: clock.NewCond(mu), pending: map[string]*deletionTenantFile{}, next: 1}
}

// load reads the lists and header a previous process left (start-up,
// before any push).
func (dq *deletionQueue) load() error {
	fs := dq.rs.fs
	if err := disk.MkdirAllDurable(fs, deletionDir); err != nil {
		return fmt.Errorf("pageserver: create %s: %w", deletionDir, err)
	}
	if err := fs.SyncDir(deletionDir); err != nil {
		return fmt.Errorf("pageserver: sync %s: %w", deletionDir, err)
	}
	if b, err := disk.ReadFile(fs, deletionHeaderName); err == nil {
		var h deletionHeaderFile
		if err := json.Unmarshal(b, &h); err != nil || h.Version != deletionVersion {
			return fmt.Errorf("pageserver: deletion queue header %s: version %d, %v", deletionHeaderName, h.Version, err)
		}
		dq.validatedSeq = h.ValidatedSequence
	} else if !errors.Is(err, disk.ErrNotExist) {
		return fmt.Errorf("pageserver: read %s: %w", deletionHeaderName, err)
	}
	ents, err := fs.ReadDir(deletionDir)
	if err != nil {
		return fmt.Errorf("pageserver: list %s: %w", deletionDir, err)
	}
	for _, e := range ents {
		name := e.Name()
		hexSeq, ok := strings.CutSuffix(name, deletionListSuffix)
		if !ok {
			if strings.HasSuffix(name, ".tmp") {
				_ = fs.Remove(deletionDir + "/" + name) // a write a crash interrupted
			}
			continue
		}
		seq, err := strconv.ParseUint(hexSeq, 16, 64)
		if err != nil || len(hexSeq) != 16 {
			dq.rs.log.Warn("ignoring unexpected file in the deletion queue", "name", name)
			continue
		}
		b, err := disk.ReadFile(fs, deletionDir+"/"+name)
		if err != nil {
			return fmt.Errorf("pageserver: read %s: %w", name, err)
		}
		var f deletionListFile
		if err := json.Unmarshal(b, &f); err != nil || f.Version != deletionVersion || f.Sequence != seq {
			// Never guess at what to delete: a list that does not read
			// back is left alone (its objects leak).
			dq.rs.log.Error("deletion list unreadable; its objects will not be deleted", "name", name, "version", f.Version, "err", err)
			continue
		}
		if !validTenants(f.Tenants) {
			dq.rs.log.Error("deletion list names an invalid tenant shard; its objects will not be deleted", "name", name)
			continue
		}
		dq.lists = append(dq.lists, &deletionList{file: f, validated: f.Validated || seq <= dq.validatedSeq})
		dq.next = max(dq.next, seq+1)
	}
	dq.next = max(dq.next, dq.validatedSeq+1)
	slices.SortFunc(dq.lists, func(a, b *deletionList) int { return cmpUint(a.file.Sequence, b.file.Sequence) })
	if len(dq.lists) > 0 {
		dq.rs.log.Info("deletion queue recovered", "lists", len(dq.lists), "validated_sequence", dq.validatedSeq)
		dq.rs.validator.kick()
	}
	return nil
}

func validTenants(ts map[string]*deletionTenantFile) bool {
	for k, t := range ts { //strata:nondeterministic every entry must pass; the answer does not depend on order
		if _, err := shard.ParseTenantShardID(k); err != nil || t == nil {
			return false
		}
		for tl := range t.Timelines { //strata:nondeterministic every entry must pass; the answer does not depend on order
			if _, err := shard.ParseTimelineID(tl); err != nil {
				return false
			}
		}
	}
	return true
}

func cmpUint(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// push queues the deletion of layer objects of timeline tid, which shard
// id wrote under generations and stopped naming in an index uploaded
// under generation gen.
func (dq *deletionQueue) push(id shard.TenantShardID, gen layer.Generation, tid shard.TimelineID, ids []remote.LayerID) {
	_ = dq.mu.Lock(context.Background())
	defer dq.mu.Unlock()
	key := id.String()
	if t := dq.pending[key]; t != nil && t.Generation != uint32(gen) {
		// One generation per shard in a list: write what is pending first.
		dq.flushLocked()
	}
	t := dq.pending[key]
	if t == nil {
		t = &deletionTenantFile{Timelines: map[string][]string{}, Generation: uint32(gen)}
		dq.pending[key] = t
	}
	if dq.pendingKeys == 0 {
		dq.pendingSince = dq.rs.clk.Mono()
	}
	for _, l := range ids {
		t.Timelines[tid.String()] = append(t.Timelines[tid.String()], l.Name.String())
		dq.pendingKeys++
	}
	dq.cond.Broadcast()
}

// flushLocked writes the pending objects as the next list. A failed
// write keeps them pending (retried at the next flush). dq.mu is held.
func (dq *deletionQueue) flushLocked() {
	dq.forced = false
	if dq.pendingKeys == 0 {
		return
	}
	f := deletionListFile{Version: deletionVersion, Sequence: dq.next, Tenants: dq.pending, Size: dq.pendingKeys,
		Validated: dq.rs.bugs.DeleteWithoutValidation}
	for _, k := range slices.Sorted(maps.Keys(f.Tenants)) {
		t := f.Tenants[k]
		for _, tl := range slices.Sorted(maps.Keys(t.Timelines)) {
			slices.Sort(t.Timelines[tl])
		}
	}
	if err := dq.writeList(&f); err != nil {
		dq.rs.log.Warn("writing a deletion list failed; will retry", "sequence", f.Sequence, "err", err)
		return
	}
	dq.lists = append(dq.lists, &deletionList{file: f, validated: f.Validated})
	dq.next++
	dq.pending, dq.pendingKeys = map[string]*deletionTenantFile{}, 0
	dq.rs.validator.kick()
}

func (dq *deletionQueue) writeList(f *deletionListFile) error {
	b, err := json.Marshal(f)
	if err != nil {
		return err
	}
	return disk.WriteFileAtomic(dq.rs.fs, deletionListName(f.Sequence), b)
}

// unvalidated returns the lists waiting for validation, in order.
func (dq *deletionQueue) unvalidated() []*deletionList {
	_ = dq.mu.Lock(context.Background())
	defer dq.mu.Unlock()
	var out []*deletionList
	for _, l := range dq.lists {
		if !l.validated {
			out = append(out, l)
		}
	}
	return out
}

// applyValidation keeps, in each of lists, the tenants whose generation
// valid says is current and drops the others' objects (counted), rewrites
// each list as validated, then the header. A failed write leaves the list
// unvalidated (validated again later).
func (dq *deletionQueue) applyValidation(lists []*deletionList, valid map[genKey]bool) {
	_ = dq.mu.Lock(context.Background())
	defer dq.mu.Unlock()
	done := uint64(0)
	ok := true
	for _, l := range lists {
		f := l.file
		f.Tenants = map[string]*deletionTenantFile{}
		f.Size = 0
		for _, k := range l.genKeys() {
			t := l.file.Tenants[k.id.String()]
			n := 0
			for _, objs := range t.Timelines { //strata:nondeterministic a sum does not depend on order
				n += len(objs)
			}
			if !valid[k] {
				dq.rs.metrics.deleteDropped.Add(float64(n))
				dq.rs.log.Warn("deletions dropped: generation not valid (objects leak, none is deleted)", "tenant_shard_id", k.id, "generation", k.gen, "objects", n, "sequence", f.Sequence)
				continue
			}
			f.Tenants[k.id.String()] = t
			f.Size += n
		}
		f.Validated = true
		if err := dq.writeList(&f); err != nil {
			dq.rs.log.Warn("rewriting a validated deletion list failed; it is validated again later", "sequence", f.Sequence, "err", err)
			ok = false
			break
		}
		l.file, l.validated = f, true
		done = f.Sequence
	}
	if done > dq.validatedSeq {
		b, _ := json.Marshal(deletionHeaderFile{Version: deletionVersion, ValidatedSequence: done})
		if err := disk.WriteFileAtomic(dq.rs.fs, deletionHeaderName, b); err != nil {
			// The lists say validated themselves; the header only saves
			// reading them.
			dq.rs.log.Warn("writing the deletion queue header failed", "err", err)
		} else {
			dq.validatedSeq = done
		}
	}
	if !ok {
		dq.rs.validator.kick()
	}
	dq.cond.Broadcast()
}

// run is the deletion queue's loop (a node task): flush pending objects
// into a list when due, and execute validated lists.
func (dq *deletionQueue) run(ctx context.Context) {
	for {
		if err := dq.mu.Lock(ctx); err != nil {
			return
		}
		var todo *deletionList
		for {
			due := dq.pendingKeys > 0 && (dq.forced || dq.pendingKeys >= dq.rs.cfg.DeletionFlushKeys ||
				dq.rs.clk.Mono()-dq.pendingSince >= dq.rs.cfg.DeletionFlushInterval)
			if due {
				dq.flushLocked()
			}
			if len(dq.lists) > 0 && dq.lists[0].validated {
				todo = dq.lists[0]
				break
			}
			wctx, cancel := ctx, context.CancelFunc(func() {})
			if dq.pendingKeys > 0 {
				wait := dq.rs.cfg.DeletionFlushInterval - (dq.rs.clk.Mono() - dq.pendingSince)
				wctx, cancel = clock.WithTimeout(dq.rs.clk, ctx, max(wait, time.Millisecond))
			}
			err := dq.cond.Wait(wctx)
			cancel()
			if ctx.Err() != nil {
				dq.mu.Unlock()
				return
			}
			_ = err // a timeout: look again
		}
		dq.mu.Unlock()
		if err := dq.execute(ctx, todo); err != nil {
			return
		}
	}
}

// execute deletes a validated list's objects in batches and removes the
// list file. Deletes are retried until they succeed (a missing key is not
// an error); only ctx ending stops it.
func (dq *deletionQueue) execute(ctx context.Context, l *deletionList) error {
	var keys []string
	for _, tsid := range slices.Sorted(maps.Keys(l.file.Tenants)) {
		id, _ := shard.ParseTenantShardID(tsid) // checked at push or load
		t := l.file.Tenants[tsid]
		for _, tl := range slices.Sorted(maps.Keys(t.Timelines)) {
			tid, _ := shard.ParseTimelineID(tl)
			prefix := dq.rs.layout.TimelinePrefix(id, tid)
			for _, obj := range t.Timelines[tl] {
				keys = append(keys, prefix+obj)
			}
		}
	}
	for start := 0; start < len(keys); start += objstore.MaxDeleteBatch {
		batch := keys[start:min(start+objstore.MaxDeleteBatch, len(keys))]
		for failures := 0; ; {
			err := dq.rs.store.Delete(ctx, batch)
			if err == nil {
				break
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			failures++
			dq.rs.metrics.deleteFailures.Inc()
			wait := dq.rs.cfg.backoff(failures)
			if failures >= uploadWarnFailures {
				dq.rs.log.Warn("delete failed, will retry", "sequence", l.file.Sequence, "keys", len(batch), "failures", failures, "err", err)
			} else {
				dq.rs.log.Info("delete failed, will retry", "sequence", l.file.Sequence, "keys", len(batch), "failures", failures, "err", err)
			}
			if err := clock.Sleep(ctx, dq.rs.clk, wait); err != nil {
				return err
			}
		}
		dq.rs.metrics.deleted.Add(float64(len(batch)))
	}
	if err := dq.rs.fs.Remove(deletionListName(l.file.Sequence)); err != nil && !errors.Is(err, disk.ErrNotExist) {
		// Executed again after a restart: deleting is idempotent.
		dq.rs.log.Warn("removing an executed deletion list failed", "sequence", l.file.Sequence, "err", err)
	}
	_ = dq.mu.Lock(context.Background())
	if i := slices.Index(dq.lists, l); i >= 0 {
		dq.lists = slices.Delete(dq.lists, i, i+1)
	}
	dq.cond.Broadcast()
	dq.mu.Unlock()
	if len(keys) > 0 {
		dq.rs.log.Info("deletion list executed", "sequence", l.file.Sequence, "objects", len(keys))
	}
	return nil
}

// flushAndWait writes what is pending as a list and waits until every
// list up to it is executed (or its entries dropped), or ctx ends.
func (dq *deletionQueue) flushAndWait(ctx context.Context) error {
	if err := dq.mu.Lock(ctx); err != nil {
		return err
	}
	defer dq.mu.Unlock()
	dq.flushLocked()
	if dq.pendingKeys > 0 {
		return fmt.Errorf("pageserver: deletion queue: %d keys could not be written to a list", dq.pendingKeys)
	}
	target := dq.next - 1
	for len(dq.lists) > 0 && dq.lists[0].file.Sequence <= target {
		if err := dq.cond.Wait(ctx); err != nil {
			return err
		}
	}
	return nil
}

// persistPending writes the pending keys as a list (shutdown), so they
// are deleted after a restart rather than leaked.
func (dq *deletionQueue) persistPending() {
	_ = dq.mu.Lock(context.Background())
	defer dq.mu.Unlock()
	dq.flushLocked()
}
