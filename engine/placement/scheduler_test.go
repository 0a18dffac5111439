package placement

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/stratadb/strata/engine/invariants"
	"github.com/stratadb/strata/engine/shard"
)

func tid(b byte) shard.TenantID {
	var t shard.TenantID
	t[0] = b
	return t
}

func tsid(t byte, n, count uint8) shard.TenantShardID {
	return shard.TenantShardID{TenantID: tid(t), Shard: shard.ShardIndex{Number: shard.ShardNumber(n), Count: shard.ShardCount(count)}}
}

func active(id NodeID, az AZ, score uint64) Node {
	return Node{ID: id, Availability: Active, AZ: az, Utilization: Utilization{Score: score}}
}

// loc is a location placed before the scheduling call under test: a shard
// of tenant on node, attached or secondary.
type loc struct {
	tenant   byte
	node     NodeID
	attached bool
}

func mustScheduler(t testing.TB, nodes ...Node) *Scheduler {
	t.Helper()
	s := NewScheduler()
	for _, n := range nodes {
		if err := s.UpsertNode(n); err != nil {
			t.Fatalf("UpsertNode(%+v): %v", n, err)
		}
	}
	return s
}

// placeLocs builds one shard per location (distinct shard numbers), so the
// counts hold exactly these locations.
func placeLocs(t *testing.T, s *Scheduler, locs []loc) []*ShardState {
	t.Helper()
	var out []*ShardState
	for i, l := range locs {
		st := NewShardState(tsid(l.tenant, uint8(i), uint8(len(locs))), shard.Unsharded(), Attached(0))
		var err error
		if l.attached {
			err = st.SetAttached(s, l.node)
		} else {
			err = st.AddSecondary(s, l.node)
		}
		if err != nil {
			t.Fatalf("place %+v: %v", l, err)
		}
		out = append(out, st)
	}
	return out
}

func TestScheduleScoring(t *testing.T) {
	const T = 7 // the tenant being scheduled
	policy := func(id NodeID, p NodePolicy) Node { n := active(id, "", 0); n.Policy = p; return n }
	avail := func(id NodeID, a Availability) Node { n := active(id, "", 0); n.Availability = a; return n }
	withMax := func(n Node, max uint64) Node { n.Utilization.MaxShardCount = max; return n }
	cases := []struct {
		name      string
		nodes     []Node
		locs      []loc
		secondary bool
		az        AZ // preferred (attached) or to avoid (secondary)
		exclude   []NodeID
		want      NodeID
		wantErr   error
	}{
		{name: "all equal: lowest id", nodes: []Node{active(3, "", 0), active(1, "", 0), active(2, "", 0)}, want: 1},
		{name: "AZ match beats affinity, utilization and counts",
			nodes: []Node{active(1, "a", 0), active(2, "b", 900_000)},
			locs:  []loc{{T, 2, true}, {9, 2, true}}, az: "b", want: 2},
		{name: "unknown AZ beats a mismatch", nodes: []Node{active(1, "a", 0), active(2, "", 0)}, az: "b", want: 2},
		{name: "a match beats an unknown AZ", nodes: []Node{active(1, "", 0), active(2, "b", 0)}, az: "b", want: 2},
		{name: "no preferred AZ: AZ does not matter", nodes: []Node{active(1, "a", 0), active(2, "b", 0)}, want: 1},
		{name: "affinity beats utilization",
			nodes: []Node{active(1, "", 0), active(2, "", 500_000)}, locs: []loc{{T, 1, true}}, want: 2},
		{name: "affinity counts the tenant's secondaries",
			nodes: []Node{active(1, "", 0), active(2, "", 0)}, locs: []loc{{T, 1, false}}, want: 2},
		{name: "fewer of the tenant's locations wins",
			nodes: []Node{active(1, "", 0), active(2, "", 0)},
			locs:  []loc{{T, 1, false}, {T, 1, true}, {T, 2, true}}, want: 2},
		{name: "another tenant's secondary is neither affinity nor attached count",
			nodes: []Node{active(1, "", 0), active(2, "", 0)}, locs: []loc{{9, 1, false}}, want: 1},
		{name: "utilization beats attached count",
			nodes: []Node{active(1, "", 100), active(2, "", 50)},
			locs:  []loc{{9, 2, true}, {8, 2, true}, {6, 2, true}}, want: 2},
		{name: "attached count beats id",
			nodes: []Node{active(1, "", 0), active(2, "", 0)}, locs: []loc{{9, 1, true}}, want: 2},
		{name: "utilization raised by placements since the report",
			nodes: []Node{withMax(active(1, "", 0), 10), active(2, "", 400_000)},
			locs:  []loc{{9, 1, false}, {8, 1, false}, {6, 1, false}, {5, 1, false}, {4, 1, false}}, want: 2},
		{name: "overloaded only if nothing else fits",
			nodes: []Node{active(1, "", OverloadedScore), active(2, "", OverloadedScore-1)}, want: 2},
		{name: "overloaded loses even to an AZ mismatch and affinity",
			nodes: []Node{active(1, "a", OverloadedScore), active(2, "b", 0)},
			locs:  []loc{{T, 2, true}}, az: "a", want: 2},
		{name: "overloaded when it is all there is",
			nodes: []Node{active(1, "", OverloadedScore+5), active(2, "", OverloadedScore+1), avail(3, Offline)}, want: 2},
		{name: "draining never", nodes: []Node{policy(1, NodeDraining), active(2, "", 900_000)}, want: 2},
		{name: "pause never", nodes: []Node{policy(1, NodePause), active(2, "", 900_000)}, want: 2},
		{name: "pause for restart never", nodes: []Node{policy(1, NodePauseForRestart), active(2, "", 900_000)}, want: 2},
		{name: "deleting never", nodes: []Node{policy(1, NodeDeleting), active(2, "", 900_000)}, want: 2},
		{name: "offline never", nodes: []Node{avail(1, Offline), active(2, "", 900_000)}, want: 2},
		{name: "warming up never", nodes: []Node{avail(1, WarmingUp), active(2, "", 900_000)}, want: 2},
		{name: "filling takes shards", nodes: []Node{policy(1, NodeFilling), active(2, "", 0)}, want: 1},
		{name: "excluded never", nodes: []Node{active(1, "", 0), active(2, "", 0)}, exclude: []NodeID{1}, want: 2},
		{name: "no nodes", wantErr: ErrNoSchedulableNode},
		{name: "nothing schedulable",
			nodes:   []Node{avail(1, Offline), avail(2, WarmingUp), policy(3, NodeDraining), policy(4, NodePause), active(5, "", 0)},
			exclude: []NodeID{5}, wantErr: ErrNoSchedulableNode},

		{name: "secondary: another AZ than the attachment's", secondary: true,
			nodes: []Node{active(1, "a", 0), active(2, "b", 900_000)}, az: "a", want: 2},
		{name: "secondary: unknown AZ between other and same", secondary: true,
			nodes: []Node{active(1, "a", 0), active(2, "", 0), active(3, "b", 0)}, az: "a", exclude: []NodeID{3}, want: 2},
		{name: "secondary: another AZ beats an unknown one", secondary: true,
			nodes: []Node{active(1, "", 0), active(2, "b", 0)}, az: "a", want: 2},
		{name: "secondary: no AZ to avoid", secondary: true,
			nodes: []Node{active(1, "a", 0), active(2, "b", 0)}, want: 1},
		{name: "secondary: affinity beats utilization", secondary: true,
			nodes: []Node{active(1, "", 0), active(2, "", 500_000)}, locs: []loc{{T, 1, true}}, want: 2},
		{name: "secondary: utilization beats counts", secondary: true,
			nodes: []Node{active(1, "", 10), active(2, "", 5)}, locs: []loc{{9, 2, false}, {8, 2, true}}, want: 2},
		{name: "secondary: all locations count, not only attached", secondary: true,
			nodes: []Node{active(1, "", 0), active(2, "", 0)}, locs: []loc{{9, 1, false}}, want: 2},
		{name: "secondary: excluded attached node", secondary: true,
			nodes: []Node{active(1, "", 0), active(2, "", 0)}, exclude: []NodeID{1}, want: 2},
		{name: "secondary: overloaded last", secondary: true,
			nodes: []Node{active(1, "b", OverloadedScore), active(2, "a", 0)}, az: "a", want: 2},
		{name: "secondary: draining never", secondary: true,
			nodes: []Node{policy(1, NodeDraining), active(2, "", 0)}, want: 2},
		{name: "secondary: nothing schedulable", secondary: true,
			nodes: []Node{avail(1, WarmingUp)}, wantErr: ErrNoSchedulableNode},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := mustScheduler(t, tc.nodes...)
			// Locations go on nodes that may not schedule too: place them
			// with every node schedulable, then restore the nodes.
			for _, n := range tc.nodes {
				m := n
				m.Availability, m.Policy = Active, NodeActive
				if err := s.UpsertNode(m); err != nil {
					t.Fatal(err)
				}
			}
			placeLocs(t, s, tc.locs)
			for _, n := range tc.nodes {
				sn := s.byID[n.ID]
				sn.Availability, sn.Policy = n.Availability, n.Policy
			}
			var got NodeID
			var err error
			if tc.secondary {
				got, err = s.ScheduleSecondary(tid(T), tc.az, tc.exclude)
			} else {
				got, err = s.ScheduleAttached(tid(T), tc.az, tc.exclude)
			}
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("got node %d, err %v; want %v", got, err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got node %d, err %v; want node %d", got, err, tc.want)
			}
		})
	}
}

func TestUpsertNodeValidates(t *testing.T) {
	s := NewScheduler()
	for _, n := range []Node{{ID: 0, Availability: Active}, {ID: 1, Availability: 9}, {ID: 1, Policy: 42}} {
		if err := s.UpsertNode(n); !errors.Is(err, ErrInvalid) {
			t.Errorf("UpsertNode(%+v) = %v, want ErrInvalid", n, err)
		}
	}
	if len(s.Nodes()) != 0 {
		t.Fatalf("invalid nodes were added: %+v", s.Nodes())
	}
}

func TestRemoveNode(t *testing.T) {
	s := mustScheduler(t, active(1, "", 0), active(2, "", 0))
	st := NewShardState(tsid(1, 0, 0), shard.Unsharded(), Attached(1))
	if err := st.Schedule(s); err != nil {
		t.Fatal(err)
	}
	if err := s.RemoveNode(1); !errors.Is(err, ErrNodeInUse) {
		t.Fatalf("RemoveNode of an attached node = %v, want ErrNodeInUse", err)
	}
	if err := s.RemoveNode(2); !errors.Is(err, ErrNodeInUse) {
		t.Fatalf("RemoveNode of a secondary's node = %v, want ErrNodeInUse", err)
	}
	if err := s.RemoveNode(3); !errors.Is(err, ErrUnknownNode) {
		t.Fatalf("RemoveNode(3) = %v, want ErrUnknownNode", err)
	}
	if err := st.RemoveSecondary(s, 2); err != nil {
		t.Fatal(err)
	}
	if err := s.RemoveNode(2); err != nil {
		t.Fatalf("RemoveNode of an unreferenced node: %v", err)
	}
	if s.Has(2) || len(s.Nodes()) != 1 {
		t.Fatalf("node 2 still known: %+v", s.Nodes())
	}
	if err := st.AddSecondary(s, 2); !errors.Is(err, ErrUnknownNode) {
		t.Fatalf("AddSecondary on a removed node = %v, want ErrUnknownNode", err)
	}
}

// TestUpsertResetsUtilizationAdjustment: placements raise a node's score at
// once; removals lower it only at the next report.
func TestUpsertResetsUtilizationAdjustment(t *testing.T) {
	n := active(1, "", 0)
	n.Utilization.MaxShardCount = 4
	s := mustScheduler(t, n)
	st := NewShardState(tsid(1, 0, 0), shard.Unsharded(), Attached(0))
	if err := st.SetAttached(s, 1); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Node(1); got.Score != FullScore/4 {
		t.Fatalf("score after a placement = %d, want %d", got.Score, FullScore/4)
	}
	if err := st.ClearIntent(s); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Node(1); got.Score != FullScore/4 || got.Shards != 0 {
		t.Fatalf("after removal: score %d shards %d, want the score kept until the next report", got.Score, got.Shards)
	}
	if err := s.UpsertNode(n); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Node(1); got.Score != 0 {
		t.Fatalf("score after a fresh report = %d, want 0", got.Score)
	}
}

func TestCheckNamesEveryDifference(t *testing.T) {
	s := mustScheduler(t, active(1, "", 0), active(2, "", 0), active(3, "", 0))
	var shards []*ShardState
	for i := range 4 {
		st := NewShardState(tsid(byte(i%2), uint8(i), 4), shard.Unsharded(), Attached(1))
		if err := st.Schedule(s); err != nil {
			t.Fatal(err)
		}
		shards = append(shards, st)
	}
	if err := s.Check(shards); err != nil {
		t.Fatalf("Check on consistent counts: %v", err)
	}
	s.byID[2].attached++
	s.byID[3].shards--
	s.tenants[tid(1)].nodes[0].n += 5
	err := s.Check(shards)
	if !errors.Is(err, ErrInconsistent) {
		t.Fatalf("Check = %v, want ErrInconsistent", err)
	}
	for _, want := range []string{"node 2:", "node 3:", "tenant " + tid(1).String() + " on node"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Check error %q does not name %q", err, want)
		}
	}
	if strings.Contains(err.Error(), "node 1: shards") {
		t.Errorf("Check error %q names node 1, which is consistent", err)
	}
	// A shard left out of the recount shows as surplus counts.
	s.byID[2].attached--
	s.byID[3].shards++
	s.tenants[tid(1)].nodes[0].n -= 5
	if err := s.Check(shards[1:]); !errors.Is(err, ErrInconsistent) {
		t.Fatalf("Check without one shard = %v, want ErrInconsistent", err)
	}
}

// TestCountsNeverNegative: a count edit that would take a count below zero
// is an invariant violation, caught where it happens: a panic with
// assertions on, an error wrapping ErrViolated in a release build.
func TestCountsNeverNegative(t *testing.T) {
	s := mustScheduler(t, active(1, "", 0))
	for _, c := range []refChange{refDetach, refDemote, refRemoveSecondary} {
		var got error
		func() {
			defer func() {
				if r := recover(); r != nil {
					got, _ = r.(error)
					if got == nil {
						got = fmt.Errorf("panic %v", r)
					}
				}
			}()
			got = s.ref(tid(1), 1, c)
		}()
		if !errors.Is(got, invariants.ErrViolated) {
			t.Errorf("edit %d on an empty node: %v, want an invariant violation", c, got)
		}
		// Undo so the next edit starts from zero counts again.
		s.byID[1].shards, s.byID[1].attached = 0, 0
		delete(s.tenants, tid(1))
	}
}
