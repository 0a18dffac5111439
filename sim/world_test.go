package sim

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stratadb/strata/clock"
)

// sleep parks the calling task for d of virtual time using only the seam.
func sleep(c clock.Clock, d time.Duration) {
	wt := c.NewWaiter()
	c.AfterFunc(d, wt.Wake)
	wt.Wait()
}

// pingPong runs n tasks that sleep random (often equal) amounts and bump a
// shared counter; ties at one instant make the scheduler's choices matter.
func pingPong(w *World, n, rounds int) error {
	c := w.Clock()
	done := c.NewWaiter()
	left := n
	var order []int
	for i := 0; i < n; i++ {
		c.Go(context.Background(), fmt.Sprintf("p%d", i), func(context.Context) {
			for r := 0; r < rounds; r++ {
				sleep(c, time.Duration(w.Rand().IntN(3))*time.Millisecond)
				order = append(order, i)
			}
			left--
			if left == 0 {
				done.Wake()
			}
		})
	}
	done.Wait()
	w.Note(uint64(len(order)), hashString(fmt.Sprint(order)))
	return nil
}

func TestSameSeedSameHash(t *testing.T) {
	hashes := map[uint64]bool{}
	for seed := uint64(1); seed <= 20; seed++ {
		var got [2]uint64
		for i := range got {
			w := New(Options{Seed: seed})
			if err := w.Run(func(w *World) error { return pingPong(w, 4, 20) }); err != nil {
				t.Fatalf("seed %d: %v", seed, err)
			}
			got[i] = w.Hash()
		}
		if got[0] != got[1] {
			t.Fatalf("seed %d: hashes differ: %#x vs %#x", seed, got[0], got[1])
		}
		hashes[got[0]] = true
	}
	if len(hashes) < 19 {
		t.Fatalf("only %d distinct hashes over 20 seeds", len(hashes))
	}
}

func TestVirtualTimeAdvancesOnlyByTimers(t *testing.T) {
	w := New(Options{Seed: 1})
	var woke []time.Duration
	err := w.Run(func(w *World) error {
		c := w.Clock()
		for _, d := range []time.Duration{3 * time.Second, time.Second, 2 * time.Second} {
			c.AfterFunc(d, func() { woke = append(woke, c.Mono()) })
		}
		sleep(c, 5*time.Second)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []time.Duration{time.Second, 2 * time.Second, 3 * time.Second}
	if fmt.Sprint(woke) != fmt.Sprint(want) {
		t.Fatalf("timers fired at %v, want %v", woke, want)
	}
	if w.Now() != 5*time.Second {
		t.Fatalf("now = %v, want 5s", w.Now())
	}
}

func TestTimerStopAndEqualDeadlinesInOrder(t *testing.T) {
	w := New(Options{Seed: 3})
	var order []int
	err := w.Run(func(w *World) error {
		c := w.Clock()
		for i := 0; i < 5; i++ {
			tm := c.AfterFunc(time.Second, func() { order = append(order, i) })
			if i == 2 && !tm.Stop() {
				return errors.New("Stop of a pending timer reported false")
			}
		}
		sleep(c, 2*time.Second)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(order) != "[0 1 3 4]" {
		t.Fatalf("order %v", order)
	}
}

func TestDeadlockReportNamesBlockedTasks(t *testing.T) {
	w := New(Options{Seed: 1})
	err := w.Run(func(w *World) error {
		c := w.Clock()
		a, b := c.NewWaiter(), c.NewWaiter()
		c.Go(context.Background(), "waits-for-b", func(context.Context) { b.Wait(); a.Wake() })
		c.Go(context.Background(), "waits-for-a", func(context.Context) { a.Wait(); b.Wake() })
		sleep(c, time.Second)
		c.NewWaiter().Wait() // main blocks too
		return nil
	})
	var dl *DeadlockError
	if !errors.As(err, &dl) || !errors.Is(err, ErrDeadlock) {
		t.Fatalf("want a deadlock, got %v", err)
	}
	for _, name := range []string{"main", "waits-for-a", "waits-for-b"} {
		if !strings.Contains(dl.Report, fmt.Sprintf("task %q waits in", name)) {
			t.Errorf("report does not name %q:\n%s", name, dl.Report)
		}
	}
	if !strings.Contains(dl.Report, "world_test.go") {
		t.Errorf("report does not say where tasks block:\n%s", dl.Report)
	}
	if len(dl.Tasks) != 3 {
		t.Errorf("tasks %v", dl.Tasks)
	}
}

func TestWatchdogReportsNativeBlocking(t *testing.T) {
	w := New(Options{Seed: 1, StepTimeout: 200 * time.Millisecond})
	release := make(chan struct{})
	defer close(release)
	start := time.Now()
	err := w.Run(func(w *World) error {
		w.Clock().Go(context.Background(), "blocks-natively", func(context.Context) {
			<-release // a native channel: invisible to the scheduler
		})
		sleep(w.Clock(), time.Second)
		return nil
	})
	if !errors.Is(err, ErrWatchdog) {
		t.Fatalf("want watchdog error, got %v", err)
	}
	if !strings.Contains(err.Error(), `"blocks-natively"`) || !strings.Contains(err.Error(), "world_test.go") {
		t.Fatalf("report should name the task and where it blocks:\n%v", err)
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Fatalf("watchdog took %v", el)
	}
}

func TestTaskPanicIsAFailure(t *testing.T) {
	w := New(Options{Seed: 1})
	err := w.Run(func(w *World) error {
		w.Clock().Go(context.Background(), "boom", func(context.Context) { panic("kaboom") })
		sleep(w.Clock(), time.Second)
		return nil
	})
	if !errors.Is(err, ErrTaskPanic) || !strings.Contains(err.Error(), "kaboom") {
		t.Fatalf("got %v", err)
	}
}

func TestTimeBudget(t *testing.T) {
	w := New(Options{Seed: 1, MaxVirtualTime: time.Minute})
	err := w.Run(func(w *World) error {
		sleep(w.Clock(), time.Hour)
		return nil
	})
	if !errors.Is(err, ErrTimeBudget) {
		t.Fatalf("got %v", err)
	}
}

func TestLivelockGuard(t *testing.T) {
	w := New(Options{Seed: 1, MaxStepsPerInstant: 1000})
	err := w.Run(func(w *World) error {
		c := w.Clock()
		for {
			wt := c.NewWaiter()
			c.Go(context.Background(), "yield", func(context.Context) { wt.Wake() })
			wt.Wait()
		}
	})
	if !errors.Is(err, ErrLivelock) {
		t.Fatalf("got %v", err)
	}
}

func TestWaitOutsideTaskPanicsAsFailure(t *testing.T) {
	w := New(Options{Seed: 1})
	err := w.Run(func(w *World) error {
		c := w.Clock()
		c.AfterFunc(0, func() { c.NewWaiter().Wait() })
		sleep(c, time.Second)
		return nil
	})
	if err == nil {
		t.Fatal("a Wait inside a timer callback must fail the run")
	}
}

func TestWatchdogReportsSpin(t *testing.T) {
	var stop atomic.Bool
	defer stop.Store(true)
	w := New(Options{Seed: 1, StepTimeout: 200 * time.Millisecond})
	err := w.Run(func(w *World) error {
		w.Clock().Go(context.Background(), "spins", func(context.Context) {
			for !stop.Load() { // never yields to the scheduler
			}
		})
		sleep(w.Clock(), time.Second)
		return nil
	})
	if !errors.Is(err, ErrWatchdog) || !strings.Contains(err.Error(), `"spins"`) {
		t.Fatalf("want a watchdog report naming the spinning task, got %v", err)
	}
}

// TestTaskGoexitIsAFailure: a live task that ends through runtime.Goexit
// (t.FailNow inside a task, say) fails the run instead of vanishing while
// the run goes on without it.
func TestTaskGoexitIsAFailure(t *testing.T) {
	w := New(Options{Seed: 1})
	err := w.Run(func(w *World) error {
		w.Clock().Go(context.Background(), "quits", func(context.Context) { runtime.Goexit() })
		sleep(w.Clock(), time.Second)
		return nil
	})
	if !errors.Is(err, ErrTaskPanic) || !strings.Contains(err.Error(), `"quits"`) {
		t.Fatalf("got %v", err)
	}
}

// TestAbandonedWorldUnwindsOnceReleased: after the watchdog abandons a world,
// the task that blocked natively may let go later; the scheduler and every
// other task's goroutine must then end instead of leaking (a long sweep
// would pile them up).
func TestAbandonedWorldUnwindsOnceReleased(t *testing.T) {
	before := runtime.NumGoroutine()
	w := New(Options{Seed: 1, StepTimeout: 200 * time.Millisecond})
	release := make(chan struct{})
	err := w.Run(func(w *World) error {
		c := w.Clock()
		for i := 0; i < 5; i++ {
			c.Go(context.Background(), "parked", func(context.Context) { c.NewWaiter().Wait() })
		}
		c.Go(context.Background(), "blocks-natively", func(context.Context) { <-release })
		sleep(c, time.Second)
		return nil
	})
	if !errors.Is(err, ErrWatchdog) {
		t.Fatalf("want a watchdog error, got %v", err)
	}
	close(release)
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if after := runtime.NumGoroutine(); after > before {
		t.Fatalf("%d goroutines before the run, %d after the stuck task let go", before, after)
	}
}
