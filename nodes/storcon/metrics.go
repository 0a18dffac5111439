package storcon

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/stratadb/strata/clock"
	"github.com/stratadb/strata/engine/layer"
	"github.com/stratadb/strata/engine/placement"
	"github.com/stratadb/strata/engine/shard"
	"github.com/stratadb/strata/net"
	"github.com/stratadb/strata/nodes/storcon/persist"
)

// metrics are the controller's Prometheus metrics, named as Neon's
// (prefix storage_controller_), on the node's own registry.
type metrics struct {
	reconcileSpawn    prometheus.Counter
	reconcileComplete *prometheus.CounterVec // status: ok, error, cancelled
	reconcileDropped  prometheus.Counter
	tenantShards      prometheus.Gauge
	nodes             prometheus.Gauge
	nodeShards        *prometheus.GaugeVec // node_id
	nodeAttached      *prometheus.GaugeVec // node_id
	pending           prometheus.Gauge
	httpStatus        *prometheus.CounterVec   // method, path, status
	httpLatency       *prometheus.HistogramVec // method, path
	pageserverErrors  *prometheus.CounterVec   // node_id, op, code
	dbLatency         *prometheus.HistogramVec // op
	splits            *prometheus.CounterVec   // outcome: started, committed, rolled_back
	secondaryWarmups  *prometheus.CounterVec   // result: complete, timeout, failed (migration step 3)
	storeUnknown      *prometheus.CounterVec   // result: adopted, forgotten, restored, deferred (unsure.go)
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		reconcileSpawn: prometheus.NewCounter(prometheus.CounterOpts{Name: "storage_controller_reconcile_spawn",
			Help: "Reconciles started."}),
		reconcileComplete: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "storage_controller_reconcile_complete",
			Help: "Reconciles finished, by status (ok, error, cancelled)."}, []string{"status"}),
		reconcileDropped: prometheus.NewCounter(prometheus.CounterOpts{Name: "storage_controller_reconcile_delayed_dropped",
			Help: "Reconciles dropped because the delayed queue was full (reconcile_all picks them up)."}),
		tenantShards: prometheus.NewGauge(prometheus.GaugeOpts{Name: "storage_controller_tenant_shards",
			Help: "Tenant shards under management."}),
		nodes: prometheus.NewGauge(prometheus.GaugeOpts{Name: "storage_controller_pageserver_nodes",
			Help: "Registered pageservers."}),
		nodeShards: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "storage_controller_node_shards",
			Help: "Locations intent places on each node."}, []string{"node_id"}),
		nodeAttached: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "storage_controller_node_attached_shards",
			Help: "Attached locations intent places on each node."}, []string{"node_id"}),
		pending: prometheus.NewGauge(prometheus.GaugeOpts{Name: "storage_controller_pending_reconciles",
			Help: "Reconciles running or waiting for a slot."}),
		httpStatus: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "storage_controller_http_request_status",
			Help: "API requests, by method, route path and HTTP status."}, []string{"method", "path", "status"}),
		httpLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "storage_controller_http_request_latency",
			Help: "API request latency in seconds, by method and route path.", Buckets: prometheus.ExponentialBuckets(0.0005, 4, 10)},
			[]string{"method", "path"}),
		pageserverErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "storage_controller_pageserver_request_error",
			Help: "Failed requests to pageservers, by node, operation and error code."}, []string{"node_id", "op", "code"}),
		dbLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "storage_controller_database_query_latency",
			Help: "Store call latency in seconds, by operation.", Buckets: prometheus.ExponentialBuckets(0.0001, 4, 10)},
			[]string{"op"}),
		splits: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "storage_controller_shard_split",
			Help: "Tenant shard splits, by outcome (started, committed, rolled_back)."}, []string{"outcome"}),
		secondaryWarmups: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "storage_controller_migration_secondary_download",
			Help: "Live migrations' secondary downloads at the destination (step 3), by result (complete, timeout, failed)."}, []string{"result"}),
		storeUnknown: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "storage_controller_store_unknown_outcome",
			Help: "Store writes that failed with an unknown outcome (or found a tenant gone), by how memory and the store were made to agree: adopted a tenant's stored rows, forgot a tenant without rows, restored a node's policy, or deferred (the store unreachable; retried in the background)."}, []string{"result"}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.reconcileSpawn, m.reconcileComplete, m.reconcileDropped, m.tenantShards,
		m.nodes, m.nodeShards, m.nodeAttached, m.pending, m.httpStatus, m.httpLatency, m.pageserverErrors, m.dbLatency, m.splits,
		m.secondaryWarmups, m.storeUnknown} {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if errors.As(err, &are) {
				// A controller restarted in the same process (tests) finds
				// its collectors registered: the new ones simply stay
				// unexported, which only tests can observe.
				continue
			}
			return nil, fmt.Errorf("storcon: register metrics: %w", err)
		}
	}
	return m, nil
}

// refreshGauges sets the gauges from the state. Called with s.mu held.
func (s *Service) refreshGauges() {
	st := &s.state
	s.metrics.tenantShards.Set(float64(len(st.shards)))
	s.metrics.nodes.Set(float64(len(st.nodes)))
	s.metrics.pending.Set(float64(st.running + len(st.delayed)))
	for _, n := range st.sched.Nodes() {
		id := strconv.FormatUint(uint64(n.ID), 10)
		s.metrics.nodeShards.WithLabelValues(id).Set(float64(n.Shards))
		s.metrics.nodeAttached.WithLabelValues(id).Set(float64(n.Attached))
	}
}

// forgetNodeGauges drops a removed node's series.
func (s *Service) forgetNodeGauges(id placement.NodeID) {
	l := strconv.FormatUint(uint64(id), 10)
	s.metrics.nodeShards.DeleteLabelValues(l)
	s.metrics.nodeAttached.DeleteLabelValues(l)
}

// httpStatusOf is the HTTP status an API answer carries for err (the same
// table as net/httpx, which nodes/ may not import).
func httpStatusOf(err error, ok int) int {
	switch net.CodeOf(err) {
	case net.OK:
		return ok
	case net.InvalidArgument, net.OutOfRange:
		return 400
	case net.NotFound:
		return 404
	case net.PermissionDenied:
		return 403
	case net.Unauthenticated:
		return 401
	case net.AlreadyExists, net.Aborted:
		return 409
	case net.FailedPrecondition:
		return 412
	case net.Unavailable:
		return 503
	case net.ResourceExhausted:
		return 429
	case net.Unimplemented:
		return 501
	case net.DeadlineExceeded:
		return 408
	}
	return 500
}

// timedStore is the store with every call's latency recorded in
// storage_controller_database_query_latency{op}; an error wrapping
// persist.ErrFailed (the embedded store broke and must be reopened) is
// reported to failed.
type timedStore struct {
	persist.Store
	clk    clock.Clock
	m      *metrics
	failed func(error)
}

func (t *timedStore) observe(op string, start int64, err *error) {
	t.m.dbLatency.WithLabelValues(op).Observe(float64(int64(t.clk.Mono())-start) / 1e9)
	if *err != nil && errors.Is(*err, persist.ErrFailed) && t.failed != nil {
		t.failed(*err)
	}
}

func (t *timedStore) now() int64 { return int64(t.clk.Mono()) }

func (t *timedStore) UpsertNode(ctx context.Context, n persist.Node) (err error) {
	defer t.observe("upsert_node", t.now(), &err)
	return t.Store.UpsertNode(ctx, n)
}

func (t *timedStore) SetNodeSchedulingPolicy(ctx context.Context, id persist.NodeID, policy string) (err error) {
	defer t.observe("set_node_scheduling_policy", t.now(), &err)
	return t.Store.SetNodeSchedulingPolicy(ctx, id, policy)
}

func (t *timedStore) MarkNodeDeleted(ctx context.Context, id persist.NodeID) (err error) {
	defer t.observe("mark_node_deleted", t.now(), &err)
	return t.Store.MarkNodeDeleted(ctx, id)
}

func (t *timedStore) DeleteNode(ctx context.Context, id persist.NodeID) (err error) {
	defer t.observe("delete_node", t.now(), &err)
	return t.Store.DeleteNode(ctx, id)
}

func (t *timedStore) ListNodes(ctx context.Context) (_ []persist.Node, err error) {
	defer t.observe("list_nodes", t.now(), &err)
	return t.Store.ListNodes(ctx)
}

func (t *timedStore) InsertTenantShards(ctx context.Context, shards []persist.TenantShard) (err error) {
	defer t.observe("insert_tenant_shards", t.now(), &err)
	return t.Store.InsertTenantShards(ctx, shards)
}

func (t *timedStore) DeleteTenant(ctx context.Context, tenant shard.TenantID) (err error) {
	defer t.observe("delete_tenant", t.now(), &err)
	return t.Store.DeleteTenant(ctx, tenant)
}

func (t *timedStore) ListTenantShards(ctx context.Context) (_ []persist.TenantShard, err error) {
	defer t.observe("list_tenant_shards", t.now(), &err)
	return t.Store.ListTenantShards(ctx)
}

func (t *timedStore) TenantShards(ctx context.Context, tenant shard.TenantID) (_ []persist.TenantShard, err error) {
	defer t.observe("tenant_shards", t.now(), &err)
	return t.Store.TenantShards(ctx, tenant)
}

func (t *timedStore) UpdateTenantShards(ctx context.Context, sel persist.Selector, u persist.ShardUpdate) (err error) {
	defer t.observe("update_tenant_shards", t.now(), &err)
	return t.Store.UpdateTenantShards(ctx, sel, u)
}

func (t *timedStore) IncrementGeneration(ctx context.Context, id shard.TenantShardID, node persist.NodeID) (_ layer.Generation, err error) {
	defer t.observe("increment_generation", t.now(), &err)
	return t.Store.IncrementGeneration(ctx, id, node)
}

func (t *timedStore) ReAttach(ctx context.Context, node persist.NodeID) (_ []persist.TenantShard, err error) {
	defer t.observe("re_attach", t.now(), &err)
	return t.Store.ReAttach(ctx, node)
}

func (t *timedStore) Generation(ctx context.Context, id shard.TenantShardID) (_ layer.Generation, _ persist.NodeID, err error) {
	defer t.observe("generation", t.now(), &err)
	return t.Store.Generation(ctx, id)
}
