package remote

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stratadb/strata/clock"
	"github.com/stratadb/strata/disk/objstore"
	"github.com/stratadb/strata/sim"
)

// inSim runs body as the main task of a one-seed simulated world, so the
// retry policy's waits take virtual time only.
func inSim(t *testing.T, body func(clk clock.Clock)) {
	t.Helper()
	w := sim.New(sim.Options{Seed: 1, MaxVirtualTime: time.Hour})
	if err := w.Run(func(w *sim.World) error { body(w.Clock()); return nil }); err != nil {
		t.Fatal(err)
	}
}

// logRecorder is a slog.Handler that keeps each record's level and message.
type logRecorder struct {
	mu      sync.Mutex
	records []string
}

func (r *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (r *logRecorder) WithAttrs([]slog.Attr) slog.Handler       { return r }
func (r *logRecorder) WithGroup(string) slog.Handler            { return r }
func (r *logRecorder) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.records = append(r.records, rec.Level.String()+" "+rec.Message)
	return nil
}

func (r *logRecorder) count(level, msg string) int {
	n := 0
	for _, s := range r.records {
		if s == level+" "+msg {
			n++
		}
	}
	return n
}

func TestBackoff(t *testing.T) {
	var c RetryConfig
	want := []time.Duration{0, 0, 1100 * time.Millisecond, 1210 * time.Millisecond, 1331 * time.Millisecond}
	for n, w := range want {
		if got := c.Backoff(n); math.Abs(float64(got-w)) > float64(time.Microsecond) {
			t.Errorf("Backoff(%d) = %v, want %v", n, got, w)
		}
	}
	// Growing, and capped.
	for n := 2; n < 40; n++ {
		if c.Backoff(n) < c.Backoff(n-1) || c.Backoff(n) > DefaultBackoffCap {
			t.Fatalf("Backoff(%d) = %v after %v", n, c.Backoff(n), c.Backoff(n-1))
		}
	}
	if got := c.Backoff(13); got != DefaultBackoffCap { // 1.1^12 = 3.14 s
		t.Errorf("Backoff(13) = %v, want the cap", got)
	}
	var total time.Duration
	for n := 1; n <= DefaultMaxRetries; n++ {
		total += c.Backoff(n)
	}
	if total < 14930*time.Millisecond || total > 14940*time.Millisecond {
		t.Errorf("ten retries wait %v in total, want about 14.94 s", total)
	}
	custom := RetryConfig{BackoffBase: 2, BackoffCap: 5 * time.Second}
	if got := []time.Duration{custom.Backoff(1), custom.Backoff(2), custom.Backoff(3), custom.Backoff(4)}; fmt.Sprint(got) != "[0s 2s 4s 5s]" {
		t.Errorf("custom backoff %v", got)
	}
}

func TestRetryConfigValidate(t *testing.T) {
	if err := (RetryConfig{}).Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	for _, c := range []RetryConfig{
		{MaxRetries: -1}, {InfoFailures: -1}, {BackoffBase: 0.5}, {BackoffBase: -1},
		{BackoffBase: math.NaN()}, {BackoffBase: math.Inf(1)}, {BackoffCap: -time.Second},
	} {
		if err := c.Validate(); !errors.Is(err, ErrConfig) {
			t.Errorf("%+v: %v, want ErrConfig", c, err)
		}
		if _, err := NewRetrier(clock.NewReal(), nil, c); !errors.Is(err, ErrConfig) {
			t.Errorf("NewRetrier(%+v): %v, want ErrConfig", c, err)
		}
	}
	if _, err := NewRetrier(nil, nil, RetryConfig{}); !errors.Is(err, ErrConfig) {
		t.Errorf("nil clock: %v", err)
	}
	r, err := NewRetrier(clock.NewReal(), nil, RetryConfig{MaxRetries: 2})
	if err != nil {
		t.Fatal(err)
	}
	if c := r.Config(); c.MaxRetries != 2 || c.InfoFailures != DefaultInfoFailures || c.BackoffBase != DefaultBackoffBase || c.BackoffCap != DefaultBackoffCap {
		t.Errorf("config with defaults = %+v", c)
	}
}

// failingStore is the fake store of the retry tests: its Get fails the
// first failures calls with err, then succeeds.
type failingStore struct {
	objstore.Store // nil: only Get is used
	failures       int
	err            error
	calls          int
	at             []time.Duration // Mono at each call
	clk            clock.Clock
}

func (s *failingStore) Get(ctx context.Context, key string) ([]byte, error) {
	s.calls++
	s.at = append(s.at, s.clk.Mono())
	if s.calls <= s.failures {
		return nil, fmt.Errorf("fake get %q: %w", key, s.err)
	}
	return []byte("ok"), nil
}

// errUnclassified stands for an error that is not the store's: a body
// that fails its checksum, say. Retrying would meet it again.
var errUnclassified = errors.New("checksum mismatch")

func TestRetrierDo(t *testing.T) {
	transient := objstore.ErrTransient
	tests := []struct {
		name      string
		failures  int
		err       error
		nf        NotFound
		wantCalls int
		wantErr   []error // nil: success
		infos     int     // "will retry" at info
		warns     int     // "will retry" at warn
	}{
		{"success", 0, transient, NotFoundFinal, 1, nil, 0, 0},
		{"one blip", 1, transient, NotFoundFinal, 2, nil, 1, 0},
		{"three failures stay at info", 3, transient, NotFoundFinal, 4, nil, 3, 0},
		{"fourth failure warns", 4, transient, NotFoundFinal, 5, nil, 3, 1},
		{"throttling is retried", 5, objstore.ErrThrottled, NotFoundFinal, 6, nil, 3, 2},
		{"ten retries succeed", 10, transient, NotFoundFinal, 11, nil, 3, 7},
		{"eleven failures give up", 11, transient, NotFoundFinal, 11, []error{ErrRetriesExhausted, transient}, 3, 7},
		{"always failing gives up", 1000, transient, NotFoundFinal, 11, []error{ErrRetriesExhausted, transient}, 3, 7},
		{"permanent not retried", 5, objstore.ErrPermanent, NotFoundFinal, 1, []error{objstore.ErrPermanent}, 0, 0},
		{"precondition not retried", 5, objstore.ErrPreconditionFailed, NotFoundFinal, 1, []error{objstore.ErrPreconditionFailed}, 0, 0},
		{"not found is final by default", 5, objstore.ErrNotFound, NotFoundFinal, 1, []error{objstore.ErrNotFound}, 0, 0},
		{"not found retried when asked", 2, objstore.ErrNotFound, NotFoundRetry, 3, nil, 2, 0},
		{"not found retried gives up too", 50, objstore.ErrNotFound, NotFoundRetry, 11, []error{ErrRetriesExhausted, objstore.ErrNotFound}, 3, 7},
		{"unclassified error not retried", 5, errUnclassified, NotFoundRetry, 1, []error{errUnclassified}, 0, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			inSim(t, func(clk clock.Clock) {
				rec := &logRecorder{}
				r, err := NewRetrier(clk, slog.New(rec), RetryConfig{})
				if err != nil {
					t.Fatal(err)
				}
				st := &failingStore{failures: tc.failures, err: tc.err, clk: clk}
				err = r.Do(context.Background(), "get k", tc.nf, func(ctx context.Context) error {
					_, err := st.Get(ctx, "k")
					return err
				})
				if st.calls != tc.wantCalls {
					t.Errorf("%d calls, want %d", st.calls, tc.wantCalls)
				}
				if (err != nil) != (tc.wantErr != nil) {
					t.Fatalf("Do = %v", err)
				}
				for _, w := range tc.wantErr {
					if !errors.Is(err, w) {
						t.Errorf("error %v is not %v", err, w)
					}
				}
				if err != nil && !strings.HasPrefix(strings.TrimPrefix(err.Error(), ErrRetriesExhausted.Error()+": "), "get k") {
					t.Errorf("error %q does not name the operation", err)
				}
				if errors.Is(err, ErrRetriesExhausted) && !strings.Contains(err.Error(), "failed 11 attempts") {
					t.Errorf("error %q does not count the attempts", err)
				}
				// Each call came exactly the policy's backoff after the
				// previous one.
				for i := 1; i < len(st.at); i++ {
					if got, want := st.at[i]-st.at[i-1], r.Config().Backoff(i); got != want {
						t.Errorf("wait before call %d = %v, want %v", i+1, got, want)
					}
				}
				if end := clk.Mono(); len(st.at) > 0 && end != st.at[len(st.at)-1] {
					t.Errorf("slept %v after the last call", end-st.at[len(st.at)-1])
				}
				if got := rec.count("INFO", "remote: download failed, will retry"); got != tc.infos {
					t.Errorf("%d info retries logged, want %d: %q", got, tc.infos, rec.records)
				}
				if got := rec.count("WARN", "remote: download failed, will retry"); got != tc.warns {
					t.Errorf("%d warn retries logged, want %d: %q", got, tc.warns, rec.records)
				}
				giveUp := rec.count("WARN", "remote: download failed, giving up")
				if (giveUp == 1) != errors.Is(err, ErrRetriesExhausted) || giveUp > 1 {
					t.Errorf("give-up logged %d times for %v", giveUp, err)
				}
				if succeeded := rec.count("INFO", "remote: download succeeded after retries"); (succeeded == 1) != (err == nil && tc.failures > 0) {
					t.Errorf("success after retries logged %d times", succeeded)
				}
			})
		})
	}
}

// TestRetrierStopsOnContext: a context that ends during a wait stops the
// retries with its error; one already done stops before the first attempt.
func TestRetrierStopsOnContext(t *testing.T) {
	inSim(t, func(clk clock.Clock) {
		r, err := NewRetrier(clk, nil, RetryConfig{})
		if err != nil {
			t.Fatal(err)
		}
		st := &failingStore{failures: 1000, err: objstore.ErrTransient, clk: clk}
		op := func(ctx context.Context) error { _, err := st.Get(ctx, "k"); return err }
		// Waits: 0, 1.1 s (1.1 s in total), 1.21 s (2.31 s): a 2 s
		// deadline ends the third wait, after the third call.
		ctx, cancel := clock.WithTimeout(clk, context.Background(), 2*time.Second)
		defer cancel()
		err = r.Do(ctx, "get k", NotFoundFinal, op)
		if !errors.Is(err, context.DeadlineExceeded) || st.calls != 3 {
			t.Errorf("Do under a 2 s deadline = %v after %d calls, want deadline exceeded after 3", err, st.calls)
		}
		done, cancel2 := clock.WithCancel(context.Background())
		cancel2()
		st.calls = 0
		if err := r.Do(done, "get k", NotFoundFinal, op); !errors.Is(err, context.Canceled) || st.calls != 0 {
			t.Errorf("Do with a done context = %v after %d calls", err, st.calls)
		}
	})
}
