package sim

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/stratadb/strata/disk/objstore"
	"github.com/stratadb/strata/sim/simdisk"
	"github.com/stratadb/strata/sim/simnet"
)

// Nemesis is a fault plan for the safety phase. Every interval is the mean
// of an exponential draw from the world's seeded source; a zero mean turns
// that fault off. The plan only injects faults a correct system survives
// (docs/simulator.md, Recoverable faults): nodes come back (Supervise),
// partitions and slow links end, and disk faults hit one node's disk at a
// time, never synced data. Episodes overlap (a slow link during a
// partition, the episodes of two nemeses), and each heals only what it
// broke; HealAll ends them all.
type Nemesis struct {
	// Crashable nodes may be crashed (and are restarted by the supervisor).
	Crashable []string
	// CrashMean is the mean time between crashes.
	CrashMean time.Duration
	// TearProb is the probability that a crash tears unsynced writes
	// instead of dropping them whole.
	TearProb float64
	// StopProb is the probability that a crash is a graceful stop instead.
	StopProb float64
	// RestartAfter is the supervisor's delay before restarting a node that
	// is down (crashed by the nemesis or by itself). Default 500ms.
	RestartAfter time.Duration

	// Linked nodes may be partitioned from each other and slowed down.
	Linked []string
	// PartitionMean is the mean time between partition episodes;
	// PartitionFor is an episode's mean length. An episode isolates one
	// node from all others, or cuts a single link; with OneWayProb the cut
	// drops only one direction.
	PartitionMean, PartitionFor time.Duration
	OneWayProb                  float64
	// BreakMean is the mean time between broken connections of a node.
	BreakMean time.Duration
	// SlowMean is the mean time between slow-link episodes (lasting
	// PartitionFor on average) during which one direction of a link gets
	// SlowLatency.
	SlowMean    time.Duration
	SlowLatency simnet.Latency

	// Failpoints names code-site failpoints (pingcap/failpoint, evaluated
	// through env.Failpoints) the nemesis switches on, one at a time on one
	// crashable node, for one evaluation ("1*return(true)") during an
	// episode of mean PartitionFor; FailpointMean is the mean time between
	// episodes. An incarnation that starts during the episode gets the
	// failpoint afresh, so a failpoint that crashes its node can fire once
	// per incarnation until the episode ends.
	Failpoints    []string
	FailpointMean time.Duration

	// CorruptMean is the mean time between corruptions of one durable byte
	// of one file on a crashable node's disk. Enable it only for services
	// that detect corruption (checksums) and recover from other replicas:
	// a single copy cannot survive it (docs/simulator.md, Recoverable faults).
	CorruptMean time.Duration

	// DiskFaults apply to the crashable nodes' disks during the phase.
	DiskFaults simdisk.Faults
	// StoreFaults apply to the shared object store during the phase.
	StoreFaults objstore.FaultConfig
}

func (n *Nemesis) String() string {
	d, st := n.DiskFaults, n.StoreFaults
	return fmt.Sprintf("crash=%v tear=%.2f stop=%.2f partition=%v/%v oneway=%.2f break=%v slow=%v failpoints=%v corrupt=%v disk(eio r/w/s=%.4f/%.4f/%.4f enospc=%.4f) store(throttle=%.3f before=%.3f after=%.3f)",
		n.CrashMean, n.TearProb, n.StopProb, n.PartitionMean, n.PartitionFor, n.OneWayProb, n.BreakMean, n.SlowMean, n.FailpointMean, n.CorruptMean,
		d.ReadEIO, d.WriteEIO, d.SyncEIO, d.NoSpace, st.Throttle, st.TransientBefore, st.TransientAfter)
}

// nemesis is a running fault plan.
type nemesis struct {
	cfg     Nemesis
	stopped bool
	// supervised nodes are restarted when down, until HealAll stops it.
	supervised []string
}

// exp draws an exponential duration with the given mean.
func (w *World) exp(mean time.Duration) time.Duration {
	return time.Duration(w.rng.ExpFloat64() * float64(mean))
}

// StartNemesis starts the fault plan's tasks (owned by the world, so they
// survive every node crash). HealAll stops them.
func (w *World) StartNemesis(cfg Nemesis) error {
	if cfg.RestartAfter <= 0 {
		cfg.RestartAfter = 500 * time.Millisecond
	}
	for _, id := range append(slices.Clone(cfg.Crashable), cfg.Linked...) {
		if w.byID[id] == nil {
			return fmt.Errorf("sim: nemesis names unknown node %q", id)
		}
	}
	nm := &nemesis{cfg: cfg, supervised: cfg.Crashable}
	w.nemeses = append(w.nemeses, nm)
	for _, id := range cfg.Crashable {
		w.byID[id].SetDiskFaults(cfg.DiskFaults)
	}
	if err := w.SetStoreFaults(cfg.StoreFaults); err != nil {
		return err
	}
	c := w.root.clock
	bg := context.Background()
	loop := func(name string, mean time.Duration, act func()) {
		if mean <= 0 {
			return
		}
		c.Go(bg, "nemesis/"+name, func(context.Context) {
			for {
				w.Sleep(w.exp(mean))
				if nm.stopped {
					return
				}
				act()
			}
		})
	}
	if len(cfg.Crashable) > 0 {
		loop("crash", cfg.CrashMean, func() { w.nemesisCrash(nm) })
		c.Go(bg, "supervisor", func(context.Context) {
			for {
				w.Sleep(cfg.RestartAfter)
				if nm.stopped {
					// HealAll restarted what was down; from here on the
					// scenario alone decides which nodes run.
					return
				}
				w.restartDown(nm.supervised)
			}
		})
	}
	if len(cfg.Crashable) > 0 && len(cfg.Failpoints) > 0 {
		loop("failpoint", cfg.FailpointMean, func() { w.nemesisFailpoint(nm) })
	}
	if len(cfg.Crashable) > 0 {
		loop("corrupt", cfg.CorruptMean, func() { w.nemesisCorrupt(nm) })
	}
	if len(cfg.Linked) > 1 {
		loop("partition", cfg.PartitionMean, func() { w.nemesisPartition(nm) })
		loop("slow", cfg.SlowMean, func() { w.nemesisSlow(nm) })
		loop("break", cfg.BreakMean, func() {
			w.Net().BreakConnections(cfg.Linked[w.rng.IntN(len(cfg.Linked))])
		})
	}
	return nil
}

func (w *World) restartDown(ids []string) {
	for _, id := range ids {
		if n := w.byID[id]; !n.Up() {
			n.Restart()
		}
	}
}

func (w *World) nemesisCrash(nm *nemesis) {
	var up []*Node
	for _, id := range nm.cfg.Crashable {
		if n := w.byID[id]; n.Up() {
			up = append(up, n)
		}
	}
	if len(up) == 0 {
		return
	}
	n := up[w.rng.IntN(len(up))]
	switch {
	case w.rng.Float64() < nm.cfg.StopProb:
		w.Log().Info("nemesis: stop", "target", n.id)
		n.Stop()
	default:
		tear := w.rng.Float64() < nm.cfg.TearProb
		w.Log().Info("nemesis: crash", "target", n.id, "tear", tear)
		n.Crash(tear)
	}
}

func (w *World) nemesisPartition(nm *nemesis) {
	ids := nm.cfg.Linked
	a := ids[w.rng.IntN(len(ids))]
	oneWay := w.rng.Float64() < nm.cfg.OneWayProb
	isolate := w.rng.IntN(2) == 0
	var cuts []link
	for _, b := range ids {
		if b == a {
			continue
		}
		if !isolate && w.rng.IntN(len(ids)) != 0 {
			continue
		}
		cuts = append(cuts, link{a, b})
		if !oneWay {
			cuts = append(cuts, link{b, a})
		}
	}
	w.Log().Info("nemesis: partition", "node", a, "isolate", isolate, "oneway", oneWay)
	w.cutFor(cuts, w.exp(nm.cfg.PartitionFor))
}

// link is one direction between two nodes.
type link struct{ from, to string }

// cutFor cuts the given directions for d, then heals only those: another
// episode's faults (a slow link, a partition of another nemesis, a cut the
// scenario made) run their own course.
func (w *World) cutFor(cuts []link, d time.Duration) {
	nt := w.Net()
	heal := make([]func(), 0, len(cuts))
	for _, l := range cuts {
		heal = append(heal, nt.Cut(l.from, l.to))
	}
	w.Sleep(d)
	for _, h := range heal {
		h()
	}
}

func (w *World) nemesisSlow(nm *nemesis) {
	ids := nm.cfg.Linked
	a, b := ids[w.rng.IntN(len(ids))], ids[w.rng.IntN(len(ids))]
	if a == b {
		return
	}
	w.slowFor(link{a, b}, nm.cfg.SlowLatency, w.exp(nm.cfg.PartitionFor))
}

// slowFor gives one direction latency lat for d, then ends only that.
func (w *World) slowFor(l link, lat simnet.Latency, d time.Duration) {
	heal := w.Net().SlowLink(l.from, l.to, lat)
	w.Sleep(d)
	heal()
}

func (w *World) nemesisFailpoint(nm *nemesis) {
	n := w.byID[nm.cfg.Crashable[w.rng.IntN(len(nm.cfg.Crashable))]]
	name := nm.cfg.Failpoints[w.rng.IntN(len(nm.cfg.Failpoints))]
	w.Log().Info("nemesis: failpoint", "target", n.id, "failpoint", name)
	if err := w.failpointFor(n, name, "1*return(true)", func() time.Duration { return w.exp(nm.cfg.PartitionFor) }); err != nil {
		w.Fail(err)
	}
}

// failpointFor sets n's failpoint name to terms for a duration (drawn
// once it is set), then ends only that (holdFailpoint).
func (w *World) failpointFor(n *Node, name, terms string, d func() time.Duration) error {
	heal, err := w.holdFailpoint(n, name, terms)
	if err != nil {
		return err
	}
	w.Sleep(d())
	heal()
	return nil
}

// failpointKey names one failpoint of one node.
type failpointKey struct{ node, name string }

// failpointHolds are the nemesis episodes holding one node's failpoint on:
// the latest one's terms apply; base is what the failpoint was before the
// first.
type failpointHolds struct {
	base  string
	holds []*string // each episode's terms, latest last
}

// holdFailpoint sets n's failpoint name to terms until heal is called.
// Overlapping episodes on one failpoint stack: heal ends only its own
// episode, restoring the terms of the latest one still in force, or what
// the failpoint was before them all; it leaves the failpoint alone if
// something else has set it since. HealAll voids every hold.
func (w *World) holdFailpoint(n *Node, name, terms string) (heal func(), err error) {
	k := failpointKey{n.id, name}
	if w.failpointHolds == nil {
		w.failpointHolds = map[failpointKey]*failpointHolds{}
	}
	hs := w.failpointHolds[k]
	if hs == nil {
		hs = &failpointHolds{base: n.failpoints[name]}
	}
	if err := n.SetFailpoint(name, terms); err != nil {
		return nil, err
	}
	w.failpointHolds[k] = hs
	h := &terms
	hs.holds = append(hs.holds, h)
	return func() {
		i := slices.Index(hs.holds, h)
		if w.failpointHolds[k] != hs || i < 0 {
			return // healed already, or by HealAll
		}
		top := i == len(hs.holds)-1
		hs.holds = slices.Delete(hs.holds, i, i+1)
		next := hs.base
		if len(hs.holds) == 0 {
			delete(w.failpointHolds, k)
		} else {
			next = *hs.holds[len(hs.holds)-1]
		}
		if top && n.failpoints[name] == *h {
			_ = n.SetFailpoint(name, next)
		}
	}, nil
}

func (w *World) nemesisCorrupt(nm *nemesis) {
	n := w.byID[nm.cfg.Crashable[w.rng.IntN(len(nm.cfg.Crashable))]]
	files := durableFiles(n.disk, ".")
	if len(files) == 0 {
		return
	}
	f := files[w.rng.IntN(len(files))]
	off := w.rng.Int64N(f.size)
	w.Log().Info("nemesis: corrupt", "target", n.id, "file", f.name, "offset", off)
	_ = n.disk.Corrupt(f.name, off)
}

type sizedFile struct {
	name string
	size int64
}

// durableFiles lists the non-empty files under dir, depth first in name
// order (bounded: at most 10000).
func durableFiles(fsys *simdisk.FS, dir string) []sizedFile {
	const maxFiles = 10000
	var out []sizedFile
	var walk func(string)
	walk = func(d string) {
		ents, err := fsys.ReadDir(d)
		if err != nil {
			return
		}
		for _, e := range ents {
			if len(out) >= maxFiles {
				return
			}
			name := e.Name()
			if d != "." {
				name = d + "/" + name
			}
			if e.IsDir() {
				walk(name)
				continue
			}
			if fi, err := e.Info(); err == nil && fi.Size() > 0 {
				out = append(out, sizedFile{name, fi.Size()})
			}
		}
	}
	walk(dir)
	return out
}

// HealAll ends the safety phase: it stops every nemesis, heals the network
// (partitions and slow links), clears disk and object-store faults, and
// restarts every node that is down. The liveness phase follows.
func (w *World) HealAll() {
	for _, nm := range w.nemeses {
		nm.stopped = true
	}
	w.nemeses = nil
	w.failpointHolds = nil
	w.Net().Heal()
	for _, n := range w.nodes {
		n.SetDiskFaults(simdisk.Faults{})
		for _, name := range sortedKeys(n.failpoints) {
			_ = n.SetFailpoint(name, "")
		}
	}
	_ = w.SetStoreFaults(objstore.FaultConfig{})
	for _, n := range w.nodes {
		if !n.Up() {
			n.Restart()
		}
	}
}

func sortedKeys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
