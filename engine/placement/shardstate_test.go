package placement

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/stratadb/strata/engine/shard"
)

func mustCheck(t *testing.T, s *Scheduler, shards ...*ShardState) {
	t.Helper()
	if err := s.Check(shards); err != nil {
		t.Fatal(err)
	}
}

func TestScheduleAttachedPlacesSecondaryInAnotherAZ(t *testing.T) {
	s := mustScheduler(t, active(1, "a", 0), active(2, "a", 0), active(3, "b", 0), active(4, "b", 0))
	st := NewShardState(tsid(1, 0, 0), shard.Unsharded(), Attached(2))
	st.SetPreferredAZ("b")
	if err := st.Schedule(s); err != nil {
		t.Fatal(err)
	}
	// Attached in b (lowest id there); secondaries avoid b first.
	if st.Attached() != 3 || !slices.Equal(st.Secondaries(), []NodeID{1, 2}) {
		t.Fatalf("intent attached %d secondaries %v, want 3 and [1 2]", st.Attached(), st.Secondaries())
	}
	mustCheck(t, s, st)

	// Without a preferred AZ the attachment's AZ is the one to avoid.
	st2 := NewShardState(tsid(2, 0, 0), shard.Unsharded(), Attached(1))
	if err := st2.Schedule(s); err != nil {
		t.Fatal(err)
	}
	an, _ := s.Node(st2.Attached())
	sn, _ := s.Node(st2.Secondaries()[0])
	if an.AZ == sn.AZ {
		t.Fatalf("attached on %d (AZ %s), secondary on %d in the same AZ", an.ID, an.AZ, sn.ID)
	}
	mustCheck(t, s, st, st2)
}

func TestScheduleSpreadsATenantsShards(t *testing.T) {
	s := mustScheduler(t, active(1, "", 0), active(2, "", 0), active(3, "", 0), active(4, "", 0))
	var shards []*ShardState
	seen := map[NodeID]bool{}
	for i := range 4 {
		st := NewShardState(tsid(1, uint8(i), 4), shard.Unsharded(), Attached(0))
		if err := st.Schedule(s); err != nil {
			t.Fatal(err)
		}
		if seen[st.Attached()] {
			t.Fatalf("shard %d attached to node %d, which already holds a shard of the tenant", i, st.Attached())
		}
		seen[st.Attached()] = true
		shards = append(shards, st)
	}
	mustCheck(t, s, shards...)
}

func TestSchedulePolicies(t *testing.T) {
	s := mustScheduler(t, active(1, "", 0), active(2, "", 0), active(3, "", 0))
	st := NewShardState(tsid(1, 0, 0), shard.Unsharded(), Attached(1))
	if err := st.Schedule(s); err != nil {
		t.Fatal(err)
	}
	if st.Attached() != 1 || !slices.Equal(st.Secondaries(), []NodeID{2}) {
		t.Fatalf("Attached{1}: %d %v", st.Attached(), st.Secondaries())
	}

	// Pause and Stop freeze intent.
	for _, p := range []ShardSchedulingPolicy{ShardPause, ShardStop} {
		st.SchedulingPolicy, st.Policy = p, Detached()
		if err := st.Schedule(s); err != nil || st.Attached() != 1 {
			t.Fatalf("%s: Schedule changed intent (attached %d, err %v)", p, st.Attached(), err)
		}
	}

	// Secondary keeps the attached location as the one secondary.
	st.SchedulingPolicy, st.Policy = ShardActive, Secondary()
	if err := st.Schedule(s); err != nil {
		t.Fatal(err)
	}
	if st.Attached() != NoNode || !slices.Equal(st.Secondaries(), []NodeID{1}) {
		t.Fatalf("Secondary: attached %d secondaries %v, want none and [1]", st.Attached(), st.Secondaries())
	}
	mustCheck(t, s, st)

	// Back to Attached{2}: the secondary is promoted, two fresh secondaries.
	st.Policy = Attached(2)
	if err := st.Schedule(s); err != nil {
		t.Fatal(err)
	}
	if st.Attached() != 1 || !slices.Equal(st.Secondaries(), []NodeID{2, 3}) {
		t.Fatalf("Attached{2}: attached %d secondaries %v", st.Attached(), st.Secondaries())
	}

	// Attached{0} drops the extras, newest first.
	st.Policy = Attached(0)
	if err := st.Schedule(s); err != nil {
		t.Fatal(err)
	}
	if st.Attached() != 1 || len(st.Secondaries()) != 0 {
		t.Fatalf("Attached{0}: attached %d secondaries %v", st.Attached(), st.Secondaries())
	}

	// Detached clears everything.
	st.Policy = Detached()
	if err := st.Schedule(s); err != nil {
		t.Fatal(err)
	}
	if len(st.IntentNodes()) != 0 {
		t.Fatalf("Detached: intent %v", st.IntentNodes())
	}
	mustCheck(t, s, st)
	for _, n := range s.Nodes() {
		if n.Shards != 0 || n.Attached != 0 {
			t.Fatalf("node %d keeps counts %d/%d after Detached", n.ID, n.Shards, n.Attached)
		}
	}
}

func TestScheduleTrimsUnavailableSecondariesFirst(t *testing.T) {
	s := mustScheduler(t, active(1, "", 0), active(2, "", 0), active(3, "", 0), active(4, "", 0))
	st := NewShardState(tsid(1, 0, 0), shard.Unsharded(), Attached(3))
	if err := st.Schedule(s); err != nil {
		t.Fatal(err)
	}
	n2 := active(2, "", 0)
	n2.Availability = Offline
	if err := s.UpsertNode(n2); err != nil {
		t.Fatal(err)
	}
	st.Policy = Attached(1)
	if err := st.Schedule(s); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(st.Secondaries(), []NodeID{3}) {
		t.Fatalf("secondaries %v, want [3]: the one on offline node 2 goes first, then the newest", st.Secondaries())
	}
	mustCheck(t, s, st)
}

func TestScheduleErrorLeavesConsistentCounts(t *testing.T) {
	s := mustScheduler(t, active(1, "", 0))
	st := NewShardState(tsid(1, 0, 0), shard.Unsharded(), Attached(1))
	err := st.Schedule(s)
	if !errors.Is(err, ErrNoSchedulableNode) {
		t.Fatalf("Schedule with one node for Attached{1} = %v, want ErrNoSchedulableNode", err)
	}
	if st.Attached() != 1 || len(st.Secondaries()) != 0 {
		t.Fatalf("intent attached %d secondaries %v: the attachment should be kept", st.Attached(), st.Secondaries())
	}
	mustCheck(t, s, st)
	if err := s.UpsertNode(active(2, "", 0)); err != nil {
		t.Fatal(err)
	}
	if err := st.Schedule(s); err != nil || !slices.Equal(st.Secondaries(), []NodeID{2}) {
		t.Fatalf("Schedule after a node joined: %v, secondaries %v", err, st.Secondaries())
	}
	mustCheck(t, s, st)
}

func TestNodeOffline(t *testing.T) {
	offline := func(t *testing.T, s *Scheduler, id NodeID) {
		n, _ := s.Node(id)
		n.Node.Availability = Offline
		if err := s.UpsertNode(n.Node); err != nil {
			t.Fatal(err)
		}
	}
	conf := func(st *ShardState, id NodeID) LocationConf { return st.Wanted(id) }

	t.Run("promotes the warm secondary and keeps the old location", func(t *testing.T) {
		s := mustScheduler(t, active(1, "", 0), active(2, "", 0), active(3, "", 0))
		st := NewShardState(tsid(1, 0, 0), shard.Unsharded(), Attached(1))
		if err := st.Schedule(s); err != nil {
			t.Fatal(err)
		}
		if err := st.SetGeneration(Gen(1), 1); err != nil {
			t.Fatal(err)
		}
		st.SetObserved(1, conf(st, 1))
		st.SetObserved(2, conf(st, 2))
		seq := st.Sequence()
		offline(t, s, 1)
		if err := st.NodeOffline(s, 1); err != nil {
			t.Fatal(err)
		}
		if st.Attached() != 2 || !slices.Equal(st.Secondaries(), []NodeID{1}) {
			t.Fatalf("attached %d secondaries %v, want 2 and [1]", st.Attached(), st.Secondaries())
		}
		if o, ok := st.Observed(1); !ok || o.Known {
			t.Fatalf("observed on the offline node: %+v %v, want unknown", o, ok)
		}
		if o, ok := st.Observed(2); !ok || !o.Known {
			t.Fatalf("observed on node 2 changed: %+v %v", o, ok)
		}
		if st.Sequence() <= seq {
			t.Fatalf("sequence %d not bumped from %d", st.Sequence(), seq)
		}
		mustCheck(t, s, st)
	})
	t.Run("without a secondary: a fresh node, old location dropped for Attached{0}", func(t *testing.T) {
		s := mustScheduler(t, active(1, "", 0), active(2, "", 0))
		st := NewShardState(tsid(1, 0, 0), shard.Unsharded(), Attached(0))
		if err := st.Schedule(s); err != nil {
			t.Fatal(err)
		}
		offline(t, s, 1)
		if err := st.NodeOffline(s, 1); err != nil {
			t.Fatal(err)
		}
		if st.Attached() != 2 || len(st.Secondaries()) != 0 {
			t.Fatalf("attached %d secondaries %v, want 2 and none", st.Attached(), st.Secondaries())
		}
		mustCheck(t, s, st)
	})
	t.Run("no node can take it: intent unchanged", func(t *testing.T) {
		s := mustScheduler(t, active(1, "", 0))
		st := NewShardState(tsid(1, 0, 0), shard.Unsharded(), Attached(0))
		if err := st.Schedule(s); err != nil {
			t.Fatal(err)
		}
		st.SetObserved(1, LocationConf{Mode: ModeAttachedSingle, Generation: Gen(1)})
		seq := st.Sequence()
		offline(t, s, 1)
		if err := st.NodeOffline(s, 1); !errors.Is(err, ErrNoSchedulableNode) {
			t.Fatalf("NodeOffline = %v, want ErrNoSchedulableNode", err)
		}
		if st.Attached() != 1 || st.Sequence() != seq {
			t.Fatalf("attached %d seq %d (was %d): intent changed", st.Attached(), st.Sequence(), seq)
		}
		if o, _ := st.Observed(1); o.Known {
			t.Fatal("observed stays known on an offline node")
		}
		mustCheck(t, s, st)
	})
	t.Run("paused shard keeps intent", func(t *testing.T) {
		s := mustScheduler(t, active(1, "", 0), active(2, "", 0))
		st := NewShardState(tsid(1, 0, 0), shard.Unsharded(), Attached(0))
		if err := st.Schedule(s); err != nil {
			t.Fatal(err)
		}
		st.SchedulingPolicy = ShardPause
		offline(t, s, 1)
		if err := st.NodeOffline(s, 1); err != nil || st.Attached() != 1 {
			t.Fatalf("paused: attached %d err %v, want unchanged", st.Attached(), err)
		}
	})
}

func TestIntentEdits(t *testing.T) {
	s := mustScheduler(t, active(1, "", 0), active(2, "", 0), active(3, "", 0))
	st := NewShardState(tsid(1, 0, 0), shard.Unsharded(), Attached(1))
	seq := st.Sequence()
	step := func(name string, err error, wantErr error, attached NodeID, secondaries []NodeID, bumped bool) {
		t.Helper()
		if !errors.Is(err, wantErr) {
			t.Fatalf("%s: err %v, want %v", name, err, wantErr)
		}
		if st.Attached() != attached || !slices.Equal(st.Secondaries(), secondaries) {
			t.Fatalf("%s: attached %d secondaries %v, want %d %v", name, st.Attached(), st.Secondaries(), attached, secondaries)
		}
		if got := st.Sequence() > seq; got != bumped {
			t.Fatalf("%s: sequence %d after %d, bumped=%v want %v", name, st.Sequence(), seq, got, bumped)
		}
		seq = st.Sequence()
		mustCheck(t, s, st)
	}
	step("set attached", st.SetAttached(s, 1), nil, 1, nil, true)
	step("same again", st.SetAttached(s, 1), nil, 1, nil, false)
	step("unknown node", st.SetAttached(s, 9), ErrUnknownNode, 1, nil, false)
	step("add secondary", st.AddSecondary(s, 2), nil, 1, []NodeID{2}, true)
	step("secondary twice", st.AddSecondary(s, 2), nil, 1, []NodeID{2}, false)
	step("secondary on attached", st.AddSecondary(s, 1), ErrIntentConflict, 1, []NodeID{2}, false)
	step("secondary on unknown", st.AddSecondary(s, 9), ErrUnknownNode, 1, []NodeID{2}, false)
	step("move to secondary", st.MoveAttached(s, 2), nil, 2, []NodeID{1}, true)
	step("move to fresh", st.MoveAttached(s, 3), nil, 3, []NodeID{1, 2}, true)
	step("move to none", st.MoveAttached(s, NoNode), ErrInvalid, 3, []NodeID{1, 2}, false)
	step("set attached promotes", st.SetAttached(s, 1), nil, 1, []NodeID{2}, true)
	step("remove absent secondary", st.RemoveSecondary(s, 3), nil, 1, []NodeID{2}, false)
	step("demote", st.DemoteAttached(s), nil, NoNode, []NodeID{2, 1}, true)
	step("demote none", st.DemoteAttached(s), nil, NoNode, []NodeID{2, 1}, false)
	step("remove secondary", st.RemoveSecondary(s, 2), nil, NoNode, []NodeID{1}, true)
	step("clear", st.ClearIntent(s), nil, NoNode, nil, true)
	step("clear empty", st.ClearIntent(s), nil, NoNode, nil, false)
	st.SetPreferredAZ("a")
	step("preferred AZ", nil, nil, NoNode, nil, true)
}

func TestIntentFromObserved(t *testing.T) {
	s := mustScheduler(t, active(1, "", 0), active(2, "", 0), active(3, "", 0), active(4, "", 0))
	st := NewShardState(tsid(1, 0, 0), shard.Unsharded(), Attached(1))
	st.SetObserved(4, LocationConf{Mode: ModeAttachedStale, Generation: Gen(5)})
	st.SetObserved(2, LocationConf{Mode: ModeAttachedSingle, Generation: Gen(7)})
	st.SetObserved(3, LocationConf{Mode: ModeAttachedMulti, Generation: Gen(7)})
	st.SetObservedUnknown(1)
	if err := st.IntentFromObserved(s); err != nil {
		t.Fatal(err)
	}
	// Highest generation, lowest node id on a tie; every other location,
	// the unknown one included, a secondary.
	if st.Attached() != 2 || !slices.Equal(st.Secondaries(), []NodeID{1, 3, 4}) {
		t.Fatalf("attached %d secondaries %v, want 2 and [1 3 4]", st.Attached(), st.Secondaries())
	}
	mustCheck(t, s, st)
	if err := st.IntentFromObserved(s); !errors.Is(err, ErrIntentConflict) {
		t.Fatalf("second IntentFromObserved = %v, want ErrIntentConflict", err)
	}
	// Schedule then trims to the policy.
	if err := st.Schedule(s); err != nil || len(st.Secondaries()) != 1 {
		t.Fatalf("Schedule: %v, secondaries %v", err, st.Secondaries())
	}
	mustCheck(t, s, st)

	st2 := NewShardState(tsid(2, 0, 0), shard.Unsharded(), Attached(0))
	st2.SetObserved(9, LocationConf{Mode: ModeSecondary})
	if err := st2.IntentFromObserved(s); !errors.Is(err, ErrUnknownNode) {
		t.Fatalf("IntentFromObserved naming node 9 = %v, want ErrUnknownNode", err)
	}
}

func TestSetGenerationNeverDecreases(t *testing.T) {
	st := NewShardState(tsid(1, 0, 0), shard.Unsharded(), Attached(0))
	if err := st.SetGeneration(Gen(3), 1); err != nil {
		t.Fatal(err)
	}
	if err := st.SetGeneration(Gen(3), 2); err != nil {
		t.Fatalf("same generation again: %v", err)
	}
	if g, n := st.Generation(); g != Gen(3) || n != 2 {
		t.Fatalf("generation %v on %d", g, n)
	}
	var got error
	func() {
		defer func() {
			if r := recover(); r != nil {
				got, _ = r.(error)
			}
		}()
		got = st.SetGeneration(Gen(2), 1)
	}()
	if got == nil {
		t.Fatal("a lower generation was accepted")
	}
	if g, _ := st.Generation(); g != Gen(3) {
		t.Fatalf("generation went back to %v", g)
	}
}

func TestPolicyJSON(t *testing.T) {
	for _, tc := range []struct {
		p    Policy
		text string
	}{{Attached(0), `{"Attached":0}`}, {Attached(2), `{"Attached":2}`}, {Secondary(), `"Secondary"`}, {Detached(), `"Detached"`}} {
		b, err := json.Marshal(tc.p)
		if err != nil || string(b) != tc.text {
			t.Errorf("Marshal(%v) = %s, %v; want %s", tc.p, b, err, tc.text)
		}
		var p Policy
		if err := json.Unmarshal([]byte(tc.text), &p); err != nil || p != tc.p {
			t.Errorf("Unmarshal(%s) = %v, %v; want %v", tc.text, p, err, tc.p)
		}
	}
	for _, bad := range []string{`"Attached"`, `{"Attached":-1}`, `{"Attached":17}`, `{"Secondary":1}`,
		`{"Attached":1,"Detached":0}`, `{}`, `1`, `null`, `"attached"`, `{"Attached":"1"}`} {
		var p Policy
		if err := json.Unmarshal([]byte(bad), &p); !errors.Is(err, ErrInvalid) {
			t.Errorf("Unmarshal(%s) = %v, %v; want ErrInvalid", bad, p, err)
		}
	}
	if _, err := json.Marshal(Policy{Kind: PolicySecondary, Secondaries: 1}); err == nil {
		t.Error("Marshal of Secondary with a count succeeded")
	}
}

func TestEnumText(t *testing.T) {
	type textEnum interface {
		MarshalText() ([]byte, error)
	}
	check := func(v textEnum, want string, parse func([]byte) error) {
		t.Helper()
		b, err := v.MarshalText()
		if err != nil || string(b) != want {
			t.Errorf("MarshalText(%v) = %s, %v; want %s", v, b, err, want)
		}
		if err := parse([]byte(want)); err != nil {
			t.Errorf("UnmarshalText(%s): %v", want, err)
		}
		if err := parse([]byte("nonsense")); !errors.Is(err, ErrInvalid) {
			t.Errorf("UnmarshalText(nonsense) = %v", err)
		}
	}
	var a Availability
	check(WarmingUp, "WarmingUp", a.UnmarshalText)
	if a != WarmingUp {
		t.Errorf("parsed %v", a)
	}
	var np NodePolicy
	check(NodePauseForRestart, "PauseForRestart", np.UnmarshalText)
	if np != NodePauseForRestart {
		t.Errorf("parsed %v", np)
	}
	var sp ShardSchedulingPolicy
	check(ShardEssential, "Essential", sp.UnmarshalText)
	if sp != ShardEssential {
		t.Errorf("parsed %v", sp)
	}
	var m Mode
	check(ModeAttachedMulti, "AttachedMulti", m.UnmarshalText)
	if m != ModeAttachedMulti {
		t.Errorf("parsed %v", m)
	}
	if _, err := Mode(9).MarshalText(); !errors.Is(err, ErrInvalid) {
		t.Errorf("MarshalText(Mode(9)) = %v", err)
	}
}

func TestSnapshotJSON(t *testing.T) {
	s := mustScheduler(t, active(1, "a", 0), active(2, "b", 0))
	st := NewShardState(tsid(1, 0, 2), shard.ShardIdentity{Count: 2, StripeSize: 8}, Attached(1))
	if err := st.Schedule(s); err != nil {
		t.Fatal(err)
	}
	if err := st.SetGeneration(Gen(4), 1); err != nil {
		t.Fatal(err)
	}
	st.SetObserved(1, st.Wanted(1))
	st.SetObservedUnknown(2)
	b, err := json.Marshal(st.Snapshot())
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"policy":{"Attached":1}`, `"scheduling_policy":"Active"`, `"attached":1`,
		`"secondaries":[2]`, `"generation":4`, `"generation_pageserver":1`, `"mode":"AttachedSingle"`,
		`{"node_id":2,"known":false,"conf":{"mode":"Detached","generation":null`, `"sequence":`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("snapshot %s lacks %s", b, want)
		}
	}
	var back ShardSnapshot
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if back.Generation != Gen(4) || back.Observed[1].Conf.Generation.Valid || back.Policy != Attached(1) || back.Observed[0].Conf != st.Wanted(1) {
		t.Fatalf("round trip: %+v", back)
	}
	ns, _ := s.Node(1)
	if b, err := json.Marshal(ns); err != nil || !strings.Contains(string(b), `"availability":"Active","scheduling":"Active","availability_zone_id":"a"`) {
		t.Fatalf("node state JSON %s, %v", b, err)
	}
}
