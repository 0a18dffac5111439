package sim

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stratadb/strata/nodes/node"
)

// toyScenario sleeps a seed-dependent sequence; with nondet it also lets
// Go's randomized map order pick sleeps, which no seed controls.
func toyScenario(nondet bool) Scenario {
	return Scenario{
		Name: "toy",
		Bugs: []Bug{{Name: "toy-bug", Doc: "fails every seed"}},
		Run: func(w *World) error {
			Swarm(w, "steps", 5)
			if w.Bug("toy-bug") {
				return errors.New("toy: planted bug")
			}
			return pingPong(w, 3, 5)
		},
	}
}

func nondetScenario() Scenario {
	return Scenario{
		Name: "nondet",
		Run: func(w *World) error {
			if err := pingPong(w, 2, 3); err != nil {
				return err
			}
			m := map[int]bool{}
			for i := 0; i < 64; i++ {
				m[i] = true
			}
			for i := 0; i < 20; i++ {
				for k := range m {
					w.Sleep(time.Duration(k+1) * time.Millisecond)
					break
				}
			}
			return nil
		},
	}
}

func TestCheckDeterminismFindsFirstDivergentStep(t *testing.T) {
	r := CheckDeterminism(nondetScenario(), 1, RunOptions{})
	if r.Passed() || !errors.Is(r.Err, ErrNondeterministic) {
		t.Fatalf("nondeterministic scenario passed the check: %+v", r)
	}
	if !strings.Contains(r.Failure, "first divergent step") || !strings.Contains(r.Failure, "advance time to") {
		t.Fatalf("failure does not locate the divergence: %s", r.Failure)
	}
	if !strings.HasSuffix(r.Repro, "--check-determinism") {
		t.Fatalf("repro %q", r.Repro)
	}
	if ok := CheckDeterminism(toyScenario(false), 1, RunOptions{}); !ok.Passed() {
		t.Fatalf("deterministic scenario failed the check: %s", ok.Failure)
	}
}

func TestRunSeedResult(t *testing.T) {
	r := RunSeed(toyScenario(false), 5, RunOptions{})
	if !r.Passed() || r.Events == 0 || r.TraceHash == "" || r.Params["steps"] != 5 || r.Repro != "" {
		t.Fatalf("%+v", r)
	}
	bad := RunSeed(toyScenario(false), 5, RunOptions{Bugs: []string{"toy-bug"}})
	if bad.Passed() || bad.Repro != "strata sim --scenario toy --seed 5 --bug toy-bug" {
		t.Fatalf("%+v", bad)
	}
	unknown := RunSeed(toyScenario(false), 5, RunOptions{Bugs: []string{"nope"}})
	if !errors.Is(unknown.Err, ErrUnknownBug) {
		t.Fatalf("%+v", unknown)
	}
}

func TestSweepReportsInSeedOrder(t *testing.T) {
	var got []uint64
	Sweep(context.Background(), toyScenario(false), 3, 12, SweepOptions{Workers: 3}, func(r Result) {
		got = append(got, r.Seed)
	})
	if fmt.Sprint(got) != "[3 4 5 6 7 8 9 10 11 12]" {
		t.Fatalf("seeds reported as %v", got)
	}
}

func TestParseSeeds(t *testing.T) {
	for _, tc := range []struct {
		in          string
		first, last uint64
		ok          bool
	}{
		{"7", 7, 7, true},
		{"1..200", 1, 200, true},
		{" 3 .. 4 ", 3, 4, true},
		{"5..4", 0, 0, false},
		{"x", 0, 0, false},
		{"1..y", 0, 0, false},
		{"0..99999999999", 0, 0, false},
	} {
		f, l, err := ParseSeeds(tc.in)
		if (err == nil) != tc.ok || f != tc.first || l != tc.last {
			t.Errorf("%q: %d..%d %v", tc.in, f, l, err)
		}
		if !tc.ok && !errors.Is(err, ErrBadSeeds) {
			t.Errorf("%q: %v is not ErrBadSeeds", tc.in, err)
		}
	}
}

func TestTraceLog(t *testing.T) {
	var b strings.Builder
	r := RunSeed(toyScenario(false), 2, RunOptions{Trace: &b})
	lines := strings.Count(b.String(), "\n")
	if uint64(lines) != r.Events {
		t.Fatalf("trace has %d lines for %d events", lines, r.Events)
	}
	if !strings.Contains(b.String(), "resume p0") || !strings.Contains(b.String(), "spawn main") {
		t.Fatalf("trace lacks scheduling events:\n%.500s", b.String())
	}
}

// TestNoGoroutineOutlivesARun: every task goroutine ends with the run, also
// tasks parked forever and tasks of crashed nodes.
func TestNoGoroutineOutlivesARun(t *testing.T) {
	before := runtime.NumGoroutine()
	for seed := uint64(1); seed <= 3; seed++ {
		r := RunSeed(Scenario{Name: "leak", Run: func(w *World) error {
			c := w.Clock()
			for i := 0; i < 10; i++ {
				c.Go(context.Background(), "parked-forever", func(context.Context) {
					defer c.Go(context.Background(), "spawned-while-unwinding", func(context.Context) {})
					defer c.NewWaiter().Wait() // blocks again while unwinding
					c.NewWaiter().Wait()
				})
			}
			n := w.AddNode("n", func(env node.Env) error {
				env.Clock.Go(context.Background(), "node-task", func(context.Context) { env.Clock.NewWaiter().Wait() })
				return nil
			})
			w.Sleep(time.Second)
			n.Crash(true)
			n.Restart()
			w.Sleep(time.Second)
			return nil
		}}, seed, RunOptions{})
		if !r.Passed() {
			t.Fatal(r.Failure)
		}
	}
	deadline := time.Now().Add(2 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if after := runtime.NumGoroutine(); after > before {
		t.Fatalf("%d goroutines before, %d after", before, after)
	}
}

func TestConverge(t *testing.T) {
	w := New(Options{Seed: 1})
	err := w.Run(func(w *World) error {
		ready := false
		w.Go("sets-ready", func(context.Context) { w.Sleep(time.Second); ready = true })
		if err := w.Converge(2*time.Second, 100*time.Millisecond, func() error {
			if !ready {
				return errors.New("not ready")
			}
			return nil
		}); err != nil {
			return err
		}
		err := w.Converge(time.Second, 0, func() error { return errors.New("never") })
		if !errors.Is(err, ErrNoConvergence) || !strings.Contains(err.Error(), "never") {
			return fmt.Errorf("want ErrNoConvergence naming the cause, got %v", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
