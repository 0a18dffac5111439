package daemon

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// TestStartGate: 503 and not ready before the start returned; the
// handler after; a shutdown during start-up gives up at ctx's end with
// ErrStillStarting; a failed start cancels the daemon and is Err.
func TestStartGate(t *testing.T) {
	g := NewStartGate("x", "loading")
	rec := httptest.NewRecorder()
	g.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	if rec.Code != http.StatusServiceUnavailable || g.Ready() == nil || g.Ready().Error() != "loading" {
		t.Fatalf("before start: %d, ready %v", rec.Code, g.Ready())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if err := g.WaitStarted(ctx); !errors.Is(err, ErrStillStarting) || err.Error() != "x: still starting when the drain timeout ended" {
		t.Fatalf("WaitStarted during start: %v", err)
	}

	g = NewStartGate("x", "loading")
	g.Start(func() (http.Handler, error) {
		return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusTeapot) }), nil
	}, func() { t.Fatal("stop called after a good start") })
	rec = httptest.NewRecorder()
	g.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	if rec.Code != http.StatusTeapot || g.Ready() != nil || g.Err() != nil {
		t.Fatalf("after start: %d, ready %v, err %v", rec.Code, g.Ready(), g.Err())
	}
	if err := g.WaitStarted(context.Background()); err != nil || g.Ready() == nil {
		t.Fatalf("shutdown after start: %v, ready %v", err, g.Ready())
	}

	g = NewStartGate("x", "loading")
	stopped := false
	boom := errors.New("boom")
	g.Start(func() (http.Handler, error) { return nil, boom }, func() { stopped = true })
	if !stopped || !errors.Is(g.Err(), boom) || !errors.Is(g.WaitStarted(context.Background()), boom) {
		t.Fatalf("failed start: stopped %v, err %v", stopped, g.Err())
	}
}
