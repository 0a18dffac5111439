package storconapi

import (
	"errors"
	"testing"
)

func TestRouteFillsParams(t *testing.T) {
	c := Client{Token: "tok"}
	for _, tc := range []struct {
		pattern string
		params  []string
		method  string
		path    string
	}{
		{RouteNodeList, nil, "GET", "/control/v1/node"},
		{RouteNodeDrain, []string{"7"}, "PUT", "/control/v1/node/7/drain"},
		{RouteTimelineDelete, []string{"aa", "bb"}, "DELETE", "/v1/tenant/aa/timeline/bb"},
	} {
		r := c.route(tc.pattern, tc.params...)
		if r.Method != tc.method || r.Path != tc.path || r.Authorization != "Bearer tok" {
			t.Errorf("%s %v: got %s %s auth %q", tc.pattern, tc.params, r.Method, r.Path, r.Authorization)
		}
	}
}

func TestHostPort(t *testing.T) {
	for _, tc := range []struct {
		addr string
		host string
		port uint16
		bad  bool
	}{
		{"ps-1:9898", "ps-1", 9898, false},
		{"[::1]:80", "::1", 80, false},
		{"ps-1", "", 0, true},
		{":80", "", 0, true},
		{"h:0", "", 0, true},
		{"h:70000", "", 0, true},
	} {
		h, p, err := SplitHostPort(tc.addr)
		if tc.bad {
			if !errors.Is(err, ErrBadRequest) {
				t.Errorf("%q: err %v, want ErrBadRequest", tc.addr, err)
			}
			continue
		}
		if err != nil || h != tc.host || p != tc.port {
			t.Errorf("%q: got %q %d %v", tc.addr, h, p, err)
		}
		if back := JoinHostPort(h, p); back != tc.addr {
			t.Errorf("JoinHostPort(%q, %d) = %q, want %q", h, p, back, tc.addr)
		}
	}
}

func TestNodeRegisterValidate(t *testing.T) {
	ok := NodeRegisterRequest{NodeID: 1, ListenHTTPAddr: "h", ListenHTTPPort: 1}
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []NodeRegisterRequest{
		{ListenHTTPAddr: "h", ListenHTTPPort: 1},
		{NodeID: 1 << 63, ListenHTTPAddr: "h", ListenHTTPPort: 1},
		{NodeID: 1, ListenHTTPPort: 1},
		{NodeID: 1, ListenHTTPAddr: "h"},
	} {
		if err := bad.Validate(); !errors.Is(err, ErrBadRequest) {
			t.Errorf("%+v: err %v, want ErrBadRequest", bad, err)
		}
	}
}
