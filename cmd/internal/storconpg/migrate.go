package storconpg

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// migrationLockKey is the pg_advisory_xact_lock key that serializes
// migrations between controllers starting at once ("strcmig" in ASCII).
const migrationLockKey int64 = 0x73747263_6d6967

// migration is one embedded SQL file; its version is its name without
// ".sql".
type migration struct {
	version string
	sql     string
}

// migrations lists the embedded migrations in the order they apply.
func migrations() ([]migration, error) {
	ents, err := fs.ReadDir(migrationFiles, "migrations")
	if err != nil {
		return nil, err
	}
	var out []migration
	for _, e := range ents {
		version, ok := strings.CutSuffix(e.Name(), ".sql")
		if !ok {
			continue
		}
		b, err := fs.ReadFile(migrationFiles, "migrations/"+e.Name())
		if err != nil {
			return nil, err
		}
		out = append(out, migration{version: version, sql: string(b)})
	}
	slices.SortFunc(out, func(a, b migration) int { return strings.Compare(a.version, b.version) })
	return out, nil
}

// Migrate applies every embedded migration the database lacks, in one
// transaction, and returns the versions it applied. It refuses (ErrSchema)
// a database with a migration this binary does not have.
func Migrate(ctx context.Context, pool *pgxpool.Pool) (applied []string, err error) {
	all, err := migrations()
	if err != nil {
		return nil, fmt.Errorf("storconpg: read embedded migrations: %w", err)
	}
	err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", migrationLockKey); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
			version VARCHAR PRIMARY KEY,
			applied_at TIMESTAMPTZ NOT NULL DEFAULT now())`); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, "SELECT version FROM schema_migrations")
		if err != nil {
			return err
		}
		done, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return err
		}
		for _, v := range done {
			if !slices.ContainsFunc(all, func(m migration) bool { return m.version == v }) {
				return fmt.Errorf("%w: the database has migration %q, which this binary does not know", ErrSchema, v)
			}
		}
		for _, m := range all {
			if slices.Contains(done, m.version) {
				continue
			}
			// No arguments: pgx sends it with the simple protocol, which
			// runs a file of several statements.
			if _, err := tx.Exec(ctx, m.sql); err != nil {
				return fmt.Errorf("migration %s: %w", m.version, err)
			}
			if _, err := tx.Exec(ctx, "INSERT INTO schema_migrations (version) VALUES ($1)", m.version); err != nil {
				return err
			}
			applied = append(applied, m.version)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("storconpg: migrate: %w", err)
	}
	return applied, nil
}
