package main

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stratadb/strata/cmd/internal/proctest"
	"github.com/stratadb/strata/cmd/internal/storconpg/pgtest"
	"github.com/stratadb/strata/engine/shard"
	"github.com/stratadb/strata/net"
	"github.com/stratadb/strata/net/httpx"
	"github.com/stratadb/strata/nodes/pageserver/pageapi"
	"github.com/stratadb/strata/nodes/storcon/storconapi"
)

// TestHandOverToSuccessor: a second controller process on the same
// PostgreSQL database, started with -predecessor-url, steps the running
// one down before it reads the store. The old one then answers 503 to
// every scoped call and to /ready; the new one serves the tenant the old
// one created and moves it with a higher generation.
func TestHandOverToSuccessor(t *testing.T) {
	srv := pgtest.Start(t)
	c := startSCCluster(t, "-database-url", srv.NewDatabase(t))
	tenant := shard.TenantID{0x5c, 0x0d, 0x0e, 0x0f}
	tsid := shard.UnshardedID(tenant).String()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	resp, err := c.api.CreateTenant(ctx, storconapi.TenantCreateRequest{NewTenantID: tenant})
	if err != nil {
		t.Fatalf("create tenant: %v", err)
	}
	origin := resp.Shards[0].NodeID
	var gen0 uint32
	eventually(t, 30*time.Second, "tenant attached", func(ctx context.Context) error {
		d, err := c.api.DescribeTenant(ctx, tenant)
		if err != nil {
			return err
		}
		if s := d.Shards[0]; s.Generation == nil || s.IsDirty || s.IsReconciling {
			return fmt.Errorf("shard %+v", s)
		} else {
			gen0 = *s.Generation
		}
		return nil
	})

	listen := proctest.FreeAddrs(t, 1)[0]
	args := slices.Clone(c.sc.args)
	i := slices.Index(args, "-listen")
	args[i+1] = listen
	args = append(args, "-predecessor-url", "http://"+c.listen, "-step-down-timeout", "20s")
	succ := &proc{name: "storcon-2", bin: c.sc.bin, args: args,
		env: append(slices.Clone(c.sc.env), "STRATA_STORCON_PREDECESSOR_TOKEN="+c.admin)}
	succ.start(t)
	t.Cleanup(func() { stopAll(t, []*proc{succ}) })
	waitReady(t, "http://"+listen+"/ready", 60*time.Second)
	if !strings.Contains(succ.log.String(), "the previous controller stepped down") {
		t.Fatalf("the successor did not log the step-down:\n%s", tail(succ.log.String(), 4<<10))
	}

	// The old controller is still running but refuses.
	if !c.sc.running() {
		t.Fatal("the old controller exited on stepping down; it should keep answering 503")
	}
	if _, err := c.api.ListNodes(ctx); net.CodeOf(err) != net.Unavailable {
		t.Fatalf("old controller's list nodes after the step-down: %v, want Unavailable", err)
	}
	if _, err := c.api.Ready(ctx); err == nil {
		t.Fatal("old controller's /ready answered 200 after the step-down")
	}

	// The successor has the tenant from the database and moves it.
	api := storconapi.Client{HTTP: httpx.Client{Base: "http://" + listen}, Token: c.admin}
	d, err := api.DescribeTenant(ctx, tenant)
	if err != nil {
		t.Fatalf("successor's describe: %v", err)
	}
	if g := d.Shards[0].Generation; g == nil || *g < gen0 {
		t.Fatalf("successor's generation %v, the predecessor had handed out %d", g, gen0)
	}
	dest := 3 - origin
	if err := api.Migrate(ctx, shard.UnshardedID(tenant), dest); err != nil {
		t.Fatalf("successor's migrate: %v", err)
	}
	eventually(t, 30*time.Second, "the destination attached with a higher generation", func(ctx context.Context) error {
		l, err := c.locations(ctx, int(dest-1))
		if err != nil {
			return err
		}
		conf, ok := l[tsid]
		if !ok || conf.Mode != pageapi.ModeAttachedSingle || conf.Generation == nil || *conf.Generation <= gen0 {
			return fmt.Errorf("destination holds %+v", conf)
		}
		return nil
	})
	eventually(t, 30*time.Second, "compute told the new node", func(context.Context) error {
		if n, ok := c.hook.Last(tenant); !ok || len(n.Shards) != 1 || n.Shards[0].NodeID != dest {
			return fmt.Errorf("last notification %+v %v", n, ok)
		}
		return nil
	})
	if _, err := api.ConsistencyCheck(ctx); err != nil {
		t.Fatalf("successor's consistency check: %v", err)
	}
}
