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

	"github.com/stratadb/strata/net"
)

// MaxBodyBytes bounds request and response bodies. Control-plane messages
// are small; the data plane's limit is the ceiling.
const MaxBodyBytes = net.MaxMessageBytes

// errorBody is the JSON body of every error response.
type errorBody struct {
	Msg  string `json:"msg"`
	Code string `json:"code,omitempty"`
}

// HTTPStatus maps a status code to the HTTP status an error response
// carries.
func HTTPStatus(c net.Code) int {
	switch c {
	case net.OK:
		return http.StatusOK
	case net.InvalidArgument, net.OutOfRange:
		return http.StatusBadRequest
	case net.NotFound:
		return http.StatusNotFound
	case net.PermissionDenied:
		return http.StatusForbidden
	case net.Unauthenticated:
		return http.StatusUnauthorized
	case net.AlreadyExists, net.Aborted:
		return http.StatusConflict
	case net.FailedPrecondition:
		return http.StatusPreconditionFailed
	case net.Unavailable:
		return http.StatusServiceUnavailable
	case net.ResourceExhausted:
		return http.StatusTooManyRequests
	case net.Unimplemented:
		return http.StatusNotImplemented
	case net.DeadlineExceeded:
		return http.StatusRequestTimeout
	}
	return http.StatusInternalServerError
}

// HTTPCode maps an HTTP status without an error body (e.g. from a proxy) to
// a status code.
func HTTPCode(status int) net.Code {
	switch {
	case status >= 200 && status < 300:
		return net.OK
	case status == http.StatusBadRequest:
		return net.InvalidArgument
	case status == http.StatusUnauthorized:
		return net.Unauthenticated
	case status == http.StatusForbidden:
		return net.PermissionDenied
	case status == http.StatusNotFound:
		return net.NotFound
	case status == http.StatusConflict:
		return net.AlreadyExists
	case status == http.StatusPreconditionFailed:
		return net.FailedPrecondition
	case status == http.StatusRequestEntityTooLarge, status == http.StatusTooManyRequests:
		return net.ResourceExhausted
	case status == http.StatusNotImplemented:
		return net.Unimplemented
	case status == http.StatusServiceUnavailable, status == http.StatusBadGateway:
		return net.Unavailable
	case status == http.StatusGatewayTimeout, status == http.StatusRequestTimeout:
		return net.DeadlineExceeded
	case status >= 400 && status < 500:
		return net.InvalidArgument
	}
	return net.Internal
}

// codeByName parses a Code's String form.
func codeByName(name string) (net.Code, bool) {
	for c := net.OK; c <= net.Unauthenticated; c++ {
		if c.String() == name {
			return c, true
		}
	}
	return net.Unknown, false
}

// WriteError writes err as an error response: the HTTP status from its code
// and a JSON body naming the code. Non-Status errors are Internal.
func WriteError(w http.ResponseWriter, err error) {
	s := net.ToStatus(err)
	if s == nil {
		s = &net.Status{Code: net.Internal, Msg: "httpx: WriteError called with nil error"}
	}
	writeJSON(w, HTTPStatus(s.Code), errorBody{Code: s.Code.String(), Msg: s.Msg})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		b, _ = json.Marshal(errorBody{Code: net.Internal.String(), Msg: "httpx: encode response: " + err.Error()})
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	// A failed write means the client went away; nothing useful to do.
	_, _ = w.Write(append(b, '\n'))
}

// JSON adapts fn into an http.Handler. The request body is decoded into Req
// (an empty body decodes as Req's zero value, for GET and DELETE); fn's
// result is written as JSON with status 200, or its error as WriteError
// does. Route methods and paths with http.ServeMux patterns
// ("POST /v1/tenant/{id}"); fn gets the request for path values and
// headers.
func JSON[Req, Resp any](fn func(ctx context.Context, r *http.Request, req Req) (Resp, error)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req Req
		if err := decodeBody(w, r, &req); err != nil {
			WriteError(w, err)
			return
		}
		resp, err := fn(r.Context(), r, req)
		if err != nil {
			if s := net.ToStatus(err); s.Code == net.Internal || s.Code == net.Unknown {
				slog.ErrorContext(r.Context(), "httpx: handler failed", "method", r.Method, "path", r.URL.Path, "err", err)
			}
			WriteError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, resp)
	})
}

func decodeBody(w http.ResponseWriter, r *http.Request, v any) error {
	body := http.MaxBytesReader(w, r.Body, MaxBodyBytes)
	b, err := io.ReadAll(body)
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return net.Errorf(net.ResourceExhausted, "httpx: request body over %d bytes", MaxBodyBytes)
		}
		return net.Errorf(net.InvalidArgument, "httpx: read request body: %v", err)
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return nil
	}
	return net.DecodeJSON(bytes.NewReader(b), v)
}

// DoJSON sends in (if not nil) as a JSON body with the given HTTP method to
// url and decodes a 2xx response into out (if not nil). Errors are
// *net.Status: transport failures Unavailable, ctx ending Canceled or
// DeadlineExceeded, error responses the code their body names (or
// HTTPCode of the status).
func DoJSON(ctx context.Context, client *http.Client, method, url string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := net.MarshalJSON(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, body)
	if err != nil {
		return net.Errorf(net.InvalidArgument, "httpx: build request %s %s: %v", method, url, err)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return net.ToStatus(ctxErr)
		}
		return net.Errorf(net.Unavailable, "httpx: %s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, MaxBodyBytes+1))
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return net.ToStatus(ctxErr)
		}
		return net.Errorf(net.Unavailable, "httpx: %s %s: read response: %v", method, url, err)
	}
	if len(b) > MaxBodyBytes {
		return net.Errorf(net.ResourceExhausted, "httpx: %s %s: response over %d bytes", method, url, MaxBodyBytes)
	}
	if resp.StatusCode < 200 || resp.StatusCode >= 300 {
		return responseError(resp.StatusCode, b)
	}
	if out == nil {
		return nil
	}
	if err := net.DecodeJSON(bytes.NewReader(b), out); err != nil {
		return net.Errorf(net.Internal, "httpx: %s %s: bad response body: %v", method, url, err)
	}
	return nil
}

func responseError(status int, body []byte) error {
	var eb errorBody
	if json.Unmarshal(body, &eb) == nil {
		if c, ok := codeByName(eb.Code); ok && c != net.OK {
			return &net.Status{Code: c, Msg: eb.Msg}
		}
	}
	msg := string(bytes.TrimSpace(body))
	if len(msg) > 200 {
		msg = msg[:200] + "..."
	}
	return &net.Status{Code: HTTPCode(status), Msg: fmt.Sprintf("HTTP %d: %s", status, msg)}
}
