// Package httpx is the small HTTP/JSON layer of the control plane (real mode
// only; the simulator carries control messages over the net seam instead).
//
// Server side, JSON adapts a typed func(ctx, Req) (Resp, error) into an
// http.Handler: the body is read with a size limit, decoded strictly (unknown
// fields and trailing data are refused), and errors become an HTTP status
// plus a JSON error body {"msg": "...", "code": "NotFound"}. Client side,
// DoJSON sends a JSON request and maps the response back: 2xx decodes into
// the output, anything else becomes a *net.Status.
//
// Invariants: every error DoJSON returns is a *net.Status; the code survives
// a round trip through HTTP exactly when the server wrote an error body
// (the body names the code), and otherwise follows HTTPCode's mapping of
// the HTTP status; no body over the limit is read on either side.
package httpx
