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
	ok := Config{ID: "p", TenantID: "t", TimelineID: "l", Safekeepers: []string{"a:1"}}
	for _, tc := range []struct {
		name string
		edit func(*Config)
		ok   bool
	}{
		{"defaults", func(*Config) {}, true},
		{"missing ids", func(c *Config) { c.ID = "" }, false},
		{"no safekeepers", func(c *Config) { c.Safekeepers = nil }, false},
		{"backoff inverted", func(c *Config) { c.ReconnectBackoff, c.MaxReconnectBackoff = time.Second, time.Millisecond }, false},
		{"backoff above the default maximum", func(c *Config) { c.ReconnectBackoff = time.Minute }, false},
		{"negative backoff", func(c *Config) { c.ReconnectBackoff = -1 }, false},
		{"negative PeerTimeout", func(c *Config) { c.PeerTimeout = -1 }, false},
		{"negative CallTimeout", func(c *Config) { c.CallTimeout = -1 }, false},
		{"negative MaxUncommittedBytes", func(c *Config) { c.MaxUncommittedBytes = -1 }, false},
		{"negative MaxBufferBytes", func(c *Config) { c.MaxBufferBytes = -1 }, false},
		{"MaxRecoverBytes below MaxAppendBytes", func(c *Config) { c.MaxAppendBytes, c.MaxRecoverBytes = 4096, 1024 }, false},
		{"small windows", func(c *Config) { c.MaxAppendBytes, c.MaxRecoverBytes, c.MaxBufferBytes = 1024, 2048, 4096 }, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := ok
			tc.edit(&c)
			before := c
			err := c.Validate()
			if (err == nil) != tc.ok || (err != nil && !errors.Is(err, ErrConfig)) {
				t.Fatalf("Validate = %v, want ok=%t (and ErrConfig otherwise)", err, tc.ok)
			}
			if c.StartLSN != before.StartLSN || c.PeerTimeout != before.PeerTimeout {
				t.Fatal("Validate changed the config")
			}
		})
	}
	if d := ok.withDefaults(); d.StartLSN != DefaultStartLSN || d.PeerTimeout != DefaultPeerTimeout || d.MaxUncommittedBytes != DefaultMaxUncommittedBytes {
		t.Fatalf("withDefaults = %+v", d)
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
