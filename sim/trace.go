package sim

import (
	"fmt"
	"io"
	"time"
)

// EventKind classifies one hashed trace event.
type EventKind uint8

const (
	// EvSched: the scheduler resumed task A out of B runnable ones.
	EvSched EventKind = iota + 1
	// EvTime: virtual time advanced to A nanoseconds.
	EvTime
	// EvRand: a seeded source (A = source id) drew value B.
	EvRand
	// EvSpawn: task A was created (B = hash of its name).
	EvSpawn
	// EvExit: task A ended (B = 1 if it was killed).
	EvExit
	// EvTimer: a timer registered as number A fired.
	EvTimer
	// EvMsg: a message was delivered (A = hash of from, to and method, B =
	// payload size; EvRecv hashes the bytes when a task reads them).
	EvMsg
	// EvNode: node A changed state (B = nodeCrash, nodeStop, nodeStart).
	EvNode
	// EvNote: a scenario-defined note (A, B = caller's values).
	EvNote
	// EvRecv: the running task received a message (A = hash of its bytes,
	// B = its length).
	EvRecv
)

func (k EventKind) String() string {
	switch k {
	case EvSched:
		return "sched"
	case EvTime:
		return "time"
	case EvRand:
		return "rand"
	case EvSpawn:
		return "spawn"
	case EvExit:
		return "exit"
	case EvTimer:
		return "timer"
	case EvMsg:
		return "msg"
	case EvNode:
		return "node"
	case EvNote:
		return "note"
	case EvRecv:
		return "recv"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Event is one hashed step of a run. It is small and flat so recording every
// event (for --check-determinism) stays cheap.
type Event struct {
	Kind EventKind
	// Task is the id of the task that held the baton (0: the scheduler).
	Task int32
	// At is the virtual time of the event.
	At   time.Duration
	A, B uint64
}

// maxRecordedEvents bounds the per-run event log kept for finding the first
// divergent step; past it only the final hashes are compared.
const maxRecordedEvents = 1 << 20

// trace is the rolling hash plus optional recording and comparison.
type trace struct {
	hash   uint64
	events uint64
	// record, when non-nil, collects every event and the hash after it.
	record *recording
	// compare, when non-nil, is a previous run's recording; the first
	// event that differs is kept in diverged.
	compare  *recording
	diverged *Divergence
	// log, when non-nil, receives a human-readable line per event.
	log io.Writer
	// names resolves task ids for the log and for divergence reports.
	names func(id int32) string
	// sources names the seeded sources by id (index id-1).
	sources []string
	// routes names message routes by hash (for readable trace lines,
	// failure reports and divergences).
	routes map[uint64]string
	// recent is a ring of the last events, reported with a failure.
	recent [recentEvents]Event
}

// recentEvents is how many of the last events a failure report shows.
const recentEvents = 16

// lastEvents describes the ring's events, oldest first.
func (t *trace) lastEvents() []string {
	n := min(t.events, recentEvents)
	out := make([]string, 0, n)
	for i := t.events - n; i < t.events; i++ {
		out = append(out, describe(t.recent[i%recentEvents], t.names, t.sources, t.routes))
	}
	return out
}

type recording struct {
	events  []Event
	hashes  []uint64
	names   []string // task names by id, snapshot at the end of the run
	sources []string // source names by id-1, likewise
	routes  map[uint64]string
	// divergence is set by the run that compares against this recording.
	divergence *Divergence
}

// Divergence describes the first step where two runs of one seed differ.
type Divergence struct {
	// Step is the 0-based index of the first differing event.
	Step uint64
	// Want and Got describe the event in the first and second run.
	Want, Got string
}

func (d *Divergence) String() string {
	return fmt.Sprintf("first divergent step %d: first run %s; second run %s", d.Step, d.Want, d.Got)
}

const traceSeed = 0x243f6a8885a308d3 // pi, so an empty trace is not zero

func mix(h, v uint64) uint64 {
	h ^= v
	h *= 0xbf58476d1ce4e5b9
	h ^= h >> 31
	h *= 0x94d049bb133111eb
	h ^= h >> 29
	return h
}

// add hashes one event.
func (t *trace) add(e Event) {
	h := mix(t.hash, uint64(e.Kind)<<32|uint64(uint32(e.Task)))
	h = mix(h, uint64(e.At))
	h = mix(h, e.A)
	h = mix(h, e.B)
	t.hash = h
	i := t.events
	t.recent[i%recentEvents] = e
	t.events++
	if r := t.record; r != nil && i < maxRecordedEvents {
		r.events = append(r.events, e)
		r.hashes = append(r.hashes, h)
	}
	if c := t.compare; c != nil && t.diverged == nil && i < uint64(len(c.hashes)) && c.hashes[i] != h {
		t.diverged = &Divergence{Step: i, Want: describe(c.events[i], c.name, c.sources, c.routes), Got: describe(e, t.names, t.sources, t.routes)}
		c.divergence = t.diverged
	}
	if t.log != nil {
		fmt.Fprintln(t.log, describe(e, t.names, t.sources, t.routes))
	}
}

func (r *recording) name(id int32) string {
	if id >= 0 && int(id) < len(r.names) {
		return r.names[id]
	}
	return fmt.Sprintf("task#%d", id)
}

func describe(e Event, names func(int32) string, sources []string, routes map[uint64]string) string {
	who := "scheduler"
	if e.Task != 0 {
		who = names(e.Task)
	}
	var what string
	switch e.Kind {
	case EvSched:
		what = fmt.Sprintf("resume %s (of %d runnable)", names(int32(e.A)), e.B)
	case EvTime:
		what = fmt.Sprintf("advance time to %v", time.Duration(e.A))
	case EvRand:
		src := fmt.Sprintf("#%d", e.A)
		if e.A >= 1 && e.A <= uint64(len(sources)) {
			src = sources[e.A-1]
		}
		what = fmt.Sprintf("rand %s drew %#x", src, e.B)
	case EvSpawn:
		what = fmt.Sprintf("spawn %s", names(int32(e.A)))
	case EvExit:
		what = fmt.Sprintf("exit %s (killed=%v)", names(int32(e.A)), e.B == 1)
	case EvTimer:
		what = fmt.Sprintf("timer #%d fired", e.A)
	case EvMsg:
		route, ok := routes[e.A]
		if !ok {
			route = fmt.Sprintf("route %#x", e.A)
		}
		what = fmt.Sprintf("deliver %s (%d bytes)", route, e.B)
	case EvNode:
		what = fmt.Sprintf("node #%d %s", e.A, nodeEventName(e.B))
	case EvRecv:
		what = fmt.Sprintf("receive %d bytes (content %#x)", e.B, e.A)
	default:
		what = fmt.Sprintf("%s a=%#x b=%#x", e.Kind, e.A, e.B)
	}
	return fmt.Sprintf("[%v] %s: %s", e.At, who, what)
}

// hashBytes is FNV-1a, used to fold names and message bodies into one word.
func hashBytes(b []byte) uint64 {
	h := uint64(14695981039346656037)
	for _, c := range b {
		h ^= uint64(c)
		h *= 1099511628211
	}
	return h
}

func hashString(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return h
}
