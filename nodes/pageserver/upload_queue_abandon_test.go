package pageserver

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stratadb/strata/clock"
	"github.com/stratadb/strata/engine/lsn"
	"github.com/stratadb/strata/engine/remote"
	"github.com/stratadb/strata/nodes/pageserver/pageapi"
)

// TestDeletionWaitsAfterAnAbandonedIndex: a compaction's L1 is removed
// by GC before its upload ran, so the compaction's index (naming the L1)
// is abandoned; the compaction's deletion of its L0s, queued right behind
// that index, must still wait until an uploaded index no longer names
// them (the cluster scenario, seed 93, caught the L0s deleted while the
// newest index in object storage named them).
func TestDeletionWaitsAfterAnAbandonedIndex(t *testing.T) {
	cfg := Config{RemoteStorage: RemoteStorageConfig{MaxInFlight: 1, DeletionFlushInterval: 100 * time.Millisecond}}
	runRemote(t, cfg, false, func(f *remoteFixture) {
		conf := quietConf()
		one := 1
		conf.ImageCreationThreshold = &one
		if err := f.do("PUT", "/v1/tenant/"+tsidA.String()+"/location_config",
			pageapi.LocationConfig{Mode: pageapi.ModeAttachedSingle, Generation: gen(1), TenantConf: conf}, nil); err != nil {
			t.Fatal(err)
		}
		st := f.createA()
		at := f.writeFlush(st, lsn.LSN(0x100), 1, 0, 1)
		at = f.writeFlush(st, at, 2, 0, 1)
		f.barrier(timelineA)
		// The next index is held (it then occupies the one upload slot);
		// the third L0 goes out before it.
		f.store.setHold(func(key string) bool { return strings.Contains(key, remote.IndexFileName) })
		before := len(f.store.putKeys("timelines/"))
		at = f.writeFlush(st, at, 3, 0, 1)
		f.eventually(time.Minute, "the third L0 uploaded", func() bool { return len(f.store.putKeys("timelines/")) == before+1 })
		old := f.store.putKeys("timelines/")
		ip, err := f.index(timelineA, 1)
		if err != nil || len(ip.Layers) != 2 {
			t.Fatalf("index before compaction: %+v %v", ip.Layers, err)
		}
		l0s := ip.Layers
		// Layers from here on are held too: the image must not get out.
		f.store.setHold(func(key string) bool {
			return strings.Contains(key, remote.IndexFileName) || !slices.Contains(old, key)
		})
		if c, err := st.tl.Compact(); err != nil || c.L0Merged != 3 || c.ImagesWritten != 1 {
			t.Fatalf("compact: %+v %v", c, err)
		}
		if g, err := st.tl.GCAt(at); err != nil || g.LayersRemoved == 0 {
			t.Fatalf("gc: %+v %v", g, err)
		}
		// The held index (naming the three L0s) goes out; the L1 upload
		// is abandoned (its file is gone), and so is the compaction's index.
		f.store.setHold(func(key string) bool {
			return !strings.Contains(key, remote.IndexFileName) && !slices.Contains(old, key)
		})
		f.eventually(time.Minute, "the index naming three L0s uploaded", func() bool {
			ip, err := f.index(timelineA, 1)
			return err == nil && len(ip.Layers) == 3
		})
		_ = clock.Sleep(f.ctx, f.w.Clock(), 10*time.Second)
		for _, l := range l0s {
			if !f.exists(l) {
				t.Fatalf("%s deleted while the newest index in object storage names it", l.Name)
			}
		}
		f.store.setHold(nil)
		f.barrier(timelineA)
		f.eventually(time.Minute, "the L0s deleted once an index without them is uploaded", func() bool {
			return !f.exists(l0s[0]) && !f.exists(l0s[1])
		})
		ip, err = f.index(timelineA, 1)
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range ip.Layers {
			if !f.exists(l) {
				t.Errorf("%s, named by the newest index, is not in object storage", l.Name)
			}
		}
	})
}
