package computehook

import (
	"context"
	"sync"

	"github.com/stratadb/strata/engine/shard"
	"github.com/stratadb/strata/net"
	"github.com/stratadb/strata/nodes/storcon/storconapi"
)

// Receiver is the compute side of notify-attach for tests, the simulator
// and the real-process test: a route on a net.Router that records the last
// notification per tenant. Safe for concurrent use.
type Receiver struct {
	token string

	mu       sync.Mutex
	last     map[shard.TenantID]storconapi.NotifyAttachRequest
	count    int
	requests int
	failN    int
	failCode net.Code
}

// NewReceiver returns a Receiver that requires "Bearer <token>" ("" = no
// check; a wrong or missing token is refused with 401).
func NewReceiver(token string) *Receiver {
	return &Receiver{token: token, last: make(map[shard.TenantID]storconapi.NotifyAttachRequest)}
}

// Register adds PUT storconapi.NotifyAttachPath to rt.
func (r *Receiver) Register(rt *net.Router) {
	net.HandleJSON(rt, "PUT "+storconapi.NotifyAttachPath, 200, r.serve)
}

func (r *Receiver) serve(_ context.Context, hr *net.HTTPRequest, req storconapi.NotifyAttachRequest) (struct{}, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.requests++
	if r.token != "" && hr.Authorization != "Bearer "+r.token {
		return struct{}{}, net.Errorf(net.Unauthenticated, "computehook: missing or wrong token")
	}
	if r.failN > 0 {
		r.failN--
		return struct{}{}, net.Errorf(r.failCode, "computehook: failing as asked")
	}
	if req.TenantID == (shard.TenantID{}) {
		return struct{}{}, net.Errorf(net.InvalidArgument, "computehook: tenant_id is required")
	}
	r.last[req.TenantID] = canonical(req)
	r.count++
	return struct{}{}, nil
}

// Last returns the last notification accepted for t.
func (r *Receiver) Last(t shard.TenantID) (storconapi.NotifyAttachRequest, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	req, ok := r.last[t]
	if !ok {
		return req, false
	}
	return canonical(req), true
}

// Count is how many notifications were accepted.
func (r *Receiver) Count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.count
}

// Requests is how many requests arrived, refused ones included.
func (r *Receiver) Requests() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.requests
}

// FailNext answers the next n requests (after the token check) with the
// error an HTTP status carries: 429 → ResourceExhausted, 404 → NotFound,
// 503 → Unavailable, 500 → Internal, and so on (httpx writes these back as
// the same HTTP status).
func (r *Receiver) FailNext(n int, status int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.failN, r.failCode = n, codeForStatus(status)
}

// codeForStatus maps an HTTP error status to the code that httpx answers
// with that status (net/http itself is not allowed under nodes/).
func codeForStatus(status int) net.Code {
	switch {
	case status == 400:
		return net.InvalidArgument
	case status == 401:
		return net.Unauthenticated
	case status == 403:
		return net.PermissionDenied
	case status == 404:
		return net.NotFound
	case status == 408, status == 504:
		return net.DeadlineExceeded
	case status == 409:
		return net.AlreadyExists
	case status == 412:
		return net.FailedPrecondition
	case status == 429:
		return net.ResourceExhausted
	case status == 501:
		return net.Unimplemented
	case status == 503, status == 502:
		return net.Unavailable
	case status >= 400 && status < 500:
		return net.InvalidArgument
	}
	return net.Internal
}
