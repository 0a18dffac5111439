package counter

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"

	"github.com/stratadb/strata/sim"
)

// TestSeedsGiveDistinctRuns: different seeds explore different runs.
func TestSeedsGiveDistinctRuns(t *testing.T) {
	if testing.Short() {
		t.Skip("sweeps 50 seeds")
	}
	hashes := map[string]uint64{}
	for seed := uint64(1); seed <= 50; seed++ {
		r := sim.RunSeed(Scenario(), seed, sim.RunOptions{})
		if !r.Passed() {
			t.Fatalf("seed %d: %s", seed, r.Failure)
		}
		hashes[r.TraceHash] = seed
	}
	if len(hashes) < 45 {
		t.Fatalf("%d distinct trace hashes over seeds 1..50, want at least 45", len(hashes))
	}
}

// TestPlantedBugsNameTheLostIncrement: the failure names the increment.
func TestPlantedBugsNameTheLostIncrement(t *testing.T) {
	named := regexp.MustCompile(`client-\d+#\d+ was acknowledged with value \d+`)
	for _, bug := range []string{BugAckBeforeSync, BugNoDirSync} {
		t.Run(bug, func(t *testing.T) {
			for seed := uint64(1); seed <= 50; seed++ {
				r := sim.RunSeed(Scenario(), seed, sim.RunOptions{Bugs: []string{bug}})
				if r.Passed() {
					continue
				}
				if !errors.Is(r.Err, ErrLostIncrement) || !named.MatchString(r.Failure) {
					t.Fatalf("seed %d failed without naming a lost increment: %s", seed, r.Failure)
				}
				want := fmt.Sprintf("strata sim --scenario counter --seed %d --bug %s", seed, bug)
				if r.Repro != want {
					t.Fatalf("repro %q, want %q", r.Repro, want)
				}
				return
			}
			t.Fatalf("bug %s not caught in seeds 1..50", bug)
		})
	}
}

// TestNoDedupIsCaughtAsInvented: applying a retry twice shows up as an
// increment counted twice.
func TestNoDedupIsCaughtAsInvented(t *testing.T) {
	for seed := uint64(1); seed <= 50; seed++ {
		r := sim.RunSeed(Scenario(), seed, sim.RunOptions{Bugs: []string{BugNoDedup}})
		if r.Passed() {
			continue
		}
		if !errors.Is(r.Err, ErrInventedIncrement) || !strings.Contains(r.Failure, "counted twice") {
			t.Fatalf("seed %d failed without naming an invented increment: %s", seed, r.Failure)
		}
		return
	}
	t.Fatal("counter-no-dedup not caught in seeds 1..50")
}

// TestDeterministicAcrossProcesses runs seed 7 in a child process (this
// test binary re-executed) and compares its trace hash with this process's.
func TestDeterministicAcrossProcesses(t *testing.T) {
	if os.Getenv("STRATA_SIM_CHILD") == "1" {
		r := sim.RunSeed(Scenario(), 7, sim.RunOptions{})
		fmt.Printf("hash=%s events=%d\n", r.TraceHash, r.Events)
		return
	}
	r := sim.RunSeed(Scenario(), 7, sim.RunOptions{})
	again := sim.RunSeed(Scenario(), 7, sim.RunOptions{})
	if r.TraceHash != again.TraceHash {
		t.Fatalf("same process: %s vs %s", r.TraceHash, again.TraceHash)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestDeterministicAcrossProcesses$", "-test.count=1")
	cmd.Env = append(os.Environ(), "STRATA_SIM_CHILD=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	want := fmt.Sprintf("hash=%s events=%d", r.TraceHash, r.Events)
	if !strings.Contains(string(out), want) {
		t.Fatalf("child process printed %q, want %q", out, want)
	}
}

// TestParallelWorldsAgree: worlds running in parallel share nothing, so a
// -j sweep gives the same hashes as a sequential one.
func TestParallelWorldsAgree(t *testing.T) {
	hashes := func(workers int) []string {
		var out []string
		sim.Sweep(context.Background(), Scenario(), 1, 6, sim.SweepOptions{Workers: workers}, func(r sim.Result) {
			out = append(out, r.TraceHash)
		})
		return out
	}
	seq, par := hashes(1), hashes(3)
	if fmt.Sprint(seq) != fmt.Sprint(par) {
		t.Fatalf("sequential %v, parallel %v", seq, par)
	}
}
