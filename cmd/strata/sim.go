package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/stratadb/strata/sim"
	"github.com/stratadb/strata/sim/scenarios"
)

func init() { register(newSimCmd) }

// errSimFailed makes the exit status non-zero when a seed failed; the
// failures themselves were already printed.
var errSimFailed = errors.New("sim: some seeds failed")

type simFlags struct {
	scenario    string
	seed        uint64
	seeds       string
	workers     int
	json        bool
	check       bool
	quiet       bool
	bugs        []string
	list        bool
	trace       string
	log         string
	stepTimeout time.Duration
}

func newSimCmd() *cobra.Command {
	var f simFlags
	cmd := &cobra.Command{
		Use:   "sim",
		Short: "Run deterministic simulation scenarios by seed",
		Long: `sim runs a registered simulation scenario under the deterministic simulator.
Each seed fixes the cluster shape, the fault plan and every scheduling
decision; a failing seed prints the exact command that reproduces it.

Examples:
  strata sim --list
  strata sim --scenario counter --seed 7
  strata sim --scenario counter --seeds 1..200 -j 2
  strata sim --scenario counter --seeds 1..200 -j 2 --quiet
  strata sim --scenario counter --seeds 1..50 --bug counter-ack-before-sync --json
  strata sim --scenario counter --seed 7 --check-determinism --trace trace.txt`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runSim(cmd, &f)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.scenario, "scenario", "", "scenario to run (see --list)")
	fl.Uint64Var(&f.seed, "seed", 0, "run one seed")
	fl.StringVar(&f.seeds, "seeds", "", "run an inclusive seed range A..B")
	fl.IntVarP(&f.workers, "jobs", "j", 1, fmt.Sprintf("seeds run in parallel (1..%d)", sim.MaxWorkers))
	fl.BoolVar(&f.json, "json", false, "print one JSON object per seed (and --list as JSON)")
	fl.BoolVar(&f.check, "check-determinism", false, "run every seed twice and fail if the trace hashes differ")
	fl.BoolVarP(&f.quiet, "quiet", "q", false, "print only failing seeds and the summary")
	fl.StringArrayVar(&f.bugs, "bug", nil, "plant a scenario bug (repeatable; see --list)")
	fl.BoolVar(&f.list, "list", false, "list scenarios and their planted bugs")
	fl.StringVar(&f.trace, "trace", "", "write the event log of the (single) seed to this file")
	fl.StringVar(&f.log, "log", "", "write the nodes' logs (virtual time) of the (single) seed to this file")
	fl.DurationVar(&f.stepTimeout, "step-timeout", 10*time.Second, "watchdog: wall-clock bound on one simulation step")
	return cmd
}

// listOutput is the JSON shape of `strata sim --list --json`.
type listOutput struct {
	Scenarios []listScenario `json:"scenarios"`
}

type listScenario struct {
	Name string   `json:"name"`
	Doc  string   `json:"doc,omitempty"`
	Bugs []string `json:"bugs"`
}

func runSim(cmd *cobra.Command, f *simFlags) error {
	out, errOut := cmd.OutOrStdout(), cmd.ErrOrStderr()
	if f.list {
		return listScenarios(out, f.json)
	}
	if f.scenario == "" {
		return fmt.Errorf("sim: --scenario is required (see --list)")
	}
	sc, err := scenarios.Lookup(f.scenario)
	if err != nil {
		return err
	}
	for _, b := range f.bugs {
		if !sc.HasBug(b) {
			return fmt.Errorf("%w %q for scenario %s (known: %s)", sim.ErrUnknownBug, b, sc.Name, bugNames(sc))
		}
	}
	seedSet, seedsSet := cmd.Flags().Changed("seed"), cmd.Flags().Changed("seeds")
	var first, last uint64
	switch {
	case seedSet && seedsSet:
		return fmt.Errorf("sim: use --seed or --seeds, not both")
	case seedsSet:
		if first, last, err = sim.ParseSeeds(f.seeds); err != nil {
			return err
		}
	case seedSet:
		first, last = f.seed, f.seed
	default:
		return fmt.Errorf("sim: --seed N or --seeds A..B is required")
	}
	if f.workers < 1 || f.workers > sim.MaxWorkers {
		return fmt.Errorf("sim: -j %d not in [1, %d]", f.workers, sim.MaxWorkers)
	}
	if (f.trace != "" || f.log != "") && first != last {
		return fmt.Errorf("sim: --trace and --log need a single seed")
	}
	opts := sim.SweepOptions{
		RunOptions:       sim.RunOptions{Bugs: f.bugs, StepTimeout: f.stepTimeout},
		Workers:          f.workers,
		CheckDeterminism: f.check,
	}
	for _, file := range []struct {
		name string
		dst  *io.Writer
	}{{f.trace, &opts.Trace}, {f.log, &opts.Log}} {
		if file.name == "" {
			continue
		}
		fh, err := os.Create(file.name)
		if err != nil {
			return fmt.Errorf("sim: %w", err)
		}
		defer fh.Close()
		*file.dst = fh
	}

	inv := cmd.Root().Annotations[invocationKey]
	total := last - first + 1
	bar := newProgress(errOut, total > 1)
	var st sweepStats
	var encErr error
	start := time.Now()
	sim.Sweep(cmd.Context(), sc, first, last, opts, func(r sim.Result) {
		st.add(r)
		r.Repro = reproWith(inv, r.Repro)
		bar.clear()
		switch {
		case f.quiet && r.Passed():
		case f.json:
			if err := json.NewEncoder(out).Encode(r); err != nil && encErr == nil {
				encErr = err
			}
		default:
			printResult(out, r, f.check)
		}
		bar.draw(st.passed+st.failed, total, st.failed)
	})
	st.elapsed = time.Since(start).Seconds()
	st.workers = min(uint64(f.workers), total)
	bar.clear()
	if encErr != nil {
		return fmt.Errorf("sim: writing JSON: %w", encErr)
	}
	passed, failed := st.passed, st.failed
	summary := st.summary(sc.Name)
	if f.json {
		fmt.Fprintln(errOut, summary)
	} else {
		fmt.Fprintln(out, summary)
	}
	if passed+failed < total {
		return fmt.Errorf("sim: interrupted after %d of %d seeds", passed+failed, total)
	}
	if failed > 0 {
		return errSimFailed
	}
	return nil
}

// sweepStats adds up a sweep for its summary line.
type sweepStats struct {
	passed, failed uint64
	// simSec is the virtual time of all seeds; seedWallSec the sum of
	// every seed's own wall time (with -j N, up to N seeds run at once,
	// so this exceeds the elapsed time); elapsed the sweep's wall time.
	simSec, seedWallSec, elapsed float64
	workers                      uint64
}

func (s *sweepStats) add(r sim.Result) {
	s.simSec += r.SimSeconds
	s.seedWallSec += r.WallSeconds
	if r.Passed() {
		s.passed++
	} else {
		s.failed++
	}
}

// summary is the sweep's last line: the seed counts, the virtual time
// against the elapsed wall time (how fast the sweep went) and against the
// per-seed wall time summed over the workers (how fast one world runs).
func (s *sweepStats) summary(scenario string) string {
	ratio := func(wall float64) float64 {
		if wall <= 0 {
			return 0
		}
		return s.simSec / wall
	}
	return fmt.Sprintf("%s: %d seeds, %d passed, %d failed; %.1f virtual s in %.2f s elapsed with -j %d (%.0fx); "+
		"seed wall time summed over workers %.2f s (%.0fx per worker)",
		scenario, s.passed+s.failed, s.passed, s.failed, s.simSec, s.elapsed, s.workers, ratio(s.elapsed),
		s.seedWallSec, ratio(s.seedWallSec))
}

// reproWith rewrites a reproduce command (sim.Repro: "strata sim ...") to
// start with inv, the invocation that runs this binary (see invocation).
func reproWith(inv, repro string) string {
	if rest, ok := strings.CutPrefix(repro, "strata "); ok && inv != "" {
		return inv + " " + rest
	}
	return repro
}

func printResult(w io.Writer, r sim.Result, check bool) {
	mode := ""
	if check {
		mode = " (checked twice)"
	}
	if r.Passed() {
		fmt.Fprintf(w, "seed %d: pass%s hash=%s events=%d sim=%.2fs wall=%.3fs | %s | %s\n",
			r.Seed, mode, r.TraceHash, r.Events, r.SimSeconds, r.WallSeconds, r.ParamsText, r.StatsText)
		return
	}
	fmt.Fprintf(w, "seed %d: FAIL%s hash=%s events=%d sim=%.2fs wall=%.3fs\n", r.Seed, mode, r.TraceHash, r.Events, r.SimSeconds, r.WallSeconds)
	fmt.Fprintf(w, "  params: %s\n", r.ParamsText)
	fmt.Fprintf(w, "  failure: %s\n", strings.ReplaceAll(r.Failure, "\n", "\n  "))
	if len(r.LastEvents) > 0 {
		fmt.Fprintf(w, "  last events:\n    %s\n", strings.Join(r.LastEvents, "\n    "))
	}
	fmt.Fprintf(w, "  reproduce: %s\n", r.Repro)
}

func listScenarios(w io.Writer, asJSON bool) error {
	var lo listOutput
	for _, sc := range scenarios.All() {
		ls := listScenario{Name: sc.Name, Doc: sc.Doc, Bugs: []string{}}
		for _, b := range sc.Bugs {
			ls.Bugs = append(ls.Bugs, b.Name)
		}
		lo.Scenarios = append(lo.Scenarios, ls)
	}
	if asJSON {
		return json.NewEncoder(w).Encode(lo)
	}
	for _, sc := range scenarios.All() {
		fmt.Fprintf(w, "%s: %s\n", sc.Name, sc.Doc)
		for _, b := range sc.Bugs {
			fmt.Fprintf(w, "  --bug %s: %s\n", b.Name, b.Doc)
		}
	}
	return nil
}

func bugNames(sc sim.Scenario) string {
	var names []string
	for _, b := range sc.Bugs {
		names = append(names, b.Name)
	}
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}

// progress draws a one-line bar on stderr when it is a terminal and the run
// is a sweep; otherwise it does nothing.
type progress struct {
	w       io.Writer
	enabled bool
	drawn   bool
}

func newProgress(w io.Writer, sweep bool) *progress {
	p := &progress{w: w}
	if f, ok := w.(*os.File); ok && sweep {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			p.enabled = true
		}
	}
	return p
}

func (p *progress) draw(done, total, failed uint64) {
	if !p.enabled {
		return
	}
	const width = 30
	filled := int(done * width / total)
	fmt.Fprintf(p.w, "\r[%s%s] %d/%d seeds, %d failed", strings.Repeat("=", filled),
		strings.Repeat(" ", width-filled), done, total, failed)
	p.drawn = true
}

func (p *progress) clear() {
	if p.enabled && p.drawn {
		fmt.Fprint(p.w, "\r\033[K")
		p.drawn = false
	}
}
