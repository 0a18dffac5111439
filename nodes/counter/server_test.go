package counter_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stratadb/strata/clock"
	"github.com/stratadb/strata/disk"
	"github.com/stratadb/strata/net"
	"github.com/stratadb/strata/nodes/counter"
	"github.com/stratadb/strata/nodes/node"
	"github.com/stratadb/strata/sim"
)

const addr = "srv:1"

// harness runs body in a world with a counter server node "srv" (sync
// latency syncLatency) and a client node "cli".
func harness(t *testing.T, bugs counter.Bugs, syncLatency time.Duration, body func(w *sim.World, srv *sim.Node, call func(c uint32, seq uint64) (uint64, error))) {
	t.Helper()
	w := sim.New(sim.Options{Seed: 1})
	err := w.Run(func(w *sim.World) error {
		srv := w.AddNode("srv", func(env node.Env) error {
			_, err := counter.Start(env, counter.Config{Addr: addr, Bugs: bugs, SegmentEntries: 2,
				OnFatal: func(error) { w.Node("srv").Crash(false) }})
			return err
		})
		srv.SetDiskLatency(func(op string) time.Duration {
			if op == "sync" {
				return syncLatency
			}
			return 0
		})
		cli := w.AddNode("cli", func(node.Env) error { return nil })
		w.Sleep(time.Millisecond)
		call := func(c uint32, seq uint64) (uint64, error) {
			env := cli.Env()
			ctx, cancel := clock.WithTimeout(env.Clock, context.Background(), time.Second)
			defer cancel()
			conn, err := env.Net.Dial(ctx, addr)
			if err != nil {
				return 0, err
			}
			defer conn.Close()
			resp, err := net.CallJSON[counter.IncrResponse](ctx, conn, counter.MethodIncr, counter.IncrRequest{Client: c, Seq: seq})
			return resp.Value, err
		}
		body(w, srv, call)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestIncrementsDedupAndSurviveCrash(t *testing.T) {
	harness(t, counter.Bugs{}, time.Millisecond, func(w *sim.World, srv *sim.Node, call func(uint32, uint64) (uint64, error)) {
		steps := []struct {
			client uint32
			seq    uint64
			value  uint64
			code   net.Code
		}{
			{1, 1, 1, net.OK},
			{1, 1, 1, net.OK}, // retry: same position
			{2, 1, 2, net.OK},
			{1, 3, 3, net.OK}, // a gap is allowed (the client gave up on seq 2)
			{1, 2, 0, net.FailedPrecondition},
			{1, 0, 0, net.InvalidArgument},
			{2, 2, 4, net.OK}, // third segment (2 records per segment)
		}
		afterCrash := []struct {
			client uint32
			seq    uint64
			value  uint64
			code   net.Code
		}{
			{1, 3, 3, net.OK},
			{2, 2, 4, net.OK},
			{1, 1, 0, net.FailedPrecondition},
			{2, 1, 0, net.FailedPrecondition},
			{1, 4, 5, net.OK},
			{1, 4, 5, net.OK},
			{2, 3, 6, net.OK},
		}
		check := func(when string) {
			for i, s := range steps {
				if when == "after crash" {
					// Only each client's last increment is remembered: a
					// retry of it returns its position, older ones are refused.
					s = afterCrash[i]
				}
				v, err := call(s.client, s.seq)
				if net.CodeOf(err) != s.code || (err == nil && v != s.value) {
					t.Errorf("%s step %d (client %d seq %d): value %d err %v, want %d %v", when, i, s.client, s.seq, v, err, s.value, s.code)
				}
			}
		}
		check("first run")
		srv.Crash(true)
		srv.Restart()
		w.Sleep(10 * time.Millisecond)
		check("after crash")
		recs, err := counter.ReadLog(srv.Disk(), counter.DefaultDir)
		if err != nil || fmt.Sprint(recs) != "[client-1#1 client-2#1 client-1#3 client-2#2 client-1#4 client-2#3]" {
			t.Errorf("durable log %v, %v", recs, err)
		}
	})
}

// TestAckBeforeSyncLosesAcknowledged shows the planted bug's effect
// directly: an acknowledged increment does not survive a crash.
func TestAckBeforeSyncLosesAcknowledged(t *testing.T) {
	for _, bug := range []bool{false, true} {
		t.Run(fmt.Sprint("bug=", bug), func(t *testing.T) {
			harness(t, counter.Bugs{AckBeforeSync: bug}, time.Second, func(w *sim.World, srv *sim.Node, call func(uint32, uint64) (uint64, error)) {
				acked := false
				w.Go("client", func(context.Context) {
					_, err := call(1, 1)
					acked = err == nil
				})
				w.Sleep(100 * time.Millisecond) // the sync takes a second
				srv.Crash(false)
				recs, err := counter.ReadLog(srv.Disk(), counter.DefaultDir)
				if err != nil {
					t.Fatal(err)
				}
				if acked != bug {
					t.Errorf("acknowledged before the sync finished: %v", acked)
				}
				if len(recs) != 0 {
					t.Errorf("unsynced record survived: %v", recs)
				}
			})
		})
	}
}

// dirSyncFails is the node's disk with SyncDir of the counter's directory
// failing (EIO) while *fail is set.
type dirSyncFails struct {
	disk.FS
	fail *bool
}

func (d dirSyncFails) SyncDir(name string) error {
	if *d.fail && name == counter.DefaultDir {
		return fmt.Errorf("test: syncdir %s: %w", name, disk.ErrIO)
	}
	return d.FS.SyncDir(name)
}

// TestSegmentOfFailedDirSyncIsMadeDurableBeforeReuse: an incarnation
// creates the first segment, its directory sync fails and start-up fails
// (the node goes down without a power loss, so the entry stays in the page
// cache only). The next incarnation reuses that segment; the increments it
// acknowledges there must survive a crash, so recovery has to sync the
// directory before trusting its files.
func TestSegmentOfFailedDirSyncIsMadeDurableBeforeReuse(t *testing.T) {
	w := sim.New(sim.Options{Seed: 1})
	err := w.Run(func(w *sim.World) error {
		fail := true
		srv := w.AddNode("srv", func(env node.Env) error {
			env.Disk = dirSyncFails{FS: env.Disk, fail: &fail}
			_, err := counter.Start(env, counter.Config{Addr: addr, OnFatal: func(error) { w.Node("srv").Crash(false) }})
			return err
		})
		cli := w.AddNode("cli", func(node.Env) error { return nil })
		w.Sleep(time.Millisecond)
		if srv.Up() || !errors.Is(srv.StartErr(), disk.ErrIO) {
			t.Fatalf("first start-up: up %v, err %v; want down with EIO", srv.Up(), srv.StartErr())
		}
		fail = false
		srv.Restart()
		w.Sleep(time.Millisecond)
		env := cli.Env()
		ctx, cancel := clock.WithTimeout(env.Clock, context.Background(), time.Second)
		defer cancel()
		conn, err := env.Net.Dial(ctx, addr)
		if err != nil {
			return err
		}
		defer conn.Close()
		resp, err := net.CallJSON[counter.IncrResponse](ctx, conn, counter.MethodIncr, counter.IncrRequest{Client: 1, Seq: 1})
		if err != nil || resp.Value != 1 {
			return fmt.Errorf("incr: value %d, %v", resp.Value, err)
		}
		srv.Crash(false)
		recs, err := counter.ReadLog(srv.Disk(), counter.DefaultDir)
		if err != nil || fmt.Sprint(recs) != "[client-1#1]" {
			t.Errorf("acknowledged client-1#1; durable log after crash %v, %v", recs, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
