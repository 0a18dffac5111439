package sim

import (
	"context"
	"fmt"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync/atomic"
)

type taskState uint8

const (
	taskRunnable taskState = iota
	taskRunning
	taskParked
	taskDone
)

// task is one simulated thread of control: a goroutine that runs only while
// it holds the baton.
type task struct {
	w      *World
	id     int32
	name   string
	inc    *incarnation
	resume chan struct{}
	state  taskState
	// killed: the incarnation ended; the task unwinds at its next Wait.
	killed bool
	// wantStack asks a parked task to record its stack and park again
	// (used only to write a deadlock report).
	wantStack bool
	stack     string
	returned  bool
	waiter    *waiter
	goid      atomic.Uint64
}

// spawn creates a runnable task owned by inc.
func (w *World) spawn(inc *incarnation, name string, ctx context.Context, fn func(context.Context)) *task {
	w.nextID++
	t := &task{w: w, id: w.nextID, name: name, inc: inc, resume: make(chan struct{}, 1), state: taskRunnable}
	if inc.node != nil {
		t.name = inc.node.id + "/" + name
	}
	w.names = append(w.names, t.name)
	w.live[t.id] = t
	w.runnable = append(w.runnable, t)
	w.event(EvSpawn, uint64(t.id), hashString(t.name))
	go t.main(ctx, fn)
	return t
}

func (t *task) main(ctx context.Context, fn func(context.Context)) {
	t.goid.Store(currentGoid())
	<-t.resume
	defer t.exit()
	if t.killed {
		return
	}
	fn(ctx)
	t.returned = true
}

// exit runs as the task's last deferred call, after a return, a Goexit (the
// unwinding of a killed task) or a panic.
func (t *task) exit() {
	w := t.w
	if !t.returned {
		// A killed task's deferred calls run during unwinding in states a
		// real crash never reaches (a deferred Unlock of a mutex released
		// inside Cond.Wait, say). The process is gone, so whatever they
		// panic with is dropped; only live tasks' panics are failures.
		p := recover()
		switch {
		case p != nil && !t.killed:
			w.Fail(fmt.Errorf("%w: task %q: %v\n%s", ErrTaskPanic, t.name, p, indent(string(debug.Stack()))))
		case p == nil && !t.killed && !w.abandoned.Load():
			// runtime.Goexit from the task's own code (t.FailNow in a
			// task, say): the run must not go on without it unnoticed.
			w.Fail(fmt.Errorf("%w: task %q ended through runtime.Goexit", ErrTaskPanic, t.name))
		}
	}
	t.state = taskDone
	t.waiter = nil
	delete(w.live, t.id)
	var killed uint64
	if t.killed {
		killed = 1
	}
	w.event(EvExit, uint64(t.id), killed)
	// Hand the baton back even in an abandoned world: its scheduler then
	// unwinds the remaining tasks (see loop) instead of leaking them.
	w.yield <- struct{}{}
}

// park gives the baton back and blocks until the scheduler resumes t. A
// killed task never returns from park: it unwinds with runtime.Goexit.
func (t *task) park() {
	w := t.w
	if t.killed {
		runtime.Goexit()
	}
	t.state = taskParked
	for {
		if w.abandoned.Load() {
			runtime.Goexit()
		}
		w.yield <- struct{}{}
		<-t.resume
		if t.killed {
			runtime.Goexit()
		}
		if !t.wantStack {
			return
		}
		t.wantStack = false
		t.stack = blockedAt()
		t.state = taskParked
	}
}

// currentGoid reads the calling goroutine's id from its stack header; the
// watchdog uses it to find a stuck task's stack in a full dump.
func currentGoid() uint64 {
	var buf [64]byte
	s := string(buf[:runtime.Stack(buf[:], false)])
	s = strings.TrimPrefix(s, "goroutine ")
	if i := strings.IndexByte(s, ' '); i > 0 {
		id, _ := strconv.ParseUint(s[:i], 10, 64)
		return id
	}
	return 0
}

// blockedAt describes where the calling (parked) task waits: its stack with
// the simulator's own frames removed.
func blockedAt() string {
	pcs := make([]uintptr, 32)
	n := runtime.Callers(3, pcs)
	frames := runtime.CallersFrames(pcs[:n])
	var lines []string
	for {
		f, more := frames.Next()
		fn := f.Function
		switch {
		case strings.HasPrefix(fn, "github.com/stratadb/strata/sim.(*task)"),
			strings.HasPrefix(fn, "github.com/stratadb/strata/sim.(*waiter)"),
			strings.HasPrefix(fn, "runtime."):
		default:
			lines = append(lines, fmt.Sprintf("%s (%s:%d)", strings.TrimPrefix(fn, "github.com/stratadb/strata/"), shortFile(f.File), f.Line))
		}
		if !more || len(lines) >= 6 {
			break
		}
	}
	return strings.Join(lines, "\n        <- ")
}

func shortFile(p string) string {
	if i := strings.Index(p, "/strata/"); i >= 0 {
		return p[i+len("/strata/"):]
	}
	return p
}

// deadlockReport resumes every parked task once to learn where it waits and
// names them all.
func (w *World) deadlockReport() error {
	tasks := w.liveTasks(nil)
	var b strings.Builder
	fmt.Fprintf(&b, "%v: nothing runnable and no timer pending at virtual time %v; %d task(s) blocked:", ErrDeadlock, w.now, len(tasks))
	for _, t := range tasks {
		if t.state == taskParked {
			t.wantStack = true
			w.resume(t)
			t.state = taskParked
		}
		fmt.Fprintf(&b, "\n  task %q waits in %s", t.name, t.stack)
	}
	return &DeadlockError{Report: b.String(), Tasks: taskNames(tasks)}
}

func taskNames(ts []*task) []string {
	out := make([]string, len(ts))
	for i, t := range ts {
		out[i] = t.name
	}
	return out
}

// DeadlockError is the failure of a run that deadlocked; it matches
// ErrDeadlock with errors.Is.
type DeadlockError struct {
	Report string
	// Tasks names every blocked task.
	Tasks []string
}

func (e *DeadlockError) Error() string { return e.Report }
func (e *DeadlockError) Is(target error) bool {
	return target == ErrDeadlock
}
