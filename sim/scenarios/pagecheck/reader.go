package pagecheck

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/stratadb/strata/clock"
	"github.com/stratadb/strata/engine/keys"
	"github.com/stratadb/strata/engine/lsn"
	"github.com/stratadb/strata/engine/shard"
	"github.com/stratadb/strata/net"
	"github.com/stratadb/strata/nodes/compute/pageclient"
	"github.com/stratadb/strata/nodes/node"
	"github.com/stratadb/strata/nodes/pageserver/pageapi"
	"github.com/stratadb/strata/nodes/storcon/storconapi"
)

// Reader is a compute's page reader under a storage controller: a rich
// page client (nodes/compute/pageclient) built from the controller's view
// of the tenant, whose shard map then follows the controller's
// notify-attach (the client's HookReceiver, served at HookAddr). It reads
// batches of random blocks at acknowledged commit LSNs and records every
// answer in History; with Probe it also asks shards, straight over the page
// service, for blocks they do not own (the answer must be a refusal).
type Reader struct {
	Tenant     shard.TenantID
	Timeline   shard.TimelineID
	Rel        keys.RelTag
	Blocks     int
	MaxBatch   int
	Controller string // the controller's address
	HookAddr   string
	// PageAddr is the page service address of a pageserver node id.
	PageAddr func(node uint64) string
	// OpTimeout bounds one controller call or direct page request.
	OpTimeout time.Duration
	Bugs      pageclient.Bugs
	History   *History
	// Probe: one read in Probe is a probe (0: none).
	Probe int

	mu     sync.Mutex
	client *pageclient.Client
	// errs counts the reader's failed calls by code.
	errs map[string]int
}

// MapFromDescribe is the shard map of the tenant's current count, once
// every shard of it is attached somewhere (ok false before).
func MapFromDescribe(td storconapi.TenantDescribe, pageAddr func(node uint64) string) (pageclient.ShardMap, bool) {
	m := pageclient.ShardMap{Count: shard.ShardCount(td.ShardCount), StripeSize: td.StripeSize, Addrs: make([]string, max(int(td.ShardCount), 1))}
	for _, s := range td.Shards {
		if s.TenantShardID.Shard.Count != m.Count || s.NodeAttached == nil || int(s.TenantShardID.Shard.Number) >= len(m.Addrs) {
			continue
		}
		m.Addrs[s.TenantShardID.Shard.Number] = pageAddr(*s.NodeAttached)
	}
	return m, !slices.Contains(m.Addrs, "") && m.Validate() == nil
}

// Client is the page client (nil until Run built it).
func (r *Reader) Client() *pageclient.Client {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.client
}

// Errors summarises the failed calls by code.
func (r *Reader) Errors() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return fmt.Sprint(r.errs)
}

// Run builds the client from the controller's view of the tenant, serves
// the hook, then reads (and probes) until ctx ends.
func (r *Reader) Run(ctx context.Context, env node.Env) {
	api := storconapi.Client{HTTP: net.DialHTTP{Net: env.Net, Addr: r.Controller}}
	var m pageclient.ShardMap
	for {
		dctx, cancel := clock.WithTimeout(env.Clock, ctx, r.OpTimeout)
		td, err := api.DescribeTenant(dctx, r.Tenant)
		cancel()
		var ok bool
		if err == nil {
			if m, ok = MapFromDescribe(td, r.PageAddr); ok {
				break
			}
		}
		if clock.Sleep(ctx, env.Clock, 100*time.Millisecond) != nil {
			return
		}
	}
	cl, err := pageclient.New(env, pageclient.Config{Tenant: r.Tenant, Timeline: r.Timeline, MaxBlocksPerRequest: 4,
		AttemptTimeout: r.OpTimeout, CallTimeout: 10 * time.Second, Bugs: r.Bugs}, m)
	if err != nil {
		r.History.Fail(fmt.Errorf("pagecheck: page client: %w", err))
		return
	}
	hook := pageclient.NewHookReceiver(cl, "", pageclient.ControllerResolver(api))
	rt := net.NewRouter()
	hook.Register(rt)
	mux := net.NewMux()
	rt.Register(mux)
	if _, err := env.Net.Listen(r.HookAddr, mux); err != nil {
		r.History.Fail(fmt.Errorf("pagecheck: compute hook listener: %w", err))
		return
	}
	r.mu.Lock()
	r.client, r.errs = cl, map[string]int{}
	r.mu.Unlock()
	env.Log.Info("compute: page client started", "map", m.String())
	h := r.History
	for clock.Sleep(ctx, env.Clock, time.Duration(5+env.Rand.IntN(40))*time.Millisecond) == nil {
		if h.Floor() == 0 {
			continue
		}
		if r.Probe > 0 && env.Rand.IntN(r.Probe) == 0 {
			r.probe(ctx, env)
			continue
		}
		at, ok := h.ReadLSN(env.Rand.IntN(4) == 0, h.Floor(), env.Rand.IntN)
		if !ok {
			continue
		}
		n := 1 + env.Rand.IntN(r.MaxBatch)
		req := pageclient.Request{Rel: r.Rel, LSN: pageclient.ReadLSN{Request: at}}
		for _, b := range env.Rand.Perm(r.Blocks)[:n] {
			req.Blocks = append(req.Blocks, uint32(b))
		}
		_ = r.ReadBlocks(ctx, req, false)
	}
}

// ReadBlocks reads req through the client and records the answer (or the
// refusal) of each block; final marks the auditor's reads after healing.
func (r *Reader) ReadBlocks(ctx context.Context, req pageclient.Request, final bool) error {
	h := r.History
	out, err := r.Client().GetPages(ctx, req)
	if err == nil {
		for i, b := range req.Blocks {
			h.Record(Read{At: req.LSN.Request, Blk: b, Shard: "client", Final: final,
				Status: pageapi.GetPageStatusCode_GET_PAGE_STATUS_CODE_OK, Page: out[i]})
		}
		return nil
	}
	r.mu.Lock()
	r.errs[net.CodeOf(err).String()]++
	r.mu.Unlock()
	// An answer the page service gave (in band) is judged for the first
	// block; the checker knows every block exists above the floor, so a
	// not-found or a refusal other than the GC cutoff is wrong.
	msg := err.Error()
	for _, st := range []pageapi.GetPageStatusCode{pageapi.GetPageStatusCode_GET_PAGE_STATUS_CODE_NOT_FOUND, pageapi.GetPageStatusCode_GET_PAGE_STATUS_CODE_INVALID_REQUEST} {
		if strings.Contains(msg, "answered "+strings.TrimPrefix(st.String(), "GET_PAGE_STATUS_CODE_")+":") {
			h.Record(Read{At: req.LSN.Request, Blk: req.Blocks[0], Shard: "client", Final: final, Status: st, Reason: msg})
		}
	}
	return err
}

// BlocksRequest asks for blocks [from, to) of the reader's relation at "at".
func (r *Reader) BlocksRequest(at lsn.LSN, from, to int) pageclient.Request {
	req := pageclient.Request{Rel: r.Rel, LSN: pageclient.ReadLSN{Request: at}}
	for b := from; b < to; b++ {
		req.Blocks = append(req.Blocks, uint32(b))
	}
	return req
}

// ReadAll reads every block at "at" through the client, in batches of
// MaxBatch, as final reads; it returns the first failure.
func (r *Reader) ReadAll(ctx context.Context, at lsn.LSN) error {
	for b := 0; b < r.Blocks; b += r.MaxBatch {
		if err := r.ReadBlocks(ctx, r.BlocksRequest(at, b, min(b+r.MaxBatch, r.Blocks)), true); err != nil {
			return fmt.Errorf("blocks %d..: %w", b, err)
		}
	}
	return nil
}

// probe asks a shard of the client's current map for a block it does not
// own, straight over the page service: the answer must be a refusal.
func (r *Reader) probe(ctx context.Context, env node.Env) {
	h := r.History
	m := r.Client().ShardMap()
	if m.Count < 2 {
		return
	}
	at, ok := h.ReadLSN(false, h.Floor(), env.Rand.IntN)
	if !ok {
		return
	}
	blk := uint32(env.Rand.IntN(r.Blocks))
	owner := m.ShardOf(r.Rel, blk)
	n := shard.ShardNumber((int(owner) + 1 + env.Rand.IntN(int(m.Count)-1)) % int(m.Count))
	pctx, cancel := clock.WithTimeout(env.Clock, ctx, r.OpTimeout)
	defer cancel()
	conn, err := env.Net.Dial(pctx, m.Addrs[n])
	if err != nil {
		return
	}
	defer conn.Close()
	target := shard.TenantShardID{TenantID: r.Tenant, Shard: m.Index(n)}
	own := shard.TenantShardID{TenantID: r.Tenant, Shard: m.Index(owner)}
	rctx := pageapi.WithTarget(pctx, pageapi.Target{Shard: target, Timeline: r.Timeline}, "")
	resp, err := GetPage(rctx, conn, r.Rel, at, blk)
	if err != nil || resp.StatusCode == pageapi.GetPageStatusCode_GET_PAGE_STATUS_CODE_NOT_FOUND && !strings.Contains(resp.Reason, "key not found") {
		return // the stream failed, or the shard is not (yet, or any more) there
	}
	h.Record(Read{At: at, Blk: blk, Shard: target.String(), Probe: true, Owner: own.String(),
		Status: resp.StatusCode, Reason: resp.Reason, Page: PageOf(resp)})
}

// RetriedInternal reports the retries a page client of env counted under
// Internal (a client must never retry an attempt that failed Internal).
func RetriedInternal(env node.Env) float64 {
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
