package sim

import (
	"testing"

	"github.com/stratadb/strata/disk"
	"github.com/stratadb/strata/disk/disktest"
	"github.com/stratadb/strata/net/nettest"
	"github.com/stratadb/strata/nodes/node"
)

// TestNetConformance runs the network suite between two nodes' endpoints
// (each bound to its incarnation's clock), inside a world.
func TestNetConformance(t *testing.T) {
	nettest.Run(t, nettest.HarnessFunc(func(t *testing.T, body func(nettest.World)) {
		w := New(Options{Seed: 3})
		err := w.Run(func(w *World) error {
			srv := w.AddNode("srv", func(node.Env) error { return nil })
			cli := w.AddNode("cli", func(node.Env) error { return nil })
			body(nettest.World{Clock: w.Clock(), Server: srv.Env().Net, Client: cli.Env().Net, ListenAddr: "srv:0", UnusedAddr: "nobody:1"})
			return nil
		})
		if err != nil {
			t.Fatalf("simulation failed: %v", err)
		}
	}))
}

// TestDiskConformance runs the disk suite against the disk a node gets
// (its incarnation's view of its simdisk).
func TestDiskConformance(t *testing.T) {
	disktest.Run(t, func(t *testing.T) disk.FS {
		var fsys disk.FS
		w := New(Options{Seed: 1})
		if err := w.Run(func(w *World) error {
			fsys = w.AddNode("n", func(node.Env) error { return nil }).Env().Disk
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		// The world has ended; the view stays usable (no disk latency, so no
		// call needs a task).
		return fsys
	})
}
