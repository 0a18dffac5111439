package persist_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stratadb/strata/clock"
	"github.com/stratadb/strata/engine/layer"
	"github.com/stratadb/strata/nodes/node"
	"github.com/stratadb/strata/nodes/storcon/persist"
	"github.com/stratadb/strata/nodes/storcon/persist/persisttest"
	"github.com/stratadb/strata/sim"
)

// simRun runs the embedded store inside the simulator: a node whose start-up
// opens the store on its simulated disk and clock and starts three tasks
// that keep incrementing one shard's generation concurrently (so writers
// queue on the store's clock.Mutex while disk operations take virtual
// time), crashed with torn writes and restarted five times. It returns the
// run's trace hash and every generation acknowledged, in order.
func simRun(t *testing.T, seed uint64) (uint64, []layer.Generation) {
	t.Helper()
	row := persisttest.Tenant(1, 0)[0]
	var (
		mu    sync.Mutex
		acked []layer.Generation
		bad   []string
	)
	start := func(env node.Env) error {
		ctx := context.Background()
		s, err := persist.OpenDisk(env.Clock, env.Disk, "storcon", persist.DiskConfig{MaxLogBytes: 2048})
		if err != nil {
			return err
		}
		if err := s.InsertTenantShards(ctx, []persist.TenantShard{row}); err != nil && !errors.Is(err, persist.ErrExists) {
			return err
		}
		for i := range 3 {
			env.Clock.Go(ctx, fmt.Sprintf("increment-%d", i), func(ctx context.Context) {
				for {
					g, err := s.IncrementGeneration(ctx, row.ID, persist.NodeID(i+1))
					if err != nil {
						return // the incarnation crashed
					}
					mu.Lock()
					if len(acked) > 0 && g <= acked[len(acked)-1] {
						bad = append(bad, fmt.Sprintf("generation %d acknowledged after %d", g, acked[len(acked)-1]))
					}
					acked = append(acked, g)
					mu.Unlock()
					if clock.Sleep(ctx, env.Clock, time.Millisecond) != nil {
						return
					}
				}
			})
		}
		return nil
	}
	w := sim.New(sim.Options{Seed: seed})
	err := w.Run(func(w *sim.World) error {
		n := w.AddNode("storcon", start)
		n.SetDiskLatency(func(op string) time.Duration { return time.Duration(50+len(op)*10) * time.Microsecond })
		for range 5 {
			w.Sleep(40 * time.Millisecond)
			w.Crash("storcon", true)
			w.Sleep(time.Millisecond)
			w.Restart("storcon")
		}
		w.Sleep(40 * time.Millisecond)
		if err := n.StartErr(); err != nil {
			return fmt.Errorf("start-up after the last crash: %w", err)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("seed %d: %v", seed, err)
	}
	for _, b := range bad {
		t.Errorf("seed %d: %s", seed, b)
	}
	return w.Hash(), acked
}

// TestInSimulator runs the embedded store on the simulator's clock and disk:
// generations acknowledged across crashes only increase, the store makes
// progress after every restart, and a seed replays exactly.
func TestInSimulator(t *testing.T) {
	for seed := uint64(1); seed <= 3; seed++ {
		h1, acked := simRun(t, seed)
		t.Logf("seed %d: %d generations acknowledged, last %d", seed, len(acked), acked[len(acked)-1])
		if len(acked) < 100 {
			t.Fatalf("seed %d: only %d generations acknowledged", seed, len(acked))
		}
		h2, again := simRun(t, seed)
		if h1 != h2 || !slices.Equal(acked, again) {
			t.Fatalf("seed %d is not deterministic: hash %x then %x, %d then %d generations", seed, h1, h2, len(acked), len(again))
		}
	}
}
