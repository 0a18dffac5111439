package safekeeper

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/stratadb/strata/clock"
	"github.com/stratadb/strata/nodes/broker"
	"github.com/stratadb/strata/nodes/node"
	"github.com/stratadb/strata/sim/simdisk"
	"github.com/stratadb/strata/sim/simnet"
)

// syncBuffer is a log sink safe for the safekeeper's tasks.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestPublishFailuresAreVisible: with nobody at the broker address, every
// publication round fails; the failures are counted, logged at warn level
// once (not once per round), and after PublishFailureThreshold Ready
// reports the safekeeper not ready. When the broker appears, Ready is nil
// again and the recovery is logged.
func TestPublishFailuresAreVisible(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	clk := clock.NewReal()
	network := simnet.New(clk, rand.New(rand.NewPCG(1, 2)), simnet.Options{})
	logs := &syncBuffer{}
	reg := prometheus.NewRegistry()
	env := node.Env{ID: "sk-1", Clock: clk, Net: network.Node("sk-1"), Disk: simdisk.New(simdisk.Options{}),
		Rand: rand.New(rand.NewPCG(1, 1)), Log: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo})), Metrics: reg}
	const threshold = 300 * time.Millisecond
	sk, err := New(env, Config{NodeID: "sk-1", ListenAddr: "sk-1:5454", BrokerAddr: "broker:50051",
		PublishInterval: 20 * time.Millisecond, PublishFailureThreshold: threshold, CallTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := sk.Ready(); !errors.Is(err, ErrNotServing) {
		t.Fatalf("Ready before Start = %v, want ErrNotServing", err)
	}
	if err := sk.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer sk.Stop(ctx)
	started := time.Now()

	// Not ready only once the threshold has passed.
	var notReady error
	for notReady == nil {
		if ctx.Err() != nil {
			t.Fatal("Ready never reported the failing broker")
		}
		time.Sleep(10 * time.Millisecond)
		notReady = sk.Ready()
	}
	if waited := time.Since(started); waited < threshold {
		t.Fatalf("not ready after %v, before the %v threshold", waited, threshold)
	}
	if !errors.Is(notReady, ErrPublishFailing) || !strings.Contains(notReady.Error(), "broker:50051") {
		t.Fatalf("Ready = %v, want ErrPublishFailing naming the broker", notReady)
	}
	rounds := counterValue(t, reg, "safekeeper_broker_publish_errors_total")
	if rounds < 5 {
		t.Fatalf("safekeeper_broker_publish_errors_total = %v after %v of 20 ms rounds", rounds, threshold)
	}
	if n := strings.Count(logs.String(), "level=WARN msg=\"broker publish"); n != 1 || !strings.Contains(logs.String(), "level=WARN msg=\"broker publish failed\"") {
		t.Fatalf("%d warn-level failure lines for %v failed rounds, want exactly 1 (rate limited):\n%s", n, rounds, logs)
	}

	b, err := broker.New(node.Env{ID: "broker", Clock: clk, Net: network.Node("broker"), Rand: rand.New(rand.NewPCG(3, 3)),
		Log: slog.New(slog.DiscardHandler), Metrics: prometheus.NewRegistry()}, broker.Config{ListenAddr: "broker:50051"})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	defer b.Stop()
	for sk.Ready() != nil {
		if ctx.Err() != nil {
			t.Fatalf("still not ready with the broker up: %v", sk.Ready())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if !strings.Contains(logs.String(), "broker publication recovered") {
		t.Fatalf("recovery not logged:\n%s", logs)
	}
}

// counterValue reads a counter from the node's registry.
func counterValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() == name && len(f.GetMetric()) == 1 {
			return f.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatalf("no counter %s on the node's registry", name)
	return 0
}
