package pageserver

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stratadb/strata/clock"
	"github.com/stratadb/strata/disk"
	"github.com/stratadb/strata/engine/shard"
	"github.com/stratadb/strata/net"
	"github.com/stratadb/strata/nodes/node"
	"github.com/stratadb/strata/nodes/pageserver/pageapi"
	"github.com/stratadb/strata/sim"
)

// flakyFS fails SyncDir of directories whose name matches (a timeline
// directory, say, or a shard's) while failures > 0.
type flakyFS struct {
	disk.FS
	failures *atomic.Int64
	match    func(name string) bool
}

func (f flakyFS) SyncDir(name string) error {
	if f.match(name) && f.failures.Add(-1) >= 0 {
		return disk.ErrIO
	}
	return f.FS.SyncDir(name)
}

// A shard whose attach at start-up fails on a transient disk error is
// broken only until a retry succeeds; one that keeps failing stays broken.
func TestAttachRetriesTransientDiskErrors(t *testing.T) {
	timelines := func(name string) bool { return strings.Contains(name, "/timelines") }
	shardDir := func(name string) bool {
		return strings.HasPrefix(name, "tenants/") && !strings.Contains(name, "/timelines")
	}
	for _, tc := range []struct {
		name     string
		match    func(string) bool
		failures int64
		healed   bool
	}{
		{"engine open heals", timelines, 3, true},
		{"engine open keeps failing", timelines, 1 << 40, false},
		{"location config read heals", shardDir, 2, true},
		{"location config read keeps failing", shardDir, 1 << 40, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var failures atomic.Int64
			w := sim.New(sim.Options{Seed: 1})
			err := w.Run(func(w *sim.World) error {
				psNode := w.AddNode("ps", func(env node.Env) error {
					env.Disk = flakyFS{FS: env.Disk, failures: &failures, match: tc.match}
					_, err := Start(env, Config{NodeID: 1, PageAddr: "ps:6400", HTTPAddr: "ps:9898"})
					return err
				})
				cli := w.AddNode("cli", func(node.Env) error { return nil })
				ctx, cancel := clock.WithTimeout(w.Clock(), context.Background(), time.Hour)
				defer cancel()
				hc, _ := cli.Env().Net.Dial(ctx, "ps:9898")
				mgmt := net.SeamHTTP{Conn: hc}
				base := "/v1/tenant/" + shard.UnshardedID(tenantA).String()
				do := func(method, path string, in, out any) error {
					_, err := mgmt.Do(ctx, &net.HTTPRequest{Method: method, Path: path}, in, out)
					return err
				}
				w.Sleep(100 * time.Millisecond)
				if err := do("PUT", base+"/location_config", attachedConf(1), nil); err != nil {
					return err
				}
				if err := do("POST", base+"/timeline", pageapi.TimelineCreateRequest{NewTimelineID: timelineA}, nil); err != nil {
					return err
				}
				w.Stop("ps")
				failures.Store(tc.failures)
				w.Restart("ps")
				w.Sleep(200 * time.Millisecond)
				if err := do("GET", base+"/timeline", nil, nil); net.CodeOf(err) != net.FailedPrecondition {
					t.Errorf("right after a failed attach: %v, want the shard broken", err)
				}
				w.Sleep(time.Minute)
				var list []pageapi.TimelineInfo
				err := do("GET", base+"/timeline", nil, &list)
				if tc.healed && (err != nil || len(list) != 1) {
					t.Errorf("after retries: %+v %v, want the timeline back (start: %v)", list, err, psNode.StartErr())
				}
				if !tc.healed && net.CodeOf(err) != net.FailedPrecondition {
					t.Errorf("with the disk still failing: %v, want broken", err)
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
		})
	}
}
