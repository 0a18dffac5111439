package sim

import (
	"github.com/stratadb/strata/sim/simnet"
)

// Net is the world's simulated network, created with default options on
// first use (see UseNet). Scenarios use it for partitions, one-way cuts,
// slow links and broken connections; Node.Crash calls CrashNode.
func (w *World) Net() *simnet.Network {
	if w.net == nil {
		w.UseNet(simnet.Options{})
	}
	return w.net
}

// UseNet creates the world's network with opts (latency distribution,
// stream window, dead-link timeout). Call it before the first AddNode; a
// second call panics. Every delivered message is hashed into the trace.
func (w *World) UseNet(opts simnet.Options) *simnet.Network {
	if w.net != nil {
		panic("sim: UseNet after the network was created")
	}
	user := opts.OnDeliver
	opts.OnDeliver = func(from, to, method string, n int) {
		route := hashString(from) ^ mix(hashString(to), hashString(method))
		// Remember each distinct route's name once, for readable trace
		// lines and failure reports.
		if w.tr.routes == nil {
			w.tr.routes = map[uint64]string{}
		}
		if _, ok := w.tr.routes[route]; !ok {
			w.tr.routes[route] = from + " -> " + to + " " + method
		}
		w.event(EvMsg, route, uint64(n))
		if user != nil {
			user(from, to, method, n)
		}
	}
	w.net = simnet.New(w.root.clock, w.NewRand("net"), opts)
	return w.net
}
