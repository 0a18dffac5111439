package persist

import (
	"context"
	"errors"
	"fmt"
	"path"
	"slices"
	"sync"

	"github.com/stratadb/strata/clock"
	"github.com/stratadb/strata/disk"
	"github.com/stratadb/strata/engine/invariants"
	"github.com/stratadb/strata/engine/layer"
	"github.com/stratadb/strata/engine/shard"
)

// DefaultMaxLogBytes is DiskConfig.MaxLogBytes's default.
const DefaultMaxLogBytes = 8 << 20

// DiskConfig configures the embedded store.
type DiskConfig struct {
	// MaxLogBytes bounds the log: once it holds at least this many bytes,
	// the mutation that took it there compacts the state into the snapshot
	// and starts a new, empty log. Default DefaultMaxLogBytes (8 MiB).
	MaxLogBytes int64
}

func (c DiskConfig) withDefaults() DiskConfig {
	if c.MaxLogBytes == 0 {
		c.MaxLogBytes = DefaultMaxLogBytes
	}
	return c
}

// Validate checks c (after filling defaults in a copy).
func (c DiskConfig) Validate() error {
	c = c.withDefaults()
	if c.MaxLogBytes < 0 {
		return fmt.Errorf("%w: MaxLogBytes %d is negative", ErrConfig, c.MaxLogBytes)
	}
	return nil
}

// DiskStats describes the embedded store's log, for tests and metrics.
type DiskStats struct {
	// Seq is the last transaction applied.
	Seq uint64
	// LogBytes is the size of the current log.
	LogBytes int64
	// Compactions counts snapshots written since the store was opened.
	Compactions int
}

// DiskStore is the embedded Store: a log of transactions and a snapshot in
// one directory of a disk.FS (package doc, Embedded store).
type DiskStore struct {
	fsys disk.FS
	dir  string
	cfg  DiskConfig

	// writeMu serializes mutations. It is held across disk I/O, so it is a
	// clock.Mutex: the simulator sees its waiters.
	writeMu *clock.Mutex

	// mu guards the fields below for readers; the writer changes them only
	// while holding both locks, and mu is never held across I/O.
	mu     sync.Mutex
	t      *tables
	seq    uint64 // last transaction applied
	closed bool
	failed error // the write error that broke the store

	// The writer's own (guarded by writeMu).
	log         disk.File
	logFirst    uint64
	logBytes    int64
	compactions int
}

var _ Store = (*DiskStore)(nil)

// OpenDisk opens (creating it if absent) the embedded store in dir of fsys:
// it reads the snapshot, replays the log after it, truncates a torn tail
// left by a crash and, if the log is over its limit or a compaction was
// interrupted, compacts. It fails with ErrCorrupt if durable state is
// damaged anywhere but a torn tail.
func OpenDisk(clk clock.Clock, fsys disk.FS, dir string, cfg DiskConfig) (*DiskStore, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &DiskStore{fsys: fsys, dir: dir, cfg: cfg, writeMu: clock.NewMutex(clk)}
	if err := s.recover(); err != nil {
		if s.log != nil {
			_ = s.log.Close()
		}
		return nil, err
	}
	return s, nil
}

func (s *DiskStore) path(name string) string { return path.Join(s.dir, name) }

// logFile is one log as found at start-up.
type logFile struct {
	first uint64
	name  string
}

// recover rebuilds the state from the directory (see OpenDisk).
func (s *DiskStore) recover() error {
	if err := disk.MkdirAllDurable(s.fsys, s.dir); err != nil {
		return fmt.Errorf("persist: create %s: %w", s.dir, err)
	}
	// An earlier incarnation may have created or removed a file and crashed
	// (or failed) before its SyncDir: make the entries seen now durable
	// before trusting them.
	if err := s.fsys.SyncDir(s.dir); err != nil {
		return fmt.Errorf("persist: sync %s: %w", s.dir, err)
	}
	ents, err := s.fsys.ReadDir(s.dir)
	if err != nil {
		return fmt.Errorf("persist: list %s: %w", s.dir, err)
	}
	var logs []logFile
	haveSnapshot := false
	for _, e := range ents {
		name := e.Name()
		if first, ok := parseLogName(name); ok && !e.IsDir() {
			logs = append(logs, logFile{first: first, name: name})
			continue
		}
		switch name {
		case snapshotName:
			haveSnapshot = true
		case snapshotName + ".tmp":
			// A compaction that crashed before its rename: never part of
			// the state.
			if err := s.fsys.Remove(s.path(name)); err != nil {
				return fmt.Errorf("persist: remove %s: %w", name, err)
			}
		default:
			return fmt.Errorf("%w: unexpected entry %q in %s", ErrCorrupt, name, s.dir)
		}
	}
	slices.SortFunc(logs, func(a, b logFile) int { return cmpUint64(a.first, b.first) })

	s.t = newTables()
	if haveSnapshot {
		b, err := disk.ReadFile(s.fsys, s.path(snapshotName))
		if err != nil {
			return fmt.Errorf("persist: read snapshot: %w", err)
		}
		if s.seq, s.t, err = decodeSnapshot(b); err != nil {
			return err
		}
	}
	snapSeq := s.seq

	var tailValid, tailSize int64
	for i, l := range logs {
		if l.first > s.seq+1 {
			return fmt.Errorf("%w: %s starts at transaction %d but the state before it ends at %d", ErrCorrupt, l.name, l.first, s.seq)
		}
		b, err := disk.ReadFile(s.fsys, s.path(l.name))
		if err != nil {
			return fmt.Errorf("persist: read %s: %w", l.name, err)
		}
		txns, valid, err := decodeLog(b)
		if err != nil {
			return fmt.Errorf("%s: %w", l.name, err)
		}
		if valid != len(b) && i != len(logs)-1 {
			// Only the newest log is ever appended to after a compaction.
			return fmt.Errorf("%w: %s has an invalid tail at offset %d of %d but is not the newest log", ErrCorrupt, l.name, valid, len(b))
		}
		for k := range txns {
			x := &txns[k]
			if want := l.first + uint64(k); x.Seq != want {
				return fmt.Errorf("%w: %s holds transaction %d where %d belongs", ErrCorrupt, l.name, x.Seq, want)
			}
			if x.Seq <= s.seq {
				continue // already in the snapshot
			}
			if err := s.t.apply(x); err != nil {
				return fmt.Errorf("%s: %w", l.name, err)
			}
			s.seq = x.Seq
		}
		tailValid, tailSize = int64(valid), int64(len(b))
	}
	if err := s.t.validate(); err != nil {
		return fmt.Errorf("%w: replayed state: %w", ErrCorrupt, err)
	}

	// Reuse the newest log if it is the one a compaction at snapSeq started
	// and is under its limit; otherwise (no log yet, stale logs left by an
	// interrupted compaction, an oversized log) compact now.
	if len(logs) == 1 && logs[0].first == snapSeq+1 && tailValid < s.cfg.MaxLogBytes {
		f, err := s.fsys.OpenRW(s.path(logs[0].name))
		if err != nil {
			return fmt.Errorf("persist: open %s: %w", logs[0].name, err)
		}
		s.log, s.logFirst, s.logBytes = f, logs[0].first, tailValid
		if tailValid != tailSize {
			// Cut the torn tail before appending, so a later crash cannot
			// bring the old bytes back under new records.
			if err := f.Truncate(tailValid); err != nil {
				return fmt.Errorf("persist: truncate %s: %w", logs[0].name, err)
			}
		}
		// Sync even without a cut: after a failed sync and a process
		// restart the file may still hold records that were never made
		// durable, and what was just replayed must not be lost by a crash.
		if err := f.Sync(); err != nil {
			return fmt.Errorf("persist: sync %s: %w", logs[0].name, err)
		}
		return nil
	}
	return s.compact()
}

func cmpUint64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// compact writes the state as the snapshot, starts an empty log after it
// and removes the older logs. Order matters for crashes: the snapshot
// replaces the old one atomically first (until then the old snapshot and
// logs describe the state); the new log is made durable before anything is
// appended to it; stale logs, whose transactions are all in the snapshot,
// go last — recovery removes any that survive.
func (s *DiskStore) compact() error {
	data, err := encodeSnapshot(s.seq, s.t)
	if err != nil {
		return err
	}
	if err := disk.WriteFileAtomic(s.fsys, s.path(snapshotName), data); err != nil {
		return fmt.Errorf("persist: write snapshot: %w", err)
	}
	first := s.seq + 1
	name := logName(first)
	if s.log == nil || s.logFirst != first {
		f, err := s.fsys.Create(s.path(name))
		if err != nil {
			return fmt.Errorf("persist: create %s: %w", name, err)
		}
		if err := f.Sync(); err != nil {
			_ = f.Close()
			return fmt.Errorf("persist: sync %s: %w", name, err)
		}
		if err := s.fsys.SyncDir(s.dir); err != nil {
			_ = f.Close()
			return fmt.Errorf("persist: sync %s: %w", s.dir, err)
		}
		if s.log != nil {
			_ = s.log.Close()
		}
		s.log, s.logFirst, s.logBytes = f, first, 0
	}
	s.compactions++
	// Stale logs only cost space and are removed again at the next open,
	// so failing to remove one is not an error of the compaction.
	ents, err := s.fsys.ReadDir(s.dir)
	if err != nil {
		return nil
	}
	removed := false
	for _, e := range ents {
		if _, ok := parseLogName(e.Name()); ok && e.Name() != name {
			removed = s.fsys.Remove(s.path(e.Name())) == nil || removed
		}
	}
	if removed {
		_ = s.fsys.SyncDir(s.dir)
	}
	return nil
}

// usable reports why the store cannot serve a call. Call with mu held.
func (s *DiskStore) usable() error {
	switch {
	case s.closed:
		return ErrClosed
	case s.failed != nil:
		return fmt.Errorf("%w: %w", ErrFailed, s.failed)
	}
	return nil
}

// mutate runs one transaction: plan it on the current state, append it to
// the log and sync, and only then apply it in memory, so no reader ever
// sees a change that is not durable.
func (s *DiskStore) mutate(ctx context.Context, plan func(t *tables) (*txn, error)) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := s.writeMu.Lock(ctx); err != nil {
		return err
	}
	defer s.writeMu.Unlock()
	s.mu.Lock()
	err := s.usable()
	s.mu.Unlock()
	if err != nil {
		return err
	}
	// Only the writer changes s.t, and it holds writeMu: planning may read
	// s.t without mu while readers read it too.
	x, err := plan(s.t)
	if err != nil {
		return err
	}
	if x.empty() {
		return nil
	}
	x.Seq = s.seq + 1
	rec, err := encodeTxn(x)
	if err != nil {
		return err
	}
	if err := s.append(rec); err != nil {
		return s.fail(fmt.Errorf("append transaction %d to %s: %w", x.Seq, logName(s.logFirst), err))
	}
	s.mu.Lock()
	err = s.t.apply(x)
	if err == nil {
		s.seq = x.Seq
	}
	s.mu.Unlock()
	if err := invariants.Verify(err); err != nil {
		return s.fail(err) // a plan the state refuses: the log and memory now differ
	}
	s.logBytes += int64(len(rec))
	if s.logBytes >= s.cfg.MaxLogBytes {
		if err := s.compact(); err != nil {
			// The transaction is durable, so the call succeeded; but a
			// compaction cut short may leave the snapshot ahead of the log
			// being appended to, so nothing more is written until a reopen
			// recovers.
			_ = s.fail(fmt.Errorf("compact: %w", err))
		}
	}
	return nil
}

func (s *DiskStore) append(rec []byte) error {
	if _, err := s.log.Write(rec); err != nil {
		return err
	}
	return s.log.Sync()
}

// fail breaks the store: after a failed write the log may end in a partial
// record, and after a failed fsync its cached content cannot be trusted, so
// only a reopen (recovering from what is durable) may write again.
func (s *DiskStore) fail(err error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failed == nil {
		s.failed = err
	}
	return fmt.Errorf("%w: %w", ErrFailed, err)
}

// read runs fn on the state under mu.
func (s *DiskStore) read(ctx context.Context, fn func(t *tables) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.usable(); err != nil {
		return err
	}
	return fn(s.t)
}

// Stats describes the log.
func (s *DiskStore) Stats() DiskStats {
	_ = s.writeMu.Lock(context.Background())
	defer s.writeMu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	return DiskStats{Seq: s.seq, LogBytes: s.logBytes, Compactions: s.compactions}
}

// Close closes the log. Calls after it fail with ErrClosed; closing again
// does nothing.
func (s *DiskStore) Close() error {
	_ = s.writeMu.Lock(context.Background())
	defer s.writeMu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	if err := s.log.Close(); err != nil && !errors.Is(err, disk.ErrCrashed) && s.failed == nil {
		return fmt.Errorf("persist: close log: %w", err)
	}
	return nil
}

func (s *DiskStore) UpsertNode(ctx context.Context, n Node) error {
	return s.mutate(ctx, func(t *tables) (*txn, error) { return t.planUpsertNode(n) })
}

func (s *DiskStore) SetNodeSchedulingPolicy(ctx context.Context, id NodeID, policy string) error {
	return s.mutate(ctx, func(t *tables) (*txn, error) {
		return t.planNodeChange(id, func(n *Node) { n.SchedulingPolicy = policy })
	})
}

func (s *DiskStore) SetNodeAvailabilityZone(ctx context.Context, id NodeID, az string) error {
	return s.mutate(ctx, func(t *tables) (*txn, error) {
		return t.planNodeChange(id, func(n *Node) { n.AvailabilityZoneID = az })
	})
}

func (s *DiskStore) MarkNodeDeleted(ctx context.Context, id NodeID) error {
	return s.mutate(ctx, func(t *tables) (*txn, error) {
		return t.planNodeChange(id, func(n *Node) { n.Lifecycle = LifecycleDeleted })
	})
}

func (s *DiskStore) DeleteNode(ctx context.Context, id NodeID) error {
	return s.mutate(ctx, func(t *tables) (*txn, error) { return t.planDeleteNode(id) })
}

func (s *DiskStore) ListNodes(ctx context.Context) ([]Node, error) {
	var out []Node
	err := s.read(ctx, func(t *tables) error { out = t.listNodes(); return nil })
	return out, err
}

func (s *DiskStore) InsertTenantShards(ctx context.Context, shards []TenantShard) error {
	return s.mutate(ctx, func(t *tables) (*txn, error) { return t.planInsertShards(shards) })
}

func (s *DiskStore) DeleteTenant(ctx context.Context, tenant shard.TenantID) error {
	return s.mutate(ctx, func(t *tables) (*txn, error) { return t.planDeleteTenant(tenant) })
}

func (s *DiskStore) ListTenantShards(ctx context.Context) ([]TenantShard, error) {
	var out []TenantShard
	err := s.read(ctx, func(t *tables) error { out = t.listShards(nil); return nil })
	return out, err
}

func (s *DiskStore) TenantShards(ctx context.Context, tenant shard.TenantID) ([]TenantShard, error) {
	var out []TenantShard
	err := s.read(ctx, func(t *tables) error { out = t.tenantShards(tenant); return nil })
	return out, err
}

func (s *DiskStore) UpdateTenantShards(ctx context.Context, sel Selector, u ShardUpdate) error {
	return s.mutate(ctx, func(t *tables) (*txn, error) { return t.planUpdate(sel, u) })
}

func (s *DiskStore) IncrementGeneration(ctx context.Context, id shard.TenantShardID, node NodeID) (layer.Generation, error) {
	var gen layer.Generation
	err := s.mutate(ctx, func(t *tables) (x *txn, err error) {
		x, gen, err = t.planIncrement(id, node)
		return x, err
	})
	if err != nil {
		return 0, err
	}
	return gen, nil
}

func (s *DiskStore) ReAttach(ctx context.Context, node NodeID) ([]TenantShard, error) {
	var rows []TenantShard
	err := s.mutate(ctx, func(t *tables) (x *txn, err error) {
		x, rows, err = t.planReAttach(node)
		return x, err
	})
	if err != nil {
		return nil, err
	}
	return rows, nil
}

func (s *DiskStore) Generation(ctx context.Context, id shard.TenantShardID) (layer.Generation, NodeID, error) {
	var row TenantShard
	err := s.read(ctx, func(t *tables) error {
		var ok bool
		if row, ok = t.shard(id); !ok {
			return fmt.Errorf("%w: shard %s", ErrNotFound, id)
		}
		return nil
	})
	return row.Generation, row.GenerationNode, err
}

func (s *DiskStore) SetSplitting(ctx context.Context, tenant shard.TenantID, splitting bool) error {
	return s.mutate(ctx, func(t *tables) (*txn, error) { return t.planSetSplitting(tenant, splitting) })
}

func (s *DiskStore) ListSplitting(ctx context.Context) ([]TenantShard, error) {
	var out []TenantShard
	err := s.read(ctx, func(t *tables) error {
		out = t.listShards(func(s TenantShard) bool { return s.Splitting })
		return nil
	})
	return out, err
}

func (s *DiskStore) BeginSplit(ctx context.Context, tenant shard.TenantID, oldCount shard.ShardCount, children []TenantShard) error {
	return s.mutate(ctx, func(t *tables) (*txn, error) { return t.planBeginSplit(tenant, oldCount, children) })
}

func (s *DiskStore) CommitSplit(ctx context.Context, tenant shard.TenantID, oldCount shard.ShardCount) error {
	return s.mutate(ctx, func(t *tables) (*txn, error) { return t.planCommitSplit(tenant, oldCount) })
}

func (s *DiskStore) AbortSplit(ctx context.Context, tenant shard.TenantID, newCount shard.ShardCount) (SplitOutcome, error) {
	var out SplitOutcome
	err := s.mutate(ctx, func(t *tables) (x *txn, err error) {
		x, out, err = t.planAbortSplit(tenant, newCount)
		return x, err
	})
	if err != nil {
		return 0, err
	}
	return out, nil
}
