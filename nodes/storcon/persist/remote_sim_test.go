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
	"github.com/stratadb/strata/net"
	"github.com/stratadb/strata/nodes/node"
	"github.com/stratadb/strata/nodes/storcon/persist"
	"github.com/stratadb/strata/nodes/storcon/persist/persisttest"
	"github.com/stratadb/strata/sim"
	"github.com/stratadb/strata/sim/simnet"
)

// remoteSimRun runs the remote store inside the simulator: a "db" node
// serves a DiskStore on its simulated disk, and a "ctl" node's three tasks
// keep incrementing one shard's generation through a Remote. The db node
// crashes (with torn writes) and the link between them is cut, again and
// again. It returns the trace hash, every generation acknowledged (in the
// order the answers arrived), the number of calls whose outcome was unknown, and the
// generation stored at the end.
func remoteSimRun(t *testing.T, seed uint64) (hash uint64, acked []layer.Generation, unknown int, final layer.Generation) {
	t.Helper()
	row := persisttest.Tenant(1, 0)[0]
	var (
		mu   sync.Mutex
		bad  []string
		seen = map[layer.Generation]bool{}
	)
	serveDB := func(env node.Env) error {
		srv := persist.NewServer(env.Clock, env.Log, func() (persist.Store, error) {
			return persist.OpenDisk(env.Clock, env.Disk, "db", persist.DiskConfig{MaxLogBytes: 2048})
		})
		if err := srv.Open(context.Background()); err != nil {
			return err
		}
		rt := net.NewRouter()
		srv.Register(rt)
		mux := net.NewMux()
		rt.Register(mux)
		_, err := env.Net.Listen("db:5432", mux)
		return err
	}
	var store *persist.Remote
	ctl := func(env node.Env) error {
		r, err := persist.NewRemote(env.Clock, net.DialHTTP{Net: env.Net, Addr: "db:5432"}, persist.RemoteConfig{CallTimeout: 500 * time.Millisecond})
		if err != nil {
			return err
		}
		store = r
		ctx := context.Background()
		for i := range 3 {
			env.Clock.Go(ctx, fmt.Sprintf("increment-%d", i), func(ctx context.Context) {
				var last layer.Generation
				for {
					g, err := r.IncrementGeneration(ctx, row.ID, persist.NodeID(i+1))
					mu.Lock()
					switch {
					case err == nil:
						// Answers to different tasks may arrive in another
						// order than their commits; one task's calls are in
						// sequence, so its generations must increase.
						if g <= last || seen[g] {
							bad = append(bad, fmt.Sprintf("task %d: generation %d acknowledged after its %d (or twice)", i, g, last))
						}
						last, seen[g] = g, true
						acked = append(acked, g)
					case errors.Is(err, persist.ErrUnreachable):
						unknown++
					case errors.Is(err, persist.ErrNotFound):
						// The row is not there yet (the insert below is
						// retried until it lands).
					default:
						bad = append(bad, fmt.Sprintf("increment: unexpected error %v", err))
					}
					mu.Unlock()
					if clock.Sleep(ctx, env.Clock, time.Millisecond) != nil {
						return
					}
				}
			})
		}
		env.Clock.Go(ctx, "insert", func(ctx context.Context) {
			for {
				err := r.InsertTenantShards(ctx, []persist.TenantShard{row})
				if err == nil || errors.Is(err, persist.ErrExists) {
					return
				}
				if clock.Sleep(ctx, env.Clock, 10*time.Millisecond) != nil {
					return
				}
			}
		})
		return nil
	}
	w := sim.New(sim.Options{Seed: seed})
	err := w.Run(func(w *sim.World) error {
		w.UseNet(simnet.Options{DeadLinkTimeout: 200 * time.Millisecond})
		db := w.AddNode("db", serveDB)
		db.SetDiskLatency(func(op string) time.Duration { return time.Duration(50+len(op)*10) * time.Microsecond })
		w.AddNode("ctl", ctl)
		rng := w.NewRand("faults")
		for range 10 {
			w.Sleep(time.Duration(20+rng.IntN(80)) * time.Millisecond)
			if rng.IntN(2) == 0 {
				w.Crash("db", true)
				w.Sleep(time.Duration(1+rng.IntN(5)) * time.Millisecond)
				w.Restart("db")
			} else {
				heal1, heal2 := w.Net().Cut("ctl", "db"), w.Net().Cut("db", "ctl")
				w.Sleep(time.Duration(1+rng.IntN(700)) * time.Millisecond)
				heal1()
				heal2()
			}
		}
		w.Sleep(100 * time.Millisecond)
		if err := db.StartErr(); err != nil {
			return fmt.Errorf("db start-up after the last crash: %w", err)
		}
		var err error
		final, _, err = store.Generation(context.Background(), row.ID)
		return err
	})
	if err != nil {
		t.Fatalf("seed %d: %v", seed, err)
	}
	for _, b := range bad {
		t.Errorf("seed %d: %s", seed, b)
	}
	return w.Hash(), acked, unknown, final
}

// TestRemoteInSimulator: through a remote store whose server crashes and
// whose link is cut, no generation is acknowledged twice and each task's
// acknowledged generations increase, calls whose
// answer was lost are reported as unknown (never as a definite error), the
// stored generation ends at or above every acknowledged one, and a seed
// replays exactly.
func TestRemoteInSimulator(t *testing.T) {
	for seed := uint64(1); seed <= 3; seed++ {
		h1, acked, unknown, final := remoteSimRun(t, seed)
		t.Logf("seed %d: %d generations acknowledged (highest %d), %d outcomes unknown, %d stored", seed, len(acked), slices.Max(acked), unknown, final)
		if len(acked) < 100 || unknown == 0 {
			t.Fatalf("seed %d: %d acknowledged, %d unknown: the faults or the load did not happen", seed, len(acked), unknown)
		}
		if top := slices.Max(acked); final < top {
			t.Fatalf("seed %d: stored generation %d is below the acknowledged %d", seed, final, top)
		}
		h2, again, _, _ := remoteSimRun(t, seed)
		if h1 != h2 || !slices.Equal(acked, again) {
			t.Fatalf("seed %d is not deterministic: hash %x then %x", seed, h1, h2)
		}
	}
}
