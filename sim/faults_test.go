package sim

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/stratadb/strata/clock"
	"github.com/stratadb/strata/net"
	"github.com/stratadb/strata/nodes/node"
	"github.com/stratadb/strata/sim/simnet"
)

func TestNemesisCrashesSupervisorRestartsHealAllHeals(t *testing.T) {
	w := New(Options{Seed: 11})
	err := w.Run(func(w *World) error {
		n := w.AddNode("svc", func(node.Env) error { return nil })
		w.AddNode("peer", func(node.Env) error { return nil })
		err := w.StartNemesis(Nemesis{
			Crashable: []string{"svc"}, CrashMean: 100 * time.Millisecond, RestartAfter: 50 * time.Millisecond, TearProb: 0.5,
			Linked: []string{"svc", "peer"}, PartitionMean: 200 * time.Millisecond, PartitionFor: 100 * time.Millisecond,
			Failpoints: []string{"fp"}, FailpointMean: 100 * time.Millisecond,
		})
		if err != nil {
			return err
		}
		w.Sleep(5 * time.Second)
		if n.Incarnation() < 10 {
			return fmt.Errorf("only %d incarnations in 5s with a 100ms crash mean", n.Incarnation())
		}
		w.HealAll()
		if !n.Up() {
			return errors.New("HealAll left the node down")
		}
		if _, err := n.Env().Failpoints.Eval("fp"); err == nil {
			return errors.New("HealAll left a failpoint on")
		}
		inc := n.Incarnation()
		w.Sleep(5 * time.Second)
		if n.Incarnation() != inc {
			return errors.New("faults continued after HealAll")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := New(Options{}).StartNemesis(Nemesis{Crashable: []string{"ghost"}}); err == nil {
		t.Fatal("a nemesis naming an unknown node was accepted")
	}
}

func TestNemesisCorruptsDurableBytes(t *testing.T) {
	w := New(Options{Seed: 5})
	zeros := make([]byte, 4096)
	var got []byte
	err := w.Run(func(w *World) error {
		n := w.AddNode("n", func(env node.Env) error {
			if n := w.Node("n"); n != nil && n.Incarnation() > 1 {
				return nil
			}
			if err := env.Disk.MkdirAll("d"); err != nil {
				return err
			}
			f, err := env.Disk.Create("d/f")
			if err != nil {
				return err
			}
			if _, err := f.Write(zeros); err != nil {
				return err
			}
			if err := f.Sync(); err != nil {
				return err
			}
			return env.Disk.SyncDir("d")
		})
		w.Sleep(time.Millisecond)
		if err := w.StartNemesis(Nemesis{Crashable: []string{"n"}, CorruptMean: 50 * time.Millisecond}); err != nil {
			return err
		}
		w.Sleep(time.Second)
		w.HealAll()
		f, err := n.Env().Disk.Open("d/f")
		if err != nil {
			return err
		}
		got, err = io.ReadAll(io.NewSectionReader(f, 0, 1<<20))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(zeros) || bytes.Equal(got, zeros) {
		t.Fatalf("file not corrupted (len %d)", len(got))
	}
}

// TestSupervisorStopsWithHealAll: once HealAll ends the safety phase, a node
// the scenario takes down itself (to read its durable state, say) stays
// down; the supervisor must not wake from its last sleep and restart it.
func TestSupervisorStopsWithHealAll(t *testing.T) {
	w := New(Options{Seed: 3})
	err := w.Run(func(w *World) error {
		n := w.AddNode("svc", func(node.Env) error { return nil })
		if err := w.StartNemesis(Nemesis{Crashable: []string{"svc"}, RestartAfter: 100 * time.Millisecond}); err != nil {
			return err
		}
		w.Sleep(250 * time.Millisecond) // the supervisor is mid-sleep now
		w.HealAll()
		n.Stop()
		w.Sleep(time.Second)
		if n.Up() {
			return fmt.Errorf("node restarted after HealAll (incarnation %d)", n.Incarnation())
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestNemesisEpisodesHealOnlyWhatTheyBroke runs overlapping fault episodes
// and checks that each one's end leaves the others in force: a slow link
// ending inside a partition, a partition ending inside a slow link, a
// failpoint episode ending inside another one on the same failpoint, and
// one ending over a failpoint the scenario had set itself.
func TestNemesisEpisodesHealOnlyWhatTheyBroke(t *testing.T) {
	w := New(Options{Seed: 1})
	err := w.Run(func(w *World) error {
		srv := w.AddNode("srv", func(env node.Env) error {
			mux := net.NewMux()
			net.HandleUnaryJSON(mux, "/test/Ping", func(context.Context, struct{}) (struct{}, error) { return struct{}{}, nil })
			_, err := env.Net.Listen("srv:1", mux)
			return err
		})
		cli := w.AddNode("cli", func(node.Env) error { return nil })
		w.Sleep(time.Millisecond)
		// call pings srv from cli and reports how long it took.
		call := func() (time.Duration, error) {
			env := cli.Env()
			ctx, cancel := clock.WithTimeout(env.Clock, context.Background(), time.Second)
			defer cancel()
			start := w.Now()
			conn, err := env.Net.Dial(ctx, "srv:1")
			if err != nil {
				return 0, err
			}
			defer conn.Close()
			_, err = net.CallJSON[struct{}](ctx, conn, "/test/Ping", struct{}{})
			return w.Now() - start, err
		}
		both := []link{{"cli", "srv"}, {"srv", "cli"}}
		slow := simnet.Latency{Base: 300 * time.Millisecond}

		// A slow link from 0.5s to 1s inside a partition from 0s to 2s.
		w.Go("partition", func(context.Context) { w.cutFor(both, 2*time.Second) })
		w.Go("slow", func(context.Context) {
			w.Sleep(500 * time.Millisecond)
			w.slowFor(link{"cli", "srv"}, slow, 500*time.Millisecond)
		})
		w.Sleep(1500 * time.Millisecond)
		if _, err := call(); err == nil {
			return errors.New("the slow link's end healed the partition that was still in force")
		}
		w.Sleep(time.Second) // past 2s: the partition ended
		if _, err := call(); err != nil {
			return fmt.Errorf("call after the partition ended: %w", err)
		}

		// A partition for 0.5s inside a slow link of 3s.
		w.Go("slow", func(context.Context) { w.slowFor(link{"cli", "srv"}, slow, 3*time.Second) })
		w.Go("partition", func(context.Context) {
			w.Sleep(100 * time.Millisecond)
			w.cutFor(both, 500*time.Millisecond)
		})
		w.Sleep(time.Second)
		if el, err := call(); err != nil || el < slow.Base {
			return fmt.Errorf("call %v into the slow link after the partition ended: %v; want it slow", el, err)
		}

		// Failpoint episodes: "fp" on for 2s with a shorter one inside;
		// "base" set by the scenario itself, with an episode over it.
		status := func(name string) string {
			s, err := srv.Env().Failpoints.Status(name)
			if err != nil {
				return "off"
			}
			return s
		}
		if err := srv.SetFailpoint("base", "return(0)"); err != nil {
			return err
		}
		for _, ep := range []struct {
			name, terms string
			after, d    time.Duration
		}{
			{"fp", "return(1)", 0, 2 * time.Second},
			{"fp", "return(2)", 500 * time.Millisecond, 500 * time.Millisecond},
			{"base", "return(3)", 0, 500 * time.Millisecond},
		} {
			w.Go("failpoint", func(context.Context) {
				w.Sleep(ep.after)
				if err := w.failpointFor(srv, ep.name, ep.terms, func() time.Duration { return ep.d }); err != nil {
					w.Fail(err)
				}
			})
		}
		w.Sleep(750 * time.Millisecond)
		if got := status("fp"); got != "return(2)" {
			return fmt.Errorf("failpoint fp with two episodes in force: %q, want the latest's return(2)", got)
		}
		w.Sleep(500 * time.Millisecond)
		if got := status("fp"); got != "return(1)" {
			return fmt.Errorf("failpoint fp after the inner episode ended: %q, want the outer episode's return(1)", got)
		}
		if got := status("base"); got != "return(0)" {
			return fmt.Errorf("failpoint base after its episode ended: %q, want the scenario's return(0) back", got)
		}
		w.Sleep(time.Second)
		if got := status("fp"); got != "off" {
			return fmt.Errorf("failpoint fp after both episodes ended: %q, want off", got)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
