package pageserver

import (
	"strings"
	"testing"
	"time"

	"github.com/stratadb/strata/clock"
	"github.com/stratadb/strata/disk/objstore"
	"github.com/stratadb/strata/engine/remote"
	"github.com/stratadb/strata/nodes/pageserver/pageapi"
)

// The planted remote-storage bugs (Bugs; the cluster scenario's): each
// test shows the defect's effect, against the behaviour the other tests of
// this package require without it.

// TestBugDeleteWithoutValidation: with the bug, compacted L0s are deleted
// although the controller says the generation is not current, without a
// single validate call for them (TestDeletionsDroppedForInvalidGeneration
// is the correct behaviour).
func TestBugDeleteWithoutValidation(t *testing.T) {
	cfg := Config{RemoteStorage: RemoteStorageConfig{DeletionFlushInterval: 100 * time.Millisecond},
		Bugs: Bugs{DeleteWithoutValidation: true}}
	runRemote(t, cfg, true, func(f *remoteFixture) {
		f.ctl.setValid(tsidA, false)
		if err := f.attachA(5, pageapi.ModeAttachedSingle); err != nil {
			t.Fatal(err)
		}
		l0s := f.compactedL0s(5)
		f.eventually(time.Minute, "L0s deleted under an invalid generation", func() bool { return !f.exists(l0s[0]) && !f.exists(l0s[1]) })
		if got := f.metric("strata_pageserver_remote_deletions_dropped_total"); got != 0 {
			t.Errorf("%v deletions dropped, want 0 (the bug asks no one)", got)
		}
	})
}

// TestBugIndexBeforeLayers: with the bug, while a layer's put is held the
// index naming it is put all the same (TestUploadLayersBeforeIndex is the
// correct order).
func TestBugIndexBeforeLayers(t *testing.T) {
	runRemote(t, Config{Bugs: Bugs{IndexBeforeLayers: true}}, false, func(f *remoteFixture) {
		if err := f.attachA(1, pageapi.ModeAttachedSingle); err != nil {
			t.Fatal(err)
		}
		st := f.createA()
		f.store.setHold(func(key string) bool { return !strings.Contains(key, remote.IndexFileName) })
		f.writeFlush(st, 0x100, 1, 0)
		f.eventually(time.Minute, "an index naming the held layer", func() bool {
			ip, err := f.index(timelineA, 1)
			return err == nil && len(ip.Layers) == 1
		})
		ip, _ := f.index(timelineA, 1)
		if f.exists(ip.Layers[0]) {
			t.Fatalf("layer %s in object storage although its put is held", ip.Layers[0].Name)
		}
		f.store.setHold(nil)
		f.eventually(time.Minute, "the held layer put in the background", func() bool { return f.exists(ip.Layers[0]) })
	})
}

// TestBugLoadIndexAboveGeneration: with the bug, an attach with generation
// 7 loads the index of generation 9 (TestAttachNeverLoadsANewerGeneration
// is the correct choice).
func TestBugLoadIndexAboveGeneration(t *testing.T) {
	runRemote(t, Config{Bugs: Bugs{LoadIndexAboveGeneration: true}}, false, func(f *remoteFixture) {
		if err := f.attachA(1, pageapi.ModeAttachedSingle); err != nil {
			t.Fatal(err)
		}
		f.history()
		ip, err := f.index(timelineA, 1)
		if err != nil {
			t.Fatal(err)
		}
		data, err := remote.Encode(&ip)
		if err != nil {
			t.Fatal(err)
		}
		if err := f.w.Store().Put(f.ctx, remote.Layout{}.IndexKey(tsidA, timelineA, 9), data, objstore.PutOptions{}); err != nil {
			t.Fatal(err)
		}
		f.wipe = true
		f.restart(false)
		if err := f.attachA(7, pageapi.ModeAttachedSingle); err != nil {
			t.Fatalf("attach with generation 7: %v", err)
		}
		recs := f.logs.find("timeline attached from object storage")
		loaded := ""
		for _, r := range recs {
			if r.attrs["timeline_id"] == timelineA.String() {
				loaded = r.attrs["index_generation"]
			}
		}
		if loaded != "00000009" {
			t.Fatalf("timeline %s attached from the index of generation %q, want 00000009 (records %+v)", timelineA, loaded, recs)
		}
	})
}

// TestBugStaleUploads: with the bug, an AttachedStale location uploads
// (TestModesGateUploadsAndDeletions is the correct behaviour).
func TestBugStaleUploads(t *testing.T) {
	runRemote(t, Config{Bugs: Bugs{StaleUploads: true}}, false, func(f *remoteFixture) {
		if err := f.attachA(1, pageapi.ModeAttachedStale); err != nil {
			t.Fatal(err)
		}
		st := f.createA()
		f.writeFlush(st, 0x100, 1, 0)
		_ = clock.Sleep(f.ctx, f.w.Clock(), 5*time.Second)
		if got := f.store.putKeys("timelines/"); len(got) == 0 {
			t.Fatal("AttachedStale with the bug uploaded nothing")
		}
	})
}
