package sim

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/stratadb/strata/nodes/node"
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
