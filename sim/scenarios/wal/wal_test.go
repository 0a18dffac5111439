package wal

import (
	"testing"

	"github.com/stratadb/strata/sim"
)

func TestSeeds(t *testing.T) {
	sc := Scenario()
	for seed := uint64(1); seed <= uint64(sc.CISeeds); seed++ {
		r := sim.RunSeed(sc, seed, sim.RunOptions{})
		if !r.Passed() {
			t.Fatalf("seed %d: %s\n%s\nparams: %s", seed, r.Failure, r.Repro, r.ParamsText)
		}
	}
}
