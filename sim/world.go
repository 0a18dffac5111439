package sim

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"runtime"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/stratadb/strata/clock"
	"github.com/stratadb/strata/disk/objstore"
	"github.com/stratadb/strata/sim/simdisk"
	"github.com/stratadb/strata/sim/simnet"
)

// Errors a run can end with. Reports wrap these so callers (and tests) can
// classify a failure with errors.Is.
var (
	// ErrDeadlock: nothing runnable, no timer pending, scenario not done.
	ErrDeadlock = errors.New("sim: deadlock")
	// ErrWatchdog: a step exceeded the wall-clock bound (a task blocked
	// natively or spun without yielding).
	ErrWatchdog = errors.New("sim: watchdog")
	// ErrTaskPanic: a task panicked.
	ErrTaskPanic = errors.New("sim: task panicked")
	// ErrTimeBudget: the scenario was still running when virtual time
	// reached Options.MaxVirtualTime.
	ErrTimeBudget = errors.New("sim: virtual time budget exceeded")
	// ErrLivelock: too many steps without virtual time advancing.
	ErrLivelock = errors.New("sim: livelock")
	// ErrNotInTask: a blocking seam call was made outside any task (for
	// example inside an AfterFunc callback).
	ErrNotInTask = errors.New("sim: blocking call outside a task")
)

// Options configure a World. Zero values select the defaults.
type Options struct {
	// Seed is the run's seed: it fixes every decision.
	Seed uint64
	// MaxVirtualTime bounds the run's virtual time. Default 1h.
	MaxVirtualTime time.Duration
	// StepTimeout is the watchdog's wall-clock bound for one step (one task
	// run between two parks). Default 10s.
	StepTimeout time.Duration
	// MaxStepsPerInstant bounds steps taken without virtual time advancing
	// (a livelock guard). Default 1<<22.
	MaxStepsPerInstant int
	// Trace, if set, receives one line per hashed event (strata sim --trace).
	Trace io.Writer
	// Log, if set, receives the nodes' slog output (text, virtual time).
	Log io.Writer
	// LogLevel is the minimum level written to Log. Default Info.
	LogLevel slog.Level
}

func (o *Options) fill() {
	if o.MaxVirtualTime <= 0 {
		o.MaxVirtualTime = time.Hour
	}
	if o.StepTimeout <= 0 {
		o.StepTimeout = 10 * time.Second
	}
	if o.MaxStepsPerInstant <= 0 {
		o.MaxStepsPerInstant = 1 << 22
	}
}

// World is one simulated universe: the scheduler, virtual time, the trace,
// and the nodes. Create one per seed with New; it is single-use.
type World struct {
	opts Options

	now    time.Duration
	sched  *rand.Rand // scheduling choices (outcomes are traced as EvSched)
	rng    *rand.Rand // the scenario's own traced source
	tr     trace
	nextID int32
	names  []string // task names by id, for reports

	live     map[int32]*task
	runnable []*task
	dying    []*task
	timers   timerHeap
	timerSeq uint64
	current  *task
	instant  int // steps since virtual time last advanced
	sources  uint64

	yield     chan struct{}
	step      atomic.Uint64
	running   atomic.Pointer[task]
	abandoned atomic.Bool

	net         *simnet.Network
	store       objstore.Store
	faultyStore *objstore.Faulty
	storeDisk   *simdisk.FS
	nemeses     []*nemesis
	root        *incarnation
	nodes       []*Node
	byID        map[string]*Node
	done        bool
	failure     error
	ran         bool
	bugs        []string
	params      []Param
	stats       []Param
	phase       string
	failEvents  []string

	logHandler slog.Handler

	// failpointHolds are the nemesis failpoint episodes in force (faults.go).
	failpointHolds map[failpointKey]*failpointHolds
}

// New makes a world for one seed.
func New(opts Options) *World {
	opts.fill()
	w := &World{
		opts:  opts,
		live:  make(map[int32]*task),
		yield: make(chan struct{}, 1),
		byID:  make(map[string]*Node),
		names: []string{"scheduler"},
	}
	w.tr.hash = traceSeed
	w.tr.names = w.taskName
	w.tr.log = opts.Trace
	w.sched = rand.New(rand.NewPCG(opts.Seed, mix(opts.Seed, 0x5ced)))
	w.rng = w.NewRand("world")
	w.root = &incarnation{w: w, num: 1}
	w.root.clock = &simClock{inc: w.root}
	if opts.Log != nil {
		w.logHandler = slog.NewTextHandler(opts.Log, &slog.HandlerOptions{Level: opts.LogLevel})
	} else {
		w.logHandler = slog.DiscardHandler
	}
	return w
}

// Seed is the world's seed.
func (w *World) Seed() uint64 { return w.opts.Seed }

// Now is the current virtual time since the start of the run.
func (w *World) Now() time.Duration { return w.now }

// Rand is the scenario's seeded source; every draw is traced.
func (w *World) Rand() *rand.Rand { return w.rng }

// Clock is the world's own clock (no node): use it for workload and checker
// tasks that belong to no node. It never crashes.
func (w *World) Clock() clock.Clock { return w.root.clock }

// Hash is the trace hash so far.
func (w *World) Hash() uint64 { return w.tr.hash }

// Events is the number of hashed events so far.
func (w *World) Events() uint64 { return w.tr.events }

// Note hashes a scenario-defined event into the trace.
func (w *World) Note(a, b uint64) { w.event(EvNote, a, b) }

func (w *World) event(k EventKind, a, b uint64) {
	var id int32
	if w.current != nil {
		id = w.current.id
	}
	w.tr.add(Event{Kind: k, Task: id, At: w.now, A: a, B: b})
}

func (w *World) taskName(id int32) string {
	if id >= 0 && int(id) < len(w.names) {
		return w.names[id]
	}
	return fmt.Sprintf("task#%d", id)
}

// NewRand returns a fresh seeded source derived from the world's seed and
// name; every draw from it is hashed into the trace.
func (w *World) NewRand(name string) *rand.Rand {
	w.sources++
	w.tr.sources = append(w.tr.sources, name)
	s := &tracedSource{w: w, id: w.sources}
	h := mix(w.opts.Seed, hashString(name))
	s.pcg = *rand.NewPCG(h, mix(h, 0x9e3779b97f4a7c15))
	return rand.New(s)
}

type tracedSource struct {
	w   *World
	id  uint64
	pcg rand.PCG
}

func (s *tracedSource) Uint64() uint64 {
	v := s.pcg.Uint64()
	s.w.event(EvRand, s.id, v)
	return v
}

// Fail records a failure (the first one wins) and ends the run after the
// current step. Checkers call it when an invariant breaks mid-run.
func (w *World) Fail(err error) {
	if w.failure == nil {
		w.failure = err
		w.failEvents = w.tr.lastEvents()
	}
	w.done = true
}

// Failure is the first recorded failure, if any.
func (w *World) Failure() error { return w.failure }

// Run runs main as the world's first task and drives the scheduler until main
// returns, a failure is recorded, or the run deadlocks, exceeds its budget or
// trips the watchdog. It returns the first failure (nil if main returned nil
// and nothing failed). A World runs once.
func (w *World) Run(main func(w *World) error) error {
	if w.ran {
		panic("sim: World.Run called twice")
	}
	w.ran = true
	w.spawn(w.root, "main", context.Background(), func(context.Context) {
		if err := main(w); err != nil {
			w.Fail(err)
		}
		w.done = true
	})
	finished := make(chan struct{})
	stuck := make(chan error, 1)
	stopWatch := make(chan struct{})
	go func() {
		w.loop()
		close(finished)
	}()
	go w.watchdog(stuck, stopWatch)
	select {
	case <-finished:
		close(stopWatch)
		return w.failure
	case err := <-stuck:
		// The stuck goroutine cannot be stopped from outside; the world is
		// abandoned, and if the task ever yields its scheduler unwinds
		// every remaining task (nothing reads the world after this).
		w.abandoned.Store(true)
		return err
	}
}

func (w *World) loop() {
	for !w.done {
		if w.abandoned.Load() {
			// The watchdog gave up on this world and Run has returned; the
			// stuck task has let go at last, so unwind everything left.
			break
		}
		if len(w.dying) > 0 {
			t := w.dying[0]
			w.dying = w.dying[1:]
			w.resume(t)
			continue
		}
		if len(w.timers) > 0 && w.timers[0].at <= w.now {
			w.fire(w.timers.pop())
			continue
		}
		if n := len(w.runnable); n > 0 {
			i := 0
			if n > 1 {
				i = w.sched.IntN(n)
			}
			t := w.runnable[i]
			w.runnable[i] = w.runnable[n-1]
			w.runnable[n-1] = nil
			w.runnable = w.runnable[:n-1]
			w.tr.add(Event{Kind: EvSched, At: w.now, A: uint64(t.id), B: uint64(n)})
			w.instant++
			if w.instant > w.opts.MaxStepsPerInstant {
				w.Fail(fmt.Errorf("%w: %d steps at virtual time %v without time advancing", ErrLivelock, w.instant, w.now))
				break
			}
			w.resume(t)
			continue
		}
		if len(w.timers) > 0 {
			at := w.timers[0].at
			if at > w.opts.MaxVirtualTime {
				w.Fail(fmt.Errorf("%w: next event at %v, budget %v", ErrTimeBudget, at, w.opts.MaxVirtualTime))
				break
			}
			w.now = at
			w.instant = 0
			w.tr.add(Event{Kind: EvTime, At: w.now, A: uint64(at)})
			continue
		}
		w.Fail(w.deadlockReport())
	}
	w.teardown()
}

// resume hands the baton to t and waits until it parks or exits.
func (w *World) resume(t *task) {
	w.current = t
	t.state = taskRunning
	w.running.Store(t)
	w.step.Add(1)
	t.resume <- struct{}{}
	<-w.yield
	w.running.Store(nil)
	w.current = nil
}

// fire runs a due timer's callback on the scheduler goroutine.
func (w *World) fire(tm *timer) {
	tm.fired = true
	if tm.inc.dead {
		return
	}
	w.tr.add(Event{Kind: EvTimer, At: w.now, A: tm.seq})
	w.step.Add(1)
	defer func() {
		if p := recover(); p != nil {
			w.Fail(fmt.Errorf("%w: timer callback: %v", ErrTaskPanic, p))
		}
	}()
	tm.f()
}

// teardown unwinds every remaining task so no goroutine outlives the run.
// Every incarnation is marked dead first, so deferred calls of unwinding
// tasks cannot start new tasks or timers.
func (w *World) teardown() {
	w.root.dead = true
	for _, n := range w.nodes {
		if n.cur != nil {
			n.cur.dead = true
		}
	}
	for _, t := range w.liveTasks(nil) {
		w.kill(t)
	}
	for len(w.dying) > 0 {
		t := w.dying[0]
		w.dying = w.dying[1:]
		w.resume(t)
	}
}

// liveTasks lists live tasks (of inc, or all if inc is nil) in id order.
func (w *World) liveTasks(inc *incarnation) []*task {
	out := make([]*task, 0, len(w.live))
	for _, t := range w.live {
		if inc == nil || t.inc == inc {
			out = append(out, t)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].id < out[j].id })
	return out
}

// kill marks t to unwind: if it is parked or runnable it is queued on dying
// and resumed only to call runtime.Goexit.
func (w *World) kill(t *task) {
	if t.killed || t.state == taskDone {
		return
	}
	t.killed = true
	switch t.state {
	case taskRunnable:
		for i, r := range w.runnable {
			if r == t {
				copy(w.runnable[i:], w.runnable[i+1:])
				w.runnable[len(w.runnable)-1] = nil
				w.runnable = w.runnable[:len(w.runnable)-1]
				break
			}
		}
		w.dying = append(w.dying, t)
	case taskParked:
		if t.waiter != nil {
			t.waiter.parked = nil
			t.waiter = nil
		}
		w.dying = append(w.dying, t)
	case taskRunning:
		// The running task notices at its next Wait (or right away when it
		// killed itself, see incarnation.end).
	}
}

// watchdog reports a step that takes longer than StepTimeout of wall time.
func (w *World) watchdog(stuck chan<- error, stop <-chan struct{}) {
	period := w.opts.StepTimeout / 4
	tick := time.NewTicker(period)
	defer tick.Stop()
	last := w.step.Load()
	var still time.Duration
	for {
		select {
		case <-stop:
			return
		case <-tick.C:
		}
		s := w.step.Load()
		if s != last {
			last, still = s, 0
			continue
		}
		still += period
		if still < w.opts.StepTimeout {
			continue
		}
		t := w.running.Load()
		if t == nil {
			stuck <- fmt.Errorf("%w: a timer callback ran for more than %v of wall time (callbacks must not block)", ErrWatchdog, w.opts.StepTimeout)
			return
		}
		stuck <- fmt.Errorf("%w: task %q ran for more than %v of wall time without yielding to the scheduler (a native blocking call or a spin):\n%s",
			ErrWatchdog, t.name, w.opts.StepTimeout, goroutineStack(t.goid.Load()))
		return
	}
}

// goroutineStack extracts one goroutine's stack from a dump of all of them.
func goroutineStack(id uint64) string {
	// Grow the buffer until the dump fits (bounded at 256 MiB).
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) || len(buf) >= 256<<20 {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	head := fmt.Sprintf("goroutine %d [", id)
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.HasPrefix(g, head) {
			return indent(g)
		}
	}
	return "  (stack not found)"
}

func indent(s string) string {
	return "    " + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n    ")
}
