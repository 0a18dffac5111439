package placement

import (
	"testing"

	"github.com/stratadb/strata/engine/shard"
)

// TestDirty: a shard attached to node 1 (generation 5) with a secondary on
// node 2; node 3 is a bystander. Each case edits the clean state — observed
// equal to Wanted on 1 and 2, nothing on 3 — and says whether a reconcile
// has work to do.
func TestDirty(t *testing.T) {
	ident := shard.ShardIdentity{Number: 1, Count: 4, StripeSize: 2048}
	const conf = `{"gc_period":"1h"}`
	attached := LocationConf{Mode: ModeAttachedSingle, Generation: Gen(5), Shard: ident, TenantConf: conf}
	secondary := LocationConf{Mode: ModeSecondary, Warm: true, Shard: ident, TenantConf: conf}
	with := func(c LocationConf, f func(*LocationConf)) LocationConf { f(&c); return c }
	setAvail := func(s *Scheduler, id NodeID, a Availability) {
		n, _ := s.Node(id)
		n.Node.Availability = a
		if err := s.UpsertNode(n.Node); err != nil {
			t.Fatal(err)
		}
	}

	cases := []struct {
		name string
		edit func(s *Scheduler, st *ShardState)
		want bool
	}{
		{"clean", func(*Scheduler, *ShardState) {}, false},
		{"attached observed absent", func(_ *Scheduler, st *ShardState) { st.ClearObserved(1) }, true},
		{"attached observed unknown", func(_ *Scheduler, st *ShardState) { st.SetObservedUnknown(1) }, true},
		{"attached with another generation", func(_ *Scheduler, st *ShardState) {
			st.SetObserved(1, with(attached, func(c *LocationConf) { c.Generation = Gen(4) }))
		}, true},
		{"attached in another mode", func(_ *Scheduler, st *ShardState) {
			st.SetObserved(1, with(attached, func(c *LocationConf) { c.Mode = ModeAttachedMulti }))
		}, true},
		{"attached node observed as secondary", func(_ *Scheduler, st *ShardState) { st.SetObserved(1, secondary) }, true},
		{"secondary observed absent", func(_ *Scheduler, st *ShardState) { st.ClearObserved(2) }, true},
		{"secondary observed unknown", func(_ *Scheduler, st *ShardState) { st.SetObservedUnknown(2) }, true},
		{"secondary observed attached", func(_ *Scheduler, st *ShardState) { st.SetObserved(2, attached) }, true},
		{"secondary not warm", func(_ *Scheduler, st *ShardState) {
			st.SetObserved(2, with(secondary, func(c *LocationConf) { c.Warm = false }))
		}, true},
		{"tenant conf differs", func(_ *Scheduler, st *ShardState) { st.TenantConf = `{}` }, true},
		{"stripe size differs", func(_ *Scheduler, st *ShardState) {
			st.SetObserved(2, with(secondary, func(c *LocationConf) { c.Shard.StripeSize = 1 }))
		}, true},
		{"a new generation issued, not yet applied", func(_ *Scheduler, st *ShardState) {
			if err := st.SetGeneration(Gen(6), 1); err != nil {
				t.Fatal(err)
			}
		}, true},
		{"generation not issued to the attached node", func(_ *Scheduler, st *ShardState) {
			// Onboarding or a policy flip cleared the generation's node: the
			// node holds what Wanted says, but its re-attach would not list
			// the shard, so a generation must be issued to it.
			if err := st.SetGeneration(Gen(5), NoNode); err != nil {
				t.Fatal(err)
			}
		}, true},
		{"generation issued to another node", func(_ *Scheduler, st *ShardState) {
			if err := st.SetGeneration(Gen(5), 2); err != nil {
				t.Fatal(err)
			}
		}, true},
		{"extra location on another node", func(_ *Scheduler, st *ShardState) { st.SetObserved(3, secondary) }, true},
		{"extra unknown location on another node", func(_ *Scheduler, st *ShardState) { st.SetObservedUnknown(3) }, true},
		{"extra location, its node offline", func(s *Scheduler, st *ShardState) {
			st.SetObserved(3, attached)
			setAvail(s, 3, Offline)
		}, false},
		{"extra location reported detached", func(_ *Scheduler, st *ShardState) {
			st.SetObserved(3, secondary)
			st.SetObserved(3, LocationConf{Mode: ModeDetached})
		}, false},
		{"attached absent, its node offline", func(s *Scheduler, st *ShardState) {
			st.ClearObserved(1)
			setAvail(s, 1, Offline)
		}, false},
		{"secondary unknown, its node warming up", func(s *Scheduler, st *ShardState) {
			st.SetObservedUnknown(2)
			setAvail(s, 2, WarmingUp)
		}, false},
		{"secondary unknown, its node active again", func(s *Scheduler, st *ShardState) {
			st.SetObservedUnknown(2)
			setAvail(s, 2, WarmingUp)
			setAvail(s, 2, Active)
		}, true},
		{"a draining node is still available", func(s *Scheduler, st *ShardState) {
			st.ClearObserved(2)
			n, _ := s.Node(2)
			n.Node.Policy = NodeDraining
			if err := s.UpsertNode(n.Node); err != nil {
				t.Fatal(err)
			}
		}, true},
		{"intent moved, observed still on the old node", func(s *Scheduler, st *ShardState) {
			if err := st.SetAttached(s, 3); err != nil {
				t.Fatal(err)
			}
		}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := mustScheduler(t, active(1, "", 0), active(2, "", 0), active(3, "", 0))
			st := NewShardState(tsid(1, 1, 4), ident, Attached(1))
			st.TenantConf = conf
			if err := st.SetAttached(s, 1); err != nil {
				t.Fatal(err)
			}
			if err := st.AddSecondary(s, 2); err != nil {
				t.Fatal(err)
			}
			if err := st.SetGeneration(Gen(5), 1); err != nil {
				t.Fatal(err)
			}
			st.SetObserved(1, attached)
			st.SetObserved(2, secondary)
			if st.Wanted(1) != attached || st.Wanted(2) != secondary || st.Wanted(3) != (LocationConf{Mode: ModeDetached}) {
				t.Fatalf("Wanted: %+v %+v %+v", st.Wanted(1), st.Wanted(2), st.Wanted(3))
			}
			tc.edit(s, st)
			if got := st.Dirty(s); got != tc.want {
				t.Fatalf("Dirty = %v, want %v (observed %+v)", got, tc.want, st.ObservedLocations())
			}
		})
	}
}

// TestDirtyWithoutGeneration: an attachment needs a generation; until one
// is issued the shard is dirty even where observed equals Wanted (which has
// none either).
func TestDirtyWithoutGeneration(t *testing.T) {
	s := mustScheduler(t, active(1, "", 0))
	st := NewShardState(tsid(1, 0, 0), shard.Unsharded(), Attached(0))
	if err := st.SetAttached(s, 1); err != nil {
		t.Fatal(err)
	}
	st.SetObserved(1, st.Wanted(1))
	if !st.Dirty(s) {
		t.Fatal("attached intent without a generation is clean")
	}
	if err := st.SetGeneration(Gen(1), 1); err != nil {
		t.Fatal(err)
	}
	st.SetObserved(1, st.Wanted(1))
	if st.Dirty(s) {
		t.Fatal("dirty once the generation was applied")
	}
}

func TestNeedsReconcileAndStablyAttached(t *testing.T) {
	s := mustScheduler(t, active(1, "", 0))
	st := NewShardState(tsid(1, 0, 0), shard.Unsharded(), Attached(0))
	if err := st.SetAttached(s, 1); err != nil {
		t.Fatal(err)
	}
	if err := st.SetGeneration(Gen(1), 1); err != nil {
		t.Fatal(err)
	}
	if st.StablyAttached() != NoNode {
		t.Fatal("stably attached before anything was observed")
	}
	st.SetObserved(1, st.Wanted(1))
	if st.NeedsReconcile(s) {
		t.Fatal("clean shard needs a reconcile")
	}
	if st.StablyAttached() != 1 {
		t.Fatalf("StablyAttached = %d, want 1", st.StablyAttached())
	}
	st.PendingComputeNotification = true
	if !st.NeedsReconcile(s) {
		t.Fatal("pending compute notification does not need a reconcile")
	}
	st.SchedulingPolicy = ShardStop
	if st.NeedsReconcile(s) {
		t.Fatal("Stop still reconciles")
	}
	st.SchedulingPolicy = ShardPause
	st.PendingComputeNotification = false
	st.SetObservedUnknown(1)
	if !st.NeedsReconcile(s) {
		t.Fatal("a paused dirty shard does not reconcile")
	}
	if st.StablyAttached() != NoNode {
		t.Fatal("stably attached while observed is unknown")
	}
}
