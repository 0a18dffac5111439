package counter

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/stratadb/strata/clock"
	"github.com/stratadb/strata/net"
	countersvc "github.com/stratadb/strata/nodes/counter"
	"github.com/stratadb/strata/nodes/node"
	"github.com/stratadb/strata/sim"
	"github.com/stratadb/strata/sim/simdisk"
	"github.com/stratadb/strata/sim/simnet"
)

// Planted bug names.
const (
	BugAckBeforeSync = "counter-ack-before-sync"
	BugNoDirSync     = "counter-no-dir-sync"
	BugNoDedup       = "counter-no-dedup"
)

// Scenario limits and budgets.
const (
	serverID   = "server"
	serverAddr = "server:7000"
	// livenessBudget is how long after healing every client has to
	// complete a fresh increment.
	livenessBudget = 20 * time.Second
	// callTimeout bounds one attempt of one increment.
	callTimeout = 300 * time.Millisecond
	// maxAttempts bounds the retries of one increment; after that the
	// client gives up on it (it stays ambiguous) and moves on.
	maxAttempts = 1000
	backoffMin  = 5 * time.Millisecond
	backoffMax  = 400 * time.Millisecond
)

// Scenario returns the registered counter scenario.
func Scenario() sim.Scenario {
	return sim.Scenario{
		Name: "counter",
		Doc:  "durable counter server, retrying clients, crashes, torn writes, disk errors and partitions",
		Bugs: []sim.Bug{
			{Name: BugAckBeforeSync, Doc: "the server acknowledges an increment before the sync that makes it durable"},
			{Name: BugNoDirSync, Doc: "the server creates log segments without syncing their directory"},
			{Name: BugNoDedup, Doc: "the server applies a retried increment again (caught as an invented increment)"},
		},
		Run:            run,
		MaxVirtualTime: 2 * time.Minute,
		CISeeds:        20,
		BugSeeds:       50,
	}
}

// increment is one increment as a client saw it.
type increment struct {
	seq      uint64
	started  time.Duration
	attempts int
	acked    bool
	value    uint64
	ackedAt  time.Duration
}

// client is one client's history.
type client struct {
	id   uint32
	name string
	incs []*increment // by seq-1
}

type history struct {
	clients []*client
	stopped bool
	healAt  time.Duration
}

func run(w *sim.World) error {
	rng := w.Rand()
	nClients := sim.Swarm(w, "clients", 2+rng.IntN(4))
	safety := sim.Swarm(w, "safety", time.Duration(8+rng.IntN(12))*time.Second)
	thinkMax := sim.Swarm(w, "think_max", time.Duration(40+rng.IntN(120))*time.Millisecond)
	lat := simnet.Latency{
		Base:     time.Duration(100+rng.IntN(400)) * time.Microsecond,
		Jitter:   time.Duration(100+rng.IntN(1900)) * time.Microsecond,
		TailProb: 0.02 * rng.Float64(),
		Tail:     time.Duration(1+rng.IntN(50)) * time.Millisecond,
	}
	sim.Swarm(w, "net_latency", fmt.Sprintf("%v+%v tail %.3f/%v", lat.Base, lat.Jitter, lat.TailProb, lat.Tail))
	syncMax := sim.Swarm(w, "sync_max", time.Duration(1+rng.IntN(10))*time.Millisecond)
	nem := sim.Nemesis{
		Crashable:     []string{serverID},
		CrashMean:     time.Duration(500+rng.IntN(3000)) * time.Millisecond,
		TearProb:      rng.Float64(),
		StopProb:      0.2 * rng.Float64(),
		RestartAfter:  time.Duration(50+rng.IntN(500)) * time.Millisecond,
		PartitionMean: time.Duration(1+rng.IntN(5)) * time.Second,
		PartitionFor:  time.Duration(100+rng.IntN(2000)) * time.Millisecond,
		OneWayProb:    0.5,
		BreakMean:     time.Duration(1+rng.IntN(5)) * time.Second,
		SlowMean:      time.Duration(1+rng.IntN(5)) * time.Second,
		SlowLatency:   simnet.Latency{Base: 20 * time.Millisecond, Jitter: 80 * time.Millisecond},
		Failpoints:    []string{countersvc.FailpointCrashBeforeSync},
		FailpointMean: time.Duration(1+rng.IntN(5)) * time.Second,
		DiskFaults: simdisk.Faults{
			ReadEIO:  0.01 * rng.Float64(),
			WriteEIO: 0.003 * rng.Float64(),
			SyncEIO:  0.003 * rng.Float64(),
			NoSpace:  0.002 * rng.Float64(),
		},
	}
	if rng.IntN(4) == 0 {
		nem.DiskFaults = simdisk.Faults{} // some seeds run with a healthy disk
	}
	sim.Swarm(w, "nemesis", nem.String())
	offset := time.Duration(rng.IntN(2000)-1000) * time.Millisecond
	ppm := float64(rng.IntN(400) - 200)
	sim.Swarm(w, "server_clock", fmt.Sprintf("%v/%+.0fppm", offset, ppm))

	w.UseNet(simnet.Options{Latency: lat, DeadLinkTimeout: 2 * time.Second})
	bugs := countersvc.Bugs{AckBeforeSync: w.Bug(BugAckBeforeSync), NoDirSync: w.Bug(BugNoDirSync), NoDedup: w.Bug(BugNoDedup)}
	server := w.AddNode(serverID, func(env node.Env) error {
		_, err := countersvc.Start(env, countersvc.Config{
			Addr: serverAddr,
			Bugs: bugs,
			// A fatal disk error ends the process; the supervisor restarts it.
			OnFatal: func(error) { w.Node(serverID).Crash(false) },
		})
		return err
	})
	server.SetClock(offset, ppm*1e-6)
	server.SetDiskLatency(func(op string) time.Duration {
		if op == "sync" || op == "syncdir" {
			return time.Duration(1 + server.FaultRand().Int64N(int64(syncMax)))
		}
		return 0
	})

	h := &history{}
	for i := 1; i <= nClients; i++ {
		c := &client{id: uint32(i), name: fmt.Sprintf("client-%d", i)}
		h.clients = append(h.clients, c)
		w.AddNode(c.name, func(env node.Env) error {
			env.Clock.Go(context.Background(), "workload", func(ctx context.Context) {
				if err := c.work(ctx, w, env, h, thinkMax); err != nil {
					w.Fail(err)
				}
			})
			return nil
		})
	}
	linked := []string{serverID}
	for _, c := range h.clients {
		linked = append(linked, c.name)
	}
	nem.Linked = linked

	w.Phase("safety")
	if err := w.StartNemesis(nem); err != nil {
		return err
	}
	w.Sleep(safety)

	w.Phase("liveness")
	w.HealAll()
	h.healAt = w.Now()
	if err := w.Converge(livenessBudget, 50*time.Millisecond, h.progressed); err != nil {
		return err
	}
	h.stopped = true

	w.Phase("check")
	sim.Stat(w, "server_incarnations", server.Incarnation())
	// Power loss: whatever the server did not make durable is gone now.
	server.Crash(false)
	recs, err := countersvc.ReadLog(server.Disk(), countersvc.DefaultDir)
	if err != nil {
		return fmt.Errorf("counter: reading the durable log: %w", err)
	}
	return h.check(w, recs)
}

// work is one client's workload: sequential increments, each retried until
// acknowledged.
func (c *client) work(ctx context.Context, w *sim.World, env node.Env, h *history, thinkMax time.Duration) error {
	var conn net.Conn
	for seq := uint64(1); !h.stopped; seq++ {
		inc := &increment{seq: seq, started: env.Clock.Mono()}
		c.incs = append(c.incs, inc)
		backoff := backoffMin
		for !inc.acked {
			if h.stopped {
				return nil
			}
			if inc.attempts >= maxAttempts {
				break // gives up: the increment stays ambiguous
			}
			inc.attempts++
			var err error
			if conn == nil {
				dctx, cancel := clock.WithTimeout(env.Clock, ctx, callTimeout)
				conn, err = env.Net.Dial(dctx, serverAddr)
				cancel()
			}
			if err == nil {
				cctx, cancel := clock.WithTimeout(env.Clock, ctx, callTimeout)
				var resp countersvc.IncrResponse
				resp, err = net.CallJSON[countersvc.IncrResponse](cctx, conn, countersvc.MethodIncr,
					countersvc.IncrRequest{Client: c.id, Seq: seq})
				cancel()
				if err == nil {
					inc.acked, inc.value, inc.ackedAt = true, resp.Value, env.Clock.Mono()
					break
				}
				if code := net.CodeOf(err); code == net.FailedPrecondition || code == net.InvalidArgument {
					return fmt.Errorf("counter: %s#%d refused: %w", c.name, seq, err)
				}
			}
			if err != nil {
				conn = nil
			}
			sleep := backoff/2 + time.Duration(env.Rand.Int64N(int64(backoff)))
			if err := clock.Sleep(ctx, env.Clock, sleep); err != nil {
				return nil
			}
			backoff = min(2*backoff, backoffMax)
		}
		think := time.Duration(env.Rand.Int64N(int64(thinkMax)))
		if err := clock.Sleep(ctx, env.Clock, think); err != nil {
			return nil
		}
	}
	return nil
}

// progressed: every client has an increment both started and acknowledged
// after the heal (nil), or which clients have not (an error).
func (h *history) progressed() error {
	var missing []string
	for _, c := range h.clients {
		ok := false
		for _, inc := range c.incs {
			if inc.acked && inc.started >= h.healAt {
				ok = true
			}
		}
		if !ok {
			last := "none"
			if n := len(c.incs); n > 0 {
				l := c.incs[n-1]
				last = fmt.Sprintf("#%d acked=%v attempts=%d", l.seq, l.acked, l.attempts)
			}
			missing = append(missing, fmt.Sprintf("%s has no fresh acknowledged increment (last %s)", c.name, last))
		}
	}
	if len(missing) > 0 {
		return errors.New(strings.Join(missing, "; "))
	}
	return nil
}

// ErrLostIncrement, ErrInventedIncrement classify checker failures.
var (
	ErrLostIncrement     = errors.New("counter: lost acknowledged increment")
	ErrInventedIncrement = errors.New("counter: invented increment")
)

// check compares the clients' history with the durable log.
func (h *history) check(w *sim.World, recs []countersvc.Record) error {
	byID := map[uint32]*client{}
	for _, c := range h.clients {
		byID[c.id] = c
	}
	pos := map[countersvc.Record]int{} // 1-based position in the log
	for i, r := range recs {
		c := byID[r.Client]
		if c == nil || r.Seq == 0 || r.Seq > uint64(len(c.incs)) {
			return fmt.Errorf("%w: %v at position %d was never sent", ErrInventedIncrement, r, i+1)
		}
		if p, dup := pos[r]; dup {
			return fmt.Errorf("%w: %v counted twice, at positions %d and %d", ErrInventedIncrement, r, p, i+1)
		}
		pos[r] = i + 1
	}
	var acked, applied, notApplied int
	for _, c := range h.clients {
		for _, inc := range c.incs {
			r := countersvc.Record{Client: c.id, Seq: inc.seq}
			p, inLog := pos[r]
			switch {
			case inc.acked && !inLog:
				return fmt.Errorf("%w: %v was acknowledged with value %d at %v but is not in the durable log (%d records)",
					ErrLostIncrement, r, inc.value, inc.ackedAt, len(recs))
			case inc.acked && uint64(p) != inc.value:
				return fmt.Errorf("%w: %v was acknowledged with value %d at %v but the durable log holds it at position %d (position %d holds %s)",
					ErrLostIncrement, r, inc.value, inc.ackedAt, p, inc.value, at(recs, inc.value))
			case inc.acked:
				acked++
			case inLog:
				applied++ // ack lost, resolved from the durable log: applied
			default:
				notApplied++ // ack lost, resolved: never applied
			}
		}
	}
	w.Log().Info("counter checked", "records", len(recs), "acked", acked,
		"ambiguous_applied", applied, "ambiguous_not_applied", notApplied)
	retried := 0
	for _, c := range h.clients {
		for _, inc := range c.incs {
			if inc.attempts > 1 {
				retried++
			}
		}
	}
	sim.Stat(w, "records", len(recs))
	sim.Stat(w, "acked", acked)
	sim.Stat(w, "retried", retried)
	sim.Stat(w, "ambiguous_applied", applied)
	sim.Stat(w, "ambiguous_not_applied", notApplied)
	w.Note(uint64(len(recs)), uint64(acked)<<32|uint64(applied))
	return nil
}

func at(recs []countersvc.Record, v uint64) string {
	if v == 0 || v > uint64(len(recs)) {
		return "nothing"
	}
	return recs[v-1].String()
}
