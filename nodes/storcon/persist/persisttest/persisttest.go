package persisttest

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/stratadb/strata/engine/layer"
	"github.com/stratadb/strata/engine/shard"
	"github.com/stratadb/strata/nodes/storcon/persist"
)

// Opener opens a store on one backing (a directory, a database). The suite
// closes each store before it opens the next, so calling Opener again
// reopens what the previous store wrote.
type Opener func(t *testing.T) persist.Store

// Run runs the suite. newBacking is called once per subtest and returns the
// Opener of a fresh, empty backing.
func Run(t *testing.T, newBacking func(t *testing.T) Opener) {
	tests := []struct {
		name string
		fn   func(t *testing.T, open Opener)
	}{
		{"Nodes", testNodes},
		{"NodeNotFound", testNodeNotFound},
		{"NodeInvalid", testNodeInvalid},
		{"InsertList", testInsertList},
		{"InsertAllOrNothing", testInsertAllOrNothing},
		{"InsertInvalid", testInsertInvalid},
		{"DeleteTenant", testDeleteTenant},
		{"Update", testUpdate},
		{"UpdateGeneration", testUpdateGeneration},
		{"UpdateErrors", testUpdateErrors},
		{"IncrementGeneration", testIncrementGeneration},
		{"GenerationExhausted", testGenerationExhausted},
		{"GenerationsAcrossReopen", testGenerationsAcrossReopen},
		{"ReAttach", testReAttach},
		{"ReAttachAllOrNothing", testReAttachAllOrNothing},
		{"Splitting", testSplitting},
		{"SplitCommit", testSplitCommit},
		{"SplitAbort", testSplitAbort},
		{"SplitErrors", testSplitErrors},
		{"ReopenKeepsEverything", testReopen},
		{"Closed", testClosed},
		{"ConcurrentIncrements", testConcurrentIncrements},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, newBacking(t)) })
	}
}

// argClasses are the classes an error must not mix.
func argClasses() []error {
	return []error{
		persist.ErrNotFound, persist.ErrExists, persist.ErrConflict, persist.ErrInvalid,
		persist.ErrGenerationExhausted, persist.ErrClosed,
	}
}

// WantClass fails t unless err wraps class and none of the other argument
// classes.
func WantClass(t testing.TB, what string, err, class error) {
	t.Helper()
	if !errors.Is(err, class) {
		t.Fatalf("%s: got %v, want an error of class %v", what, err, class)
	}
	for _, c := range argClasses() {
		if c != class && errors.Is(err, c) {
			t.Fatalf("%s: error %v is of class %v as well as %v", what, err, c, class)
		}
	}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// openStore opens a store and closes it when the test ends.
func openStore(t *testing.T, open Opener) persist.Store {
	t.Helper()
	s := open(t)
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func reopen(t *testing.T, s persist.Store, open Opener) persist.Store {
	t.Helper()
	must(t, s.Close())
	return openStore(t, open)
}

// TenantID returns a test tenant id whose every byte is b.
func TenantID(b byte) shard.TenantID {
	var id shard.TenantID
	for i := range id {
		id[i] = b
	}
	return id
}

// ShardID returns shard n of count of the tenant TenantID(b).
func ShardID(b byte, n, count uint8) shard.TenantShardID {
	return shard.TenantShardID{TenantID: TenantID(b), Shard: shard.ShardIndex{Number: shard.ShardNumber(n), Count: shard.ShardCount(count)}}
}

// Row returns a valid shard row for id with placeholder policies.
func Row(id shard.TenantShardID) persist.TenantShard {
	return persist.TenantShard{
		ID:               id,
		StripeSize:       32768,
		PlacementPolicy:  `{"Attached":0}`,
		Config:           `{}`,
		SchedulingPolicy: `"Active"`,
	}
}

// Tenant returns the rows of every shard of tenant b with count shards
// (count 0: one unsharded row).
func Tenant(b byte, count uint8) []persist.TenantShard {
	var rows []persist.TenantShard
	for n := 0; n < max(int(count), 1); n++ {
		rows = append(rows, Row(ShardID(b, uint8(n), count)))
	}
	return rows
}

// NodeRow returns a valid node row.
func NodeRow(id persist.NodeID) persist.Node {
	return persist.Node{
		ID:                 id,
		SchedulingPolicy:   "Active",
		ListenHTTPAddr:     fmt.Sprintf("ps-%d.local", id),
		ListenHTTPPort:     9898,
		ListenPGAddr:       fmt.Sprintf("ps-%d.local", id),
		ListenPGPort:       6400,
		ListenGRPCAddr:     fmt.Sprintf("ps-%d.local", id),
		ListenGRPCPort:     51051,
		AvailabilityZoneID: "az-a",
		Lifecycle:          persist.LifecycleActive,
	}
}

func sorted(rows []persist.TenantShard) []persist.TenantShard {
	out := slices.Clone(rows)
	slices.SortFunc(out, func(a, b persist.TenantShard) int { return a.ID.Compare(b.ID) })
	return out
}

// WantShards fails t unless the store holds exactly want (in any order).
func WantShards(t testing.TB, s persist.Store, want []persist.TenantShard) {
	t.Helper()
	got, err := s.ListTenantShards(context.Background())
	must(t, err)
	if !slices.Equal(got, sorted(want)) {
		t.Fatalf("tenant shards:\n got  %s\n want %s", fmtRows(got), fmtRows(sorted(want)))
	}
}

// WantNodes fails t unless the store holds exactly want (in any order).
func WantNodes(t testing.TB, s persist.Store, want []persist.Node) {
	t.Helper()
	got, err := s.ListNodes(context.Background())
	must(t, err)
	want = slices.Clone(want)
	slices.SortFunc(want, func(a, b persist.Node) int { return cmpNode(a.ID, b.ID) })
	if !slices.Equal(got, want) {
		t.Fatalf("nodes:\n got  %+v\n want %+v", got, want)
	}
}

func cmpNode(a, b persist.NodeID) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func fmtRows(rows []persist.TenantShard) string {
	var b strings.Builder
	b.WriteString("[")
	for _, r := range rows {
		fmt.Fprintf(&b, "\n   %+v", r)
	}
	b.WriteString("]")
	return b.String()
}

func testNodes(t *testing.T, open Opener) {
	ctx := context.Background()
	s := openStore(t, open)
	WantNodes(t, s, nil)

	n2, n1 := NodeRow(2), NodeRow(1)
	n2.Lifecycle = persist.LifecycleDeleted // ignored: registering makes a node active
	must(t, s.UpsertNode(ctx, n2))
	must(t, s.UpsertNode(ctx, n1))
	n2.Lifecycle = persist.LifecycleActive
	WantNodes(t, s, []persist.Node{n1, n2})

	// Re-registration replaces every column.
	n1.ListenHTTPAddr, n1.ListenHTTPPort, n1.AvailabilityZoneID, n1.SchedulingPolicy = "other.local", 1, "az-b", "Pause"
	must(t, s.UpsertNode(ctx, n1))
	WantNodes(t, s, []persist.Node{n1, n2})

	must(t, s.SetNodeSchedulingPolicy(ctx, 2, "Draining"))
	n2.SchedulingPolicy = "Draining"
	must(t, s.SetNodeAvailabilityZone(ctx, 2, "az-c"))
	n2.AvailabilityZoneID = "az-c"
	WantNodes(t, s, []persist.Node{n1, n2})

	must(t, s.MarkNodeDeleted(ctx, 2))
	n2.Lifecycle = persist.LifecycleDeleted
	WantNodes(t, s, []persist.Node{n1, n2})
	// Registering a deleted node brings it back.
	must(t, s.UpsertNode(ctx, n2))
	n2.Lifecycle = persist.LifecycleActive
	WantNodes(t, s, []persist.Node{n1, n2})

	must(t, s.DeleteNode(ctx, 1))
	WantNodes(t, s, []persist.Node{n2})

	s = reopen(t, s, open)
	WantNodes(t, s, []persist.Node{n2})
}

func testNodeNotFound(t *testing.T, open Opener) {
	ctx := context.Background()
	s := openStore(t, open)
	must(t, s.UpsertNode(ctx, NodeRow(1)))
	WantClass(t, "SetNodeSchedulingPolicy of a missing node", s.SetNodeSchedulingPolicy(ctx, 7, "Active"), persist.ErrNotFound)
	WantClass(t, "SetNodeAvailabilityZone of a missing node", s.SetNodeAvailabilityZone(ctx, 7, "az"), persist.ErrNotFound)
	WantClass(t, "MarkNodeDeleted of a missing node", s.MarkNodeDeleted(ctx, 7), persist.ErrNotFound)
	WantClass(t, "DeleteNode of a missing node", s.DeleteNode(ctx, 7), persist.ErrNotFound)
	WantNodes(t, s, []persist.Node{NodeRow(1)})
}

func testNodeInvalid(t *testing.T, open Opener) {
	ctx := context.Background()
	s := openStore(t, open)
	type badNode struct {
		what string
		n    persist.Node
	}
	var bad []badNode
	add := func(what string, change func(*persist.Node)) {
		n := NodeRow(1)
		change(&n)
		bad = append(bad, badNode{what, n})
	}
	add("node id 0", func(n *persist.Node) { n.ID = 0 })
	add("node id above MaxInt64", func(n *persist.Node) { n.ID = math.MaxInt64 + 1 })
	add("empty scheduling policy", func(n *persist.Node) { n.SchedulingPolicy = "" })
	add("address too long", func(n *persist.Node) { n.ListenHTTPAddr = strings.Repeat("x", persist.MaxTextBytes+1) })
	add("NUL in availability zone", func(n *persist.Node) { n.AvailabilityZoneID = "a\x00b" })
	add("availability zone not UTF-8", func(n *persist.Node) { n.AvailabilityZoneID = "\xff" })
	for _, b := range bad {
		WantClass(t, b.what, s.UpsertNode(ctx, b.n), persist.ErrInvalid)
	}
	must(t, s.UpsertNode(ctx, NodeRow(1)))
	WantClass(t, "SetNodeSchedulingPolicy to empty", s.SetNodeSchedulingPolicy(ctx, 1, ""), persist.ErrInvalid)
	WantClass(t, "SetNodeSchedulingPolicy of node 0", s.SetNodeSchedulingPolicy(ctx, 0, "Active"), persist.ErrInvalid)
	WantNodes(t, s, []persist.Node{NodeRow(1)})
}

func testInsertList(t *testing.T, open Opener) {
	ctx := context.Background()
	s := openStore(t, open)
	WantShards(t, s, nil)
	a := Tenant(0xaa, 4)
	a[2].Generation, a[2].GenerationNode, a[2].PreferredAZ, a[2].Splitting = 9, 3, "az-b", true
	a[3].Config = `{"gc_period":"1h","pitr_interval":"7 days"}`
	b := Tenant(0x0b, 0)
	must(t, s.InsertTenantShards(ctx, a))
	must(t, s.InsertTenantShards(ctx, b))
	must(t, s.InsertTenantShards(ctx, nil)) // nothing to insert
	WantShards(t, s, append(slices.Clone(a), b...))

	got, err := s.TenantShards(ctx, TenantID(0xaa))
	must(t, err)
	if !slices.Equal(got, a) {
		t.Fatalf("TenantShards: got %s, want %s", fmtRows(got), fmtRows(a))
	}
	got, err = s.TenantShards(ctx, TenantID(0x77))
	must(t, err)
	if len(got) != 0 {
		t.Fatalf("TenantShards of an unknown tenant: %s", fmtRows(got))
	}
	g, node, err := s.Generation(ctx, a[2].ID)
	must(t, err)
	if g != 9 || node != 3 {
		t.Fatalf("Generation = %d, %d; want 9, 3", g, node)
	}
	_, _, err = s.Generation(ctx, ShardID(0x77, 0, 0))
	WantClass(t, "Generation of a missing shard", err, persist.ErrNotFound)
}

func testInsertAllOrNothing(t *testing.T, open Opener) {
	ctx := context.Background()
	s := openStore(t, open)
	existing := Tenant(1, 0)
	must(t, s.InsertTenantShards(ctx, existing))

	dup := Tenant(2, 4)
	dup = append(dup, dup[1]) // the same shard twice in one batch
	WantClass(t, "insert naming a shard twice", s.InsertTenantShards(ctx, dup), persist.ErrExists)

	clash := append(Tenant(3, 2), existing[0])
	WantClass(t, "insert naming an existing shard", s.InsertTenantShards(ctx, clash), persist.ErrExists)

	again := Tenant(1, 0)
	again[0].StripeSize = 1
	WantClass(t, "insert of an existing tenant", s.InsertTenantShards(ctx, again), persist.ErrExists)

	bad := Tenant(4, 2)
	bad[1].Config = "{not json"
	WantClass(t, "insert with one invalid row", s.InsertTenantShards(ctx, bad), persist.ErrInvalid)

	WantShards(t, s, existing)
	s = reopen(t, s, open)
	WantShards(t, s, existing)
}

func testInsertInvalid(t *testing.T, open Opener) {
	ctx := context.Background()
	s := openStore(t, open)
	type badRow struct {
		what string
		r    persist.TenantShard
	}
	var bad []badRow
	add := func(what string, id shard.TenantShardID, change func(*persist.TenantShard)) {
		r := Row(id)
		change(&r)
		bad = append(bad, badRow{what, r})
	}
	none := func(*persist.TenantShard) {}
	add("shard number not below count", ShardID(1, 2, 2), none)
	add("unsharded shard with number 1", ShardID(1, 1, 0), none)
	add("empty placement policy", ShardID(1, 0, 0), func(r *persist.TenantShard) { r.PlacementPolicy = "" })
	add("config too long", ShardID(1, 0, 0), func(r *persist.TenantShard) {
		r.Config = `{"a":` + strings.Repeat(" ", persist.MaxJSONBytes) + `1}`
	})
	add("empty scheduling policy", ShardID(1, 0, 0), func(r *persist.TenantShard) { r.SchedulingPolicy = "" })
	add("generation node above MaxInt64", ShardID(1, 0, 0), func(r *persist.TenantShard) { r.GenerationNode = math.MaxInt64 + 1 })
	for _, b := range bad {
		WantClass(t, b.what, s.InsertTenantShards(ctx, []persist.TenantShard{b.r}), persist.ErrInvalid)
	}
	var many []persist.TenantShard
	for b := range persist.MaxBatchShards + 1 {
		many = append(many, Row(ShardID(byte(b), 0, 0)))
	}
	many[persist.MaxBatchShards].ID.TenantID[0] = 0xff // distinct ids
	WantClass(t, "insert over MaxBatchShards", s.InsertTenantShards(ctx, many), persist.ErrInvalid)
	WantShards(t, s, nil)
}

func testDeleteTenant(t *testing.T, open Opener) {
	ctx := context.Background()
	s := openStore(t, open)
	a, b := Tenant(1, 2), Tenant(2, 0)
	must(t, s.InsertTenantShards(ctx, append(slices.Clone(a), b...)))
	must(t, s.DeleteTenant(ctx, TenantID(1)))
	WantShards(t, s, b)
	WantClass(t, "DeleteTenant of a deleted tenant", s.DeleteTenant(ctx, TenantID(1)), persist.ErrNotFound)
	// The tenant can be created again, from scratch.
	must(t, s.InsertTenantShards(ctx, a))
	WantShards(t, s, append(slices.Clone(a), b...))
	s = reopen(t, s, open)
	WantShards(t, s, append(slices.Clone(a), b...))
}

func testUpdate(t *testing.T, open Opener) {
	ctx := context.Background()
	s := openStore(t, open)
	a, b := Tenant(1, 2), Tenant(2, 0)
	must(t, s.InsertTenantShards(ctx, append(slices.Clone(a), b...)))

	placement, config := `{"Attached":1}`, `{"pitr_interval":"1 day"}`
	must(t, s.UpdateTenantShards(ctx, persist.WholeTenant(TenantID(1)), persist.ShardUpdate{PlacementPolicy: &placement, Config: &config}))
	for i := range a {
		a[i].PlacementPolicy, a[i].Config = placement, config
	}
	WantShards(t, s, append(slices.Clone(a), b...))

	policy, az := `"Pause"`, "az-z"
	must(t, s.UpdateTenantShards(ctx, persist.OneShard(a[1].ID), persist.ShardUpdate{SchedulingPolicy: &policy, PreferredAZ: &az}))
	a[1].SchedulingPolicy, a[1].PreferredAZ = policy, az
	WantShards(t, s, append(slices.Clone(a), b...))

	none := ""
	must(t, s.UpdateTenantShards(ctx, persist.OneShard(a[1].ID), persist.ShardUpdate{PreferredAZ: &none}))
	a[1].PreferredAZ = ""
	WantShards(t, s, append(slices.Clone(a), b...))

	s = reopen(t, s, open)
	WantShards(t, s, append(slices.Clone(a), b...))
}

func testUpdateGeneration(t *testing.T, open Opener) {
	ctx := context.Background()
	s := openStore(t, open)
	a := Tenant(1, 2)
	a[0].Generation, a[0].GenerationNode = 5, 1
	a[1].Generation = 2
	must(t, s.InsertTenantShards(ctx, a))

	// Lower than one selected row: refused for the whole tenant.
	g := layer.Generation(3)
	WantClass(t, "setting a generation below the stored one", s.UpdateTenantShards(ctx, persist.WholeTenant(TenantID(1)), persist.ShardUpdate{Generation: &g}), persist.ErrConflict)
	WantShards(t, s, a)

	g = 5
	must(t, s.UpdateTenantShards(ctx, persist.WholeTenant(TenantID(1)), persist.ShardUpdate{Generation: &g}))
	a[1].Generation = 5
	WantShards(t, s, a)

	must(t, s.UpdateTenantShards(ctx, persist.OneShard(a[0].ID), persist.ShardUpdate{ClearGenerationNode: true}))
	a[0].GenerationNode = 0
	WantShards(t, s, a)
	// With the node forgotten, re-attach of node 1 no longer bumps it.
	rows, err := s.ReAttach(ctx, 1)
	must(t, err)
	if len(rows) != 0 {
		t.Fatalf("ReAttach after ClearGenerationNode: %s", fmtRows(rows))
	}
	WantShards(t, s, a)
}

func testUpdateErrors(t *testing.T, open Opener) {
	ctx := context.Background()
	s := openStore(t, open)
	a := Tenant(1, 2)
	must(t, s.InsertTenantShards(ctx, a))
	p := `{"Attached":0}`
	WantClass(t, "update of a missing tenant", s.UpdateTenantShards(ctx, persist.WholeTenant(TenantID(9)), persist.ShardUpdate{PlacementPolicy: &p}), persist.ErrNotFound)
	WantClass(t, "update of a missing shard", s.UpdateTenantShards(ctx, persist.OneShard(ShardID(1, 0, 4)), persist.ShardUpdate{PlacementPolicy: &p}), persist.ErrNotFound)
	WantClass(t, "update that sets nothing", s.UpdateTenantShards(ctx, persist.WholeTenant(TenantID(1)), persist.ShardUpdate{}), persist.ErrInvalid)
	badJSON := "Attached"
	WantClass(t, "update to invalid JSON", s.UpdateTenantShards(ctx, persist.WholeTenant(TenantID(1)), persist.ShardUpdate{PlacementPolicy: &p, Config: &badJSON}), persist.ErrInvalid)
	empty := ""
	WantClass(t, "update to an empty scheduling policy", s.UpdateTenantShards(ctx, persist.WholeTenant(TenantID(1)), persist.ShardUpdate{SchedulingPolicy: &empty}), persist.ErrInvalid)
	WantShards(t, s, a)
}

func testIncrementGeneration(t *testing.T, open Opener) {
	ctx := context.Background()
	s := openStore(t, open)
	a := Tenant(1, 2)
	must(t, s.InsertTenantShards(ctx, a))

	g, err := s.IncrementGeneration(ctx, a[0].ID, 7)
	must(t, err)
	if g != 1 {
		t.Fatalf("first generation = %d, want 1", g)
	}
	g, err = s.IncrementGeneration(ctx, a[0].ID, 8)
	must(t, err)
	if g != 2 {
		t.Fatalf("second generation = %d, want 2", g)
	}
	a[0].Generation, a[0].GenerationNode = 2, 8
	WantShards(t, s, a) // the other shard is untouched
	gen, node, err := s.Generation(ctx, a[0].ID)
	must(t, err)
	if gen != 2 || node != 8 {
		t.Fatalf("Generation = %d, %d; want 2, 8", gen, node)
	}

	_, err = s.IncrementGeneration(ctx, ShardID(1, 0, 4), 7)
	WantClass(t, "IncrementGeneration of a missing shard", err, persist.ErrNotFound)
	_, err = s.IncrementGeneration(ctx, a[1].ID, 0)
	WantClass(t, "IncrementGeneration for node 0", err, persist.ErrInvalid)
	_, err = s.IncrementGeneration(ctx, ShardID(1, 5, 2), 7)
	WantClass(t, "IncrementGeneration of an invalid shard id", err, persist.ErrInvalid)
	WantShards(t, s, a)
}

func testGenerationExhausted(t *testing.T, open Opener) {
	ctx := context.Background()
	s := openStore(t, open)
	a := Tenant(1, 0)
	a[0].Generation, a[0].GenerationNode = math.MaxUint32, 4
	must(t, s.InsertTenantShards(ctx, a))
	_, err := s.IncrementGeneration(ctx, a[0].ID, 4)
	WantClass(t, "IncrementGeneration past the largest generation", err, persist.ErrGenerationExhausted)
	WantShards(t, s, a)
}

func testGenerationsAcrossReopen(t *testing.T, open Opener) {
	ctx := context.Background()
	s := openStore(t, open)
	a := Tenant(1, 4)
	must(t, s.InsertTenantShards(ctx, a))
	last := map[shard.TenantShardID]layer.Generation{}
	for round := range 4 {
		for i, r := range a {
			for range i + 1 {
				g, err := s.IncrementGeneration(ctx, r.ID, persist.NodeID(round+1))
				must(t, err)
				if g <= last[r.ID] {
					t.Fatalf("round %d: shard %s got generation %d after %d", round, r.ID, g, last[r.ID])
				}
				last[r.ID] = g
			}
		}
		rows, err := s.ReAttach(ctx, persist.NodeID(round+1))
		must(t, err)
		for _, r := range rows {
			if r.Generation <= last[r.ID] {
				t.Fatalf("round %d: re-attach gave shard %s generation %d after %d", round, r.ID, r.Generation, last[r.ID])
			}
			last[r.ID] = r.Generation
		}
		s = reopen(t, s, open)
		for _, r := range a {
			g, _, err := s.Generation(ctx, r.ID)
			must(t, err)
			if g != last[r.ID] {
				t.Fatalf("after reopen %d: shard %s holds generation %d, last issued %d", round, r.ID, g, last[r.ID])
			}
		}
	}
}

func testReAttach(t *testing.T, open Opener) {
	ctx := context.Background()
	s := openStore(t, open)
	a := Tenant(1, 4)
	b := Tenant(2, 0)
	a[0].Generation, a[0].GenerationNode = 3, 1
	a[1].Generation, a[1].GenerationNode = 7, 2
	a[2].Generation, a[2].GenerationNode = 1, 1
	a[3].Generation = 4 // issued, but its node was forgotten
	b[0].Generation, b[0].GenerationNode = 10, 1
	c := Tenant(3, 0)
	c[0].GenerationNode = 1 // a node but no generation yet: the first is 1
	all := slices.Concat(a, b, c)
	must(t, s.InsertTenantShards(ctx, all))

	rows, err := s.ReAttach(ctx, 1)
	must(t, err)
	a[0].Generation, a[2].Generation, b[0].Generation, c[0].Generation = 4, 2, 11, 1
	want := []persist.TenantShard{b[0], a[0], a[2], c[0]}
	if !slices.Equal(rows, sorted(want)) {
		t.Fatalf("ReAttach(1) = %s, want %s", fmtRows(rows), fmtRows(sorted(want)))
	}
	WantShards(t, s, slices.Concat(a, b, c))

	rows, err = s.ReAttach(ctx, 3)
	must(t, err)
	if len(rows) != 0 {
		t.Fatalf("ReAttach of a node holding nothing = %s", fmtRows(rows))
	}
	_, err = s.ReAttach(ctx, 0)
	WantClass(t, "ReAttach of node 0", err, persist.ErrInvalid)
	WantShards(t, s, slices.Concat(a, b, c))

	s = reopen(t, s, open)
	WantShards(t, s, slices.Concat(a, b, c))
}

func testReAttachAllOrNothing(t *testing.T, open Opener) {
	ctx := context.Background()
	s := openStore(t, open)
	a := Tenant(1, 2)
	a[0].Generation, a[0].GenerationNode = 3, 1
	a[1].Generation, a[1].GenerationNode = math.MaxUint32, 1
	must(t, s.InsertTenantShards(ctx, a))
	_, err := s.ReAttach(ctx, 1)
	WantClass(t, "ReAttach with one shard at the largest generation", err, persist.ErrGenerationExhausted)
	WantShards(t, s, a)
}

func testSplitting(t *testing.T, open Opener) {
	ctx := context.Background()
	s := openStore(t, open)
	a, b := Tenant(1, 2), Tenant(2, 0)
	must(t, s.InsertTenantShards(ctx, append(slices.Clone(a), b...)))
	rows, err := s.ListSplitting(ctx)
	must(t, err)
	if len(rows) != 0 {
		t.Fatalf("ListSplitting before any mark = %s", fmtRows(rows))
	}
	must(t, s.SetSplitting(ctx, TenantID(1), true))
	for i := range a {
		a[i].Splitting = true
	}
	rows, err = s.ListSplitting(ctx)
	must(t, err)
	if !slices.Equal(rows, a) {
		t.Fatalf("ListSplitting = %s, want %s", fmtRows(rows), fmtRows(a))
	}
	s = reopen(t, s, open)
	rows, err = s.ListSplitting(ctx)
	must(t, err)
	if !slices.Equal(rows, a) {
		t.Fatalf("ListSplitting after reopen = %s, want %s", fmtRows(rows), fmtRows(a))
	}
	must(t, s.SetSplitting(ctx, TenantID(1), false))
	rows, err = s.ListSplitting(ctx)
	must(t, err)
	if len(rows) != 0 {
		t.Fatalf("ListSplitting after clearing = %s", fmtRows(rows))
	}
	WantClass(t, "SetSplitting of a missing tenant", s.SetSplitting(ctx, TenantID(9), true), persist.ErrNotFound)
}

// children returns the rows of tenant b split into count shards, with
// generation node node and a generation the store must replace by the
// parent's.
func children(b byte, count uint8, node persist.NodeID) []persist.TenantShard {
	rows := Tenant(b, count)
	for i := range rows {
		rows[i].Generation, rows[i].GenerationNode = 999, node
	}
	return rows
}

func testSplitCommit(t *testing.T, open Opener) {
	ctx := context.Background()
	s := openStore(t, open)
	parents := Tenant(1, 2)
	parents[0].Generation, parents[0].GenerationNode = 7, 1
	parents[1].Generation, parents[1].GenerationNode = 4, 2
	other := Tenant(2, 0)
	must(t, s.InsertTenantShards(ctx, append(slices.Clone(parents), other...)))

	kids := children(1, 4, 5)
	must(t, s.BeginSplit(ctx, TenantID(1), 2, kids))
	var want []persist.TenantShard
	for _, p := range parents {
		p.Splitting = true
		want = append(want, p)
	}
	for _, c := range kids {
		c.Splitting = true
		c.Generation = parents[c.ID.Shard.Number%2].Generation // carried from the parent
		want = append(want, c)
	}
	WantShards(t, s, append(slices.Clone(want), other...))
	rows, err := s.ListSplitting(ctx)
	must(t, err)
	if !slices.Equal(rows, sorted(want)) {
		t.Fatalf("ListSplitting during the split = %s, want %s", fmtRows(rows), fmtRows(sorted(want)))
	}
	// Children exist for increments while the split runs.
	g, err := s.IncrementGeneration(ctx, kids[3].ID, 5)
	must(t, err)
	if g != parents[1].Generation+1 {
		t.Fatalf("child generation after increment = %d, want %d", g, parents[1].Generation+1)
	}

	s = reopen(t, s, open) // a controller restart in the middle of the split
	must(t, s.CommitSplit(ctx, TenantID(1), 2))
	var done []persist.TenantShard
	for _, c := range want[2:] {
		c.Splitting = false
		if c.ID == kids[3].ID {
			c.Generation = g
		}
		done = append(done, c)
	}
	WantShards(t, s, append(slices.Clone(done), other...))
	must(t, s.CommitSplit(ctx, TenantID(1), 2)) // repeating is harmless
	WantShards(t, s, append(slices.Clone(done), other...))
	rows, err = s.ListSplitting(ctx)
	must(t, err)
	if len(rows) != 0 {
		t.Fatalf("ListSplitting after commit = %s", fmtRows(rows))
	}
	out, err := s.AbortSplit(ctx, TenantID(1), 4)
	must(t, err)
	if out != persist.SplitCommitted {
		t.Fatalf("AbortSplit after commit = %v, want %v", out, persist.SplitCommitted)
	}
	WantShards(t, s, append(slices.Clone(done), other...))
	WantClass(t, "CommitSplit of a missing tenant", s.CommitSplit(ctx, TenantID(9), 2), persist.ErrNotFound)
}

func testSplitAbort(t *testing.T, open Opener) {
	ctx := context.Background()
	s := openStore(t, open)
	parents := Tenant(1, 0)
	parents[0].Generation, parents[0].GenerationNode = 3, 1
	must(t, s.InsertTenantShards(ctx, parents))
	must(t, s.BeginSplit(ctx, TenantID(1), 0, children(1, 2, 1)))
	s = reopen(t, s, open)
	out, err := s.AbortSplit(ctx, TenantID(1), 2)
	must(t, err)
	if out != persist.SplitAborted {
		t.Fatalf("AbortSplit = %v, want %v", out, persist.SplitAborted)
	}
	WantShards(t, s, parents)
	// The tenant can split again after the rollback.
	must(t, s.BeginSplit(ctx, TenantID(1), 0, children(1, 2, 1)))
	_, err = s.AbortSplit(ctx, TenantID(9), 2)
	WantClass(t, "AbortSplit of a missing tenant", err, persist.ErrNotFound)
}

func testSplitErrors(t *testing.T, open Opener) {
	ctx := context.Background()
	s := openStore(t, open)
	parents := Tenant(1, 2)
	must(t, s.InsertTenantShards(ctx, parents))
	WantClass(t, "BeginSplit without parents", s.BeginSplit(ctx, TenantID(9), 0, children(9, 2, 1)), persist.ErrNotFound)
	WantClass(t, "BeginSplit of the wrong count", s.BeginSplit(ctx, TenantID(1), 4, children(1, 8, 1)), persist.ErrNotFound)
	WantClass(t, "BeginSplit into a count that is not a multiple", s.BeginSplit(ctx, TenantID(1), 2, children(1, 3, 1)), persist.ErrInvalid)
	WantClass(t, "BeginSplit missing a child", s.BeginSplit(ctx, TenantID(1), 2, children(1, 4, 1)[:3]), persist.ErrInvalid)
	WantClass(t, "BeginSplit naming another tenant's child", s.BeginSplit(ctx, TenantID(1), 2, children(2, 4, 1)), persist.ErrInvalid)
	WantShards(t, s, parents)

	// A child row already there: refused, and the parents stay unmarked.
	stray := Row(ShardID(1, 3, 4))
	must(t, s.InsertTenantShards(ctx, []persist.TenantShard{stray}))
	WantClass(t, "BeginSplit onto an existing child", s.BeginSplit(ctx, TenantID(1), 2, children(1, 4, 1)), persist.ErrExists)
	WantShards(t, s, append(slices.Clone(parents), stray))
	must(t, s.DeleteTenant(ctx, TenantID(1)))

	must(t, s.InsertTenantShards(ctx, parents))
	must(t, s.BeginSplit(ctx, TenantID(1), 2, children(1, 4, 1)))
	WantClass(t, "BeginSplit of a tenant already splitting", s.BeginSplit(ctx, TenantID(1), 2, children(1, 8, 1)), persist.ErrConflict)

	// A parent missing (count 2 with only shard 0): a conflict, not a split.
	half := Tenant(3, 2)[:1]
	must(t, s.InsertTenantShards(ctx, half))
	WantClass(t, "BeginSplit with a parent missing", s.BeginSplit(ctx, TenantID(3), 2, children(3, 4, 1)), persist.ErrConflict)
	rows, err := s.TenantShards(ctx, TenantID(3))
	must(t, err)
	if !slices.Equal(rows, half) {
		t.Fatalf("tenant after a refused split = %s, want %s", fmtRows(rows), fmtRows(half))
	}
}

func testReopen(t *testing.T, open Opener) {
	ctx := context.Background()
	s := openStore(t, open)
	nodes := []persist.Node{NodeRow(1), NodeRow(2), NodeRow(3)}
	for _, n := range nodes {
		must(t, s.UpsertNode(ctx, n))
	}
	must(t, s.MarkNodeDeleted(ctx, 3))
	nodes[2].Lifecycle = persist.LifecycleDeleted
	var rows []persist.TenantShard
	for b := range byte(20) {
		tenant := Tenant(b, []uint8{0, 1, 2, 4, 8}[b%5])
		for i := range tenant {
			tenant[i].PreferredAZ = fmt.Sprintf("az-%d", i%3)
			tenant[i].StripeSize = uint32(b) * 1024
		}
		must(t, s.InsertTenantShards(ctx, tenant))
		rows = append(rows, tenant...)
	}
	for i := range rows {
		if i%3 == 0 {
			g, err := s.IncrementGeneration(ctx, rows[i].ID, persist.NodeID(i%2+1))
			must(t, err)
			rows[i].Generation, rows[i].GenerationNode = g, persist.NodeID(i%2+1)
		}
	}
	WantNodes(t, s, nodes)
	WantShards(t, s, rows)
	s = reopen(t, s, open)
	WantNodes(t, s, nodes)
	WantShards(t, s, rows)
}

func testClosed(t *testing.T, open Opener) {
	ctx := context.Background()
	s := open(t)
	a := Tenant(1, 0)
	must(t, s.InsertTenantShards(ctx, a))
	must(t, s.Close())
	must(t, s.Close()) // closing again does nothing
	WantClass(t, "UpsertNode after Close", s.UpsertNode(ctx, NodeRow(1)), persist.ErrClosed)
	_, err := s.ListNodes(ctx)
	WantClass(t, "ListNodes after Close", err, persist.ErrClosed)
	_, err = s.ListTenantShards(ctx)
	WantClass(t, "ListTenantShards after Close", err, persist.ErrClosed)
	_, err = s.IncrementGeneration(ctx, a[0].ID, 1)
	WantClass(t, "IncrementGeneration after Close", err, persist.ErrClosed)
	_, _, err = s.Generation(ctx, a[0].ID)
	WantClass(t, "Generation after Close", err, persist.ErrClosed)
	_, err = s.ReAttach(ctx, 1)
	WantClass(t, "ReAttach after Close", err, persist.ErrClosed)
	WantClass(t, "InsertTenantShards after Close", s.InsertTenantShards(ctx, Tenant(2, 0)), persist.ErrClosed)
}

// testConcurrentIncrements increments one shard's generation from several
// goroutines: every call must get its own generation, and the last must
// count them all.
func testConcurrentIncrements(t *testing.T, open Opener) {
	const workers, each = 4, 25
	ctx := context.Background()
	s := openStore(t, open)
	a := Tenant(1, 0)
	must(t, s.InsertTenantShards(ctx, a))
	var (
		mu   sync.Mutex
		seen = map[layer.Generation]bool{}
		wg   sync.WaitGroup
		errs []error
	)
	for w := range workers {
		wg.Add(1)
		//strata:nondeterministic test support run by go test outside any simulation; the checks do not depend on the interleaving
		go func() {
			defer wg.Done()
			for range each {
				g, err := s.IncrementGeneration(ctx, a[0].ID, persist.NodeID(w+1))
				mu.Lock()
				if err != nil {
					errs = append(errs, err)
				} else if seen[g] {
					errs = append(errs, fmt.Errorf("generation %d issued twice", g))
				}
				seen[g] = true
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		t.Error(err)
	}
	g, _, err := s.Generation(ctx, a[0].ID)
	must(t, err)
	if g != workers*each || len(seen) != workers*each {
		t.Fatalf("after %d increments the generation is %d with %d distinct issued", workers*each, g, len(seen))
	}
}
