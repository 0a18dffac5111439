package cluster

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/stratadb/strata/clock"
	"github.com/stratadb/strata/net"
	"github.com/stratadb/strata/nodes/storcon/storconapi"
	"github.com/stratadb/strata/sim/scenarios/pagecheck"
)

// operator is the safety phase's operator: through the controller's API it
// migrates shards and runs rolling restarts (drain a pageserver, restart
// it, sometimes on an empty disk, fill it again), and now and then a
// pageserver loses its disk without warning.
type operator struct {
	c      *cluster
	rng    *rand.Rand
	counts map[string]int
}

func newOperator(c *cluster) *operator {
	return &operator{c: c, rng: c.w.NewRand("operator"), counts: map[string]int{}}
}

func (op *operator) count(what string, err error) {
	if err != nil {
		what += "_" + net.CodeOf(err).String()
	}
	op.counts[what]++
}

// run acts every couple of seconds until the safety phase ends.
func (op *operator) run() {
	c := op.c
	for c.safety {
		c.w.Sleep(time.Duration(op.rng.ExpFloat64() * float64(2*time.Second)))
		if !c.safety {
			return
		}
		switch r := op.rng.IntN(10); {
		case r < 5:
			op.migrate()
		case r < 8:
			op.rollingRestart()
		default:
			op.loseDisk(1 + op.rng.IntN(c.nPS))
		}
	}
}

// call runs fn with the operation timeout.
func (op *operator) call(fn func(ctx context.Context) error) error {
	ctx, cancel := clock.WithTimeout(op.c.op.Env.Clock, context.Background(), opTimeout)
	defer cancel()
	return fn(ctx)
}

// migrate moves a random shard to another pageserver.
func (op *operator) migrate() {
	td, err := op.c.describeAny()
	if err != nil || len(td.Shards) == 0 {
		op.count("migrate", err)
		return
	}
	s := td.Shards[op.rng.IntN(len(td.Shards))]
	to := uint64(1 + op.rng.IntN(op.c.nPS))
	if s.NodeAttached != nil && *s.NodeAttached == to {
		to = to%uint64(op.c.nPS) + 1
	}
	err = op.call(func(ctx context.Context) error { return op.c.op.API.Migrate(ctx, s.TenantShardID, to) })
	op.c.w.Log().Info("operator: migrate", "tenant_shard_id", s.TenantShardID, "to", to, "err", err)
	op.count("migrate", err)
}

// rollingRestart drains a pageserver (waiting a while for its shards to
// move off), restarts it (a clean stop, a crash, or a lost disk), and
// fills it once it is back.
func (op *operator) rollingRestart() {
	c := op.c
	n := 1 + op.rng.IntN(c.nPS)
	err := op.call(func(ctx context.Context) error { return c.op.API.Drain(ctx, uint64(n), false) })
	op.count("drain", err)
	c.w.Log().Info("operator: drain", "node", n, "err", err)
	for deadline := c.w.Now() + 10*time.Second; c.safety && c.w.Now() < deadline; c.w.Sleep(200 * time.Millisecond) {
		td, err := c.describeAny()
		if err == nil && !slices.ContainsFunc(td.Shards, func(s storconapi.ShardDescribe) bool {
			return s.NodeAttached != nil && *s.NodeAttached == uint64(n)
		}) {
			break
		}
	}
	if !c.safety {
		return
	}
	switch op.rng.IntN(3) {
	case 0:
		c.w.Log().Info("operator: restart (clean stop)", "node", n)
		c.w.Stop(pagecheck.PageserverID(n))
		c.w.Restart(pagecheck.PageserverID(n))
	case 1:
		c.w.Log().Info("operator: restart (crash)", "node", n)
		c.w.Restart(pagecheck.PageserverID(n))
	default:
		op.loseDisk(n)
		c.w.Restart(pagecheck.PageserverID(n))
	}
	for deadline := c.w.Now() + 10*time.Second; c.safety && c.w.Now() < deadline; c.w.Sleep(200 * time.Millisecond) {
		err := op.call(func(ctx context.Context) error { return c.op.API.Fill(ctx, uint64(n), false) })
		op.count("fill", err)
		if err == nil {
			c.w.Log().Info("operator: fill", "node", n)
			return
		}
	}
}

// loseDisk crashes pageserver n and marks its disk lost: its next start
// (by the nemesis' supervisor, or the caller) begins with an empty one.
func (op *operator) loseDisk(n int) {
	c := op.c
	c.w.Log().Info("operator: pageserver loses its disk", "node", n)
	op.counts["lose_disk"]++
	c.wipe[n] = true
	c.w.Crash(pagecheck.PageserverID(n), false)
}

// summary is a line of the operator's counts.
func (op *operator) summary() string { return fmt.Sprint(op.counts) }
