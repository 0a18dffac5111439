package broker

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
	"github.com/stratadb/strata/net"
	"github.com/stratadb/strata/net/grpcx"
	"github.com/stratadb/strata/nodes/broker/brokerapi"
	"github.com/stratadb/strata/nodes/node"
)

func testEnv() node.Env {
	return node.Env{ID: "broker", Clock: clock.NewReal(), Net: grpcx.New(grpcx.Options{}),
		Rand: rand.New(rand.NewPCG(1, 2)), Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Metrics: prometheus.NewRegistry()}
}

func TestPublishGetSubscribe(t *testing.T) {
	env := testEnv()
	b, err := New(env, Config{ListenAddr: "127.0.0.1:0", EntryTTL: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	defer b.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := env.Net.Dial(ctx, b.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	pub := func(sk string, commit uint64) error {
		_, err := net.CallProto[*brokerapi.PublishResponse](ctx, conn, brokerapi.MethodPublish,
			&brokerapi.SafekeeperTimelineInfo{SafekeeperId: sk, TenantId: "t", TimelineId: "tl", CommitLsn: commit})
		return err
	}
	for _, tc := range []struct {
		name string
		info *brokerapi.SafekeeperTimelineInfo
		code net.Code
	}{
		{"missing ids", &brokerapi.SafekeeperTimelineInfo{SafekeeperId: "sk"}, net.InvalidArgument},
		{"ok", &brokerapi.SafekeeperTimelineInfo{SafekeeperId: "sk-2", TenantId: "t", TimelineId: "tl", CommitLsn: 5}, net.OK},
	} {
		_, err := net.CallProto[*brokerapi.PublishResponse](ctx, conn, brokerapi.MethodPublish, tc.info)
		if net.CodeOf(err) != tc.code {
			t.Fatalf("%s: code %v, want %v (%v)", tc.name, net.CodeOf(err), tc.code, err)
		}
	}
	if err := pub("sk-1", 7); err != nil {
		t.Fatal(err)
	}
	got, err := net.CallProto[*brokerapi.TimelineInfos](ctx, conn, brokerapi.MethodGet, &brokerapi.TimelineFilter{TenantId: "t"})
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Infos) != 2 || got.Infos[0].SafekeeperId != "sk-1" || got.Infos[1].CommitLsn != 5 {
		t.Fatalf("Get = %v", got.Infos)
	}
	other, err := net.CallProto[*brokerapi.TimelineInfos](ctx, conn, brokerapi.MethodGet, &brokerapi.TimelineFilter{TenantId: "x"})
	if err != nil || len(other.Infos) != 0 {
		t.Fatalf("filter leaked: %v %v", other, err)
	}

	sub, err := net.StreamProto[*brokerapi.TimelineFilter, *brokerapi.SafekeeperTimelineInfo](ctx, conn, brokerapi.MethodSubscribe)
	if err != nil {
		t.Fatal(err)
	}
	if err := sub.Send(&brokerapi.TimelineFilter{TimelineId: "tl"}); err != nil {
		t.Fatal(err)
	}
	seen := map[string]uint64{}
	for len(seen) < 2 {
		m, err := sub.Recv()
		if err != nil {
			t.Fatal(err)
		}
		seen[m.SafekeeperId] = m.CommitLsn
	}
	if err := pub("sk-1", 9); err != nil {
		t.Fatal(err)
	}
	m, err := sub.Recv()
	if err != nil || m.SafekeeperId != "sk-1" || m.CommitLsn != 9 {
		t.Fatalf("update = %v, %v", m, err)
	}

	// Entries that are not republished expire.
	time.Sleep(700 * time.Millisecond)
	got, err = net.CallProto[*brokerapi.TimelineInfos](ctx, conn, brokerapi.MethodGet, &brokerapi.TimelineFilter{})
	if err != nil || len(got.Infos) != 0 {
		t.Fatalf("after TTL: %v %v", got, err)
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"defaults", Config{ListenAddr: "x"}, true},
		{"missing ListenAddr", Config{}, false},
		{"negative EntryTTL", Config{ListenAddr: "x", EntryTTL: -time.Second}, false},
		{"negative MaxEntries", Config{ListenAddr: "x", MaxEntries: -1}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := tc.cfg
			err := tc.cfg.Validate()
			if (err == nil) != tc.ok || (err != nil && !errors.Is(err, ErrConfig)) {
				t.Fatalf("Validate = %v, want ok=%t (and ErrConfig otherwise)", err, tc.ok)
			}
			if tc.cfg != before {
				t.Fatal("Validate changed the config")
			}
		})
	}
	if d := (Config{}).withDefaults(); d.EntryTTL != DefaultEntryTTL || d.MaxEntries != DefaultMaxEntries {
		t.Fatalf("withDefaults = %+v", d)
	}
}

func TestTableFull(t *testing.T) {
	c := Config{ListenAddr: "x", MaxEntries: 1}
	b, err := New(testEnv(), c)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := b.publish(ctx, &brokerapi.SafekeeperTimelineInfo{SafekeeperId: "a", TenantId: "t", TimelineId: "l"}); err != nil {
		t.Fatal(err)
	}
	_, err = b.publish(ctx, &brokerapi.SafekeeperTimelineInfo{SafekeeperId: "b", TenantId: "t", TimelineId: "l"})
	if !errors.Is(err, ErrFull) || net.CodeOf(statusOf(err)) != net.ResourceExhausted {
		t.Fatalf("full table: %v", err)
	}
}
