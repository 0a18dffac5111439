package split

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/stratadb/strata/clock"
	"github.com/stratadb/strata/engine/lsn"
	"github.com/stratadb/strata/engine/shard"
	"github.com/stratadb/strata/net"
	"github.com/stratadb/strata/nodes/compute/pageclient"
	"github.com/stratadb/strata/nodes/node"
	"github.com/stratadb/strata/nodes/pageserver/pageapi"
	"github.com/stratadb/strata/nodes/storcon/storconapi"
	"github.com/stratadb/strata/sim/scenarios/pagecheck"
)

// compute is the compute node: a Writer through the safekeepers, a page
// client whose map the controller's notifications update, a reader
// through it and a prober that asks shards for blocks they do not own.
type compute struct {
	c *cluster

	mu     sync.Mutex
	client *pageclient.Client
	hook   *pageclient.HookReceiver
	// errs counts the reader's failed calls by code.
	errs map[string]int
}

func (cp *compute) start(env node.Env) error {
	c := cp.c
	wr := &pagecheck.Writer{ID: computeID, Tenant: tenant(), Timeline: timelineID(), Start: startLSN, Safekeepers: c.skAddrs,
		Rel: relation(), Blocks: blocks, OpTimeout: opTimeout, History: c.h, Preload: true}
	env.Clock.Go(context.Background(), "writer", func(ctx context.Context) { wr.Run(ctx, env) })
	env.Clock.Go(context.Background(), "reader", func(ctx context.Context) { cp.run(ctx, env) })
	return nil
}

// mapFromDescribe is the shard map of the tenant's current count, once
// every shard of it is attached somewhere.
func mapFromDescribe(td storconapi.TenantDescribe) (pageclient.ShardMap, bool) {
	m := pageclient.ShardMap{Count: shard.ShardCount(td.ShardCount), StripeSize: td.StripeSize, Addrs: make([]string, max(int(td.ShardCount), 1))}
	for _, s := range td.Shards {
		if s.TenantShardID.Shard.Count != m.Count || s.NodeAttached == nil || int(s.TenantShardID.Shard.Number) >= len(m.Addrs) {
			continue
		}
		m.Addrs[s.TenantShardID.Shard.Number] = psPage(int(*s.NodeAttached))
	}
	return m, !slices.Contains(m.Addrs, "") && m.Validate() == nil
}

// run builds the client from the controller's view of the tenant, starts
// the hook receiver, then reads and probes until the node stops.
func (cp *compute) run(ctx context.Context, env node.Env) {
	c := cp.c
	api := storconapi.Client{HTTP: net.DialHTTP{Net: env.Net, Addr: controllerAddr}}
	var m pageclient.ShardMap
	for {
		dctx, cancel := clock.WithTimeout(env.Clock, ctx, opTimeout)
		td, err := api.DescribeTenant(dctx, tenant())
		cancel()
		var ok bool
		if err == nil {
			if m, ok = mapFromDescribe(td); ok {
				break
			}
		}
		if clock.Sleep(ctx, env.Clock, 100*time.Millisecond) != nil {
			return
		}
	}
	cl, err := pageclient.New(env, pageclient.Config{Tenant: tenant(), Timeline: timelineID(), MaxBlocksPerRequest: 4,
		AttemptTimeout: 3 * time.Second, CallTimeout: 10 * time.Second, Bugs: c.bugs.client}, m)
	if err != nil {
		c.h.Fail(fmt.Errorf("split: page client: %w", err))
		return
	}
	hook := pageclient.NewHookReceiver(cl, "", pageclient.ControllerResolver(api))
	rt := net.NewRouter()
	hook.Register(rt)
	mux := net.NewMux()
	rt.Register(mux)
	if _, err := env.Net.Listen(hookAddr, mux); err != nil {
		c.h.Fail(fmt.Errorf("split: compute hook listener: %w", err))
		return
	}
	cp.mu.Lock()
	cp.client, cp.hook, cp.errs = cl, hook, map[string]int{}
	cp.mu.Unlock()
	env.Log.Info("compute: page client started", "map", m.String())
	for clock.Sleep(ctx, env.Clock, time.Duration(5+env.Rand.IntN(40))*time.Millisecond) == nil {
		if c.h.Floor() == 0 {
			continue
		}
		if env.Rand.IntN(6) == 0 {
			cp.probe(ctx, env)
			continue
		}
		at, ok := c.h.ReadLSN(env.Rand.IntN(4) == 0, c.h.Floor(), env.Rand.IntN)
		if !ok {
			continue
		}
		cp.read(ctx, env, at, false)
	}
}

// read reads a batch of distinct random blocks at "at" through the
// client and records the answer (or the refusal) of each.
func (cp *compute) read(ctx context.Context, env node.Env, at lsn.LSN, final bool) error {
	n := 1 + env.Rand.IntN(maxBatch)
	bs := env.Rand.Perm(blocks)[:n]
	req := pageclient.Request{Rel: relation(), LSN: pageclient.ReadLSN{Request: at}}
	for _, b := range bs {
		req.Blocks = append(req.Blocks, uint32(b))
	}
	return cp.readBlocks(ctx, req, final)
}

func (cp *compute) readBlocks(ctx context.Context, req pageclient.Request, final bool) error {
	c := cp.c
	out, err := cp.client.GetPages(ctx, req)
	if err == nil {
		for i, b := range req.Blocks {
			c.h.Record(pagecheck.Read{At: req.LSN.Request, Blk: b, Shard: "client", Final: final,
				Status: pageapi.GetPageStatusCode_GET_PAGE_STATUS_CODE_OK, Page: out[i]})
		}
		return nil
	}
	cp.mu.Lock()
	cp.errs[net.CodeOf(err).String()]++
	cp.mu.Unlock()
	// An answer the page service gave (in band) is judged for the first
	// block; the checker knows every block exists above the floor, so a
	// not-found or a refusal other than the GC cutoff is wrong.
	msg := err.Error()
	for _, st := range []pageapi.GetPageStatusCode{pageapi.GetPageStatusCode_GET_PAGE_STATUS_CODE_NOT_FOUND, pageapi.GetPageStatusCode_GET_PAGE_STATUS_CODE_INVALID_REQUEST} {
		if strings.Contains(msg, "answered "+strings.TrimPrefix(st.String(), "GET_PAGE_STATUS_CODE_")+":") {
			c.h.Record(pagecheck.Read{At: req.LSN.Request, Blk: req.Blocks[0], Shard: "client", Final: final, Status: st, Reason: msg})
		}
	}
	return err
}

// probe asks a shard of the client's current map for a block it does not
// own, straight over the page service: the answer must be a refusal.
func (cp *compute) probe(ctx context.Context, env node.Env) {
	c := cp.c
	m := cp.client.ShardMap()
	if m.Count < 2 {
		return
	}
	at, ok := c.h.ReadLSN(false, c.h.Floor(), env.Rand.IntN)
	if !ok {
		return
	}
	blk := uint32(env.Rand.IntN(blocks))
	owner := m.ShardOf(relation(), blk)
	n := shard.ShardNumber((int(owner) + 1 + env.Rand.IntN(int(m.Count)-1)) % int(m.Count))
	pctx, cancel := clock.WithTimeout(env.Clock, ctx, opTimeout)
	defer cancel()
	conn, err := env.Net.Dial(pctx, m.Addrs[n])
	if err != nil {
		return
	}
	defer conn.Close()
	target, own := tsid(m.Index(n)), tsid(m.Index(owner))
	rctx := pageapi.WithTarget(pctx, pageapi.Target{Shard: target, Timeline: timelineID()}, "")
	resp, err := pagecheck.GetPage(rctx, conn, relation(), at, blk)
	if err != nil || resp.StatusCode == pageapi.GetPageStatusCode_GET_PAGE_STATUS_CODE_NOT_FOUND && !strings.Contains(resp.Reason, "key not found") {
		return // the stream failed, or the shard is not (yet, or any more) there
	}
	c.h.Record(pagecheck.Read{At: at, Blk: blk, Shard: target.String(), Probe: true, Owner: own.String(),
		Status: resp.StatusCode, Reason: resp.Reason, Page: pagecheck.PageOf(resp)})
}

// retriedInternal reports retries the client counted under Internal.
func (cp *compute) retriedInternal(env node.Env) float64 {
	mfs, err := env.Metrics.Gather()
	if err != nil {
		return 0
	}
	total := 0.0
	for _, mf := range mfs {
		if mf.GetName() != "strata_pageclient_retries_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "code" && l.GetValue() == net.Internal.String() {
					total += m.GetCounter().GetValue()
				}
			}
		}
	}
	return total
}
