package storcon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/stratadb/strata/clock"
	"github.com/stratadb/strata/engine/placement"
	"github.com/stratadb/strata/engine/shard"
	"github.com/stratadb/strata/net"
	"github.com/stratadb/strata/nodes/pageserver/pageapi"
)

// ErrPageserver wraps every failed call to a pageserver (with the node, the
// operation and the pageserver's or transport's status), so the API edge
// can tell a pageserver's answer from the controller's own (api.go).
var ErrPageserver = errors.New("storcon: pageserver call failed")

// psClient calls one pageserver's management API. Every failure is counted
// in storage_controller_pageserver_request_error and wrapped with the node
// and operation; the *net.Status the pageserver answered stays reachable
// (net.CodeOf).
type psClient struct {
	s  *Service
	id placement.NodeID
	hc net.HTTPClient
}

func (s *Service) dial(addr string) net.HTTPClient {
	if s.cfg.DialPageserver != nil {
		return fencedHTTP{s: s, inner: s.cfg.DialPageserver(addr)}
	}
	return fencedHTTP{s: s, inner: net.DialHTTP{Net: s.env.Net, Addr: addr}}
}

func (c psClient) do(ctx context.Context, op, method, path string, query map[string]string, in, out any) error {
	_, err := c.doStatus(ctx, op, method, path, query, in, out)
	return err
}

// doStatus is do, also returning the answer's HTTP status.
func (c psClient) doStatus(ctx context.Context, op, method, path string, query map[string]string, in, out any) (int, error) {
	r := &net.HTTPRequest{Method: method, Path: path, Query: query}
	if c.s.cfg.PageserverToken != "" {
		r.Authorization = "Bearer " + c.s.cfg.PageserverToken
	}
	status, err := c.hc.Do(ctx, r, in, out)
	if err != nil {
		c.s.metrics.pageserverErrors.WithLabelValues(strconv.FormatUint(uint64(c.id), 10), op, net.CodeOf(err).String()).Inc()
		return status, fmt.Errorf("%w: node %d %s: %w", ErrPageserver, c.id, op, err)
	}
	return status, nil
}

// timed runs fn with a deadline d below ctx.
func (c psClient) timed(ctx context.Context, d time.Duration, fn func(ctx context.Context) error) error {
	ctx, cancel := clock.WithTimeout(c.s.clk, ctx, d)
	defer cancel()
	return fn(ctx)
}

// locationConfig applies conf to the shard id on the node, lazily (the
// pageserver may defer the work of a config-only change): up to
// LocationConfigRetries attempts, each bounded by LocationConfigTimeout,
// retrying only failures that may pass (unavailable, timeouts).
func (c psClient) locationConfig(ctx context.Context, id shard.TenantShardID, conf placement.LocationConf) error {
	body := toPageAPI(conf)
	path := "/v1/tenant/" + id.String() + "/location_config"
	var err error
	for attempt := 0; attempt < c.s.cfg.LocationConfigRetries; attempt++ {
		if attempt > 0 {
			if serr := clock.Sleep(ctx, c.s.clk, c.s.cfg.LocationConfigBackoff); serr != nil {
				return errors.Join(err, serr)
			}
		}
		err = c.timed(ctx, c.s.cfg.LocationConfigTimeout, func(ctx context.Context) error {
			return c.do(ctx, "location_config", "PUT", path, map[string]string{"lazy": "true"}, body, nil)
		})
		if err == nil || !retryable(err) || ctx.Err() != nil {
			return err
		}
	}
	return err
}

// retryable reports whether a failed pageserver call may succeed if
// repeated: the transport's retryable codes and a timeout of our own.
func retryable(err error) bool {
	return net.Retryable(err) || errors.Is(err, context.DeadlineExceeded)
}

// listLocations reads every location the node holds.
func (c psClient) listLocations(ctx context.Context, timeout time.Duration) (map[shard.TenantShardID]*pageapi.LocationConfig, error) {
	var list pageapi.LocationConfigList
	err := c.timed(ctx, timeout, func(ctx context.Context) error {
		return c.do(ctx, "list_locations", "GET", "/v1/location_config", nil, nil, &list)
	})
	if err != nil {
		return nil, err
	}
	out := make(map[shard.TenantShardID]*pageapi.LocationConfig, len(list.TenantShards))
	for _, l := range list.TenantShards {
		id, err := shard.ParseTenantShardID(l.ID)
		if err != nil {
			return nil, fmt.Errorf("storcon: node %d lists location %q: %w", c.id, l.ID, err)
		}
		out[id] = l.Config
	}
	return out, nil
}

func (c psClient) utilization(ctx context.Context) (pageapi.Utilization, error) {
	var u pageapi.Utilization
	err := c.timed(ctx, c.s.cfg.HeartbeatTimeout, func(ctx context.Context) error {
		return c.do(ctx, "utilization", "GET", "/v1/utilization", nil, nil, &u)
	})
	return u, err
}

func (c psClient) createTimeline(ctx context.Context, id shard.TenantShardID, req pageapi.TimelineCreateRequest) (pageapi.TimelineInfo, error) {
	var info pageapi.TimelineInfo
	err := c.timed(ctx, c.s.cfg.PageserverTimeout, func(ctx context.Context) error {
		return c.do(ctx, "timeline_create", "POST", "/v1/tenant/"+id.String()+"/timeline", nil, req, &info)
	})
	return info, err
}

func (c psClient) listTimelines(ctx context.Context, id shard.TenantShardID) ([]pageapi.TimelineInfo, error) {
	var out []pageapi.TimelineInfo
	err := c.timed(ctx, c.s.cfg.PageserverTimeout, func(ctx context.Context) error {
		return c.do(ctx, "timeline_list", "GET", "/v1/tenant/"+id.String()+"/timeline", nil, nil, &out)
	})
	return out, err
}

func (c psClient) deleteTimeline(ctx context.Context, id shard.TenantShardID, tl shard.TimelineID) error {
	return c.timed(ctx, c.s.cfg.PageserverTimeout, func(ctx context.Context) error {
		return c.do(ctx, "timeline_delete", "DELETE", "/v1/tenant/"+id.String()+"/timeline/"+tl.String(), nil, nil, nil)
	})
}

// secondaryDownload asks the node's Secondary location of shard id to
// download its heatmap's layers, waiting up to wait there: done (200)
// once complete, else (202) the progress so far.
func (c psClient) secondaryDownload(ctx context.Context, id shard.TenantShardID, wait time.Duration) (p pageapi.SecondaryProgress, done bool, err error) {
	q := map[string]string{pageapi.SecondaryDownloadWaitParam: strconv.FormatInt(wait.Milliseconds(), 10)}
	var status int
	// Ours allows a little more than the pageserver's wait, so that its
	// 202 arrives rather than our own deadline.
	err = c.timed(ctx, wait+c.s.cfg.HeartbeatTimeout, func(ctx context.Context) error {
		var err error
		status, err = c.doStatus(ctx, "secondary_download", "POST", "/v1/tenant/"+id.String()+"/secondary/download", q, nil, &p)
		return err
	})
	return p, err == nil && status == 200, err
}

func (c psClient) waitLSN(ctx context.Context, id shard.TenantShardID, req pageapi.WaitLSNRequest) error {
	// The pageserver bounds its wait by req.Timeout; ours allows a little
	// more so that its 408 (with the LSN reached) arrives rather than our
	// own deadline.
	return c.timed(ctx, req.Timeout+c.s.cfg.HeartbeatTimeout, func(ctx context.Context) error {
		return c.do(ctx, "wait_lsn", "POST", "/v1/tenant/"+id.String()+"/wait_lsn", nil, req, nil)
	})
}

// --- conversions between placement's LocationConf and the API's
// LocationConfig ---

// canonicalTenantConf renders a tenant_conf object as the canonical JSON
// text placement compares (nil is "{}", the defaults).
func canonicalTenantConf(tc *pageapi.TenantConf) string {
	if tc == nil {
		return "{}"
	}
	b, err := json.Marshal(tc)
	if err != nil {
		return "{}" // a struct of pointers to plain values always marshals
	}
	return string(b)
}

// parseTenantConf decodes a canonical tenant_conf text.
func parseTenantConf(s string) (*pageapi.TenantConf, error) {
	tc := &pageapi.TenantConf{}
	if s == "" {
		return tc, nil
	}
	if err := json.Unmarshal([]byte(s), tc); err != nil {
		return nil, fmt.Errorf("%w: tenant config %q: %v", pageapi.ErrBadConfig, s, err)
	}
	return tc, nil
}

func toPageAPI(c placement.LocationConf) pageapi.LocationConfig {
	out := pageapi.LocationConfig{
		Mode:            pageapi.LocationMode(c.Mode.String()),
		ShardNumber:     uint8(c.Shard.Number),
		ShardCount:      uint8(c.Shard.Count),
		ShardStripeSize: c.Shard.StripeSize,
	}
	if c.Mode.Attached() && c.Generation.Valid {
		g := c.Generation.N
		out.Generation = &g
	}
	if c.Mode == placement.ModeSecondary {
		out.SecondaryConf = &pageapi.SecondaryConf{Warm: c.Warm}
	}
	if c.Mode != placement.ModeDetached {
		tc, err := parseTenantConf(c.TenantConf)
		if err != nil {
			tc = &pageapi.TenantConf{}
		}
		out.TenantConf = tc
	}
	return out
}

func fromPageAPI(c *pageapi.LocationConfig) (placement.LocationConf, error) {
	var out placement.LocationConf
	if c == nil {
		return out, fmt.Errorf("%w: no location config", pageapi.ErrBadConfig)
	}
	if err := out.Mode.UnmarshalText([]byte(c.Mode)); err != nil {
		return out, err
	}
	if out.Mode.Attached() && c.Generation != nil {
		out.Generation = placement.Gen(*c.Generation)
	}
	if out.Mode == placement.ModeSecondary && c.SecondaryConf != nil {
		out.Warm = c.SecondaryConf.Warm
	}
	out.Shard = c.Identity()
	if out.Mode != placement.ModeDetached {
		out.TenantConf = canonicalTenantConf(c.TenantConf)
	}
	return out, nil
}

// detachedConf is the location conf that removes a shard from a node.
func detachedConf(ident shard.ShardIdentity) placement.LocationConf {
	return placement.LocationConf{Mode: placement.ModeDetached, Shard: ident}
}
