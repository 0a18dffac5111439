package sim

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sort"
	"time"

	"github.com/pingcap/failpoint"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/stratadb/strata/nodes/node"
	"github.com/stratadb/strata/sim/simdisk"
)

// StartFunc runs a node's real start-up code. It runs in a task of the new
// incarnation (named "start"), so it may block on its seams (read its disk,
// dial peers). It should launch the service's tasks with env.Clock.Go and
// return; a non-nil error means start-up failed and the incarnation ends
// (the node is down until restarted).
type StartFunc func(env node.Env) error

// Node is one simulated machine: an id, its own disk, its wall-clock offset
// and drift, and a sequence of incarnations (process lives).
type Node struct {
	w     *World
	id    string
	num   uint64 // index in w.nodes + 1, hashed into EvNode
	start StartFunc
	disk  *simdisk.FS
	// faults is the node's own source for crash tearing and disk faults, so
	// its draws do not shift when another node's activity changes.
	faults *rand.Rand
	// offset and drift shape the node's wall clock: wall = epoch + offset +
	// now*(1+drift). Mono time is shared and exact.
	offset time.Duration
	drift  float64
	cur    *incarnation
	incs   int
	env    node.Env
	// startErr is the error the last StartFunc returned.
	startErr error
	// failpoints maps a failpoint name to its terms; each incarnation's
	// Failpoints gets them enabled (see SetFailpoint).
	failpoints map[string]string
	// diskLatency is the simulated latency per disk operation.
	diskLatency func(op string) time.Duration
}

// AddNode creates a node with an empty disk and starts its first incarnation.
// Node ids must be unique.
func (w *World) AddNode(id string, start StartFunc) *Node {
	if _, dup := w.byID[id]; dup {
		panic(fmt.Sprintf("sim: duplicate node id %q", id))
	}
	n := &Node{w: w, id: id, num: uint64(len(w.nodes) + 1), start: start, failpoints: map[string]string{}}
	n.faults = w.NewRand("faults/" + id)
	n.disk = simdisk.New(simdisk.Options{
		Latency: func(op string) time.Duration {
			if n.diskLatency == nil {
				return 0
			}
			return n.diskLatency(op)
		},
		Sleep: w.sleepCurrent,
	})
	w.nodes = append(w.nodes, n)
	w.byID[id] = n
	n.boot()
	return n
}

// Node returns the node with the given id, or nil.
func (w *World) Node(id string) *Node { return w.byID[id] }

// Nodes lists the nodes in creation order.
func (w *World) Nodes() []*Node { return append([]*Node(nil), w.nodes...) }

// Crash, Restart and Stop act on the node with the given id.
func (w *World) Crash(id string, tear bool) { w.mustNode(id).Crash(tear) }
func (w *World) Restart(id string)          { w.mustNode(id).Restart() }
func (w *World) Stop(id string)             { w.mustNode(id).Stop() }

func (w *World) mustNode(id string) *Node {
	n := w.byID[id]
	if n == nil {
		panic(fmt.Sprintf("sim: no node %q", id))
	}
	return n
}

// ID is the node's id.
func (n *Node) ID() string { return n.id }

// Up reports whether an incarnation is running.
func (n *Node) Up() bool { return n.cur != nil && !n.cur.dead }

// Incarnation is the number of the current (or last) incarnation, from 1.
func (n *Node) Incarnation() int { return n.incs }

// Disk is the node's disk. Checkers read durable state from it after a
// final crash; scenarios set its faults.
func (n *Node) Disk() *simdisk.FS { return n.disk }

// Env is the current incarnation's environment (as the service received it).
func (n *Node) Env() node.Env { return n.env }

// StartErr is the error the last start-up returned (nil if it succeeded or
// is still running).
func (n *Node) StartErr() error { return n.startErr }

// SetClock sets the node's wall-clock offset and drift (e.g. 1e-4 runs the
// wall clock 100 ppm fast). Mono time is unaffected.
func (n *Node) SetClock(offset time.Duration, drift float64) {
	n.offset, n.drift = offset, drift
}

// SetDiskLatency sets the simulated duration of each disk operation (see
// simdisk.Options.Latency); nil makes every operation instant.
func (n *Node) SetDiskLatency(f func(op string) time.Duration) { n.diskLatency = f }

// SetDiskFaults sets the disk's fault probabilities, drawn from the node's
// own fault source.
func (n *Node) SetDiskFaults(f simdisk.Faults) { n.disk.SetFaults(n.faults, f) }

// FaultRand is the node's own seeded source for fault decisions.
func (n *Node) FaultRand() *rand.Rand { return n.faults }

// SetFailpoint enables failpoint name with terms (pingcap/failpoint syntax,
// e.g. "return(true)" or "3*return(true)"; never "%" terms, which draw from a
// global source) in the current and every later incarnation. Empty terms
// disable it.
func (n *Node) SetFailpoint(name, terms string) error {
	if terms == "" {
		delete(n.failpoints, name)
		if n.Up() {
			_ = n.env.Failpoints.Disable(name)
		}
		return nil
	}
	for i := 0; i < len(terms); i++ {
		if terms[i] == '%' {
			return fmt.Errorf("sim: failpoint %s: probability terms draw from a global source; use the seeded RNG", name)
		}
	}
	n.failpoints[name] = terms
	if n.Up() {
		return n.env.Failpoints.Enable(name, terms)
	}
	return nil
}

// Crash ends the current incarnation as a power loss would: its tasks unwind,
// its connections break, its disk drops unsynced data (with tear, unsynced
// writes may survive in part, sector by sector). Seam calls from the old
// incarnation fail. Crashing a down node only loses its unsynced data again.
// If called from one of the node's own tasks, Crash does not return.
func (n *Node) Crash(tear bool) {
	n.w.event(EvNode, n.num, nodeCrash)
	n.disk.Crash(n.faults, tear)
	n.down()
}

// Stop ends the current incarnation as a clean process exit would: tasks
// unwind and connections break, but the disk keeps everything written (the
// OS still holds the page cache). As after a crash, the old incarnation's
// disk calls (from deferred calls of unwinding tasks, say) fail with
// disk.ErrCrashed. Stopping a down node does nothing.
func (n *Node) Stop() {
	if !n.Up() {
		return
	}
	n.w.event(EvNode, n.num, nodeStop)
	// The process is gone: the deferred calls its tasks run while they
	// unwind must not reach the disk, though everything written stays.
	n.disk.Exit()
	n.down()
}

func (n *Node) down() {
	inc := n.cur
	if inc == nil || inc.dead {
		return
	}
	n.w.Net().CrashNode(n.id)
	inc.end()
}

// Restart starts a new incarnation on the surviving disk, running the
// node's real start-up code. A running node is crashed first (without
// tearing). Called from one of the node's own tasks, Restart does not
// return (the caller belongs to the incarnation it ends), but the new
// incarnation boots all the same.
func (n *Node) Restart() {
	if !n.Up() {
		n.boot()
		return
	}
	// Crash, but boot before the old incarnation ends: ending it unwinds
	// the caller if it is one of its tasks.
	old := n.cur
	n.w.event(EvNode, n.num, nodeCrash)
	n.disk.Crash(n.faults, false)
	n.w.Net().CrashNode(n.id)
	n.boot()
	old.end()
}

func (n *Node) boot() {
	w := n.w
	n.incs++
	inc := &incarnation{w: w, node: n, num: n.incs}
	inc.clock = &simClock{inc: inc}
	n.cur = inc
	n.startErr = nil
	w.event(EvNode, n.num, nodeStart)
	fps := &failpoint.Failpoints{}
	names := make([]string, 0, len(n.failpoints))
	for name := range n.failpoints {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if err := fps.Enable(name, n.failpoints[name]); err != nil {
			w.Fail(fmt.Errorf("sim: node %s: %w", n.id, err))
		}
	}
	n.env = node.Env{
		ID:         n.id,
		Clock:      inc.clock,
		Disk:       n.disk.View(),
		Store:      w.Store(),
		Rand:       w.NewRand(fmt.Sprintf("node/%s/%d", n.id, inc.num)),
		Log:        slog.New(&vtHandler{w: w, inner: w.logHandler}).With("node", n.id, "inc", inc.num),
		Metrics:    prometheus.NewRegistry(),
		Failpoints: fps,
	}
	n.env.Net = tracedNet{w: w, inner: w.Net().Endpoint(n.id, inc.clock)}
	env := n.env
	w.spawn(inc, "start", context.Background(), func(context.Context) {
		if err := n.start(env); err != nil {
			n.startErr = err
			env.Log.Warn("start-up failed", "err", err)
			if n.cur == inc {
				n.down()
			}
		}
	})
}

// sleepCurrent parks the calling task for d of virtual time (the disk's
// latency hook). Outside a task it returns at once.
func (w *World) sleepCurrent(d time.Duration) {
	t := w.current
	if t == nil || d <= 0 {
		return
	}
	wt := &waiter{w: w}
	t.inc.clock.AfterFunc(d, wt.Wake)
	wt.Wait()
}

// Sleep parks the calling task (of any node or the world) for d of virtual
// time. Scenarios use it to pace phases.
func (w *World) Sleep(d time.Duration) { w.sleepCurrent(d) }

// vtHandler stamps records with virtual time instead of wall time.
type vtHandler struct {
	w     *World
	inner slog.Handler
}

func (h *vtHandler) Enabled(ctx context.Context, l slog.Level) bool { return h.inner.Enabled(ctx, l) }

func (h *vtHandler) Handle(ctx context.Context, r slog.Record) error {
	r2 := slog.NewRecord(time.Time{}, r.Level, r.Message, 0)
	r2.AddAttrs(slog.Duration("vt", h.w.now))
	r.Attrs(func(a slog.Attr) bool { r2.AddAttrs(a); return true })
	return h.inner.Handle(ctx, r2)
}

func (h *vtHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &vtHandler{w: h.w, inner: h.inner.WithAttrs(as)}
}

func (h *vtHandler) WithGroup(name string) slog.Handler {
	return &vtHandler{w: h.w, inner: h.inner.WithGroup(name)}
}

// Log is the world's logger (scenario, workload and checker messages).
func (w *World) Log() *slog.Logger {
	return slog.New(&vtHandler{w: w, inner: w.logHandler}).With("node", "world")
}

// Node state changes hashed into the trace (EvNode's B).
const (
	nodeStart uint64 = iota + 1
	nodeCrash
	nodeStop
)

func nodeEventName(b uint64) string {
	switch b {
	case nodeStart:
		return "start"
	case nodeCrash:
		return "crash"
	case nodeStop:
		return "stop"
	}
	return "?"
}
