package nettest

import (
	"context"
	"strings"
	"testing"

	"github.com/stratadb/strata/net"
)

type kv struct {
	Key   string `json:"key"`
	Value string `json:"value,omitempty"`
}

// HTTPRouter returns the router RunHTTP expects behind its client.
func HTTPRouter() *net.Router {
	rt := net.NewRouter()
	net.HandleJSON(rt, "PUT /v1/item/{key}", 201, func(ctx context.Context, r *net.HTTPRequest, in kv) (kv, error) {
		if in.Value == "" {
			return kv{}, net.Errorf(net.InvalidArgument, "value is required")
		}
		return kv{Key: r.Param("key"), Value: in.Value + r.Query["suffix"]}, nil
	})
	net.HandleJSON(rt, "GET /v1/item/{key}", 200, func(ctx context.Context, r *net.HTTPRequest, _ struct{}) (kv, error) {
		if r.Param("key") == "missing" {
			return kv{}, net.Errorf(net.NotFound, "no item %q", r.Param("key"))
		}
		return kv{Key: r.Param("key"), Value: r.Authorization}, nil
	})
	net.HandleJSON(rt, "GET /v1/item/special", 200, func(ctx context.Context, r *net.HTTPRequest, _ struct{}) (kv, error) {
		return kv{Key: "literal"}, nil
	})
	net.HandleJSON(rt, "DELETE /v1/item/{key}", 200, func(ctx context.Context, r *net.HTTPRequest, _ struct{}) (*kv, error) {
		return nil, nil
	})
	return rt
}

// RunHTTP checks a control-plane client against a server serving
// HTTPRouter: bodies, path parameters, query, authorization, literal routes
// beating parameters, status codes, errors with their codes, unknown
// fields refused, unknown routes and methods.
func RunHTTP(t *testing.T, ctx context.Context, c net.HTTPClient) {
	t.Helper()
	var out kv
	st, err := c.Do(ctx, &net.HTTPRequest{Method: "PUT", Path: "/v1/item/a", Query: map[string]string{"suffix": "!"}}, kv{Value: "x"}, &out)
	if err != nil || st != 201 || out != (kv{Key: "a", Value: "x!"}) {
		t.Errorf("PUT: %d %+v %v", st, out, err)
	}
	st, err = c.Do(ctx, &net.HTTPRequest{Method: "GET", Path: "/v1/item/b", Authorization: "Bearer t"}, nil, &out)
	if err != nil || st != 200 || out != (kv{Key: "b", Value: "Bearer t"}) {
		t.Errorf("GET: %d %+v %v", st, out, err)
	}
	st, err = c.Do(ctx, &net.HTTPRequest{Method: "GET", Path: "/v1/item/special"}, nil, &out)
	if err != nil || out.Key != "literal" {
		t.Errorf("literal route: %d %+v %v", st, out, err)
	}
	if _, err := c.Do(ctx, &net.HTTPRequest{Method: "DELETE", Path: "/v1/item/b"}, nil, nil); err != nil {
		t.Errorf("DELETE: %v", err)
	}
	for _, tc := range []struct {
		req  net.HTTPRequest
		in   any
		want net.Code
		msg  string
	}{
		{net.HTTPRequest{Method: "PUT", Path: "/v1/item/a"}, kv{}, net.InvalidArgument, "value is required"},
		{net.HTTPRequest{Method: "PUT", Path: "/v1/item/a"}, map[string]string{"value": "x", "extra": "y"}, net.InvalidArgument, "unknown field"},
		{net.HTTPRequest{Method: "GET", Path: "/v1/item/missing"}, nil, net.NotFound, `no item "missing"`},
		{net.HTTPRequest{Method: "GET", Path: "/v2/nothing"}, nil, net.NotFound, "no route"},
		{net.HTTPRequest{Method: "POST", Path: "/v1/item/a"}, nil, net.Unimplemented, "not allowed"},
	} {
		_, err := c.Do(ctx, &tc.req, tc.in, nil)
		if net.CodeOf(err) != tc.want || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%s %s: %v, want %v containing %q", tc.req.Method, tc.req.Path, err, tc.want, tc.msg)
		}
	}
}
