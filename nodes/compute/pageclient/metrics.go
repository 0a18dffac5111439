package pageclient

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the client's Prometheus collectors (Neon's client has none).
type metrics struct {
	requests   *prometheus.CounterVec   // method, code: calls as the caller saw them
	retries    *prometheus.CounterVec   // method, code: the failure that was retried
	latency    *prometheus.HistogramVec // method: whole calls, retries included
	pages      prometheus.Counter
	conns      *prometheus.GaugeVec // pool: normal, bulk
	streams    *prometheus.GaugeVec // pool: normal, bulk
	mapUpdates *prometheus.CounterVec
	shardCount prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "strata_pageclient_requests_total",
			Help: "Page client calls by method and final status code (after retries).",
		}, []string{"method", "code"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "strata_pageclient_retries_total",
			Help: "Page client retries by method and the status code of the failed attempt.",
		}, []string{"method", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "strata_pageclient_request_seconds",
			Help:    "Page client call latency, retries and back-off included.",
			Buckets: prometheus.ExponentialBuckets(20e-6, 2, 20),
		}, []string{"method"}),
		pages: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "strata_pageclient_pages_total",
			Help: "Pages returned to callers by GetPages.",
		}),
		conns: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "strata_pageclient_connections",
			Help: "Open connections to pageservers, by pool (normal, bulk).",
		}, []string{"pool"}),
		streams: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "strata_pageclient_streams",
			Help: "Open GetPages streams, by pool (normal, bulk).",
		}, []string{"pool"}),
		mapUpdates: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "strata_pageclient_shard_map_updates_total",
			Help: "Shard map updates, applied or refused.",
		}, []string{"result"}),
		shardCount: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "strata_pageclient_shard_count",
			Help: "Shard count of the current shard map (0: unsharded).",
		}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.requests, m.retries, m.latency, m.pages, m.conns, m.streams, m.mapUpdates, m.shardCount} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("pageclient: register metrics: %w", err)
		}
	}
	return m, nil
}
