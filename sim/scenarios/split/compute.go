package split

import (
	"context"

	"github.com/stratadb/strata/nodes/node"
	"github.com/stratadb/strata/sim/scenarios/pagecheck"
)

// compute is the compute node: a Writer through the safekeepers and a
// Reader whose page client's map follows the controller's notifications,
// probing now and then a shard for a block it does not own.
type compute struct {
	c      *cluster
	reader *pagecheck.Reader
}

func newCompute(c *cluster) *compute {
	return &compute{c: c, reader: &pagecheck.Reader{Tenant: tenant(), Timeline: timelineID(), Rel: relation(), Blocks: blocks,
		MaxBatch: maxBatch, Controller: controllerAddr, HookAddr: hookAddr, PageAddr: func(n uint64) string { return pagecheck.PageserverPageAddr(int(n)) },
		OpTimeout: opTimeout, Bugs: c.bugs.client, History: c.h, Probe: 6}}
}

func (cp *compute) start(env node.Env) error {
	c := cp.c
	wr := &pagecheck.Writer{ID: computeID, Tenant: tenant(), Timeline: timelineID(), Start: startLSN, Safekeepers: c.skAddrs,
		Rel: relation(), Blocks: blocks, OpTimeout: opTimeout, History: c.h, Preload: true}
	env.Clock.Go(context.Background(), "writer", func(ctx context.Context) { wr.Run(ctx, env) })
	env.Clock.Go(context.Background(), "reader", func(ctx context.Context) { cp.reader.Run(ctx, env) })
	return nil
}
