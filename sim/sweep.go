package sim

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
)

// MaxWorkers bounds Sweep's parallelism.
const MaxWorkers = 256

// MaxSweepSeeds bounds one sweep's seed range.
const MaxSweepSeeds = 10_000_000

// ErrBadSeeds reports an unparsable or oversized seed range.
var ErrBadSeeds = errors.New("sim: bad seed range")

// ParseSeeds parses "A..B" (inclusive) or a single "N".
func ParseSeeds(s string) (first, last uint64, err error) {
	a, b, isRange := strings.Cut(s, "..")
	first, err = strconv.ParseUint(strings.TrimSpace(a), 10, 64)
	if err != nil {
		return 0, 0, fmt.Errorf("%w %q: %v", ErrBadSeeds, s, err)
	}
	last = first
	if isRange {
		last, err = strconv.ParseUint(strings.TrimSpace(b), 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("%w %q: %v", ErrBadSeeds, s, err)
		}
	}
	if last < first {
		return 0, 0, fmt.Errorf("%w %q: end before start", ErrBadSeeds, s)
	}
	if last-first >= MaxSweepSeeds {
		return 0, 0, fmt.Errorf("%w %q: more than %d seeds", ErrBadSeeds, s, MaxSweepSeeds)
	}
	return first, last, nil
}

// SweepOptions configure Sweep.
type SweepOptions struct {
	RunOptions
	// Workers is the number of worlds run in parallel (default 1). Each
	// world is independent: the simulator has no package-level state.
	Workers int
	// CheckDeterminism runs every seed twice and compares traces.
	CheckDeterminism bool
}

// Sweep runs seeds first..last of sc and calls report with each result in
// seed order (report is never called concurrently). It stops early when ctx
// is done, reporting the seeds finished so far in order.
func Sweep(ctx context.Context, sc Scenario, first, last uint64, opts SweepOptions, report func(Result)) {
	workers := min(max(opts.Workers, 1), MaxWorkers)
	if n := last - first + 1; uint64(workers) > n {
		workers = int(n)
	}
	seeds := make(chan uint64)
	type done struct {
		seed uint64
		r    Result
	}
	results := make(chan done, workers)
	var wg sync.WaitGroup
	for i := 0; i < workers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for s := range seeds {
				var r Result
				if opts.CheckDeterminism {
					r = CheckDeterminism(sc, s, opts.RunOptions)
				} else {
					r = RunSeed(sc, s, opts.RunOptions)
				}
				results <- done{s, r}
			}
		}()
	}
	go func() {
		defer close(seeds)
		for s := first; ; s++ {
			select {
			case seeds <- s:
			case <-ctx.Done():
				return
			}
			if s == last {
				return
			}
		}
	}()
	go func() {
		wg.Wait()
		close(results)
	}()
	pending := map[uint64]Result{}
	next := first
	for d := range results {
		pending[d.seed] = d.r
		for {
			r, ok := pending[next]
			if !ok {
				break
			}
			delete(pending, next)
			report(r)
			next++
		}
	}
}
