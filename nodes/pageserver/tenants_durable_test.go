package pageserver

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/stratadb/strata/engine/shard"
	"github.com/stratadb/strata/nodes/pageserver/pageapi"
)

// TestLoadTrustsOnlyDurableLocationConfig: a location config update whose
// directory sync failed (the rename is visible, a crash can still undo it)
// must not be loaded and acted on by the next process as it is: a power
// loss would then take the shard back to the config before it (for a
// Secondary, back to attached at the old generation). Start-up syncs the
// directories before it trusts what it reads.
func TestLoadTrustsOnlyDurableLocationConfig(t *testing.T) {
	secondary := pageapi.LocationConfig{Mode: pageapi.ModeSecondary, TenantConf: &pageapi.TenantConf{}}
	for name, update := range map[string]pageapi.LocationConfig{"attached, next generation": attachedConf(2), "secondary": secondary} {
		t.Run(name, func(t *testing.T) {
			runNode(t, Config{}, func(f *nodeFixture) {
				tsid := shard.UnshardedID(tenantA).String()
				if err := f.do("PUT", "/v1/tenant/"+tsid+"/location_config", attachedConf(1), nil); err != nil {
					t.Fatal(err)
				}
				// What disk.WriteFileAtomic of the update leaves when its
				// final SyncDir fails, then the process exits.
				f.w.Stop("ps")
				fs := f.ps.Disk().View()
				b, err := json.Marshal(update)
				if err != nil {
					t.Fatal(err)
				}
				file := tenantsDir + "/" + tsid + "/" + locationFile
				tmp, err := fs.Create(file + ".tmp")
				if err != nil {
					t.Fatal(err)
				}
				if _, err := tmp.WriteAt(b, 0); err != nil {
					t.Fatal(err)
				}
				if err := tmp.Sync(); err != nil {
					t.Fatal(err)
				}
				tmp.Close()
				if err := fs.Rename(file+".tmp", file); err != nil {
					t.Fatal(err)
				}
				location := func() string {
					t.Helper()
					f.waitUp(t)
					var locs pageapi.LocationConfigList
					if err := f.do("GET", "/v1/location_config", nil, &locs); err != nil || len(locs.TenantShards) != 1 || locs.TenantShards[0].Config == nil {
						t.Fatalf("locations: %+v %v", locs, err)
					}
					c := locs.TenantShards[0].Config
					if c.Generation == nil {
						return string(c.Mode)
					}
					return fmt.Sprintf("%s gen %d", c.Mode, *c.Generation)
				}
				f.w.Restart("ps")
				served := location()
				f.ps.Crash(false)
				f.w.Restart("ps")
				if after := location(); after != served {
					t.Fatalf("loaded and served %s; after a crash %s", served, after)
				}
			})
		})
	}
}
