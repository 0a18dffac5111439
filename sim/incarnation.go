package sim

import (
	"container/heap"
	"runtime"
)

// incarnation is one life of a node process (or the world's own, which never
// ends). Everything started by it — tasks, timers — dies with it.
type incarnation struct {
	w     *World
	node  *Node // nil for the world's incarnation
	num   int
	dead  bool
	clock *simClock
}

// end finishes the incarnation: its timers are dropped and its tasks unwind.
// If the calling task belongs to it, the call does not return: the caller
// unwinds too (a node that crashes itself, e.g. on a fatal disk error).
func (inc *incarnation) end() {
	if inc.dead {
		return
	}
	w := inc.w
	inc.dead = true
	kept := w.timers[:0]
	for _, tm := range w.timers {
		if tm.inc == inc {
			tm.fired = true
			continue
		}
		kept = append(kept, tm)
	}
	for i := len(kept); i < len(w.timers); i++ {
		w.timers[i] = nil
	}
	w.timers = kept
	for i, tm := range w.timers {
		tm.index = i
	}
	heap.Init(&w.timers)
	for _, t := range w.liveTasks(inc) {
		w.kill(t)
	}
	if cur := w.current; cur != nil && cur.inc == inc {
		runtime.Goexit()
	}
}
