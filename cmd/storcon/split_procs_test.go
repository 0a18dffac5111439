package main

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stratadb/strata/cmd/internal/proctest"
	"github.com/stratadb/strata/engine/placement"
	"github.com/stratadb/strata/engine/shard"
	"github.com/stratadb/strata/net/httpx"
	"github.com/stratadb/strata/net/jwtauth"
	"github.com/stratadb/strata/nodes/storcon/storconapi"
)

// splitTenant and splitTimeline are the tenant the split test splits and
// its timeline.
const (
	splitTenant   = "5b1170000000000000000000000000a1"
	splitTimeline = "5b1170000000000000000000000000b2"
	// splitStripe is the stripe the split sets (the tenant is unsharded
	// until then, so it may): small enough that the workload's 256 blocks
	// spread over all four children.
	splitStripe = 8
)

// TestSplitUnderWorkload is the real-process test of a shard split: a
// broker, three safekeepers, the controller (embedded store, its compute
// hook pointing at the workload), two pageservers that re-attach to it
// with a local-directory object store, every API checking JWTs, and
// `strata workload` as the compute — each a process on loopback. The
// tenant is created unsharded with `strata ctl`, the workload creates the
// timeline through the controller and takes its shard map from it; while
// it writes and reads, `strata ctl tenants split` makes the tenant four
// shards. The workload must learn the new map from the controller's
// notification (its /metrics: shard count 4, an applied map update, while
// it runs), keep reading after the split, and end with every page it read
// — during, across and after the split, the final check of every block and
// a sample of earlier LSNs — equal to its model.
func TestSplitUnderWorkload(t *testing.T) {
	start := time.Now()
	a := proctest.FreeAddrs(t, 10)
	brokerAddr, skAddrs, scListen, hookAddr := a[0], a[1:4], a[4], a[5]
	psPage, psHTTP := []string{a[6], a[8]}, []string{a[7], a[9]}
	remoteDir := t.TempDir()

	pub, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	pem, err := jwtauth.MarshalPublicKeyPEM(pub)
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(t.TempDir(), "auth.pem")
	if err := os.WriteFile(keyFile, pem, 0o644); err != nil {
		t.Fatal(err)
	}
	sign := func(scope jwtauth.Scope) string {
		tok, err := jwtauth.Sign(priv, jwtauth.Claims{Scope: scope})
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	admin := sign(jwtauth.ScopeAdmin)
	api := storconapi.Client{HTTP: httpx.Client{Base: "http://" + scListen}, Token: admin}

	var procs []*proc
	run := func(p *proc) *proc {
		p.start(t)
		procs = append(procs, p)
		return p
	}
	t.Cleanup(func() { stopAll(t, procs) })
	run(&proc{name: "broker", bin: bin(t, "broker"), args: []string{"-listen", brokerAddr, "-log-level", "warn"}})
	for i, addr := range skAddrs {
		run(&proc{name: fmt.Sprintf("sk-%d", i+1), bin: bin(t, "safekeeper"), args: []string{"-id", fmt.Sprintf("sk-%d", i+1), "-listen", addr,
			"-data-dir", t.TempDir(), "-broker", brokerAddr, "-publish-interval", "200ms", "-log-level", "warn"}})
	}
	run(&proc{name: "storcon", bin: bin(t, "storcon"),
		env: []string{"STRATA_STORCON_COMPUTE_HOOK_TOKEN=" + hookToken, "PAGESERVER_JWT_TOKEN=" + sign(jwtauth.ScopePageServerAPI)},
		args: []string{"-listen", scListen, "-data-dir", t.TempDir(), "-public-key", keyFile, "-compute-hook-url", "http://" + hookAddr,
			"-heartbeat-interval", "500ms", "-heartbeat-timeout", "400ms", "-offline-after", "10s", "-reconcile-all-interval", "1s",
			"-log-format", "text", "-log-level", "info"}})
	waitReady(t, "http://"+scListen+"/ready", 60*time.Second)
	for i := range psPage {
		run(&proc{name: fmt.Sprintf("ps-%d", i+1), bin: bin(t, "pageserver"),
			env: []string{"STRATA_PAGESERVER_CONTROL_PLANE_TOKEN=" + sign(jwtauth.ScopeGenerationsAPI)},
			args: []string{"-id", fmt.Sprint(i + 1), "-listen", psPage[i], "-http", psHTTP[i], "-data-dir", t.TempDir(),
				"-broker", brokerAddr, "-control-plane-api", "http://" + scListen, "-auth-public-key", keyFile, "-remote-dir", remoteDir,
				"-log-format", "text", "-log-level", "info"}})
	}
	for _, h := range psHTTP {
		waitReady(t, "http://"+h+"/ready", 60*time.Second)
	}
	eventually(t, 30*time.Second, "both pageservers Active on the controller", func(ctx context.Context) error {
		nodes, err := api.ListNodes(ctx)
		if err != nil {
			return err
		}
		for _, n := range nodes {
			if n.Availability != placement.Active {
				return fmt.Errorf("node %d %s", n.ID, n.Availability)
			}
		}
		if len(nodes) != 2 {
			return fmt.Errorf("%d nodes", len(nodes))
		}
		return nil
	})

	// The CLI reads the controller and its token from the environment, as
	// an operator's shell would have them.
	cliEnv := []string{"STRATA_CONTROLLER=http://" + scListen, "STRATA_CONTROLLER_TOKEN=" + admin}
	ctl := func(args ...string) string {
		t.Helper()
		p := &proc{name: "strata ctl", bin: bin(t, "strata"), args: append([]string{"ctl"}, args...), env: cliEnv}
		p.start(t)
		if err := p.wait(t, 3*time.Minute); err != nil {
			t.Fatalf("strata ctl %v: %v\n%s%s", args, err, p.out, p.log)
		}
		return p.out.String()
	}
	if out := ctl("tenants", "create", "--tenant", splitTenant); !strings.Contains(out, "created tenant "+splitTenant) {
		t.Fatalf("create:\n%s", out)
	}
	setupDone := time.Now()

	// The workload: pageserver reads with an admin JWT ($STRATA_TOKEN),
	// the controller's with $STRATA_CONTROLLER_TOKEN, the hook's token
	// from its environment.
	wl := run(&proc{name: "workload", bin: bin(t, "strata"),
		env: append([]string{"STRATA_TOKEN=" + admin, "STRATA_WORKLOAD_COMPUTE_HOOK_TOKEN=" + hookToken}, cliEnv[1]),
		args: []string{"workload", "--safekeepers", strings.Join(skAddrs, ","), "--controller", "http://" + scListen,
			"--compute-hook-listen", hookAddr, "--tenant", splitTenant, "--timeline", splitTimeline,
			"--duration", "5m", "--blocks", "256", "--progress", "250ms", "--seed", "12", "--max-lag-mib", "1", "--read-timeout", "45s"}})
	progress := regexp.MustCompile(`pages read +(\d+)`)
	pagesRead := func() int {
		m := progress.FindAllStringSubmatch(wl.out.String(), -1)
		if len(m) == 0 {
			return 0
		}
		n, _ := strconv.Atoi(m[len(m)-1][1])
		return n
	}
	waitFor := func(d time.Duration, what string, cond func() error) {
		t.Helper()
		deadline := time.Now().Add(d)
		for {
			err := cond()
			if err == nil {
				return
			}
			if !wl.running() {
				t.Fatalf("%s: the workload exited: %v\nstdout:\n%s\nstderr:\n%s", what, wl.err, wl.out, wl.log)
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within %v: %v\nworkload stdout:\n%s", what, d, err, wl.out)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitFor(60*time.Second, "the workload reads pages", func() error {
		if n := pagesRead(); n < 64 {
			return fmt.Errorf("%d pages read", n)
		}
		return nil
	})
	if m, _ := scrapeShardMetrics(hookAddr); m.count != 0 || m.applied != 0 {
		t.Fatalf("before the split the workload's metrics say %+v, want an unsharded map, no update", m)
	}

	splitAt := time.Now()
	pagesAtSplit := pagesRead()
	// A split whose caller gives up is rolled back: give it time on a
	// loaded machine (each child ingests the WAL since the parent's last
	// flush before the split commits).
	out := ctl("--timeout", "2m", "tenants", "split", splitTenant, "--shard-count", "4", "--stripe-size", fmt.Sprint(splitStripe))
	for n := range 4 {
		if id := fmt.Sprintf("%s-%02x04", splitTenant, n); !strings.Contains(out, id) {
			t.Errorf("split output lacks %s:\n%s", id, out)
		}
	}
	splitTook := time.Since(splitAt)
	var seen shardMetrics
	waitFor(30*time.Second, "the workload's map follows the split", func() error {
		m, err := scrapeShardMetrics(hookAddr)
		if err != nil {
			return err
		}
		if m.refused != 0 {
			return fmt.Errorf("a map update refused: %+v", m)
		}
		if m.count != 4 || m.applied < 1 {
			return fmt.Errorf("metrics %+v", m)
		}
		seen = m
		return nil
	})
	notifiedAfter := time.Since(splitAt)
	// It goes on reading on the new map.
	waitFor(30*time.Second, "reads after the map update", func() error {
		if n := pagesRead(); n < pagesAtSplit+256 {
			return fmt.Errorf("%d pages read, %d at the split", n, pagesAtSplit)
		}
		return nil
	})

	// The children stay on their parent's pageserver: move two of them to
	// the other one, so the map spans both, and the workload follows
	// those notifications too. The destination finds each child's
	// timeline in the object store because the split uploaded the
	// children's indexes: the parent had ingested WAL (it answered reads
	// above 0/1000 before the split), so the split flushed it to a layer.
	// A child of a timeline that never flushed has no index in the object
	// store until its own first upload, and a migration before that would
	// arrive without the timeline.
	tenant, err := shard.ParseTenantID(splitTenant)
	if err != nil {
		t.Fatal(err)
	}
	var from uint64
	eventually(t, 30*time.Second, "the children attached", func(ctx context.Context) error {
		d, err := api.DescribeTenant(ctx, tenant)
		if err != nil {
			return err
		}
		if len(d.Shards) != 4 || d.Shards[0].NodeAttached == nil {
			return fmt.Errorf("shards %+v", d.Shards)
		}
		from = *d.Shards[0].NodeAttached
		return nil
	})
	to := 3 - from
	migrateAt := time.Now()
	pagesAtMigrate := pagesRead()
	for _, n := range []int{1, 3} {
		ctl("tenants", "migrate", fmt.Sprintf("%s-%02x04", splitTenant, n), "--node", fmt.Sprint(to))
	}
	waitFor(60*time.Second, "the workload's map follows the migrations", func() error {
		m, err := scrapeShardMetrics(hookAddr)
		if err != nil {
			return err
		}
		if m.refused != 0 || m.applied < 3 {
			return fmt.Errorf("metrics %+v", m)
		}
		seen = m
		return nil
	})
	migratedAfter := time.Since(migrateAt)
	wantMap := fmt.Sprintf("map 4 shards/stripe %d@%s,%s,%s,%s", splitStripe, psPage[from-1], psPage[to-1], psPage[from-1], psPage[to-1])
	waitFor(30*time.Second, "reads after the migrations", func() error {
		if n := pagesRead(); n < pagesAtMigrate+256 {
			return fmt.Errorf("%d pages read, %d at the migrations", n, pagesAtMigrate)
		}
		return nil
	})

	// Stop it: writing ends, the final check and the summary follow.
	if err := wl.cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	if err := wl.wait(t, 3*time.Minute); err != nil {
		t.Fatalf("workload: %v\nstdout:\n%s\nstderr:\n%s", err, wl.out, wl.log)
	}
	wout := wl.out.String()
	t.Logf("workload stdout:\n%s", wout)
	for _, want := range []string{
		"tenant " + splitTenant + " exists at the controller (shard count 0)",
		"created timeline " + splitTimeline + " (init_lsn 0/1000) through the controller",
		"shard map from the controller: unsharded@" + psPage[0], // or the other node, checked below
		"compute hook: listening on " + hookAddr,
		"shard map updated by the controller's notification: unsharded@",
		fmt.Sprintf("-> 4 shards/stripe %d@", splitStripe),
		"final check of all 256 blocks",
		"4 shards, " + wantMap,
		"interrupted: writing stops",
		"summary: 0 mismatches",
	} {
		if strings.HasPrefix(want, "shard map from the controller: unsharded@") && strings.Contains(wout, "shard map from the controller: unsharded@"+psPage[1]) {
			continue
		}
		if !strings.Contains(wout, want) {
			t.Errorf("workload output lacks %q", want)
		}
	}
	sum := regexp.MustCompile(`summary: (\d+) pages read and compared.*\n.*page client: (\d+) calls, (\d+) retried by the client, (\d+) shard map updates`).FindStringSubmatch(wout)
	if sum == nil {
		t.Fatalf("no summary of pages and map updates:\n%s", wout)
	}
	if updates, _ := strconv.Atoi(sum[4]); updates < 1 {
		t.Errorf("%d shard map updates in the summary, want at least 1", updates)
	}
	hookSum := regexp.MustCompile(`compute hook: (\d+) notifications`).FindStringSubmatch(wout)
	if hookSum == nil || hookSum[1] == "0" {
		t.Errorf("no notification counted by the compute hook:\n%s", wout)
	}

	// The controller's view agrees: four shards of the new stripe, each
	// attached, settled, compute told.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	eventually(t, 30*time.Second, "the controller settled on four shards", func(ctx context.Context) error {
		d, err := api.DescribeTenant(ctx, tenant)
		if err != nil {
			return err
		}
		if d.ShardCount != 4 || d.StripeSize != splitStripe || len(d.Shards) != 4 {
			return fmt.Errorf("count %d stripe %d shards %d", d.ShardCount, d.StripeSize, len(d.Shards))
		}
		for _, s := range d.Shards {
			if s.NodeAttached == nil || s.IsSplitting || s.IsDirty || s.PendingComputeNotification {
				return fmt.Errorf("shard %+v", s)
			}
		}
		return nil
	})
	if _, err := api.ConsistencyCheck(ctx); err != nil {
		t.Errorf("consistency check: %v", err)
	}
	t.Logf("split took %v; the workload's map showed 4 shards %v after the split began, both migrations %v after they began (metrics: %+v); workload summary: %s pages read, %s page client calls, %s retried, %s map updates; setup %v, test %v",
		splitTook, notifiedAfter, migratedAfter, seen, sum[1], sum[2], sum[3], sum[4], setupDone.Sub(start), time.Since(start))
}

// shardMetrics is what the workload's /metrics say of its shard map.
type shardMetrics struct {
	count, applied, refused int
}

// scrapeShardMetrics reads strata_pageclient_shard_count and
// strata_pageclient_shard_map_updates_total from the workload's /metrics.
func scrapeShardMetrics(addr string) (shardMetrics, error) {
	var m shardMetrics
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return m, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return m, err
	}
	found := false
	for _, line := range strings.Split(string(body), "\n") {
		name, val, ok := strings.Cut(line, " ")
		if !ok || strings.HasPrefix(line, "#") {
			continue
		}
		v, err := strconv.ParseFloat(val, 64)
		if err != nil {
			continue
		}
		switch name {
		case "strata_pageclient_shard_count":
			m.count, found = int(v), true
		case `strata_pageclient_shard_map_updates_total{result="applied"}`:
			m.applied = int(v)
		case `strata_pageclient_shard_map_updates_total{result="refused"}`:
			m.refused = int(v)
		}
	}
	if !found {
		return m, fmt.Errorf("/metrics of %s lacks strata_pageclient_shard_count", addr)
	}
	return m, nil
}
