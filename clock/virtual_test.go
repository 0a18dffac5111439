package clock_test

import (
	"context"
	"fmt"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stratadb/strata/clock"
	"github.com/stratadb/strata/clock/clocktest"
)

// vclock is a minimal single-threaded, seeded, virtual-time Clock with the
// simulator's execution model: one task runs at a time, a task runs until it
// parks in Waiter.Wait, AfterFunc callbacks run on the scheduler between
// task steps, and time jumps to the next timer when nothing is runnable.
// It exists to prove that the conformance suite and the primitives built on
// Clock work under that model (nothing relies on real parallelism or real
// time) and are deterministic for a seed. The real simulator lives in sim/.
type vclock struct {
	rng   *rand.Rand
	yield chan struct{} // a task gives the baton back (parked or exited)

	mu      sync.Mutex // only one goroutine runs at a time; this orders hand-offs for the race detector
	now     time.Duration
	seq     uint64
	timers  []*vtimer // sorted by (when, seq)
	runq    []*vtask
	current *vtask
	trace   []string // scheduling decisions, for the determinism check
}

type vtask struct {
	name   string
	resume chan struct{}
}

type vtimer struct {
	c       *vclock
	when    time.Duration
	seq     uint64
	f       func()
	pending bool
}

type vwaiter struct {
	c      *vclock
	task   *vtask
	permit bool
	parked bool
}

var vepoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func newVClock(seed uint64) *vclock {
	return &vclock{rng: rand.New(rand.NewPCG(seed, 0)), yield: make(chan struct{})}
}

func (c *vclock) Now() time.Time { return vepoch.Add(c.Mono()) }

func (c *vclock) Mono() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *vclock) AfterFunc(d time.Duration, f func()) clock.Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seq++
	when := c.now + max(d, 0)
	if when < c.now {
		when = math.MaxInt64
	}
	t := &vtimer{c: c, when: when, seq: c.seq, f: f, pending: true}
	i, _ := slices.BinarySearchFunc(c.timers, t, func(a, b *vtimer) int {
		if a.when != b.when {
			return int(a.when - b.when)
		}
		return int(a.seq) - int(b.seq)
	})
	c.timers = slices.Insert(c.timers, i, t)
	return t
}

func (t *vtimer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	if !t.pending {
		return false
	}
	t.pending = false
	t.c.timers = slices.DeleteFunc(t.c.timers, func(x *vtimer) bool { return x == t })
	return true
}

func (c *vclock) Go(ctx context.Context, name string, fn func(ctx context.Context)) {
	task := &vtask{name: name, resume: make(chan struct{})}
	c.mu.Lock()
	c.runq = append(c.runq, task)
	c.mu.Unlock()
	go func() {
		<-task.resume
		fn(ctx)
		c.yield <- struct{}{}
	}()
}

func (c *vclock) NewWaiter() clock.Waiter {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.current == nil {
		panic("vclock: NewWaiter outside a task")
	}
	return &vwaiter{c: c, task: c.current}
}

func (w *vwaiter) Wait() {
	c := w.c
	c.mu.Lock()
	if c.current != w.task {
		c.mu.Unlock()
		panic("vclock: Wait from a task that does not own the Waiter")
	}
	if w.permit {
		w.permit = false
		c.mu.Unlock()
		return
	}
	w.parked = true
	c.mu.Unlock()
	c.yield <- struct{}{}
	<-w.task.resume
}

func (w *vwaiter) Wake() {
	c := w.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if w.parked {
		w.parked = false
		c.runq = append(c.runq, w.task)
		return
	}
	w.permit = true
}

// vbudget bounds virtual time per body, so a lost wake-up among tasks that
// keep sleeping fails instead of spinning forever. The suite's bodies need
// well under a second.
const vbudget = 10 * time.Minute

// run schedules tasks until root has returned. It reports an error on
// deadlock (nothing runnable, no timer pending) or when the virtual-time
// budget is spent.
func (c *vclock) run(rootDone *bool) error {
	for {
		c.mu.Lock()
		if *rootDone {
			c.mu.Unlock()
			return nil
		}
		if c.now > vbudget {
			c.mu.Unlock()
			return fmt.Errorf("virtual time budget %v exceeded", vbudget)
		}
		switch {
		case len(c.timers) > 0 && c.timers[0].when <= c.now:
			t := c.timers[0]
			c.timers = c.timers[1:]
			t.pending = false
			c.trace = append(c.trace, fmt.Sprintf("fire@%v#%d", c.now, t.seq))
			c.current = nil
			c.mu.Unlock()
			t.f()
		case len(c.runq) > 0:
			i := c.rng.IntN(len(c.runq))
			task := c.runq[i]
			c.runq = slices.Delete(c.runq, i, i+1)
			c.current = task
			c.trace = append(c.trace, fmt.Sprintf("run@%v:%s", c.now, task.name))
			c.mu.Unlock()
			task.resume <- struct{}{}
			<-c.yield
		case len(c.timers) > 0:
			c.now = c.timers[0].when
			c.mu.Unlock()
		default:
			c.mu.Unlock()
			return fmt.Errorf("deadlock at virtual time %v: no runnable task and no pending timer", c.now)
		}
	}
}

// vharness runs each body on a fresh vclock and hashes its trace.
type vharness struct {
	seed   uint64
	mu     sync.Mutex
	hashes []uint64
}

func (h *vharness) Run(t *testing.T, body func(c clock.Clock)) {
	c := newVClock(h.seed)
	done := false
	c.Go(context.Background(), "root", func(context.Context) {
		body(c)
		c.mu.Lock()
		done = true
		c.mu.Unlock()
	})
	if err := c.run(&done); err != nil {
		t.Errorf("%v (tasks left parked)", err)
		return
	}
	f := fnv.New64a()
	for _, s := range c.trace {
		f.Write([]byte(s))
	}
	h.mu.Lock()
	h.hashes = append(h.hashes, f.Sum64())
	h.mu.Unlock()
}

// TestVirtualConformance runs the suite under the simulator's execution
// model with several seeds, twice each, and requires identical traces.
func TestVirtualConformance(t *testing.T) {
	for seed := range uint64(4) {
		t.Run(fmt.Sprint("seed-", seed), func(t *testing.T) {
			a, b := &vharness{seed: seed}, &vharness{seed: seed}
			clocktest.Run(t, a)
			clocktest.Run(t, b)
			if !slices.Equal(a.hashes, b.hashes) {
				t.Fatalf("same seed, different schedules: %x vs %x", a.hashes, b.hashes)
			}
		})
	}
}
