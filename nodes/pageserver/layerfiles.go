package pageserver

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/stratadb/strata/engine/layercache"
)

// newLayerCache makes the node's open-file cache for layer files, shared by
// the engines of every tenant shard (Config.MaxOpenLayerFiles), and
// registers its metrics on reg.
func newLayerCache(reg prometheus.Registerer, maxOpen int) (*layercache.Cache, error) {
	c, err := layercache.New(layercache.Config{MaxOpenFiles: maxOpen})
	if err != nil {
		return nil, fmt.Errorf("pageserver: %w", err)
	}
	for _, m := range []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "strata_pageserver_open_layer_files",
			Help: "Layer files open now (at most MaxOpenLayerFiles unless every open one is in use)."},
			func() float64 { return float64(c.Stats().Open) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "strata_pageserver_layer_file_reopens_total",
			Help: "Layer files reopened (and checked again) after the open-file limit closed them."},
			func() float64 { return float64(c.Stats().Reopens) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "strata_pageserver_layer_file_evictions_total",
			Help: "Layer files closed to stay within the open-file limit."},
			func() float64 { return float64(c.Stats().Evictions) }),
	} {
		if err := reg.Register(m); err != nil {
			return nil, fmt.Errorf("pageserver: register metrics: %w", err)
		}
	}
	return c, nil
}
