package pageserver

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/stratadb/strata/clock"
	"github.com/stratadb/strata/disk"
	"github.com/stratadb/strata/engine/keys"
	"github.com/stratadb/strata/engine/layer"
	"github.com/stratadb/strata/engine/lsn"
	"github.com/stratadb/strata/engine/remote"
	"github.com/stratadb/strata/nodes/pageserver/pageapi"
	"github.com/stratadb/strata/nodes/storcon/storconapi"
)

// compactedL0s writes two L0s on timelineA, uploads them, compacts them
// away and waits until the index without them is uploaded; it returns the
// L0 objects (now to be deleted).
func (f *remoteFixture) compactedL0s(g uint32) []remote.Layer {
	f.t.Helper()
	st := f.createA()
	at := f.writeFlush(st, 0x100, 1, 0)
	f.writeFlush(st, at, 2, 1)
	f.barrier(timelineA)
	ip, err := f.index(timelineA, g)
	if err != nil || len(ip.Layers) != 2 {
		f.t.Fatalf("index before compaction: %+v %v", ip.Layers, err)
	}
	if c, err := st.tl.Compact(); err != nil || c.L0Merged != 2 {
		f.t.Fatalf("compact: %+v %v", c, err)
	}
	f.barrier(timelineA)
	return ip.Layers
}

func (f *remoteFixture) exists(l remote.Layer) bool {
	_, err := f.w.Store().Head(f.ctx, remote.Layout{}.LayerKey(tenantA, timelineA, l.LayerID))
	return err == nil
}

// TestDeletionsValidatedFirst: compacted L0s are deleted only after the
// controller validated the generation: nothing is deleted while validate
// fails, then they go once it answers valid; an index still names the
// compaction's output, which stays.
func TestDeletionsValidatedFirst(t *testing.T) {
	cfg := Config{RemoteStorage: RemoteStorageConfig{DeletionFlushInterval: 100 * time.Millisecond}}
	runRemote(t, cfg, true, func(f *remoteFixture) {
		f.ctl.setValid(tsidA, true)
		f.ctl.mu.Lock()
		f.ctl.failNextVs = 1 << 30
		f.ctl.mu.Unlock()
		if err := f.attachA(5, pageapi.ModeAttachedSingle); err != nil {
			t.Fatal(err)
		}
		l0s := f.compactedL0s(5)
		_ = clock.Sleep(f.ctx, f.w.Clock(), 30*time.Second)
		for _, l := range l0s {
			if !f.exists(l) {
				t.Fatalf("%s deleted before its generation validated", l.Name)
			}
		}
		f.ctl.mu.Lock()
		f.ctl.failNextVs = 0
		f.ctl.mu.Unlock()
		f.eventually(time.Minute, "L0s deleted after validation", func() bool { return !f.exists(l0s[0]) && !f.exists(l0s[1]) })
		if got := f.metric("strata_pageserver_remote_deletions_executed_total"); got != 2 {
			t.Errorf("deletions executed %v, want 2", got)
		}
		ip, err := f.index(timelineA, 5)
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range ip.Layers {
			if !f.exists(l) {
				t.Errorf("%s, named by the index, was deleted", l.Name)
			}
		}
	})
}

// TestDeletionsDroppedForInvalidGeneration: a generation the controller
// says is not current (or does not know) deletes nothing: the entries are
// dropped and counted, the objects leak.
func TestDeletionsDroppedForInvalidGeneration(t *testing.T) {
	for _, known := range []bool{true, false} {
		cfg := Config{RemoteStorage: RemoteStorageConfig{DeletionFlushInterval: 100 * time.Millisecond}}
		runRemote(t, cfg, true, func(f *remoteFixture) {
			if known {
				f.ctl.setValid(tsidA, false)
			}
			if err := f.attachA(5, pageapi.ModeAttachedSingle); err != nil {
				t.Fatal(err)
			}
			l0s := f.compactedL0s(5)
			f.eventually(time.Minute, "entries dropped", func() bool {
				return f.metric("strata_pageserver_remote_deletions_dropped_total") == 2
			})
			_ = clock.Sleep(f.ctx, f.w.Clock(), 10*time.Second)
			for _, l := range l0s {
				if !f.exists(l) {
					t.Errorf("known=%v: %s deleted under an invalid generation", known, l.Name)
				}
			}
			if got := f.metric("strata_pageserver_remote_deletions_executed_total"); got != 0 {
				t.Errorf("known=%v: %v deletions executed", known, got)
			}
			f.store.mu.Lock()
			calls := len(f.store.deleteCalls)
			f.store.mu.Unlock()
			if calls != 0 {
				t.Errorf("known=%v: %d delete calls", known, calls)
			}
		})
	}
}

// fakeLayers makes n distinct layer objects of shard tsidA under
// generation g (they need not exist: deleting a missing key succeeds).
func fakeLayers(n int, g uint32) []remote.LayerID {
	out := make([]remote.LayerID, n)
	for i := range out {
		k := keys.RelBlockKey(testRel, uint32(i))
		name := layer.ImageName(keys.Range{Start: k, End: k.Next()}, lsn.LSN(0x100+i)).WithGeneration(layer.Generation(g))
		out[i] = remote.LayerID{Name: name, Shard: tsidA.Shard}
	}
	return out
}

// TestDeletionBatches: 2500 objects are deleted in calls of at most 1000
// keys (1000, 1000, 500), each key once.
func TestDeletionBatches(t *testing.T) {
	runRemote(t, Config{}, false, func(f *remoteFixture) {
		if err := f.attachA(1, pageapi.ModeAttachedSingle); err != nil {
			t.Fatal(err)
		}
		f.createA()
		dq := f.node.tenants.remote.deletions
		dq.push(tsidA, 1, timelineA, fakeLayers(2500, 1))
		if err := dq.flushAndWait(f.ctx); err != nil {
			t.Fatal(err)
		}
		f.store.mu.Lock()
		calls := f.store.deleteCalls
		f.store.mu.Unlock()
		seen := map[string]bool{}
		var sizes []int
		for _, c := range calls {
			sizes = append(sizes, len(c))
			for _, k := range c {
				if seen[k] {
					t.Errorf("%s deleted twice", k)
				}
				seen[k] = true
			}
		}
		if fmt.Sprint(sizes) != "[1000 1000 500]" {
			t.Fatalf("delete calls of %v keys, want [1000 1000 500]", sizes)
		}
	})
}

// TestDeletionQueuePersistedAndRecovered: a list the controller could not
// validate is on disk in the documented form, survives a restart and is
// validated and executed then (its file removed, the header advanced); a
// list at or below the header's validated sequence is executed after a
// restart without asking again, even if the generation is no longer
// current.
func TestDeletionQueuePersistedAndRecovered(t *testing.T) {
	cfg := Config{RemoteStorage: RemoteStorageConfig{DeletionFlushInterval: 100 * time.Millisecond}}
	runRemote(t, cfg, true, func(f *remoteFixture) {
		f.ctl.setValid(tsidA, true)
		f.ctl.mu.Lock()
		f.ctl.failNextVs = 1 << 30
		// Restarts keep the shard, with the same generation.
		f.ctl.reattach = []storconapi.ReAttachTenant{{ID: tsidA, Gen: gen(5), Mode: pageapi.ModeAttachedSingle}}
		f.ctl.mu.Unlock()
		if err := f.attachA(5, pageapi.ModeAttachedSingle); err != nil {
			t.Fatal(err)
		}
		l0s := f.compactedL0s(5)
		var list deletionListFile
		f.eventually(time.Minute, "a deletion list on disk", func() bool {
			b, err := disk.ReadFile(f.ps.Disk().View(), "deletion/0000000000000001-01.list")
			return err == nil && json.Unmarshal(b, &list) == nil
		})
		tl := list.Tenants[tsidA.String()]
		if list.Version != 1 || list.Sequence != 1 || list.Size != 2 || list.Validated || tl == nil || tl.Generation != 5 || len(tl.Timelines[timelineA.String()]) != 2 {
			t.Fatalf("list file %+v (tenant %+v)", list, tl)
		}
		for _, l := range l0s {
			if !f.exists(l) {
				t.Fatalf("%s deleted before validation", l.Name)
			}
		}
		f.restart(false)
		f.ctl.mu.Lock()
		f.ctl.failNextVs = 0
		f.ctl.mu.Unlock()
		f.eventually(time.Minute, "the recovered list executed", func() bool { return !f.exists(l0s[0]) && !f.exists(l0s[1]) })
		f.eventually(time.Minute, "the executed list removed", func() bool {
			_, err := f.ps.Disk().View().Stat("deletion/0000000000000001-01.list")
			return err != nil
		})
		var h deletionHeaderFile
		b, err := disk.ReadFile(f.ps.Disk().View(), deletionHeaderName)
		if err != nil || json.Unmarshal(b, &h) != nil || h.Version != 1 || h.ValidatedSequence != 1 {
			t.Fatalf("header %s: %+v %v", b, h, err)
		}

		// A list at or below the validated sequence needs no validation
		// after a restart: plant one (sequence 1, as a crash between the
		// header write and the execution leaves it) and make the
		// generation invalid; it is executed anyway.
		ghost := fakeLayers(3, 5)
		planted := deletionListFile{Version: 1, Sequence: 1, Size: 3, Tenants: map[string]*deletionTenantFile{
			tsidA.String(): {Generation: 5, Timelines: map[string][]string{timelineA.String(): {ghost[0].Name.String(), ghost[1].Name.String(), ghost[2].Name.String()}}}}}
		f.w.Stop("ps")
		pb, _ := json.Marshal(planted)
		if err := disk.WriteFileAtomic(f.ps.Disk().View(), "deletion/0000000000000001-01.list", pb); err != nil {
			t.Fatal(err)
		}
		f.ctl.setValid(tsidA, false)
		f.store.mu.Lock()
		f.store.deleteCalls = nil
		f.store.mu.Unlock()
		f.w.Restart("ps")
		f.waitUp(t)
		f.eventually(time.Minute, "the validated list executed after restart", func() bool {
			f.store.mu.Lock()
			defer f.store.mu.Unlock()
			return len(f.store.deleteCalls) == 1 && len(f.store.deleteCalls[0]) == 3
		})
	})
}
