package walproposer

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/stratadb/strata/clock"
	"github.com/stratadb/strata/net/grpcx"
	"github.com/stratadb/strata/nodes/node"
)

func testEnv() node.Env {
	return node.Env{ID: "c", Clock: clock.NewReal(), Net: grpcx.New(grpcx.Options{}), Rand: rand.New(rand.NewPCG(1, 1)),
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Metrics: prometheus.NewRegistry()}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"missing ids", Config{Safekeepers: []string{"a:1"}}, false},
		{"no safekeepers", Config{ID: "p", TenantID: "t", TimelineID: "l"}, false},
		{"backoff inverted", Config{ID: "p", TenantID: "t", TimelineID: "l", Safekeepers: []string{"a:1"},
			ReconnectBackoff: time.Second, MaxReconnectBackoff: time.Millisecond}, false},
		{"defaults", Config{ID: "p", TenantID: "t", TimelineID: "l", Safekeepers: []string{"a:1"}}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if (err == nil) != tc.ok {
				t.Fatalf("Validate = %v", err)
			}
			if tc.ok && (tc.cfg.StartLSN == 0 || tc.cfg.PeerTimeout == 0) {
				t.Fatalf("defaults not filled: %+v", tc.cfg)
			}
		})
	}
}

// Without reachable safekeepers nothing is elected: Append waits until its
// context ends, and Stop releases every waiter with ErrStopped.
func TestUnreachableThenStop(t *testing.T) {
	w, err := New(testEnv(), Config{ID: "p", TenantID: "t", TimelineID: "l",
		Safekeepers: []string{"127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3"}, CallTimeout: 100 * time.Millisecond,
		MaxReconnectBackoff: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	w.Start(context.Background())
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if _, err := w.Append(ctx, [][]byte{[]byte("x")}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Append = %v, want deadline exceeded", err)
	}
	st, err := w.Status(context.Background())
	if err != nil || st.Elected || st.CommitLSN != 0 {
		t.Fatalf("status %+v %v", st, err)
	}
	done := make(chan error, 1)
	go func() { done <- w.WaitCommitted(context.Background(), 0x2000) }()
	time.Sleep(50 * time.Millisecond)
	w.Stop()
	select {
	case err := <-done:
		if !errors.Is(err, ErrStopped) {
			t.Fatalf("WaitCommitted after Stop = %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Stop did not release WaitCommitted")
	}
}
