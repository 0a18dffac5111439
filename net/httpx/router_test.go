package httpx_test

import (
	"context"
	"net/http/httptest"
	"testing"

	"github.com/stratadb/strata/net/httpx"
	"github.com/stratadb/strata/net/nettest"
)

func TestRouterOverHTTP(t *testing.T) {
	srv := httptest.NewServer(httpx.Router(nettest.HTTPRouter()))
	defer srv.Close()
	nettest.RunHTTP(t, context.Background(), httpx.Client{Base: srv.URL, HTTP: srv.Client()})
}
