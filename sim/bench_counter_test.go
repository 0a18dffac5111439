package sim_test

import (
	"testing"

	"github.com/stratadb/strata/sim"
	"github.com/stratadb/strata/sim/scenarios/counter"
)

// BenchmarkCounter runs counter seeds (seed = iteration, so a longer run
// covers more seeds) and reports virtual seconds simulated per wall second
// and events per wall second. Acceptance: at least 100 virtual s per wall s.
func BenchmarkCounter(b *testing.B) {
	sc := counter.Scenario()
	var simSec float64
	var events uint64
	for i := 0; i < b.N; i++ {
		r := sim.RunSeed(sc, uint64(i%200)+1, sim.RunOptions{})
		if !r.Passed() {
			b.Fatalf("seed %d: %s", r.Seed, r.Failure)
		}
		simSec += r.SimSeconds
		events += r.Events
	}
	wall := b.Elapsed().Seconds()
	b.ReportMetric(simSec/wall, "virtual-s/wall-s")
	b.ReportMetric(float64(events)/wall, "events/s")
}
