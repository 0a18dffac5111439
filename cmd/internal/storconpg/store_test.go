package storconpg

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/stratadb/strata/cmd/internal/storconpg/pgtest"
	"github.com/stratadb/strata/engine/layer"
	"github.com/stratadb/strata/nodes/storcon/persist"
	"github.com/stratadb/strata/nodes/storcon/persist/persisttest"
)

func open(t *testing.T, cfg Config) *Store {
	t.Helper()
	s, err := Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestPostgres starts one throwaway PostgreSQL server (pgtest) and runs
// every test that needs one against it, each on a fresh database.
func TestPostgres(t *testing.T) {
	srv := pgtest.Start(t)
	// Conformance runs persist's conformance suite, one database per
	// subtest.
	t.Run("Conformance", func(t *testing.T) {
		persisttest.Run(t, func(t *testing.T) persisttest.Opener {
			url := srv.NewDatabase(t)
			return func(t *testing.T) persist.Store { return open(t, Config{URL: url}) }
		})
	})
	t.Run("Schema", func(t *testing.T) { testSchema(t, srv) })
	t.Run("ConcurrentOpen", func(t *testing.T) { testConcurrentOpen(t, srv) })
	t.Run("PoolBounded", func(t *testing.T) { testPoolBounded(t, srv) })
	t.Run("TwoControllersIncrement", func(t *testing.T) { testTwoControllersIncrement(t, srv) })
	t.Run("StatementTimeout", func(t *testing.T) { testStatementTimeout(t, srv) })
}

// testStatementTimeout: every pooled connection runs with the configured
// statement_timeout, and a statement longer than it is cancelled — the
// bound the controller's LostWriteSettle relies on.
func testStatementTimeout(t *testing.T, srv *pgtest.Server) {
	ctx := context.Background()
	s := open(t, Config{URL: srv.NewDatabase(t), StatementTimeout: 300 * time.Millisecond})
	defer s.Close()
	var got string
	if err := s.Pool().QueryRow(ctx, "SHOW statement_timeout").Scan(&got); err != nil {
		t.Fatal(err)
	}
	if got != "300ms" {
		t.Fatalf("statement_timeout = %q, want 300ms", got)
	}
	if _, err := s.Pool().Exec(ctx, "SELECT pg_sleep(2)"); err == nil || !strings.Contains(err.Error(), "statement timeout") {
		t.Fatalf("a 2 s statement under a 300 ms timeout: %v, want cancelled", err)
	}
	d := open(t, Config{URL: srv.NewDatabase(t)})
	defer d.Close()
	if err := d.Pool().QueryRow(ctx, "SHOW statement_timeout").Scan(&got); err != nil || got != "5s" {
		t.Fatalf("default statement_timeout = %q, %v; want 5s", got, err)
	}
}

// testSchema checks the migrations: applied once, in order, recorded, the
// tables with the columns the controller's schema names, and a database
// with an unknown migration refused.
func testSchema(t *testing.T, srv *pgtest.Server) {
	ctx := context.Background()
	url := srv.NewDatabase(t)
	s := open(t, Config{URL: url})
	defer s.Close()

	applied, err := Migrate(ctx, s.Pool())
	if err != nil || len(applied) != 0 {
		t.Fatalf("migrating again applied %v, %v; want nothing", applied, err)
	}
	rows, err := s.Pool().Query(ctx, "SELECT version FROM schema_migrations ORDER BY applied_at, version")
	if err != nil {
		t.Fatal(err)
	}
	versions, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"0001_tenant_shards", "0002_nodes"}; !slices.Equal(versions, want) {
		t.Fatalf("schema_migrations = %v, want %v", versions, want)
	}

	columns := func(table string) []string {
		rows, err := s.Pool().Query(ctx, "SELECT column_name::text FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = $1 ORDER BY column_name", table)
		if err != nil {
			t.Fatal(err)
		}
		cols, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		return cols
	}
	wantShards := []string{"config", "generation", "generation_pageserver", "placement_policy", "preferred_az_id",
		"scheduling_policy", "shard_count", "shard_number", "shard_stripe_size", "splitting", "tenant_id"}
	if got := columns("tenant_shards"); !slices.Equal(got, wantShards) {
		t.Fatalf("tenant_shards columns %v, want %v", got, wantShards)
	}
	wantNodes := []string{"availability_zone_id", "lifecycle", "listen_grpc_addr", "listen_grpc_port", "listen_http_addr",
		"listen_http_port", "listen_pg_addr", "listen_pg_port", "node_id", "scheduling_policy"}
	if got := columns("nodes"); !slices.Equal(got, wantNodes) {
		t.Fatalf("nodes columns %v, want %v", got, wantNodes)
	}

	if _, err := s.Pool().Exec(ctx, "INSERT INTO schema_migrations (version) VALUES ('9999_from_the_future')"); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(ctx, Config{URL: url}); !errors.Is(err, ErrSchema) {
		t.Fatalf("open on a database with an unknown migration: %v, want ErrSchema", err)
	}
}

// testConcurrentOpen opens several stores on one new database at once: the
// advisory lock must let exactly one apply the migrations.
func testConcurrentOpen(t *testing.T, srv *pgtest.Server) {
	url := srv.NewDatabase(t)
	const n = 4
	errs := make([]error, n)
	stores := make([]*Store, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { stores[i], errs[i] = Open(context.Background(), Config{URL: url}) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("open %d: %v", i, err)
		}
		defer stores[i].Close()
	}
}

// testPoolBounded checks that the pool never opens more than MaxConns
// connections: with every connection held, another acquire waits.
func testPoolBounded(t *testing.T, srv *pgtest.Server) {
	s := open(t, Config{URL: srv.NewDatabase(t), MaxConns: 2})
	defer s.Close()
	ctx := context.Background()
	if got := s.Pool().Config().MaxConns; got != 2 {
		t.Fatalf("pool MaxConns = %d, want 2", got)
	}
	a, err := s.Pool().Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Release()
	b, err := s.Pool().Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Release()
	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	if _, err := s.ListNodes(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a call with every connection taken: %v, want it to wait until its deadline", err)
	}
	if got := s.Pool().Stat().TotalConns(); got != 2 {
		t.Fatalf("pool holds %d connections, want 2", got)
	}
}

// testTwoControllersIncrement increments one shard's generation from two
// stores on the same database at once: the one-statement increment must
// hand every caller its own generation.
func testTwoControllersIncrement(t *testing.T, srv *pgtest.Server) {
	url := srv.NewDatabase(t)
	a, b := open(t, Config{URL: url}), open(t, Config{URL: url})
	defer a.Close()
	defer b.Close()
	ctx := context.Background()
	row := persisttest.Tenant(1, 0)
	if err := a.InsertTenantShards(ctx, row); err != nil {
		t.Fatal(err)
	}
	const each = 50
	var mu sync.Mutex
	seen := map[layer.Generation]int{}
	var wg sync.WaitGroup
	for i, s := range []*Store{a, b, a, b} {
		wg.Go(func() {
			for range each {
				g, err := s.IncrementGeneration(ctx, row[0].ID, persist.NodeID(i+1))
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				seen[g]++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(seen) != 4*each {
		t.Fatalf("%d distinct generations issued by %d increments", len(seen), 4*each)
	}
	g, _, err := b.Generation(ctx, row[0].ID)
	if err != nil || g != 4*each {
		t.Fatalf("final generation %d, %v; want %d", g, err, 4*each)
	}
}

func TestConfig(t *testing.T) {
	for _, c := range []Config{{}, {URL: "postgres://x", MaxConns: -1}, {URL: "postgres://x", ConnectTimeout: -time.Second},
		{URL: "postgres://x", StatementTimeout: -time.Second}} {
		if err := c.Validate(); !errors.Is(err, ErrConfig) {
			t.Errorf("Validate(%+v) = %v, want ErrConfig", c, err)
		}
	}
	if c := (Config{URL: "u"}).withDefaults(); c.MaxConns != DefaultMaxConns || c.ConnectTimeout != DefaultConnectTimeout ||
		c.StatementTimeout != DefaultStatementTimeout {
		t.Errorf("defaults: %+v", c)
	}
	if _, err := Open(context.Background(), Config{URL: "::not a url"}); !errors.Is(err, ErrConfig) {
		t.Errorf("Open with a bad URL: %v, want ErrConfig", err)
	}
}
