package pageserver

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/stratadb/strata/clock"
	"github.com/stratadb/strata/engine/shard"
	"github.com/stratadb/strata/nodes/pageserver/pageapi"
)

// taskKind names what a task does; the registry and shutdown select tasks
// by it.
type taskKind string

const (
	taskPageStream  taskKind = "page_stream"  // one GetPages stream
	taskPageRecv    taskKind = "page_recv"    // a GetPages stream's request reader
	taskWALReceiver taskKind = "wal_receiver" // a timeline's WAL ingest
	taskBackground  taskKind = "background"   // a timeline's flush/compaction/GC loop
	taskManagement  taskKind = "management"   // a management API request
)

// taskScope is what a task belongs to below the node: a tenant shard and
// possibly one of its timelines (zero values: the node itself).
type taskScope struct {
	tenant                 shard.TenantShardID
	timeline               shard.TimelineID
	hasTenant, hasTimeline bool
}

func nodeScope() taskScope { return taskScope{} }

func tenantScope(id shard.TenantShardID) taskScope { return taskScope{tenant: id, hasTenant: true} }

func timelineScope(id shard.TenantShardID, tl shard.TimelineID) taskScope {
	return taskScope{tenant: id, timeline: tl, hasTenant: true, hasTimeline: true}
}

// within reports whether s lies inside scope o (the node scope holds
// everything; a tenant scope its timelines).
func (s taskScope) within(o taskScope) bool {
	switch {
	case !o.hasTenant:
		return true
	case !s.hasTenant || s.tenant != o.tenant:
		return false
	case !o.hasTimeline:
		return true
	}
	return s.hasTimeline && s.timeline == o.timeline
}

type taskEntry struct {
	id      uint64
	name    string
	kind    taskKind
	scope   taskScope
	started time.Duration
	cancel  context.CancelFunc
}

// taskRegistry knows every task the node runs (seed 004's task_mgr): each
// is named with its kind and scope, removed when it ends, and can be
// cancelled and awaited by scope, so shutting down a timeline, a tenant or
// the node stops exactly the tasks that belong to it.
type taskRegistry struct {
	clk clock.Clock

	mu    *clock.Mutex
	ended *clock.Cond // broadcast whenever a task ends
	next  uint64
	tasks map[uint64]*taskEntry
}

func newTaskRegistry(clk clock.Clock) *taskRegistry {
	mu := clock.NewMutex(clk)
	return &taskRegistry{clk: clk, mu: mu, ended: clock.NewCond(mu), tasks: map[uint64]*taskEntry{}}
}

// register records the calling task (a transport's handler task, say)
// until the returned function is called. Its context is cancelled when
// its scope shuts down.
func (r *taskRegistry) register(ctx context.Context, kind taskKind, scope taskScope, name string) (context.Context, func()) {
	ctx, cancel := clock.WithCancel(ctx)
	_ = r.mu.Lock(context.Background())
	r.next++
	e := &taskEntry{id: r.next, name: name, kind: kind, scope: scope, started: r.clk.Mono(), cancel: cancel}
	r.tasks[e.id] = e
	r.mu.Unlock()
	return ctx, func() {
		cancel()
		_ = r.mu.Lock(context.Background())
		delete(r.tasks, e.id)
		r.ended.Broadcast()
		r.mu.Unlock()
	}
}

// spawn starts fn as a new registered task.
func (r *taskRegistry) spawn(ctx context.Context, kind taskKind, scope taskScope, name string, fn func(ctx context.Context)) {
	ctx, done := r.register(ctx, kind, scope, name)
	r.clk.Go(ctx, fmt.Sprintf("%s %s", kind, name), func(ctx context.Context) {
		defer done()
		fn(ctx)
	})
}

func (r *taskRegistry) matching(scope taskScope, kinds []taskKind) []*taskEntry {
	var out []*taskEntry
	for _, id := range slices.Sorted(maps.Keys(r.tasks)) {
		e := r.tasks[id]
		if e.scope.within(scope) && (len(kinds) == 0 || slices.Contains(kinds, e.kind)) {
			out = append(out, e)
		}
	}
	return out
}

// stop cancels the tasks of the given kinds (all kinds if none) within
// scope and waits until they have ended or ctx ends; it returns the names
// of the tasks still running then.
func (r *taskRegistry) stop(ctx context.Context, scope taskScope, kinds ...taskKind) []string {
	_ = r.mu.Lock(context.Background())
	defer r.mu.Unlock()
	for _, e := range r.matching(scope, kinds) {
		e.cancel()
	}
	for {
		left := r.matching(scope, kinds)
		if len(left) == 0 {
			return nil
		}
		if err := r.ended.Wait(ctx); err != nil {
			names := make([]string, len(left))
			for i, e := range left {
				names[i] = string(e.kind) + " " + e.name
			}
			return names
		}
	}
}

// wait waits (without cancelling) until no task of the kinds within scope
// runs, or ctx ends; it reports whether they all ended.
func (r *taskRegistry) wait(ctx context.Context, scope taskScope, kinds ...taskKind) bool {
	_ = r.mu.Lock(context.Background())
	defer r.mu.Unlock()
	for len(r.matching(scope, kinds)) > 0 {
		if err := r.ended.Wait(ctx); err != nil {
			return false
		}
	}
	return true
}

// count returns the number of registered tasks.
func (r *taskRegistry) count() int {
	_ = r.mu.Lock(context.Background())
	defer r.mu.Unlock()
	return len(r.tasks)
}

// list describes every task, in start order.
func (r *taskRegistry) list() []pageapi.TaskInfo {
	_ = r.mu.Lock(context.Background())
	defer r.mu.Unlock()
	now := r.clk.Mono()
	var out []pageapi.TaskInfo
	for _, e := range r.matching(nodeScope(), nil) {
		ti := pageapi.TaskInfo{Name: e.name, Kind: string(e.kind), Age: (now - e.started).String()}
		if e.scope.hasTenant {
			ti.Tenant = e.scope.tenant.String()
		}
		if e.scope.hasTimeline {
			ti.Timeline = e.scope.timeline.String()
		}
		out = append(out, ti)
	}
	return out
}
