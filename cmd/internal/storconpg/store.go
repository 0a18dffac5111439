package storconpg

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/stratadb/strata/engine/layer"
	"github.com/stratadb/strata/engine/shard"
	"github.com/stratadb/strata/nodes/storcon/persist"
)

// Error classes of this package (the rest are persist's).
var (
	// ErrConfig: a Config field is missing or out of range.
	ErrConfig = errors.New("storconpg: invalid config")
	// ErrSchema: the database's schema is not one this binary can use.
	ErrSchema = errors.New("storconpg: unknown schema")
)

const (
	// DefaultMaxConns is Config.MaxConns's default: enough for the
	// controller's concurrent reconciles to increment generations without
	// queueing long, far below PostgreSQL's default of 100 connections.
	DefaultMaxConns = 16
	// DefaultConnectTimeout is Config.ConnectTimeout's default.
	DefaultConnectTimeout = 10 * time.Second
	// DefaultStatementTimeout is Config.StatementTimeout's default. The
	// controller's LostWriteSettle (storcon.DefaultLostWriteSettle, 6s)
	// must stay above it.
	DefaultStatementTimeout = 5 * time.Second
)

// Config configures the PostgreSQL store.
type Config struct {
	// URL is the database URL, postgres://user:password@host:port/db?…
	// Required.
	URL string
	// MaxConns bounds the connection pool. It replaces any pool_max_conns
	// in URL. Default DefaultMaxConns (16).
	MaxConns int32
	// ConnectTimeout bounds establishing one connection. Default
	// DefaultConnectTimeout (10 s).
	ConnectTimeout time.Duration
	// StatementTimeout is the server's statement_timeout on every
	// connection: no statement runs longer. It bounds how late a write whose
	// connection broke can still commit, which the controller waits out
	// before it reads such a write's outcome back (storcon.Config's
	// LostWriteSettle). Default DefaultStatementTimeout (5 s).
	StatementTimeout time.Duration
}

func (c Config) withDefaults() Config {
	if c.MaxConns == 0 {
		c.MaxConns = DefaultMaxConns
	}
	if c.ConnectTimeout == 0 {
		c.ConnectTimeout = DefaultConnectTimeout
	}
	if c.StatementTimeout == 0 {
		c.StatementTimeout = DefaultStatementTimeout
	}
	return c
}

// Validate checks c (after filling defaults in a copy).
func (c Config) Validate() error {
	c = c.withDefaults()
	switch {
	case c.URL == "":
		return fmt.Errorf("%w: URL is required", ErrConfig)
	case c.MaxConns < 0:
		return fmt.Errorf("%w: MaxConns %d is negative", ErrConfig, c.MaxConns)
	case c.ConnectTimeout < 0:
		return fmt.Errorf("%w: ConnectTimeout %v is negative", ErrConfig, c.ConnectTimeout)
	case c.StatementTimeout < 0:
		return fmt.Errorf("%w: StatementTimeout %v is negative", ErrConfig, c.StatementTimeout)
	}
	return nil
}

// Store is persist.Store on PostgreSQL.
type Store struct {
	pool   *pgxpool.Pool
	closed atomic.Bool
}

var _ persist.Store = (*Store)(nil)

// Open connects to the database, applies the embedded migrations it lacks
// and returns the store.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	pc, err := pgxpool.ParseConfig(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("%w: URL: %w", ErrConfig, err)
	}
	pc.MaxConns = cfg.MaxConns
	pc.ConnConfig.ConnectTimeout = cfg.ConnectTimeout
	// In milliseconds, PostgreSQL's unit for a bare number.
	pc.ConnConfig.RuntimeParams["statement_timeout"] = strconv.FormatInt(cfg.StatementTimeout.Milliseconds(), 10)
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, fmt.Errorf("storconpg: connect: %w", err)
	}
	if _, err := Migrate(ctx, pool); err != nil {
		pool.Close()
		return nil, err
	}
	return &Store{pool: pool}, nil
}

// Pool returns the connection pool, for metrics and tests.
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// Close closes the pool. Calls after it fail with persist.ErrClosed;
// closing again does nothing.
func (s *Store) Close() error {
	if !s.closed.Swap(true) {
		s.pool.Close()
	}
	return nil
}

func (s *Store) check(ctx context.Context) error {
	if s.closed.Load() {
		return persist.ErrClosed
	}
	return ctx.Err()
}

// dbError wraps an error from the database: a unique violation is
// persist.ErrExists, the generation's range check is
// persist.ErrGenerationExhausted, anything else leaves the outcome unknown.
func dbError(what string, err error) error {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch {
		case pe.Code == "23505":
			return fmt.Errorf("%w: %s: %s", persist.ErrExists, what, pe.Detail)
		case pe.Code == "23514" && pe.ConstraintName == "tenant_shards_generation_range":
			return fmt.Errorf("%w: %s", persist.ErrGenerationExhausted, what)
		}
	}
	return fmt.Errorf("storconpg: %s: %w", what, err)
}

// inTx runs fn in a transaction, committing if it returns nil.
func (s *Store) inTx(ctx context.Context, what string, fn func(tx pgx.Tx) error) error {
	if err := s.check(ctx); err != nil {
		return err
	}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return dbError(what, err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if err := fn(tx); err != nil {
		if isClass(err) {
			return err
		}
		return dbError(what, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return dbError(what+": commit", err)
	}
	return nil
}

// isClass reports whether err already carries one of persist's argument
// classes (an error fn decided on, not one from the database).
func isClass(err error) bool {
	for _, c := range []error{persist.ErrNotFound, persist.ErrExists, persist.ErrConflict, persist.ErrInvalid, persist.ErrGenerationExhausted} {
		if errors.Is(err, c) {
			return true
		}
	}
	return false
}

// exec runs one statement and returns how many rows it touched.
func (s *Store) exec(ctx context.Context, what, sql string, args ...any) (int64, error) {
	if err := s.check(ctx); err != nil {
		return 0, err
	}
	tag, err := s.pool.Exec(ctx, sql, args...)
	if err != nil {
		return 0, dbError(what, err)
	}
	return tag.RowsAffected(), nil
}

// checkNodeChange validates a node column the way persist validates a whole
// changed row (the other columns are already valid in the table).
func checkNodeChange(id persist.NodeID, change func(*persist.Node)) error {
	if err := persist.ValidateNodeID(id); err != nil {
		return err
	}
	n := persist.Node{ID: id, SchedulingPolicy: "Active", Lifecycle: persist.LifecycleActive}
	change(&n)
	return persist.ValidateNode(n)
}

func (s *Store) UpsertNode(ctx context.Context, n persist.Node) error {
	n.Lifecycle = persist.LifecycleActive
	if err := persist.ValidateNode(n); err != nil {
		return err
	}
	_, err := s.exec(ctx, "upsert node", `INSERT INTO nodes (node_id, scheduling_policy,
			listen_http_addr, listen_http_port, listen_pg_addr, listen_pg_port,
			listen_grpc_addr, listen_grpc_port, availability_zone_id, lifecycle)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'active')
		ON CONFLICT (node_id) DO UPDATE SET
			scheduling_policy = EXCLUDED.scheduling_policy,
			listen_http_addr = EXCLUDED.listen_http_addr, listen_http_port = EXCLUDED.listen_http_port,
			listen_pg_addr = EXCLUDED.listen_pg_addr, listen_pg_port = EXCLUDED.listen_pg_port,
			listen_grpc_addr = EXCLUDED.listen_grpc_addr, listen_grpc_port = EXCLUDED.listen_grpc_port,
			availability_zone_id = EXCLUDED.availability_zone_id, lifecycle = 'active'`,
		int64(n.ID), n.SchedulingPolicy, n.ListenHTTPAddr, int32(n.ListenHTTPPort), n.ListenPGAddr, int32(n.ListenPGPort),
		n.ListenGRPCAddr, int32(n.ListenGRPCPort), n.AvailabilityZoneID)
	return err
}

// updateNode sets one column of an existing node.
func (s *Store) updateNode(ctx context.Context, what string, id persist.NodeID, sql string, arg any) error {
	args := []any{int64(id)}
	if arg != nil {
		args = append(args, arg)
	}
	n, err := s.exec(ctx, what, sql, args...)
	if err != nil {
		return err
	}
	if n == 0 {
		return fmt.Errorf("%w: node %d", persist.ErrNotFound, id)
	}
	return nil
}

func (s *Store) SetNodeSchedulingPolicy(ctx context.Context, id persist.NodeID, policy string) error {
	if err := checkNodeChange(id, func(n *persist.Node) { n.SchedulingPolicy = policy }); err != nil {
		return err
	}
	return s.updateNode(ctx, "set node scheduling policy", id, "UPDATE nodes SET scheduling_policy = $2 WHERE node_id = $1", policy)
}

func (s *Store) SetNodeAvailabilityZone(ctx context.Context, id persist.NodeID, az string) error {
	if err := checkNodeChange(id, func(n *persist.Node) { n.AvailabilityZoneID = az }); err != nil {
		return err
	}
	return s.updateNode(ctx, "set node availability zone", id, "UPDATE nodes SET availability_zone_id = $2 WHERE node_id = $1", az)
}

func (s *Store) MarkNodeDeleted(ctx context.Context, id persist.NodeID) error {
	if err := persist.ValidateNodeID(id); err != nil {
		return err
	}
	return s.updateNode(ctx, "mark node deleted", id, "UPDATE nodes SET lifecycle = 'deleted' WHERE node_id = $1", nil)
}

func (s *Store) DeleteNode(ctx context.Context, id persist.NodeID) error {
	if err := persist.ValidateNodeID(id); err != nil {
		return err
	}
	return s.updateNode(ctx, "delete node", id, "DELETE FROM nodes WHERE node_id = $1", nil)
}

func (s *Store) ListNodes(ctx context.Context) ([]persist.Node, error) {
	if err := s.check(ctx); err != nil {
		return nil, err
	}
	rows, err := s.pool.Query(ctx, `SELECT node_id, scheduling_policy, listen_http_addr, listen_http_port,
		listen_pg_addr, listen_pg_port, listen_grpc_addr, listen_grpc_port, availability_zone_id, lifecycle
		FROM nodes ORDER BY node_id`)
	if err != nil {
		return nil, dbError("list nodes", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (persist.Node, error) {
		var (
			id             int64
			http, pg, grpc int32
			n              persist.Node
			lifecycle      string
		)
		if err := r.Scan(&id, &n.SchedulingPolicy, &n.ListenHTTPAddr, &http, &n.ListenPGAddr, &pg,
			&n.ListenGRPCAddr, &grpc, &n.AvailabilityZoneID, &lifecycle); err != nil {
			return n, err
		}
		n.ID, n.Lifecycle = persist.NodeID(id), persist.Lifecycle(lifecycle)
		n.ListenHTTPPort, n.ListenPGPort, n.ListenGRPCPort = uint16(http), uint16(pg), uint16(grpc)
		if err := persist.ValidateNode(n); err != nil {
			return n, fmt.Errorf("%w: row of node %d: %w", persist.ErrCorrupt, id, err)
		}
		return n, nil
	})
	if err != nil {
		return nil, dbError("list nodes", err)
	}
	return out, nil
}

// shardColumns are tenant_shards' columns in scanShard's order.
const shardColumns = `tenant_id, shard_number, shard_count, shard_stripe_size, generation,
	generation_pageserver, placement_policy, splitting, config, scheduling_policy, preferred_az_id`

// shardArgs are a row's values in shardColumns' order.
func shardArgs(r persist.TenantShard) []any {
	var gen, node *int64
	if r.Generation != layer.GenerationNone {
		g := int64(r.Generation)
		gen = &g
	}
	if r.GenerationNode != 0 {
		n := int64(r.GenerationNode)
		node = &n
	}
	var az *string
	if r.PreferredAZ != "" {
		az = &r.PreferredAZ
	}
	splitting := int16(0)
	if r.Splitting {
		splitting = 1
	}
	return []any{r.ID.TenantID.String(), int32(r.ID.Shard.Number), int32(r.ID.Shard.Count), int64(r.StripeSize),
		gen, node, r.PlacementPolicy, splitting, r.Config, r.SchedulingPolicy, az}
}

func scanShard(r pgx.CollectableRow) (persist.TenantShard, error) {
	var (
		out           persist.TenantShard
		tenant        string
		number, count int32
		stripe        int64
		gen, node     *int64
		splitting     int16
		az            *string
	)
	if err := r.Scan(&tenant, &number, &count, &stripe, &gen, &node, &out.PlacementPolicy, &splitting,
		&out.Config, &out.SchedulingPolicy, &az); err != nil {
		return out, err
	}
	tid, err := shard.ParseTenantID(tenant)
	if err != nil {
		return out, fmt.Errorf("%w: tenant_shards row %q: %w", persist.ErrCorrupt, tenant, err)
	}
	out.ID = shard.TenantShardID{TenantID: tid, Shard: shard.ShardIndex{Number: shard.ShardNumber(number), Count: shard.ShardCount(count)}}
	out.StripeSize, out.Splitting = uint32(stripe), splitting != 0
	if gen != nil {
		out.Generation = layer.Generation(*gen)
	}
	if node != nil {
		out.GenerationNode = persist.NodeID(*node)
	}
	if az != nil {
		out.PreferredAZ = *az
	}
	if err := persist.ValidateTenantShard(out); err != nil {
		return out, fmt.Errorf("%w: tenant_shards row: %w", persist.ErrCorrupt, err)
	}
	return out, nil
}

// queryShards runs a query of shardColumns and returns the rows in id
// order.
func queryShards(ctx context.Context, q interface {
	Query(context.Context, string, ...any) (pgx.Rows, error)
}, where string, args ...any) ([]persist.TenantShard, error) {
	rows, err := q.Query(ctx, "SELECT "+shardColumns+" FROM tenant_shards "+where, args...)
	if err != nil {
		return nil, err
	}
	out, err := pgx.CollectRows(rows, scanShard)
	if err != nil {
		return nil, err
	}
	slices.SortFunc(out, func(a, b persist.TenantShard) int { return a.ID.Compare(b.ID) })
	return out, nil
}

func (s *Store) listShards(ctx context.Context, what, where string, args ...any) ([]persist.TenantShard, error) {
	if err := s.check(ctx); err != nil {
		return nil, err
	}
	out, err := queryShards(ctx, s.pool, where, args...)
	if err != nil {
		if errors.Is(err, persist.ErrCorrupt) {
			return nil, err
		}
		return nil, dbError(what, err)
	}
	return out, nil
}

func (s *Store) InsertTenantShards(ctx context.Context, rows []persist.TenantShard) error {
	if err := persist.ValidateInsert(rows); err != nil {
		return err
	}
	if len(rows) == 0 {
		return s.check(ctx)
	}
	return s.inTx(ctx, "insert tenant shards", func(tx pgx.Tx) error {
		return insertShards(ctx, tx, rows)
	})
}

// insertShards inserts rows in tx as one batch.
func insertShards(ctx context.Context, tx pgx.Tx, rows []persist.TenantShard) error {
	b := &pgx.Batch{}
	for _, r := range rows {
		b.Queue("INSERT INTO tenant_shards ("+shardColumns+") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)", shardArgs(r)...)
	}
	res := tx.SendBatch(ctx, b)
	for _, r := range rows {
		if _, err := res.Exec(); err != nil {
			_ = res.Close()
			return dbError("insert shard "+r.ID.String(), err)
		}
	}
	return res.Close()
}

func (s *Store) DeleteTenant(ctx context.Context, tenant shard.TenantID) error {
	n, err := s.exec(ctx, "delete tenant", "DELETE FROM tenant_shards WHERE tenant_id = $1", tenant.String())
	if err != nil {
		return err
	}
	if n == 0 {
		return fmt.Errorf("%w: tenant %s", persist.ErrNotFound, tenant)
	}
	return nil
}

func (s *Store) ListTenantShards(ctx context.Context) ([]persist.TenantShard, error) {
	return s.listShards(ctx, "list tenant shards", "")
}

func (s *Store) TenantShards(ctx context.Context, tenant shard.TenantID) ([]persist.TenantShard, error) {
	return s.listShards(ctx, "list a tenant's shards", "WHERE tenant_id = $1", tenant.String())
}

// where renders a selector as a WHERE clause over args starting at $first.
func where(sel persist.Selector, first int) (string, []any) {
	if sel.AllShards {
		return fmt.Sprintf("WHERE tenant_id = $%d", first), []any{sel.Tenant.String()}
	}
	return fmt.Sprintf("WHERE tenant_id = $%d AND shard_number = $%d AND shard_count = $%d", first, first+1, first+2),
		[]any{sel.Tenant.String(), int32(sel.Shard.Number), int32(sel.Shard.Count)}
}

func (s *Store) UpdateTenantShards(ctx context.Context, sel persist.Selector, u persist.ShardUpdate) error {
	if err := persist.ValidateUpdate(u); err != nil {
		return err
	}
	var sets []string
	var args []any
	set := func(col string, v any) {
		args = append(args, v)
		sets = append(sets, fmt.Sprintf("%s = $%d", col, len(args)))
	}
	if u.PlacementPolicy != nil {
		set("placement_policy", *u.PlacementPolicy)
	}
	if u.Config != nil {
		set("config", *u.Config)
	}
	if u.SchedulingPolicy != nil {
		set("scheduling_policy", *u.SchedulingPolicy)
	}
	if u.PreferredAZ != nil {
		var az *string
		if *u.PreferredAZ != "" {
			az = u.PreferredAZ
		}
		set("preferred_az_id", az)
	}
	if u.Generation != nil {
		var g *int64
		if *u.Generation != layer.GenerationNone {
			v := int64(*u.Generation)
			g = &v
		}
		set("generation", g)
	}
	if u.ClearGenerationNode {
		sets = append(sets, "generation_pageserver = NULL")
	}
	cond, condArgs := where(sel, len(args)+1)
	return s.inTx(ctx, "update tenant shards", func(tx pgx.Tx) error {
		// Lock the selected rows and check them first: none is not found,
		// and a generation may not go below any row's.
		lockCond, lockArgs := where(sel, 1)
		rows, err := tx.Query(ctx, "SELECT COALESCE(generation, 0) FROM tenant_shards "+lockCond+" FOR UPDATE", lockArgs...)
		if err != nil {
			return err
		}
		gens, err := pgx.CollectRows(rows, pgx.RowTo[int64])
		if err != nil {
			return err
		}
		if len(gens) == 0 {
			return fmt.Errorf("%w: %s", persist.ErrNotFound, sel)
		}
		if u.Generation != nil {
			if top := slices.Max(gens); int64(*u.Generation) < top {
				return fmt.Errorf("%w: %s: setting generation %d below the stored %d", persist.ErrConflict, sel, *u.Generation, top)
			}
		}
		_, err = tx.Exec(ctx, "UPDATE tenant_shards SET "+strings.Join(sets, ", ")+" "+cond, append(args, condArgs...)...)
		return err
	})
}

func (s *Store) IncrementGeneration(ctx context.Context, id shard.TenantShardID, node persist.NodeID) (layer.Generation, error) {
	if err := id.Shard.Validate(); err != nil {
		return 0, fmt.Errorf("%w: shard %s: %w", persist.ErrInvalid, id, err)
	}
	if err := persist.ValidateNodeID(node); err != nil {
		return 0, err
	}
	if err := s.check(ctx); err != nil {
		return 0, err
	}
	var g int64
	err := s.pool.QueryRow(ctx, `UPDATE tenant_shards
		SET generation = COALESCE(generation, 0) + 1, generation_pageserver = $4
		WHERE tenant_id = $1 AND shard_number = $2 AND shard_count = $3
		RETURNING generation`,
		id.TenantID.String(), int32(id.Shard.Number), int32(id.Shard.Count), int64(node)).Scan(&g)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return 0, fmt.Errorf("%w: shard %s", persist.ErrNotFound, id)
	case err != nil:
		return 0, dbError("increment generation of "+id.String(), err)
	}
	if g < 1 || g > math.MaxUint32 {
		return 0, fmt.Errorf("%w: shard %s: generation %d", persist.ErrCorrupt, id, g)
	}
	return layer.Generation(g), nil
}

func (s *Store) ReAttach(ctx context.Context, node persist.NodeID) ([]persist.TenantShard, error) {
	if err := persist.ValidateNodeID(node); err != nil {
		return nil, err
	}
	if err := s.check(ctx); err != nil {
		return nil, err
	}
	rows, err := s.pool.Query(ctx, `UPDATE tenant_shards SET generation = COALESCE(generation, 0) + 1
		WHERE generation_pageserver = $1 RETURNING `+shardColumns, int64(node))
	if err != nil {
		return nil, dbError("re-attach", err)
	}
	out, err := pgx.CollectRows(rows, scanShard)
	if err != nil {
		if errors.Is(err, persist.ErrCorrupt) {
			return nil, err
		}
		return nil, dbError(fmt.Sprintf("re-attach node %d", node), err)
	}
	slices.SortFunc(out, func(a, b persist.TenantShard) int { return a.ID.Compare(b.ID) })
	return out, nil
}

func (s *Store) Generation(ctx context.Context, id shard.TenantShardID) (layer.Generation, persist.NodeID, error) {
	if err := s.check(ctx); err != nil {
		return 0, 0, err
	}
	var gen, node *int64
	err := s.pool.QueryRow(ctx, `SELECT generation, generation_pageserver FROM tenant_shards
		WHERE tenant_id = $1 AND shard_number = $2 AND shard_count = $3`,
		id.TenantID.String(), int32(id.Shard.Number), int32(id.Shard.Count)).Scan(&gen, &node)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return 0, 0, fmt.Errorf("%w: shard %s", persist.ErrNotFound, id)
	case err != nil:
		return 0, 0, dbError("read generation of "+id.String(), err)
	}
	var g layer.Generation
	var n persist.NodeID
	if gen != nil {
		g = layer.Generation(*gen)
	}
	if node != nil {
		n = persist.NodeID(*node)
	}
	return g, n, nil
}

func (s *Store) SetSplitting(ctx context.Context, tenant shard.TenantID, splitting bool) error {
	v := int16(0)
	if splitting {
		v = 1
	}
	n, err := s.exec(ctx, "set splitting", "UPDATE tenant_shards SET splitting = $2 WHERE tenant_id = $1", tenant.String(), v)
	if err != nil {
		return err
	}
	if n == 0 {
		return fmt.Errorf("%w: tenant %s", persist.ErrNotFound, tenant)
	}
	return nil
}

func (s *Store) ListSplitting(ctx context.Context) ([]persist.TenantShard, error) {
	return s.listShards(ctx, "list splitting shards", "WHERE splitting <> 0")
}

// lockTenant locks and returns every row of a tenant.
func lockTenant(ctx context.Context, tx pgx.Tx, tenant shard.TenantID) ([]persist.TenantShard, error) {
	return queryShards(ctx, tx, "WHERE tenant_id = $1 FOR UPDATE", tenant.String())
}

func (s *Store) BeginSplit(ctx context.Context, tenant shard.TenantID, oldCount shard.ShardCount, children []persist.TenantShard) error {
	if _, err := persist.ValidateSplit(tenant, oldCount, children); err != nil {
		return err
	}
	return s.inTx(ctx, "begin split", func(tx pgx.Tx) error {
		rows, err := lockTenant(ctx, tx, tenant)
		if err != nil {
			return err
		}
		parents := map[shard.ShardIndex]persist.TenantShard{}
		for _, r := range rows {
			if r.ID.Shard.Count == oldCount {
				parents[r.ID.Shard] = r
			}
		}
		if len(parents) == 0 {
			return fmt.Errorf("%w: tenant %s has no shards of count %d to split", persist.ErrNotFound, tenant, oldCount)
		}
		if want := int(max(uint8(oldCount), 1)); len(parents) != want {
			return fmt.Errorf("%w: tenant %s has %d shards of count %d, want %d", persist.ErrConflict, tenant, len(parents), oldCount, want)
		}
		for _, r := range rows {
			if r.ID.Shard.Count == oldCount && r.Splitting {
				return fmt.Errorf("%w: shard %s is already splitting", persist.ErrConflict, r.ID)
			}
		}
		if _, err := tx.Exec(ctx, "UPDATE tenant_shards SET splitting = 1 WHERE tenant_id = $1 AND shard_count = $2",
			tenant.String(), int32(oldCount)); err != nil {
			return err
		}
		kids := slices.Clone(children)
		for i := range kids {
			kids[i].Generation = parents[persist.ParentIndex(kids[i].ID.Shard, oldCount)].Generation
			kids[i].Splitting = true
		}
		return insertShards(ctx, tx, kids)
	})
}

func (s *Store) CommitSplit(ctx context.Context, tenant shard.TenantID, oldCount shard.ShardCount) error {
	return s.inTx(ctx, "commit split", func(tx pgx.Tx) error {
		rows, err := lockTenant(ctx, tx, tenant)
		if err != nil {
			return err
		}
		if len(rows) == 0 {
			return fmt.Errorf("%w: tenant %s", persist.ErrNotFound, tenant)
		}
		if _, err := tx.Exec(ctx, "DELETE FROM tenant_shards WHERE tenant_id = $1 AND shard_count = $2",
			tenant.String(), int32(oldCount)); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, "UPDATE tenant_shards SET splitting = 0 WHERE tenant_id = $1 AND splitting <> 0", tenant.String())
		return err
	})
}

func (s *Store) AbortSplit(ctx context.Context, tenant shard.TenantID, newCount shard.ShardCount) (persist.SplitOutcome, error) {
	var out persist.SplitOutcome
	err := s.inTx(ctx, "abort split", func(tx pgx.Tx) error {
		rows, err := lockTenant(ctx, tx, tenant)
		if err != nil {
			return err
		}
		if len(rows) == 0 {
			return fmt.Errorf("%w: tenant %s", persist.ErrNotFound, tenant)
		}
		parents := 0
		for _, r := range rows {
			if r.ID.Shard.Count != newCount {
				parents++
			}
		}
		if parents == 0 {
			out = persist.SplitCommitted
			return nil
		}
		if parents >= int(max(uint8(newCount), 1)) {
			return fmt.Errorf("%w: tenant %s has %d shards besides those of count %d: not a split into %d", persist.ErrConflict, tenant, parents, newCount, newCount)
		}
		if _, err := tx.Exec(ctx, "DELETE FROM tenant_shards WHERE tenant_id = $1 AND shard_count = $2",
			tenant.String(), int32(newCount)); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, "UPDATE tenant_shards SET splitting = 0 WHERE tenant_id = $1 AND splitting <> 0",
			tenant.String()); err != nil {
			return err
		}
		out = persist.SplitAborted
		return nil
	})
	if err != nil {
		return 0, err
	}
	return out, nil
}
