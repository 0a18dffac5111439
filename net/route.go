package net

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
)

// The control plane (the pageserver's management API, the storage
// controller's API and upcalls) is HTTP/JSON. Its handlers are written once
// against Router, which knows nothing of net/http: in real mode
// net/httpx serves a Router over HTTP, and in the simulator a Router is
// served over the seam as one unary method (MethodHTTP) whose message is a
// JSON envelope of the request, so the same routes, bodies and errors run in
// both. Clients use an HTTPClient: SeamHTTP over a Conn, or httpx's client.

// MethodHTTP is the unary method that carries control-plane requests over
// the seam.
const MethodHTTP = "/strata.http.HTTP/Do"

// HTTPRequest is one control-plane request.
type HTTPRequest struct {
	// Method is the HTTP method (GET, PUT, POST, DELETE).
	Method string `json:"method"`
	// Path is the URL path, without the query.
	Path string `json:"path"`
	// Query holds the query parameters (one value each).
	Query map[string]string `json:"query,omitempty"`
	// Authorization is the Authorization header ("Bearer <JWT>").
	Authorization string `json:"authorization,omitempty"`
	// Body is the JSON body (empty for none).
	Body json.RawMessage `json:"body,omitempty"`

	// params are the path's {name} segments, set by the router.
	params map[string]string
}

// Param returns the path segment the route pattern named name.
func (r *HTTPRequest) Param(name string) string { return r.params[name] }

// HTTPResponse is a route's answer on success.
type HTTPResponse struct {
	// Status is the HTTP status (200, 201, 202 …).
	Status int `json:"status"`
	// Body is the JSON body.
	Body json.RawMessage `json:"body,omitempty"`
}

// httpEnvelope is the seam's response message: a response or an error.
type httpEnvelope struct {
	Response *HTTPResponse `json:"response,omitempty"`
	Code     string        `json:"code,omitempty"`
	Msg      string        `json:"msg,omitempty"`
}

// RouteFunc serves one route. An error is answered with its Status code
// (Internal for a non-Status error).
type RouteFunc func(ctx context.Context, r *HTTPRequest) (*HTTPResponse, error)

type route struct {
	method string
	parts  []string // literal segments, or "{name}"
	fn     RouteFunc
}

// Router maps "METHOD /path/{param}/…" patterns to RouteFuncs. Patterns are
// matched segment by segment; a literal segment wins over a parameter at
// the same place, so "/v1/tenant/{id}/timeline" and "/v1/tenant/x/…" can
// coexist. Routes are registered before serving starts.
type Router struct {
	routes []route
}

// NewRouter returns an empty Router.
func NewRouter() *Router { return &Router{} }

// Handle registers fn for pattern ("PUT /v1/tenant/{tenant_shard_id}/location_config").
// It panics on a malformed or duplicate pattern: a programming error.
func (rt *Router) Handle(pattern string, fn RouteFunc) {
	method, path, ok := strings.Cut(pattern, " ")
	if !ok || method == "" || !strings.HasPrefix(path, "/") {
		panic("net: route pattern " + pattern + `: want "METHOD /path"`)
	}
	parts := strings.Split(strings.Trim(path, "/"), "/")
	for _, r := range rt.routes {
		if r.method == method && slices.Equal(r.parts, parts) {
			panic("net: duplicate route " + pattern)
		}
	}
	rt.routes = append(rt.routes, route{method: method, parts: parts, fn: fn})
}

// HandleJSON registers a route whose body decodes strictly into Req (an
// empty body is Req's zero value) and whose result is encoded as the body of
// a response with status ok.
func HandleJSON[Req, Resp any](rt *Router, pattern string, ok int, fn func(ctx context.Context, r *HTTPRequest, req Req) (Resp, error)) {
	rt.Handle(pattern, func(ctx context.Context, r *HTTPRequest) (*HTTPResponse, error) {
		var req Req
		if len(strings.TrimSpace(string(r.Body))) > 0 {
			if err := DecodeJSON(strings.NewReader(string(r.Body)), &req); err != nil {
				return nil, err
			}
		}
		resp, err := fn(ctx, r, req)
		if err != nil {
			return nil, err
		}
		b, err := json.Marshal(resp)
		if err != nil {
			return nil, Errorf(Internal, "encode response: %v", err)
		}
		return &HTTPResponse{Status: ok, Body: b}, nil
	})
}

// Serve routes r: NotFound for an unknown path, Unimplemented (HTTP 405's
// nearest code) for a known path with another method.
func (rt *Router) Serve(ctx context.Context, r *HTTPRequest) (*HTTPResponse, error) {
	parts := strings.Split(strings.Trim(r.Path, "/"), "/")
	var best *route
	var bestParams map[string]string
	bestScore, pathKnown := -1, false
	for i := range rt.routes {
		rr := &rt.routes[i]
		params, score, ok := match(rr.parts, parts)
		if !ok {
			continue
		}
		pathKnown = true
		if rr.method != r.Method || score <= bestScore {
			continue
		}
		best, bestParams, bestScore = rr, params, score
	}
	if best == nil {
		if pathKnown {
			return nil, Errorf(Unimplemented, "method %s not allowed on %s", r.Method, r.Path)
		}
		return nil, Errorf(NotFound, "no route for %s %s", r.Method, r.Path)
	}
	r.params = bestParams
	return best.fn(ctx, r)
}

// match reports whether path fits pattern, the named segments, and a score
// (the number of literal segments) to prefer the most specific pattern.
func match(pattern, path []string) (map[string]string, int, bool) {
	if len(pattern) != len(path) {
		return nil, 0, false
	}
	var params map[string]string
	score := 0
	for i, p := range pattern {
		if strings.HasPrefix(p, "{") && strings.HasSuffix(p, "}") {
			if path[i] == "" {
				return nil, 0, false
			}
			if params == nil {
				params = map[string]string{}
			}
			params[p[1:len(p)-1]] = path[i]
			continue
		}
		if p != path[i] {
			return nil, 0, false
		}
		score++
	}
	return params, score, true
}

// Register serves rt over the seam on m, as MethodHTTP.
func (rt *Router) Register(m *Mux) {
	HandleUnaryBytes(m, MethodHTTP, func(ctx context.Context, b []byte) ([]byte, error) {
		req, err := UnmarshalJSON[HTTPRequest](b)
		if err != nil {
			return nil, err
		}
		resp, err := rt.Serve(ctx, &req)
		var env httpEnvelope
		if err != nil {
			s := ToStatus(err)
			env.Code, env.Msg = s.Code.String(), s.Msg
		} else {
			env.Response = resp
		}
		return MarshalJSON(env)
	})
}

// HTTPClient makes control-plane requests: SeamHTTP in the simulator (and
// wherever a Conn is at hand), httpx.Client over real HTTP. in is encoded as
// the JSON body (nil for none); a 2xx answer's body is decoded into out (nil
// to ignore it). Errors are *Status with the code the server answered.
type HTTPClient interface {
	Do(ctx context.Context, req *HTTPRequest, in, out any) (status int, err error)
}

// SeamHTTP is an HTTPClient over a seam connection to a Router served with
// Register.
type SeamHTTP struct {
	Conn Conn
}

// Do implements HTTPClient.
func (c SeamHTTP) Do(ctx context.Context, req *HTTPRequest, in, out any) (int, error) {
	r := *req
	if in != nil {
		b, err := MarshalJSON(in)
		if err != nil {
			return 0, err
		}
		r.Body = b
	}
	b, err := MarshalJSON(&r)
	if err != nil {
		return 0, err
	}
	rb, err := c.Conn.Call(ctx, MethodHTTP, b)
	if err != nil {
		return 0, err
	}
	env, err := UnmarshalJSON[httpEnvelope](rb)
	if err != nil {
		return 0, err
	}
	if env.Response == nil {
		code := Internal
		for c := OK; c <= Unauthenticated; c++ {
			if c.String() == env.Code {
				code = c
			}
		}
		if code == OK {
			code = Internal
		}
		return 0, &Status{Code: code, Msg: env.Msg}
	}
	if out != nil && len(env.Response.Body) > 0 {
		// Lenient on answers: a newer server may add fields.
		if err := json.Unmarshal(env.Response.Body, out); err != nil {
			return env.Response.Status, Errorf(Internal, "%s %s: bad response body: %v", req.Method, req.Path, err)
		}
	}
	return env.Response.Status, nil
}

// String renders a request for logs.
func (r *HTTPRequest) String() string { return fmt.Sprintf("%s %s", r.Method, r.Path) }

// DialHTTP is an HTTPClient that dials Addr over Net for each request and
// closes the connection after it: the simplest client that survives the
// server's restarts, for control-plane calls that are rare (upcalls,
// heartbeats, reconciles), not for hot paths.
type DialHTTP struct {
	Net  Network
	Addr string
}

// Do implements HTTPClient.
func (c DialHTTP) Do(ctx context.Context, req *HTTPRequest, in, out any) (int, error) {
	conn, err := c.Net.Dial(ctx, c.Addr)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	return SeamHTTP{Conn: conn}.Do(ctx, req, in, out)
}

// String names the client for logs.
func (c DialHTTP) String() string { return "seam http " + c.Addr }
