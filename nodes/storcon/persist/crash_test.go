package persist_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/stratadb/strata/clock"
	"github.com/stratadb/strata/disk"
	"github.com/stratadb/strata/engine/shard"
	"github.com/stratadb/strata/nodes/storcon/persist"
	"github.com/stratadb/strata/nodes/storcon/persist/persisttest"
	"github.com/stratadb/strata/sim/simdisk"
)

// faultFS wraps a simdisk view and injects one fault at its at-th
// mutating call (create, write, sync, truncate, rename, remove, mkdir,
// syncdir): with mode faultCrash the whole simdisk crashes just before the
// call, so it and every later call through this view fail with
// disk.ErrCrashed, as a process's calls do once its machine lost power;
// with mode faultIO the call fails with disk.ErrIO without taking effect.
type faultFS struct {
	disk.FS
	sim   *simdisk.FS
	rng   *rand.Rand
	mode  faultMode
	at    int // 0: never
	calls int
	hit   bool
}

type faultMode int

const (
	faultCrash faultMode = iota
	faultCrashTorn
	faultIO
)

func (m faultMode) String() string {
	return [...]string{"crash", "crash with torn writes", "I/O error"}[m]
}

func (c *faultFS) step() error {
	c.calls++
	if c.calls != c.at {
		return nil
	}
	c.hit = true
	if c.mode == faultIO {
		return disk.ErrIO
	}
	c.sim.Crash(c.rng, c.mode == faultCrashTorn)
	return nil
}

func (c *faultFS) wrap(f disk.File, err error) (disk.File, error) {
	if err != nil {
		return nil, err
	}
	return &faultFile{File: f, fs: c}, nil
}

func (c *faultFS) Create(name string) (disk.File, error) {
	if err := c.step(); err != nil {
		return nil, err
	}
	return c.wrap(c.FS.Create(name))
}
func (c *faultFS) OpenRW(name string) (disk.File, error) { return c.wrap(c.FS.OpenRW(name)) }
func (c *faultFS) Rename(o, n string) error {
	if err := c.step(); err != nil {
		return err
	}
	return c.FS.Rename(o, n)
}
func (c *faultFS) Remove(name string) error {
	if err := c.step(); err != nil {
		return err
	}
	return c.FS.Remove(name)
}
func (c *faultFS) MkdirAll(name string) error {
	if err := c.step(); err != nil {
		return err
	}
	return c.FS.MkdirAll(name)
}
func (c *faultFS) SyncDir(name string) error {
	if err := c.step(); err != nil {
		return err
	}
	return c.FS.SyncDir(name)
}

type faultFile struct {
	disk.File
	fs *faultFS
}

func (f *faultFile) Write(p []byte) (int, error) {
	if err := f.fs.step(); err != nil {
		return 0, err
	}
	return f.File.Write(p)
}
func (f *faultFile) WriteAt(p []byte, off int64) (int, error) {
	if err := f.fs.step(); err != nil {
		return 0, err
	}
	return f.File.WriteAt(p, off)
}
func (f *faultFile) Sync() error {
	if err := f.fs.step(); err != nil {
		return err
	}
	return f.File.Sync()
}
func (f *faultFile) Truncate(n int64) error {
	if err := f.fs.step(); err != nil {
		return err
	}
	return f.File.Truncate(n)
}

// op is one step of a crash workload: run performs it on a store and
// renders its result, so the store under test and the model can be
// compared call by call.
type op struct {
	name string
	run  func(ctx context.Context, s persist.Store) (string, error)
}

// state is everything a store holds.
type state struct {
	nodes  []persist.Node
	shards []persist.TenantShard
}

func readState(t *testing.T, s persist.Store) state {
	t.Helper()
	ctx := context.Background()
	nodes, err := s.ListNodes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	shards, err := s.ListTenantShards(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return state{nodes, shards}
}

func (a state) equal(b state) bool {
	return slices.Equal(a.nodes, b.nodes) && slices.Equal(a.shards, b.shards)
}

// nextOp draws an operation that fits the model's current state often
// enough to make progress (and sometimes one that the store must refuse).
func nextOp(rng *rand.Rand, model state) op {
	node := persist.NodeID(1 + rng.IntN(3))
	b := byte(1 + rng.IntN(4))
	tenant := persisttest.TenantID(b)
	var rows []persist.TenantShard
	for _, r := range model.shards {
		if r.ID.TenantID == tenant {
			rows = append(rows, r)
		}
	}
	pickShard := func() shard.TenantShardID {
		if len(rows) == 0 || rng.IntN(8) == 0 {
			return persisttest.ShardID(b, 0, 0)
		}
		return rows[rng.IntN(len(rows))].ID
	}
	switch rng.IntN(14) {
	case 0:
		n := persisttest.NodeRow(node)
		n.ListenHTTPPort = uint16(rng.IntN(1000))
		return op{fmt.Sprintf("UpsertNode(%d)", node), func(ctx context.Context, s persist.Store) (string, error) {
			return "", s.UpsertNode(ctx, n)
		}}
	case 1:
		p := []string{"Active", "Pause", "Draining", "Filling"}[rng.IntN(4)]
		return op{fmt.Sprintf("SetNodeSchedulingPolicy(%d, %s)", node, p), func(ctx context.Context, s persist.Store) (string, error) {
			return "", s.SetNodeSchedulingPolicy(ctx, node, p)
		}}
	case 2:
		if rng.IntN(2) == 0 {
			return op{fmt.Sprintf("MarkNodeDeleted(%d)", node), func(ctx context.Context, s persist.Store) (string, error) {
				return "", s.MarkNodeDeleted(ctx, node)
			}}
		}
		return op{fmt.Sprintf("DeleteNode(%d)", node), func(ctx context.Context, s persist.Store) (string, error) {
			return "", s.DeleteNode(ctx, node)
		}}
	case 3, 4:
		count := []uint8{0, 1, 2, 4}[rng.IntN(4)]
		newRows := persisttest.Tenant(b, count)
		for i := range newRows {
			newRows[i].Generation = 0
			newRows[i].PreferredAZ = fmt.Sprintf("az-%d", rng.IntN(3))
		}
		return op{fmt.Sprintf("InsertTenantShards(%d x %d)", b, count), func(ctx context.Context, s persist.Store) (string, error) {
			return "", s.InsertTenantShards(ctx, newRows)
		}}
	case 5:
		return op{fmt.Sprintf("DeleteTenant(%d)", b), func(ctx context.Context, s persist.Store) (string, error) {
			return "", s.DeleteTenant(ctx, tenant)
		}}
	case 6:
		p := fmt.Sprintf(`{"Attached":%d}`, rng.IntN(3))
		c := fmt.Sprintf(`{"gc_horizon":%d}`, rng.IntN(1000))
		sel := persist.WholeTenant(tenant)
		if rng.IntN(2) == 0 {
			sel = persist.OneShard(pickShard())
		}
		return op{fmt.Sprintf("UpdateTenantShards(%s)", sel), func(ctx context.Context, s persist.Store) (string, error) {
			return "", s.UpdateTenantShards(ctx, sel, persist.ShardUpdate{PlacementPolicy: &p, Config: &c})
		}}
	case 7, 8, 9:
		id := pickShard()
		return op{fmt.Sprintf("IncrementGeneration(%s, %d)", id, node), func(ctx context.Context, s persist.Store) (string, error) {
			g, err := s.IncrementGeneration(ctx, id, node)
			return fmt.Sprint(g), err
		}}
	case 10:
		return op{fmt.Sprintf("ReAttach(%d)", node), func(ctx context.Context, s persist.Store) (string, error) {
			rows, err := s.ReAttach(ctx, node)
			return fmt.Sprintf("%+v", rows), err
		}}
	case 11:
		on := rng.IntN(2) == 0
		return op{fmt.Sprintf("SetSplitting(%d, %v)", b, on), func(ctx context.Context, s persist.Store) (string, error) {
			return "", s.SetSplitting(ctx, tenant, on)
		}}
	case 12:
		old := shard.ShardCount(0)
		if len(rows) > 0 {
			old = rows[0].ID.Shard.Count
		}
		kids := persisttest.Tenant(b, uint8(max(old, 1)*2))
		for i := range kids {
			kids[i].GenerationNode = node
		}
		return op{fmt.Sprintf("BeginSplit(%d, %d)", b, old), func(ctx context.Context, s persist.Store) (string, error) {
			return "", s.BeginSplit(ctx, tenant, old, kids)
		}}
	default:
		var counts []shard.ShardCount
		for _, r := range rows {
			if !slices.Contains(counts, r.ID.Shard.Count) {
				counts = append(counts, r.ID.Shard.Count)
			}
		}
		if len(counts) < 2 {
			counts = append(counts, 0, 2)
		}
		slices.Sort(counts)
		if rng.IntN(2) == 0 {
			return op{fmt.Sprintf("CommitSplit(%d, %d)", b, counts[0]), func(ctx context.Context, s persist.Store) (string, error) {
				return "", s.CommitSplit(ctx, tenant, counts[0])
			}}
		}
		return op{fmt.Sprintf("AbortSplit(%d, %d)", b, counts[len(counts)-1]), func(ctx context.Context, s persist.Store) (string, error) {
			out, err := s.AbortSplit(ctx, tenant, counts[len(counts)-1])
			return out.String(), err
		}}
	}
}

// errClass names the argument class of err ("" for none).
func errClass(err error) string {
	for _, c := range []error{persist.ErrNotFound, persist.ErrExists, persist.ErrConflict, persist.ErrInvalid, persist.ErrGenerationExhausted} {
		if errors.Is(err, c) {
			return c.Error()
		}
	}
	if err != nil {
		return "other: " + err.Error()
	}
	return ""
}

const (
	crashWorkloadOps = 60
	// crashLogBytes is small enough that the workload compacts several
	// times, so crashes land inside compactions too.
	crashLogBytes = 1500
)

// faultRun runs the workload of seed against a store whose disk takes a
// fault at its at-th mutating call, with a model store on a disk that never
// fails beside it. After the fault it restarts the store — after a crash on
// what survived it, after an I/O error on everything written (a process
// restart) — and checks that the state is the model's: every acknowledged
// change, plus the change in flight either wholly or not at all. It then
// finishes the workload on the restarted store, crashes the disk with torn
// writes, and checks again, so state that recovery trusted without making
// it durable is caught too (once right after the first change acknowledged
// since the restart, before a later compaction can make up for it). It
// returns how many mutating calls the run made
// before the fault (all of them if at is past the end).
func faultRun(t *testing.T, seed uint64, at int, mode faultMode) int {
	t.Helper()
	ctx := context.Background()
	clk := clock.NewReal()
	cfg := persist.DiskConfig{MaxLogBytes: crashLogBytes}
	sim := simdisk.New(simdisk.Options{})
	ffs := &faultFS{FS: sim.View(), sim: sim, rng: rand.New(rand.NewPCG(seed, uint64(at))), mode: mode, at: at}
	where := fmt.Sprintf("seed %d, %v at call %d", seed, mode, at)
	restart := func() *persist.DiskStore {
		t.Helper()
		if mode == faultIO {
			sim.Exit()
		}
		s, err := persist.OpenDisk(clk, sim.View(), "storcon", cfg)
		if err != nil {
			t.Fatalf("%s: reopen: %v", where, err)
		}
		return s
	}
	s, err := persist.OpenDisk(clk, ffs, "storcon", cfg)
	if err != nil {
		if !ffs.hit {
			t.Fatal(err)
		}
		s = restart() // the fault hit while creating the store
	}
	model, err := persist.OpenDisk(clk, simdisk.New(simdisk.Options{}), "storcon", cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer model.Close()

	rng := rand.New(rand.NewPCG(seed, 0))
	restarted, crashedAgain := false, false
	for i := range crashWorkloadOps {
		o := nextOp(rng, readState(t, model))
		before := readState(t, model)
		got, gotErr := o.run(ctx, s)
		if ffs.hit && !restarted {
			restarted = true
			_ = s.Close()
			s = restart()
			after := readState(t, s)
			switch {
			case gotErr == nil:
				// Acknowledged: it must have survived.
				if _, err := o.run(ctx, model); err != nil {
					t.Fatalf("%s, op %d %s: the store acknowledged it but the model refused: %v", where, i, o.name, err)
				}
			case after.equal(before):
				continue // not applied
			default:
				_, _ = o.run(ctx, model) // applied although unacknowledged
			}
			if want := readState(t, model); !after.equal(want) {
				t.Fatalf("%s, during op %d %s (result %q, %v):\nrecovered %+v\nwant      %+v", where, i, o.name, got, gotErr, after, want)
			}
			continue
		}
		want, wantErr := o.run(ctx, model)
		if got != want || errClass(gotErr) != errClass(wantErr) {
			t.Fatalf("%s, op %d %s: store %q, %v; model %q, %v", where, i, o.name, got, gotErr, want, wantErr)
		}
		if restarted && !crashedAgain && !readState(t, model).equal(before) {
			// After the first change acknowledged since the restart, crash
			// again keeping only durable state: whatever recovery replayed
			// or reused must already have been durable.
			crashedAgain = true
			_ = s.Close()
			sim.Crash(rand.New(rand.NewPCG(seed, uint64(i))), false)
			if s, err = persist.OpenDisk(clk, sim.View(), "storcon", cfg); err != nil {
				t.Fatalf("%s: reopen after the second crash: %v", where, err)
			}
			if got, want := readState(t, s), readState(t, model); !got.equal(want) {
				t.Fatalf("%s: after the second crash\n got  %+v\n want %+v", where, got, want)
			}
		}
	}
	if ffs.hit && !restarted {
		t.Fatalf("%s: the fault hit after the last operation", where)
	}
	calls := ffs.calls
	_ = s.Close()
	sim.Crash(rand.New(rand.NewPCG(seed, ^uint64(at))), true)
	s, err = persist.OpenDisk(clk, sim.View(), "storcon", cfg)
	if err != nil {
		t.Fatalf("%s: reopen after the final crash: %v", where, err)
	}
	defer s.Close()
	if got, want := readState(t, s), readState(t, model); !got.equal(want) {
		t.Fatalf("%s: after the final crash\n got  %+v\n want %+v", where, got, want)
	}
	return calls
}

// TestFaultAtEveryCall injects a fault at every mutating call a workload
// makes (creating the store, appends, syncs, every step of the
// compactions): a crash, a crash with torn writes, and an I/O error
// followed by a process restart. Recovery must keep exactly the
// acknowledged changes and apply the one in flight wholly or not at all.
func TestFaultAtEveryCall(t *testing.T) {
	seeds := []uint64{1, 2, 3}
	if testing.Short() {
		seeds = seeds[:1]
	}
	for _, seed := range seeds {
		total := faultRun(t, seed, 0, faultCrash)
		if total < 100 {
			t.Fatalf("seed %d: the workload made only %d mutating calls", seed, total)
		}
		for at := 1; at <= total; at++ {
			for _, mode := range []faultMode{faultCrash, faultCrashTorn, faultIO} {
				faultRun(t, seed, at, mode)
			}
		}
	}
}

// TestCrashBetweenOperations crashes (with torn writes) after each
// completed operation and checks that nothing acknowledged is lost.
func TestCrashBetweenOperations(t *testing.T) {
	ctx := context.Background()
	clk := clock.NewReal()
	cfg := persist.DiskConfig{MaxLogBytes: crashLogBytes}
	sim := simdisk.New(simdisk.Options{})
	model, err := persist.OpenDisk(clk, simdisk.New(simdisk.Options{}), "storcon", cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer model.Close()
	rng := rand.New(rand.NewPCG(7, 7))
	crashRng := rand.New(rand.NewPCG(8, 8))
	for i := range 200 {
		s, err := persist.OpenDisk(clk, sim.View(), "storcon", cfg)
		if err != nil {
			t.Fatalf("op %d: reopen: %v", i, err)
		}
		if got, want := readState(t, s), readState(t, model); !got.equal(want) {
			t.Fatalf("after crash %d:\n got  %+v\n want %+v", i, got, want)
		}
		o := nextOp(rng, readState(t, model))
		got, gotErr := o.run(ctx, s)
		want, wantErr := o.run(ctx, model)
		if got != want || errClass(gotErr) != errClass(wantErr) {
			t.Fatalf("op %d %s: store %q, %v; model %q, %v", i, o.name, got, gotErr, want, wantErr)
		}
		sim.Crash(crashRng, true)
	}
}
