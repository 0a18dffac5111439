package httpx

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"

	"github.com/stratadb/strata/net"
)

// Router serves a transport-independent net.Router over HTTP: the request's
// method, path, query (first value of each parameter), Authorization header
// and body become a net.HTTPRequest; a route's response is written with its
// status and JSON body; an error is written as WriteError does. Unknown
// paths are 404, a known path with another method 405.
func Router(rt *net.Router) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body := http.MaxBytesReader(w, r.Body, MaxBodyBytes)
		b, err := io.ReadAll(body)
		if err != nil {
			var tooBig *http.MaxBytesError
			if errors.As(err, &tooBig) {
				WriteError(w, net.Errorf(net.ResourceExhausted, "httpx: request body over %d bytes", MaxBodyBytes))
				return
			}
			WriteError(w, net.Errorf(net.InvalidArgument, "httpx: read request body: %v", err))
			return
		}
		req := &net.HTTPRequest{Method: r.Method, Path: r.URL.Path, Authorization: r.Header.Get("Authorization")}
		if len(bytes.TrimSpace(b)) > 0 {
			req.Body = b
		}
		if q := r.URL.Query(); len(q) > 0 {
			req.Query = make(map[string]string, len(q))
			for k, v := range q {
				req.Query[k] = v[0]
			}
		}
		resp, err := rt.Serve(r.Context(), req)
		if err != nil {
			s := net.ToStatus(err)
			switch s.Code {
			case net.Unimplemented:
				writeJSON(w, http.StatusMethodNotAllowed, errorBody{Code: s.Code.String(), Msg: s.Msg})
				return
			case net.Internal, net.Unknown:
				slog.ErrorContext(r.Context(), "httpx: route failed", "method", r.Method, "path", r.URL.Path, "err", err)
			}
			WriteError(w, err)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(resp.Status)
		if len(resp.Body) > 0 {
			_, _ = w.Write(append(resp.Body, '\n'))
		}
	})
}

// Client is a net.HTTPClient over real HTTP to Base ("http://host:port").
type Client struct {
	Base string
	HTTP *http.Client
}

var _ net.HTTPClient = Client{}

// Do implements net.HTTPClient.
func (c Client) Do(ctx context.Context, req *net.HTTPRequest, in, out any) (int, error) {
	u := strings.TrimSuffix(c.Base, "/") + req.Path
	if len(req.Query) > 0 {
		q := url.Values{}
		for k, v := range req.Query {
			q.Set(k, v)
		}
		u += "?" + q.Encode()
	}
	var body io.Reader
	if in != nil {
		b, err := net.MarshalJSON(in)
		if err != nil {
			return 0, err
		}
		body = bytes.NewReader(b)
	} else if len(req.Body) > 0 {
		body = bytes.NewReader(req.Body)
	}
	hr, err := http.NewRequestWithContext(ctx, req.Method, u, body)
	if err != nil {
		return 0, net.Errorf(net.InvalidArgument, "httpx: build request %s %s: %v", req.Method, u, err)
	}
	if body != nil {
		hr.Header.Set("Content-Type", "application/json")
	}
	if req.Authorization != "" {
		hr.Header.Set("Authorization", req.Authorization)
	}
	client := c.HTTP
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(hr)
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return 0, net.ToStatus(ctxErr)
		}
		return 0, net.Errorf(net.Unavailable, "httpx: %s %s: %v", req.Method, u, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, MaxBodyBytes+1))
	if err != nil {
		return 0, net.Errorf(net.Unavailable, "httpx: %s %s: read response: %v", req.Method, u, err)
	}
	if len(b) > MaxBodyBytes {
		return 0, net.Errorf(net.ResourceExhausted, "httpx: %s %s: response over %d bytes", req.Method, u, MaxBodyBytes)
	}
	if resp.StatusCode < 200 || resp.StatusCode >= 300 {
		return resp.StatusCode, responseError(resp.StatusCode, b)
	}
	if out != nil && len(bytes.TrimSpace(b)) > 0 {
		if err := json.Unmarshal(b, out); err != nil {
			return resp.StatusCode, net.Errorf(net.Internal, "httpx: %s %s: bad response body: %v", req.Method, u, err)
		}
	}
	return resp.StatusCode, nil
}

// String names the client for logs.
func (c Client) String() string { return fmt.Sprintf("http client %s", c.Base) }
