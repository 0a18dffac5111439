package main

import (
	"context"
	"errors"
	"fmt"
	stdnet "net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/stratadb/strata/engine/shard"
	"github.com/stratadb/strata/net"
	"github.com/stratadb/strata/net/httpx"
	"github.com/stratadb/strata/nodes/compute/pageclient"
	"github.com/stratadb/strata/nodes/pageserver/pageapi"
	"github.com/stratadb/strata/nodes/storcon/storconapi"
)

// The environment `strata workload` reads for its compute hook when the
// flags are not given.
const (
	workloadHookListenEnv = "STRATA_WORKLOAD_COMPUTE_HOOK_LISTEN"
	workloadHookTokenEnv  = "STRATA_WORKLOAD_COMPUTE_HOOK_TOKEN"
)

// Bounds of the workload's calls to the storage controller.
const (
	// workloadControllerSetup bounds the setup through the controller
	// (describe, create the tenant, create the timeline) and the first
	// shard map: the controller answers a timeline create once the
	// tenant's shards are attached.
	workloadControllerSetup = time.Minute
	// workloadControllerRetry is the pause between tries of a controller
	// call that failed with a code that may pass (Unavailable).
	workloadControllerRetry = 200 * time.Millisecond
)

// controllerSetup creates the tenant (unsharded) if the controller does not
// know it and the timeline (at --start-lsn) if it does not exist: the
// controller creates it on every shard.
func (w *workload) controllerSetup(ctx context.Context, api storconapi.Client) error {
	t := w.cfg.target.Shard.TenantID
	d, err := retryUnavailable(ctx, func(ctx context.Context) (storconapi.TenantDescribe, error) { return api.DescribeTenant(ctx, t) })
	switch {
	case net.CodeOf(err) == net.NotFound:
		resp, err := retryUnavailable(ctx, func(ctx context.Context) (storconapi.TenantCreateResponse, error) {
			return api.CreateTenant(ctx, storconapi.TenantCreateRequest{NewTenantID: t})
		})
		if err != nil {
			return fmt.Errorf("create tenant %s at the controller: %w", t, err)
		}
		w.printf("created tenant %s at the controller (%d shard)\n", t, len(resp.Shards))
	case err != nil:
		return fmt.Errorf("describe tenant %s at the controller: %w", t, err)
	default:
		w.printf("tenant %s exists at the controller (shard count %d)\n", t, d.ShardCount)
	}
	init := w.cfg.startLSN
	_, err = retryUnavailable(ctx, func(ctx context.Context) (pageapi.TimelineInfo, error) {
		return api.CreateTimeline(ctx, t, pageapi.TimelineCreateRequest{NewTimelineID: w.cfg.target.Timeline, InitLSN: &init})
	})
	switch {
	case net.CodeOf(err) == net.AlreadyExists:
		w.printf("timeline %s exists\n", w.cfg.target.Timeline)
	case err != nil:
		return fmt.Errorf("create timeline %s through the controller: %w", w.cfg.target.Timeline, err)
	default:
		w.printf("created timeline %s (init_lsn %s) through the controller\n", w.cfg.target.Timeline, init)
	}
	return nil
}

// retryUnavailable calls fn until it answers anything but Unavailable or
// ctx ends (the controller starting, or a pageserver it calls restarting).
func retryUnavailable[T any](ctx context.Context, fn func(context.Context) (T, error)) (T, error) {
	for {
		v, err := fn(ctx)
		if net.CodeOf(err) != net.Unavailable || ctx.Err() != nil {
			return v, err
		}
		select {
		case <-ctx.Done():
			return v, err
		case <-time.After(workloadControllerRetry):
		}
	}
}

// errNotAttached: the controller's view of a tenant has a shard without
// an attached node (being created, migrated or split): no map yet.
var errNotAttached = errors.New("workload: a shard of the tenant has no attached node")

// controllerMap is the shard map of the controller's describe of the
// tenant, as a notify-attach would carry it, node ids resolved by resolve.
func controllerMap(ctx context.Context, api storconapi.Client, w *workload, resolve pageclient.Resolver) (pageclient.ShardMap, error) {
	d, err := api.DescribeTenant(ctx, w.cfg.target.Shard.TenantID)
	if err != nil {
		return pageclient.ShardMap{}, err
	}
	req := storconapi.NotifyAttachRequest{TenantID: d.TenantID}
	if d.ShardCount > 0 {
		stripe := d.StripeSize
		req.StripeSize = &stripe
	}
	for _, s := range d.Shards {
		if s.NodeAttached == nil || s.IsSplitting || s.TenantShardID.Shard.Count != shard.ShardCount(d.ShardCount) {
			return pageclient.ShardMap{}, fmt.Errorf("%w: %s (attached %v, splitting %v)", errNotAttached, s.TenantShardID, s.NodeAttached != nil, s.IsSplitting)
		}
		req.Shards = append(req.Shards, storconapi.NotifyAttachShard{NodeID: *s.NodeAttached, ShardNumber: s.TenantShardID.Shard.Number})
	}
	return pageclient.MapFromNotify(ctx, req, resolve)
}

// initialControllerMap asks the controller for the tenant's map until
// every shard has an attached node whose page service address the
// controller knows.
func (w *workload) initialControllerMap(ctx context.Context, api storconapi.Client, resolve pageclient.Resolver) (pageclient.ShardMap, error) {
	for {
		m, err := controllerMap(ctx, api, w, resolve)
		if err == nil {
			return m, nil
		}
		if !errors.Is(err, errNotAttached) && net.CodeOf(err) != net.Unavailable {
			return m, fmt.Errorf("shard map from the controller: %w", err)
		}
		select {
		case <-ctx.Done():
			return m, fmt.Errorf("shard map from the controller: %w (last: %v)", ctx.Err(), err)
		case <-time.After(workloadControllerRetry):
		}
	}
}

// hookServer serves the compute hook (PUT /notify-attach: the controller's
// notifications become the page client's shard map) and /metrics (the page
// client's and the walproposer's collectors) on real HTTP.
type hookServer struct {
	srv  *http.Server
	addr string
	recv *pageclient.HookReceiver
}

// startHookServer listens on addr and serves until close. Every
// notification that changes the client's map is printed to w's output.
func startHookServer(addr string, w *workload, token string, resolve pageclient.Resolver, reg *prometheus.Registry) (*hookServer, error) {
	lis, err := stdnet.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("%w: --compute-hook-listen %s: %v", errUsage, addr, err)
	}
	h := &hookServer{addr: lis.Addr().String(), recv: pageclient.NewHookReceiver(w.pc, token, resolve)}
	rt := net.NewRouter()
	h.recv.Register(rt)
	api := httpx.Router(rt)
	var mu sync.Mutex // orders the printed map changes
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/", func(rw http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		before := w.pc.ShardMap().String()
		api.ServeHTTP(rw, r)
		if after := w.pc.ShardMap().String(); after != before {
			w.printf("shard map updated by the controller's notification: %s -> %s\n", before, after)
		}
	})
	h.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = h.srv.Serve(lis) }()
	return h, nil
}

func (h *hookServer) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = h.srv.Shutdown(ctx)
}
