package daemon

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync/atomic"

	"github.com/stratadb/strata/net"
	"github.com/stratadb/strata/net/httpx"
)

// ErrStillStarting is WaitStarted's error when ctx ended before the start
// returned.
var ErrStillStarting = errors.New("still starting when the drain timeout ended")

// StartGate fronts a daemon whose node starts slowly (re-attach, tenant
// loading, start-up reconcile): the HTTP side listens at once, answering
// 503 and failing /ready until the node's handler is installed, and a
// SIGTERM during start-up waits (bounded) for the start to return before
// the drain. Run the start with Start in its own goroutine.
type StartGate struct {
	name     string // prefixes errors: "pageserver", "storcon"
	starting string // why /ready fails before the start returned
	started  chan struct{}
	startErr error
	api      atomic.Pointer[http.Handler]
	stopping atomic.Bool
}

// NewStartGate returns a gate for the daemon name; starting says what
// start-up is doing, for /ready.
func NewStartGate(name, starting string) *StartGate {
	return &StartGate{name: name, starting: starting, started: make(chan struct{})}
}

// Start runs start; its handler is served from then on. A failure is
// kept for WaitStarted and cancels the daemon (stop).
func (g *StartGate) Start(start func() (http.Handler, error), stop context.CancelFunc) {
	defer close(g.started)
	h, err := start()
	if err != nil {
		g.startErr = err
		stop()
		return
	}
	g.api.Store(&h)
}

// Ready decides /ready: not before the start returned, nor once the
// shutdown began.
func (g *StartGate) Ready() error {
	switch {
	case g.stopping.Load():
		return errors.New("shutting down")
	case g.api.Load() == nil:
		return errors.New(g.starting)
	}
	return nil
}

// ServeHTTP serves the node's handler once it started, 503 before.
func (g *StartGate) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := g.api.Load()
	if h == nil {
		httpx.WriteError(w, net.Errorf(net.Unavailable, "%s: starting", g.name))
		return
	}
	(*h).ServeHTTP(w, r)
}

// Err is the start's error once Start returned (nil before).
func (g *StartGate) Err() error {
	select {
	case <-g.started:
		return g.startErr
	default:
		return nil
	}
}

// WaitStarted marks the daemon stopping and waits for a start in
// progress until ctx ends; it returns the start's error, if any.
func (g *StartGate) WaitStarted(ctx context.Context) error {
	g.stopping.Store(true)
	select {
	case <-g.started:
		return g.startErr
	case <-ctx.Done():
		return fmt.Errorf("%s: %w", g.name, ErrStillStarting)
	}
}
