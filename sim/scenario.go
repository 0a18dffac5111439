package sim

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"time"
)

// Bug is a deliberate defect a scenario can plant in its services. A
// planted bug is switched on only through RunOptions.Bugs (the scenario reads
// it with World.Bug and passes it into the service's config); CI proves the
// scenario's checkers catch it within Scenario.BugSeeds seeds.
type Bug struct {
	Name string
	// Doc says what the bug does and which invariant should catch it.
	Doc string
}

// Scenario is one registered simulation: it builds a cluster, drives a
// workload with faults (the safety phase), heals, requires convergence (the
// liveness phase) and checks invariants.
type Scenario struct {
	Name string
	Doc  string
	Bugs []Bug
	// Run drives one seed. It runs as the world's main task: it may block on
	// the seams and sleep in virtual time. A non-nil error fails the seed;
	// so does World.Fail from any task.
	Run func(w *World) error
	// MaxVirtualTime bounds one seed's virtual time (default 1h).
	MaxVirtualTime time.Duration
	// CISeeds is how many seeds (1..CISeeds) `go test` sweeps (default 10).
	CISeeds int
	// BugSeeds: each planted bug must make at least one of seeds
	// 1..BugSeeds fail (default 200). CI checks it.
	BugSeeds int
}

// HasBug reports whether the scenario declares bug name.
func (s *Scenario) HasBug(name string) bool {
	for _, b := range s.Bugs {
		if b.Name == name {
			return true
		}
	}
	return false
}

// ErrUnknownBug reports a bug name the scenario does not declare.
var ErrUnknownBug = errors.New("sim: unknown bug")

// Param is one swarm parameter a seed drew (cluster shape or fault rate).
type Param struct {
	Name  string
	Value any
}

// Swarm records a drawn swarm parameter (cluster shape or fault rate) so it
// is printed beside the seed, and returns v: n := sim.Swarm(w, "clients",
// 2+w.Rand().IntN(4)).
func Swarm[T any](w *World, name string, v T) T {
	w.params = append(w.params, Param{Name: name, Value: v})
	return v
}

// Stat records an outcome of the run (a checker's counts, say): printed
// with the result and in --json "stats". A later value replaces an
// earlier one of the same name.
func Stat[T any](w *World, name string, v T) {
	for i := range w.stats {
		if w.stats[i].Name == name {
			w.stats[i].Value = v
			return
		}
	}
	w.stats = append(w.stats, Param{Name: name, Value: v})
}

// Bug reports whether planted bug name is switched on for this run.
func (w *World) Bug(name string) bool { return slices.Contains(w.bugs, name) }

// Phase marks the start of a named phase ("safety", "liveness", "check");
// the current phase is reported with a failure.
func (w *World) Phase(name string) {
	w.phase = name
	w.event(EvNote, hashString("phase"), hashString(name))
	w.Log().Info("phase", "name", name)
}

// RunOptions configure one seed's run.
type RunOptions struct {
	// Bugs to plant (each must be declared by the scenario).
	Bugs []string
	// Trace receives the event log (one line per hashed event).
	Trace io.Writer
	// Log receives the nodes' logs; LogLevel filters them.
	Log      io.Writer
	LogLevel slog.Level
	// StepTimeout overrides the watchdog bound (default 10s).
	StepTimeout time.Duration

	record  *recording
	compare *recording
}

// Result is the outcome of one seed, as `strata sim --json` prints it.
type Result struct {
	Seed        uint64         `json:"seed"`
	Scenario    string         `json:"scenario"`
	Bugs        []string       `json:"bugs,omitempty"`
	Result      string         `json:"result"` // "pass" or "fail"
	TraceHash   string         `json:"trace_hash"`
	Events      uint64         `json:"events"`
	SimSeconds  float64        `json:"sim_seconds"`
	WallSeconds float64        `json:"wall_seconds"`
	Phase       string         `json:"phase,omitempty"`
	Failure     string         `json:"failure"`
	Repro       string         `json:"repro"`
	Params      map[string]any `json:"params"`
	Stats       map[string]any `json:"stats,omitempty"`
	// LastEvents are the run's last trace events, kept for a failure.
	LastEvents []string `json:"last_events,omitempty"`
	// ParamsText is the drawn parameters in draw order, for text output;
	// StatsText likewise for the stats.
	ParamsText string `json:"-"`
	StatsText  string `json:"-"`
	// Err is the failure as an error (for errors.Is in tests).
	Err error `json:"-"`
}

// Passed reports whether the seed passed.
func (r *Result) Passed() bool { return r.Result == "pass" }

// Repro is the command that reproduces a seed.
func Repro(scenario string, seed uint64, bugs []string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "strata sim --scenario %s --seed %d", scenario, seed)
	for _, bug := range bugs {
		fmt.Fprintf(&b, " --bug %s", bug)
	}
	return b.String()
}

// RunSeed runs one seed of sc and reports the outcome. It never panics on a
// scenario failure and leaves no goroutine behind (unless the watchdog had
// to abandon a task blocked natively).
func RunSeed(sc Scenario, seed uint64, opts RunOptions) Result {
	bugs := append([]string(nil), opts.Bugs...)
	sort.Strings(bugs)
	res := Result{Seed: seed, Scenario: sc.Name, Bugs: bugs, Params: map[string]any{}}
	for _, b := range bugs {
		if !sc.HasBug(b) {
			res.Result = "fail"
			res.Err = fmt.Errorf("%w %q for scenario %s", ErrUnknownBug, b, sc.Name)
			res.Failure = res.Err.Error()
			return res
		}
	}
	w := New(Options{
		Seed:           seed,
		MaxVirtualTime: sc.MaxVirtualTime,
		StepTimeout:    opts.StepTimeout,
		Trace:          opts.Trace,
		Log:            opts.Log,
		LogLevel:       opts.LogLevel,
	})
	w.bugs = bugs
	w.tr.record = opts.record
	w.tr.compare = opts.compare
	start := time.Now()
	err := w.Run(sc.Run)
	res.WallSeconds = time.Since(start).Seconds()
	if errors.Is(err, ErrWatchdog) {
		// The world was abandoned with a task still running natively: its
		// state may change under us, so report only what is safe.
		res.Result = "fail"
		res.Err = err
		res.Failure = err.Error()
		res.Repro = Repro(sc.Name, seed, bugs)
		return res
	}
	if opts.record != nil {
		opts.record.names = append([]string(nil), w.names...)
		opts.record.sources = append([]string(nil), w.tr.sources...)
		opts.record.routes = w.tr.routes
	}
	res.TraceHash = fmt.Sprintf("%016x", w.Hash())
	res.Events = w.Events()
	res.SimSeconds = w.Now().Seconds()
	res.Phase = w.phase
	var pt []string
	for _, p := range w.params {
		v := p.Value
		if s, ok := v.(fmt.Stringer); ok {
			v = s.String() // durations read better as "1.5s" than as nanoseconds
		}
		res.Params[p.Name] = v
		pt = append(pt, fmt.Sprintf("%s=%v", p.Name, p.Value))
	}
	res.ParamsText = strings.Join(pt, " ")
	var st []string
	for _, p := range w.stats {
		if res.Stats == nil {
			res.Stats = map[string]any{}
		}
		res.Stats[p.Name] = p.Value
		st = append(st, fmt.Sprintf("%s=%v", p.Name, p.Value))
	}
	res.StatsText = strings.Join(st, " ")
	res.Result = "pass"
	if err != nil {
		res.Result = "fail"
		res.Err = err
		res.Failure = err.Error()
		if w.phase != "" {
			res.Failure = "in phase " + w.phase + ": " + res.Failure
		}
		res.Repro = Repro(sc.Name, seed, bugs)
		res.LastEvents = w.failEvents
	}
	return res
}

// ErrNondeterministic reports two runs of one seed with different traces.
var ErrNondeterministic = errors.New("sim: nondeterministic run")

// CheckDeterminism runs a seed twice, recording the first run's events, and
// fails (keeping the first run's outcome otherwise) if the trace hashes
// differ, naming the first divergent step.
func CheckDeterminism(sc Scenario, seed uint64, opts RunOptions) Result {
	first := opts
	first.record = &recording{}
	r1 := RunSeed(sc, seed, first)
	second := opts
	second.compare = first.record
	second.Trace, second.Log = nil, nil // the first run already wrote them
	r2 := RunSeed(sc, seed, second)
	r1.WallSeconds += r2.WallSeconds
	if r1.TraceHash == r2.TraceHash && r1.Events == r2.Events {
		return r1
	}
	msg := fmt.Sprintf("seed %d gave trace hash %s (%d events) then %s (%d events)",
		seed, r1.TraceHash, r1.Events, r2.TraceHash, r2.Events)
	if d := first.record.divergence; d != nil {
		msg += "; " + d.String()
	} else {
		msg += fmt.Sprintf("; the first %d events agree (the recording is bounded)", min(r1.Events, r2.Events, maxRecordedEvents))
	}
	r1.Result = "fail"
	r1.Err = fmt.Errorf("%w: %s", ErrNondeterministic, msg)
	r1.Failure = r1.Err.Error()
	r1.Repro = Repro(sc.Name, seed, r1.Bugs) + " --check-determinism"
	return r1
}

// ErrNoConvergence reports a liveness phase that did not converge in its
// virtual-time budget.
var ErrNoConvergence = errors.New("sim: no convergence")

// Converge is the liveness check: it evaluates cond every poll of virtual
// time until cond returns nil, and fails with ErrNoConvergence (and cond's
// last answer, which should say what is still missing) once budget has
// passed. Call it from a task, usually the scenario's main one, after
// HealAll.
func (w *World) Converge(budget, poll time.Duration, cond func() error) error {
	if poll <= 0 {
		poll = 10 * time.Millisecond
	}
	deadline := w.now + budget
	for {
		err := cond()
		if err == nil {
			return nil
		}
		if w.now >= deadline {
			return fmt.Errorf("%w within %v of healing: %v", ErrNoConvergence, budget, err)
		}
		w.Sleep(poll)
	}
}

// Go starts a task that belongs to no node (a workload driver or a
// checker); it survives every crash and is unwound when the run ends.
func (w *World) Go(name string, fn func(ctx context.Context)) {
	w.root.clock.Go(context.Background(), name, fn)
}
