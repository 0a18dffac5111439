package storcon

import (
	"context"
	"errors"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/stratadb/strata/net"

	"github.com/stratadb/strata/nodes/storcon/persist"
)

// metricValues gathers the controller's metrics: name → summed value
// (counters, gauges) or sample count (histograms), and the label sets seen.
func (c *cluster) metricValues() (map[string]float64, map[string][]map[string]string) {
	c.t.Helper()
	mfs, err := c.scN.Env().Metrics.Gather()
	if err != nil {
		c.t.Fatal(err)
	}
	vals, labels := map[string]float64{}, map[string][]map[string]string{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			l := map[string]string{}
			for _, lp := range m.GetLabel() {
				l[lp.GetName()] = lp.GetValue()
			}
			labels[mf.GetName()] = append(labels[mf.GetName()], l)
			switch mf.GetType() {
			case dto.MetricType_COUNTER:
				vals[mf.GetName()] += m.GetCounter().GetValue()
			case dto.MetricType_GAUGE:
				vals[mf.GetName()] += m.GetGauge().GetValue()
			case dto.MetricType_HISTOGRAM:
				vals[mf.GetName()] += float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return vals, labels
}

func TestMetrics(t *testing.T) {
	runCluster(t, 3, Config{}, func(c *cluster) {
		c.create(tenantID(90), 4, nil)
		c.w.Crash(psName(3), false)
		waitFor(c, 2*time.Minute, "failover", func() error {
			if err := c.converged(tenantID(90)); err != nil {
				return err
			}
			for _, sh := range c.describe(tenantID(90)).Shards {
				if *sh.NodeAttached == 3 {
					return errors.New("still on node 3")
				}
			}
			return nil
		})
		vals, labels := c.metricValues()
		for _, name := range []string{
			"storage_controller_reconcile_spawn", "storage_controller_reconcile_complete",
			"storage_controller_http_request_status", "storage_controller_http_request_latency",
			"storage_controller_pageserver_request_error", "storage_controller_database_query_latency",
		} {
			if vals[name] == 0 {
				t.Errorf("%s = 0", name)
			}
		}
		if v := vals["storage_controller_tenant_shards"]; v != 4 {
			t.Errorf("tenant_shards = %v", v)
		}
		if v := vals["storage_controller_pageserver_nodes"]; v != 3 {
			t.Errorf("pageserver_nodes = %v", v)
		}
		if v := vals["storage_controller_node_attached_shards"]; v != 4 {
			t.Errorf("node_attached_shards sums to %v", v)
		}
		if _, ok := vals["storage_controller_pending_reconciles"]; !ok {
			t.Error("no pending_reconciles")
		}
		seen := false
		for _, l := range labels["storage_controller_http_request_status"] {
			if l["method"] == "POST" && l["path"] == "/v1/tenant" && l["status"] == "201" {
				seen = true
			}
		}
		if !seen {
			t.Errorf("http_request_status lacks the create: %v", labels["storage_controller_http_request_status"])
		}
		seen = false
		for _, l := range labels["storage_controller_database_query_latency"] {
			seen = seen || l["op"] == "increment_generation"
		}
		if !seen {
			t.Error("database_query_latency lacks increment_generation")
		}
	})
}

// TestReconcileConcurrencyBounded: with one slot, one priority slot and a
// delayed queue of one, a four-shard create runs two reconciles, queues
// one and drops one (counted); reconcile_all picks the dropped one up and
// the create still completes.
func TestReconcileConcurrencyBounded(t *testing.T) {
	cfg := Config{MaxConcurrentReconciles: 1, MaxPriorityReconciles: 1, MaxDelayedReconciles: 1, ReconcileAllInterval: 5 * time.Second}
	runCluster(t, 2, cfg, func(c *cluster) {
		maxRunning := 0
		stop := false
		c.w.Go("sample", func(ctx context.Context) {
			for !stop {
				c.sc.lock()
				maxRunning = max(maxRunning, c.sc.state.running)
				c.sc.mu.Unlock()
				c.w.Sleep(50 * time.Microsecond)
			}
		})
		c.create(tenantID(91), 4, nil)
		stop = true
		vals, _ := c.metricValues()
		if v := vals["storage_controller_reconcile_delayed_dropped"]; v < 1 {
			t.Errorf("dropped reconciles: %v", v)
		}
		if maxRunning > 2 || maxRunning == 0 {
			t.Errorf("up to %d reconciles ran at once (limit 1 + 1 priority)", maxRunning)
		}
		if err := c.converged(tenantID(91)); err != nil {
			t.Error(err)
		}
	})
}

// TestShutdown: the listener and the store close, tasks end.
func TestShutdown(t *testing.T) {
	runCluster(t, 1, Config{}, func(c *cluster) {
		c.create(tenantID(92), 0, nil)
		// A call routed while shutting down is refused with 503.
		c.sc.lock()
		c.sc.state.shuttingDown = true
		c.sc.mu.Unlock()
		if _, err := c.api.ListNodes(c.ctx); net.CodeOf(err) != net.Unavailable {
			t.Errorf("list nodes while shutting down: %v, want Unavailable", err)
		}
		if st, err := c.api.Ready(c.ctx); err == nil || st.Ready {
			t.Errorf("ready while shutting down: %+v %v", st, err)
		}
		c.sc.Shutdown(c.ctx)
		if _, err := c.api.ListNodes(c.ctx); err == nil {
			t.Error("the API answers after shutdown")
		}
		if _, err := c.sc.store.ListNodes(c.ctx); !errors.Is(err, persist.ErrClosed) {
			t.Errorf("store after shutdown: %v", err)
		}
	})
}
