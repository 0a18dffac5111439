package sim

import "time"

// Node is one simulated machine: an id, its disk, its clock offset and
// drift, and a sequence of incarnations (process lives).
type Node struct {
	w  *World
	id string
	// offset and drift shape the node's wall clock: wall = epoch + offset +
	// now*(1+drift). Mono time is shared and exact.
	offset time.Duration
	drift  float64
	cur    *incarnation
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
