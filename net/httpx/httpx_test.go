package httpx_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stratadb/strata/net"
	"github.com/stratadb/strata/net/httpx"
)

type createReq struct {
	Name string `json:"name"`
	Size int    `json:"size"`
}

type createResp struct {
	ID   string `json:"id"`
	Size int    `json:"size"`
}

func newServer(t *testing.T) *httptest.Server {
	mux := http.NewServeMux()
	mux.Handle("POST /v1/thing/{id}", httpx.JSON(func(ctx context.Context, r *http.Request, req createReq) (createResp, error) {
		switch req.Name {
		case "":
			return createResp{}, net.Errorf(net.InvalidArgument, "name is required")
		case "exists":
			return createResp{}, net.Errorf(net.AlreadyExists, "thing exists")
		case "plain":
			return createResp{}, errors.New("a plain failure")
		}
		return createResp{ID: r.PathValue("id") + "/" + req.Name, Size: req.Size}, nil
	}))
	mux.Handle("GET /v1/thing/{id}", httpx.JSON(func(ctx context.Context, r *http.Request, _ struct{}) (createResp, error) {
		if r.PathValue("id") != "1" {
			return createResp{}, net.Errorf(net.NotFound, "no thing %s", r.PathValue("id"))
		}
		return createResp{ID: "1"}, nil
	}))
	mux.HandleFunc("GET /proxyerror", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "upstream down", http.StatusBadGateway)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func TestDoJSON(t *testing.T) {
	srv := newServer(t)
	ctx := context.Background()
	var out createResp
	if err := httpx.DoJSON(ctx, srv.Client(), "POST", srv.URL+"/v1/thing/7", createReq{Name: "a", Size: 3}, &out); err != nil {
		t.Fatal(err)
	}
	if out != (createResp{ID: "7/a", Size: 3}) {
		t.Fatalf("out = %+v", out)
	}
	if err := httpx.DoJSON(ctx, srv.Client(), "GET", srv.URL+"/v1/thing/1", nil, &out); err != nil || out.ID != "1" {
		t.Fatalf("GET = %+v %v", out, err)
	}
	cases := []struct {
		name, method, path string
		in                 any
		code               net.Code
		msg                string
	}{
		{"handler InvalidArgument", "POST", "/v1/thing/1", createReq{}, net.InvalidArgument, "name is required"},
		{"handler AlreadyExists keeps its code", "POST", "/v1/thing/1", createReq{Name: "exists"}, net.AlreadyExists, "thing exists"},
		{"plain error is Internal", "POST", "/v1/thing/1", createReq{Name: "plain"}, net.Internal, "plain failure"},
		{"NotFound", "GET", "/v1/thing/2", nil, net.NotFound, "no thing 2"},
		{"unknown field", "POST", "/v1/thing/1", map[string]any{"name": "a", "bogus": 1}, net.InvalidArgument, "bogus"},
		{"wrong type", "POST", "/v1/thing/1", map[string]any{"name": 5}, net.InvalidArgument, ""},
		{"no route", "GET", "/nope", nil, net.NotFound, ""},
		{"method not allowed", "DELETE", "/v1/thing/1", nil, net.InvalidArgument, ""},
		{"proxy error without body", "GET", "/proxyerror", nil, net.Unavailable, "upstream down"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := httpx.DoJSON(ctx, srv.Client(), tc.method, srv.URL+tc.path, tc.in, &out)
			var st *net.Status
			if !errors.As(err, &st) {
				t.Fatalf("err = %v (%T), want *net.Status", err, err)
			}
			if st.Code != tc.code || !strings.Contains(st.Msg, tc.msg) {
				t.Fatalf("got %v %q, want %v containing %q", st.Code, st.Msg, tc.code, tc.msg)
			}
		})
	}
}

func TestRawRequests(t *testing.T) {
	srv := newServer(t)
	cases := []struct {
		name   string
		body   string
		status int
		code   string
	}{
		{"trailing data", `{"name":"a"} {"name":"b"}`, 400, "InvalidArgument"},
		{"malformed", `{"name":`, 400, "InvalidArgument"},
		{"empty body is zero value", ``, 400, "InvalidArgument"},
		{"too big", `{"name":"` + strings.Repeat("x", httpx.MaxBodyBytes) + `"}`, 429, "ResourceExhausted"},
		{"ok", `{"name":"n"}`, 200, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := srv.Client().Post(srv.URL+"/v1/thing/1", "application/json", strings.NewReader(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d (%s)", resp.StatusCode, tc.status, b)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
				t.Fatalf("content type %q", ct)
			}
			if tc.code != "" && !strings.Contains(string(b), `"code":"`+tc.code+`"`) {
				t.Fatalf("body %s lacks code %s", b, tc.code)
			}
		})
	}
}

func TestStatusMapping(t *testing.T) {
	cases := []struct {
		code net.Code
		http int
	}{
		{net.InvalidArgument, 400}, {net.NotFound, 404}, {net.PermissionDenied, 403},
		{net.Unauthenticated, 401}, {net.FailedPrecondition, 412}, {net.AlreadyExists, 409}, {net.DeadlineExceeded, 408},
		{net.Unavailable, 503}, {net.ResourceExhausted, 429}, {net.Internal, 500},
		{net.DataLoss, 500}, {net.Unknown, 500},
	}
	for _, tc := range cases {
		if got := httpx.HTTPStatus(tc.code); got != tc.http {
			t.Errorf("HTTPStatus(%v) = %d, want %d", tc.code, got, tc.http)
		}
	}
	back := map[int]net.Code{400: net.InvalidArgument, 401: net.Unauthenticated, 403: net.PermissionDenied,
		404: net.NotFound, 408: net.DeadlineExceeded, 409: net.AlreadyExists, 412: net.FailedPrecondition, 429: net.ResourceExhausted, 503: net.Unavailable,
		504: net.DeadlineExceeded, 500: net.Internal, 418: net.InvalidArgument}
	for status, want := range back {
		if got := httpx.HTTPCode(status); got != want {
			t.Errorf("HTTPCode(%d) = %v, want %v", status, got, want)
		}
	}
}

func TestDoJSONTransportErrors(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	}))
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := httpx.DoJSON(ctx, srv.Client(), "GET", srv.URL, nil, nil); net.CodeOf(err) != net.DeadlineExceeded {
		t.Errorf("slow server: %v, want DeadlineExceeded", err)
	}
	url := srv.URL
	srv.Close()
	if err := httpx.DoJSON(context.Background(), http.DefaultClient, "GET", url, nil, nil); net.CodeOf(err) != net.Unavailable {
		t.Errorf("closed server: %v, want Unavailable", err)
	}
	if err := httpx.DoJSON(context.Background(), http.DefaultClient, "GET", "::bad", nil, nil); net.CodeOf(err) != net.InvalidArgument {
		t.Errorf("bad url: %v, want InvalidArgument", err)
	}
}
