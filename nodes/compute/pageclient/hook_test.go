package pageclient

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/stratadb/strata/engine/shard"
	"github.com/stratadb/strata/net"
	"github.com/stratadb/strata/nodes/storcon/storconapi"
)

func addrOf(_ context.Context, id uint64) (string, error) {
	if id == 0 || id > 9 {
		return "", fmt.Errorf("node %d unknown", id)
	}
	return fmt.Sprintf("ps-%d:6400", id), nil
}

func notify(stripe *uint32, nodes ...uint64) storconapi.NotifyAttachRequest {
	req := storconapi.NotifyAttachRequest{TenantID: testTenant, StripeSize: stripe}
	for i, n := range nodes {
		req.Shards = append(req.Shards, storconapi.NotifyAttachShard{NodeID: n, ShardNumber: shard.ShardNumber(i)})
	}
	return req
}

func TestMapFromNotify(t *testing.T) {
	stripe := uint32(8)
	reversed := notify(&stripe, 3, 4)
	reversed.Shards[0], reversed.Shards[1] = reversed.Shards[1], reversed.Shards[0]
	repeated := notify(&stripe, 3, 4)
	repeated.Shards[1].ShardNumber = 0
	for _, tc := range []struct {
		name string
		req  storconapi.NotifyAttachRequest
		want string // ShardMap.String, or "" for an error
		err  error
	}{
		{"unsharded", notify(nil, 2), ShardMap{Addrs: []string{"ps-2:6400"}}.String(), nil},
		{"four shards", notify(&stripe, 1, 2, 1, 2), ShardMap{Count: 4, StripeSize: 8, Addrs: []string{"ps-1:6400", "ps-2:6400", "ps-1:6400", "ps-2:6400"}}.String(), nil},
		{"any order", reversed, ShardMap{Count: 2, StripeSize: 8, Addrs: []string{"ps-3:6400", "ps-4:6400"}}.String(), nil},
		{"no shards", notify(&stripe), "", ErrNotify},
		{"many shards without a stripe", notify(nil, 1, 2), "", ErrNotify},
		{"repeated shard", repeated, "", ErrNotify},
		{"unknown node", notify(&stripe, 1, 42), "", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := MapFromNotify(context.Background(), tc.req, addrOf)
			switch {
			case tc.want == "" && err == nil:
				t.Fatalf("got %s, want an error", m)
			case tc.want == "" && tc.err != nil && !errors.Is(err, tc.err):
				t.Fatalf("error %v, want %v", err, tc.err)
			case tc.want != "" && (err != nil || m.String() != tc.want):
				t.Fatalf("got %s, %v; want %s", m, err, tc.want)
			}
		})
	}
}

// TestHookReceiver: a notification swaps the client's map (once: a repeat
// is a no-op that still answers 200); another tenant, a bad token, a
// malformed body, an unresolvable node and a shrink get the codes the
// controller reads as fatal (4xx) or retryable (503), and leave the map.
func TestHookReceiver(t *testing.T) {
	f := newFake("ps-0", 1)
	runWorld(t, []*fake{f}, func(w *world) {
		c := w.client(Config{}, one(f))
		defer c.Close()
		h := NewHookReceiver(c, "tok", addrOf)
		auth := &net.HTTPRequest{Authorization: "Bearer tok"}
		stripe := uint32(16)
		if _, err := h.serve(w.ctx, auth, notify(&stripe, 1, 2)); err != nil {
			t.Fatalf("notify: %v", err)
		}
		want := ShardMap{Count: 2, StripeSize: 16, Addrs: []string{"ps-1:6400", "ps-2:6400"}}.String()
		if got := c.ShardMap().String(); got != want {
			t.Fatalf("map %s, want %s", got, want)
		}
		if _, err := h.serve(w.ctx, auth, notify(&stripe, 1, 2)); err != nil || c.Stats().MapUpdates != 1 || h.Received() != 2 {
			t.Fatalf("repeat: %v, %d updates, %d received", err, c.Stats().MapUpdates, h.Received())
		}
		other := notify(&stripe, 1, 2)
		other.TenantID = shard.TenantID{9}
		for _, tc := range []struct {
			name string
			hr   *net.HTTPRequest
			req  storconapi.NotifyAttachRequest
			code net.Code
		}{
			{"no token", &net.HTTPRequest{}, notify(&stripe, 1, 2), net.Unauthenticated},
			{"other tenant", auth, other, net.NotFound},
			{"malformed", auth, notify(&stripe), net.InvalidArgument},
			{"unknown node", auth, notify(&stripe, 1, 2, 3, 42), net.Unavailable},
			{"shrink", auth, notify(nil, 1), net.FailedPrecondition},
		} {
			if _, err := h.serve(w.ctx, tc.hr, tc.req); net.CodeOf(err) != tc.code {
				t.Errorf("%s: %v, want %v", tc.name, err, tc.code)
			}
		}
		if got := c.ShardMap().String(); got != want {
			t.Fatalf("map %s after refused notifications, want %s", got, want)
		}
	})
}
