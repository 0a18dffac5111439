package storcon

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/stratadb/strata/engine/shard"
	"github.com/stratadb/strata/net"
	"github.com/stratadb/strata/nodes/pageserver/pageapi"
	"github.com/stratadb/strata/nodes/storcon/storconapi"
	"github.com/stratadb/strata/sim/scenarios/pagecheck"
)

// The spies are net.HTTPClient wrappers the scenario puts on the wires it
// wants to watch: the controller's calls to pageservers (location_config
// and listings), its compute notifications, and the pageservers' re-attach
// and validate upcalls. They see every request as it is sent and every
// answer as it arrives, in virtual-time order, and pass both to the
// observer's checkers. They never change a request or an answer.

// errAborted marks a call whose task unwound (its node crashed) before the
// answer came.
var errAborted = errors.New("storcon scenario: call aborted by a crash")

// psSpy is the controller's client for one pageserver's management API.
type psSpy struct {
	o     *observer
	inner net.HTTPClient
	node  uint64
	// afterNewGen, if set, runs once a location_config that handed out a
	// new generation has been answered (or failed): the scenario's
	// targeted controller crash.
	afterNewGen func(node uint64, id shard.TenantShardID)
}

func (c psSpy) Do(ctx context.Context, req *net.HTTPRequest, in, out any) (int, error) {
	switch {
	case req.Method == "PUT" && strings.HasPrefix(req.Path, "/v1/tenant/") && strings.HasSuffix(req.Path, "/location_config"):
		id, err := shard.ParseTenantShardID(strings.TrimSuffix(strings.TrimPrefix(req.Path, "/v1/tenant/"), "/location_config"))
		if err != nil {
			c.o.fail(fmt.Errorf("storcon scenario: controller sent location_config to bad path %q: %w", req.Path, err))
			return 0, err
		}
		conf, err := pagecheck.DecodeAs[pageapi.LocationConfig](in)
		if err != nil {
			c.o.fail(fmt.Errorf("storcon scenario: controller's location_config body: %w", err))
			return 0, err
		}
		newGen := c.o.beforePut(c.node, id, conf)
		c.o.putStarted(c.node, id)
		callErr := errAborted
		defer func() { c.o.putDone(c.node, id, conf, callErr) }()
		st, err := c.inner.Do(ctx, req, in, out)
		callErr = err
		if newGen && c.afterNewGen != nil {
			// It may crash the controller: this task then unwinds, and the
			// deferred call records the answer all the same.
			c.afterNewGen(c.node, id)
		}
		return st, err
	case req.Method == "GET" && req.Path == "/v1/location_config":
		before := c.o.listVersions(c.node)
		st, err := c.inner.Do(ctx, req, in, out)
		if err == nil {
			if list, derr := pagecheck.DecodeAs[pageapi.LocationConfigList](out); derr == nil {
				c.o.listed(c.node, list, before, "controller's listing")
			}
		}
		return st, err
	}
	return c.inner.Do(ctx, req, in, out)
}

// String names the wrapped client for logs.
func (c psSpy) String() string { return fmt.Sprint(c.inner) }

// hookSpy is the controller's compute hook client.
type hookSpy struct {
	o     *observer
	inner net.HTTPClient
}

func (c hookSpy) Do(ctx context.Context, req *net.HTTPRequest, in, out any) (int, error) {
	if req.Method == "PUT" && req.Path == storconapi.NotifyAttachPath {
		n, err := pagecheck.DecodeAs[storconapi.NotifyAttachRequest](in)
		if err != nil {
			c.o.fail(fmt.Errorf("%w: undecodable notification: %v", ErrNotify, err))
			return 0, err
		}
		c.o.notified(n)
	}
	return c.inner.Do(ctx, req, in, out)
}

func (c hookSpy) String() string { return fmt.Sprint(c.inner) }

// cpSpy is a pageserver's client for the controller (its re-attach and
// validate upcalls).
type cpSpy struct {
	o     *observer
	inner net.HTTPClient
	node  uint64
}

func (c cpSpy) Do(ctx context.Context, req *net.HTTPRequest, in, out any) (int, error) {
	if req.Method == "POST" && req.Path == "/upcall/v1/re-attach" {
		before := c.o.snapshot()
		st, err := c.inner.Do(ctx, req, in, out)
		if err == nil {
			if resp, derr := pagecheck.DecodeAs[storconapi.ReAttachResponse](out); derr == nil {
				c.o.reAttached(c.node, resp, before)
			}
		}
		return st, err
	}
	if req.Method == "POST" && req.Path == "/upcall/v1/validate" {
		// The pageserver asks before it deletes: the answer is checked as
		// the prober's are (no split-brain check: it asks for itself).
		before, dbBefore, ctl := c.o.snapshot(), c.o.dbSnapshot(), fmt.Sprint(c.inner)
		st, err := c.inner.Do(ctx, req, in, out)
		if err == nil {
			vreq, qerr := pagecheck.DecodeAs[storconapi.ValidateRequest](in)
			resp, rerr := pagecheck.DecodeAs[storconapi.ValidateResponse](out)
			if qerr == nil && rerr == nil {
				c.o.psValidates++
				c.o.validatedBatch(ctl, vreq, resp, before, dbBefore, nil)
			}
		}
		return st, err
	}
	return c.inner.Do(ctx, req, in, out)
}

func (c cpSpy) String() string { return fmt.Sprint(c.inner) }
