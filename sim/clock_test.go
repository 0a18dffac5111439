package sim

import (
	"testing"

	"github.com/stratadb/strata/clock"
	"github.com/stratadb/strata/clock/clocktest"
)

// simHarness runs each clocktest body as the main task of a fresh world, on
// a node's clock (so Go creates tasks owned by a node incarnation).
type simHarness struct{ seed uint64 }

func (h simHarness) Run(t *testing.T, body func(c clock.Clock)) {
	t.Helper()
	w := New(Options{Seed: h.seed})
	if err := w.Run(func(w *World) error {
		body(w.Clock())
		return nil
	}); err != nil {
		t.Fatalf("seed %d: %v", h.seed, err)
	}
}

func TestClockConformance(t *testing.T) {
	for _, seed := range []uint64{1, 2, 3} {
		clocktest.Run(t, simHarness{seed: seed})
	}
}
