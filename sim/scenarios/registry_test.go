package scenarios

import (
	"context"
	"errors"
	"runtime"
	"testing"

	"github.com/stratadb/strata/sim"
)

// simulatorErrors are failures of the simulation itself rather than of a
// scenario's checkers; a planted bug must be caught by a checker.
var simulatorErrors = []error{sim.ErrDeadlock, sim.ErrWatchdog, sim.ErrTaskPanic, sim.ErrLivelock, sim.ErrTimeBudget, sim.ErrNondeterministic}

func isSimulatorError(err error) bool {
	for _, e := range simulatorErrors {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// workers runs CI sweeps on up to two cores: the seeds are independent.
func workers() int { return min(runtime.GOMAXPROCS(0), 2) }

func ciSeeds(sc sim.Scenario) uint64 {
	if sc.CISeeds > 0 {
		return uint64(sc.CISeeds)
	}
	return 10
}

func TestRegistry(t *testing.T) {
	seen := map[string]bool{}
	for _, sc := range All() {
		if sc.Name == "" || sc.Run == nil {
			t.Errorf("scenario %+v lacks a name or Run", sc)
		}
		if seen[sc.Name] {
			t.Errorf("duplicate scenario %q", sc.Name)
		}
		seen[sc.Name] = true
		got, err := Lookup(sc.Name)
		if err != nil || got.Name != sc.Name {
			t.Errorf("Lookup(%q) = %v, %v", sc.Name, got.Name, err)
		}
	}
	if _, err := Lookup("no-such-scenario"); !errors.Is(err, ErrUnknownScenario) {
		t.Errorf("unknown scenario: %v", err)
	}
}

// TestSweep is the bounded CI sweep: seeds 1..CISeeds of every scenario
// must pass.
func TestSweep(t *testing.T) {
	for _, sc := range All() {
		t.Run(sc.Name, func(t *testing.T) {
			sim.Sweep(context.Background(), sc, 1, ciSeeds(sc), sim.SweepOptions{Workers: workers()}, func(r sim.Result) {
				if !r.Passed() {
					t.Errorf("seed %d failed (%s): %s\n  params: %s", r.Seed, r.Repro, r.Failure, r.ParamsText)
				}
			})
		})
	}
}

// TestDeterminismSample runs a sample of seeds twice each and compares the
// trace hashes.
func TestDeterminismSample(t *testing.T) {
	for _, sc := range All() {
		t.Run(sc.Name, func(t *testing.T) {
			for _, seed := range []uint64{3, 7} {
				if r := sim.CheckDeterminism(sc, seed, sim.RunOptions{}); !r.Passed() {
					t.Errorf("seed %d: %s", seed, r.Failure)
				}
			}
		})
	}
}

// TestPlantedBugsCaught: each planted bug makes one of seeds
// 1..BugSeeds fail, through a checker (not a simulator error).
func TestPlantedBugsCaught(t *testing.T) {
	for _, sc := range All() {
		limit := uint64(sc.BugSeeds)
		if limit == 0 {
			limit = 200
		}
		for _, bug := range sc.Bugs {
			t.Run(sc.Name+"/"+bug.Name, func(t *testing.T) {
				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				var caught *sim.Result
				sim.Sweep(ctx, sc, 1, limit, sim.SweepOptions{RunOptions: sim.RunOptions{Bugs: []string{bug.Name}}, Workers: workers()}, func(r sim.Result) {
					if caught == nil && !r.Passed() {
						caught = &r
						cancel()
					}
				})
				if caught == nil {
					t.Fatalf("bug %s not caught in seeds 1..%d: the checkers cannot see it", bug.Name, limit)
				}
				if isSimulatorError(caught.Err) {
					t.Fatalf("seed %d failed, but not through a checker: %s", caught.Seed, caught.Failure)
				}
				t.Logf("caught at seed %d: %s", caught.Seed, caught.Failure)
			})
		}
	}
}
