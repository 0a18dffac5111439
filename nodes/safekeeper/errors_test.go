package safekeeper

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"math/rand/v2"
	"path"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/stratadb/strata/clock"
	"github.com/stratadb/strata/engine/skproto"
	"github.com/stratadb/strata/net"
	"github.com/stratadb/strata/nodes/node"
	"github.com/stratadb/strata/nodes/safekeeper/skapi"
	"github.com/stratadb/strata/nodes/safekeeper/walstore"
	"github.com/stratadb/strata/sim/simdisk"
	"github.com/stratadb/strata/sim/simnet"
)

// TestErrorsKeepTheirCause: a timeline whose control file is damaged is
// answered with DataLoss. Called in-process through the service's own Mux,
// the Status still satisfies errors.Is(err, walstore.ErrCorrupt); over the
// simulated network the caller gets the same code and message, and the
// cause stays behind (it cannot cross a wire, and must not seem to in the
// simulator either).
func TestErrorsKeepTheirCause(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	clk := clock.NewReal()
	network := simnet.New(clk, rand.New(rand.NewPCG(1, 2)), simnet.Options{})
	fsys := simdisk.New(simdisk.Options{})
	const tenant, broken = "t1", "00ff"
	dir := tlKey{tenant, broken}.dir()
	if err := fsys.MkdirAll("timelines"); err != nil {
		t.Fatal(err)
	}
	st, err := walstore.Create(fsys, dir, walstore.Control{TenantID: tenant, TimelineID: broken, SegmentBytes: 256,
		Acceptor: skproto.AcceptorState{StartLSN: 0x100}})
	if err != nil {
		t.Fatal(err)
	}
	_ = st.Close()
	if err := fsys.Corrupt(path.Join(dir, "safekeeper.control"), 20); err != nil {
		t.Fatal(err)
	}
	env := node.Env{ID: "sk-1", Clock: clk, Net: network.Node("sk-1"), Disk: fsys, Rand: rand.New(rand.NewPCG(1, 1)),
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Metrics: prometheus.NewRegistry()}
	sk, err := New(env, Config{NodeID: "sk-1", ListenAddr: "sk-1:5454"})
	if err != nil {
		t.Fatal(err)
	}
	if err := sk.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer sk.Stop(ctx)

	conn, err := network.Node("client").Dial(ctx, "sk-1:5454")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for _, tc := range []struct {
		name     string
		timeline string
		code     net.Code
		cause    error
	}{
		{"corrupt timeline", broken, net.DataLoss, walstore.ErrCorrupt},
		{"unknown timeline", "0abc", net.NotFound, ErrNoTimeline},
		{"bad id", "../x", net.InvalidArgument, ErrBadID},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, err := net.MarshalProto(skapi.Ref(tenant, tc.timeline))
			if err != nil {
				t.Fatal(err)
			}
			_, local := sk.Mux().Unary(ctx, skapi.MethodStatus, req)
			if net.CodeOf(local) != tc.code || !errors.Is(local, tc.cause) {
				t.Fatalf("in-process: %v (code %v), want code %v and errors.Is %v", local, net.CodeOf(local), tc.code, tc.cause)
			}
			_, remote := skapi.Status(ctx, conn, tenant, tc.timeline)
			if net.CodeOf(remote) != tc.code {
				t.Fatalf("over the simulated network: %v (code %v), want code %v", remote, net.CodeOf(remote), tc.code)
			}
			if errors.Is(remote, tc.cause) {
				t.Fatalf("over the simulated network the in-process cause came along: %v", remote)
			}
			if ls, rs := net.ToStatus(local), net.ToStatus(remote); ls.Msg != rs.Msg {
				t.Fatalf("message changed on the wire: %q, then %q", ls.Msg, rs.Msg)
			}
		})
	}
}
