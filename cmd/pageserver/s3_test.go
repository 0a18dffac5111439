package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stratadb/strata/cmd/internal/proctest"
	"github.com/stratadb/strata/disk/objstore"
	"github.com/stratadb/strata/disk/objstore/s3test"
	"github.com/stratadb/strata/net/httpx"
	"github.com/stratadb/strata/nodes/compute/walproposer"
	"github.com/stratadb/strata/nodes/pageserver/pageapi"
)

// attachAt sends location_config AttachedSingle at generation gen, with
// small checkpoints so that layers (and their uploads) come every second.
func attachAt(t *testing.T, ctx context.Context, httpAddr string, gen uint32) error {
	t.Helper()
	dist, timeout := int64(256<<10), "1s"
	conf := pageapi.LocationConfig{Mode: pageapi.ModeAttachedSingle, Generation: &gen,
		TenantConf: &pageapi.TenantConf{CheckpointDistance: &dist, CheckpointTimeout: &timeout}}
	return httpx.DoJSON(ctx, http.DefaultClient, "PUT", "http://"+httpAddr+"/v1/tenant/"+testTenant+"/location_config", conf, nil)
}

// timelineInfo reads the test timeline from the management API.
func timelineInfo(ctx context.Context, httpAddr string) (pageapi.TimelineInfo, error) {
	var tls []pageapi.TimelineInfo
	if err := httpx.DoJSON(ctx, http.DefaultClient, "GET", "http://"+httpAddr+"/v1/tenant/"+testTenant+"/timeline", nil, &tls); err != nil {
		return pageapi.TimelineInfo{}, err
	}
	for _, tl := range tls {
		if tl.TimelineID.String() == testTimeline {
			return tl, nil
		}
	}
	return pageapi.TimelineInfo{}, fmt.Errorf("timeline %s not listed", testTimeline)
}

// listKeys lists every key under prefix.
func listKeys(ctx context.Context, st objstore.Store, prefix string) ([]string, error) {
	var keys []string
	opts := objstore.ListOptions{}
	for {
		page, err := st.List(ctx, prefix, opts)
		if err != nil {
			return nil, err
		}
		for _, o := range page.Objects {
			keys = append(keys, o.Key)
		}
		if page.NextStartAfter == "" {
			return keys, nil
		}
		opts.StartAfter = page.NextStartAfter
	}
}

// TestS3LostDiskReattach runs a broker, three safekeepers and a pageserver
// as processes, the pageserver's remote storage a real S3 server in
// another process (versitygw, disk/objstore/s3test; skipped without it
// unless CI is set, where it fails). While `strata workload` writes and
// reads, the test waits until the pageserver has uploaded everything it
// flushed (remote_consistent_lsn ≥ disk_consistent_lsn, from the
// management API), SIGKILLs it, deletes its data directory, starts it
// again and re-attaches the tenant with a higher generation
// (location_config): the timeline comes back from object storage, ingests
// the rest from the safekeepers, and the workload's final check of every
// block (and a sample of earlier LSNs) finds zero mismatches. Uploads then
// go on under the new generation.
//
// The restarted pageserver first listens for pages on a spare address:
// between its start and the re-attach it does not hold the tenant, and a
// read arriving then would be NotFound, which the workload rightly counts
// as a failure (a controller re-attaches at start-up, before the node
// serves). Once attached it is stopped cleanly and started on its address
// again, from the local copy the attach downloaded.
func TestS3LostDiskReattach(t *testing.T) {
	srv := s3test.Start(t)
	bucket := srv.NewBucket(t)
	raw := srv.Store(t, bucket, "")
	const prefix = "ps-test/"
	psArgs := []string{"-s3-bucket", bucket, "-s3-endpoint", srv.Endpoint, "-s3-path-style", "-s3-region", s3test.Region,
		"-s3-prefix", prefix, "-log-level", "info"}
	psEnv := []string{"STRATA_PAGESERVER_S3_ACCESS_KEY=" + s3test.AccessKey, "STRATA_PAGESERVER_S3_SECRET_KEY=" + s3test.SecretKey}
	c := startClusterEnv(t, 3, psEnv, psArgs...)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	if err := attachAt(t, ctx, c.httpAddr, 1); err != nil {
		t.Fatal(err)
	}
	wl := &proc{name: "workload", bin: bin(t, "strata"), args: []string{"workload", "--safekeepers", strings.Join(c.skAddrs, ","),
		"--pageserver", c.pageAddr, "--pageserver-http", "http://" + c.httpAddr, "--tenant", testTenant, "--timeline", testTimeline,
		"--duration", "14s", "--blocks", "64", "--progress", "250ms", "--seed", "12", "--max-lag-mib", "8", "--read-timeout", "90s"}}
	wl.start(t)
	defer stopAll(t, []*proc{wl})

	// Wait for reads and for at least two flushed, uploaded layers' worth
	// of WAL; take a moment where everything flushed is also uploaded.
	progress := regexp.MustCompile(`pages read +(\d+)`)
	var before pageapi.TimelineInfo
	deadline := time.Now().Add(60 * time.Second)
	for {
		m := progress.FindAllStringSubmatch(wl.out.String(), -1)
		read := 0
		if len(m) > 0 {
			read, _ = strconv.Atoi(m[len(m)-1][1])
		}
		tl, err := timelineInfo(ctx, c.httpAddr)
		if err == nil && read >= 64 && tl.DiskConsistentLSN >= walproposer.DefaultStartLSN+512<<10 && tl.RemoteConsistentLSN >= tl.DiskConsistentLSN {
			before = tl
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("never uploaded what was flushed (pages read %d, timeline %+v, %v):\n%s\n%s", read, tl, err, wl.out, c.ps.log)
		}
		time.Sleep(50 * time.Millisecond)
	}
	tlPrefix := prefix + "tenants/" + testTenant + "/timelines/" + testTimeline + "/"
	keys, err := listKeys(ctx, raw, tlPrefix)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(keys, tlPrefix+"index_part.json-00000001") || len(keys) < 2 {
		t.Fatalf("bucket after upload: %v, want index_part.json-00000001 and layers", keys)
	}
	t.Logf("uploaded: disk_consistent_lsn %s, remote_consistent_lsn %s, last_record_lsn %s, %d objects",
		before.DiskConsistentLSN, before.RemoteConsistentLSN, before.LastRecordLSN, len(keys))

	// Lose the pageserver and its disk.
	c.ps.kill(t)
	if err := os.RemoveAll(c.psDir); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(c.psDir, 0o755); err != nil {
		t.Fatal(err)
	}
	spare := proctest.FreeAddrs(t, 1)[0]
	orig := slices.Clone(c.ps.args)
	c.ps.args = append(slices.Clone(orig), "-listen", spare)
	c.ps.restart(t)
	waitReady(t, "http://"+c.httpAddr+"/ready")
	if _, err := timelineInfo(ctx, c.httpAddr); err == nil {
		t.Fatal("the timeline is listed on an empty data directory before any attach")
	}
	if err := attachAt(t, ctx, c.httpAddr, 2); err != nil {
		t.Fatalf("re-attach at generation 2: %v\n%s", err, c.ps.log)
	}
	after, err := timelineInfo(ctx, c.httpAddr)
	if err != nil {
		t.Fatalf("after re-attach: %v\n%s", err, c.ps.log)
	}
	if after.DiskConsistentLSN < before.DiskConsistentLSN {
		t.Fatalf("re-attached at disk_consistent_lsn %s, below the %s uploaded before the kill", after.DiskConsistentLSN, before.DiskConsistentLSN)
	}
	// The attach returns before any layer is downloaded: the background
	// download (or the reads) fetch them.
	for deadline := time.Now().Add(30 * time.Second); !strings.Contains(c.ps.log.String(), "layer downloaded"); {
		if time.Now().After(deadline) {
			t.Fatalf("no layer download logged:\n%s", c.ps.log)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Back on its page address, from what is local by now (the rest is
	// downloaded on demand).
	if err := c.ps.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := c.ps.wait(t, 30*time.Second); err != nil {
		t.Fatalf("pageserver exited with %v after SIGTERM:\n%s", err, c.ps.log)
	}
	c.ps.args = orig
	c.ps.restart(t)
	waitReady(t, "http://"+c.httpAddr+"/ready")

	if err := wl.wait(t, 3*time.Minute); err != nil {
		t.Fatalf("workload: %v\nstdout:\n%s\nstderr:\n%s\npageserver:\n%s", err, wl.out, wl.log, c.ps.log)
	}
	out := wl.out.String()
	t.Logf("workload stdout:\n%s\nstderr:\n%s", out, wl.log)
	for _, want := range []string{"final check of all 64 blocks", "summary: 0 mismatches"} {
		if !strings.Contains(out, want) {
			t.Errorf("workload output lacks %q:\n%s", want, out)
		}
	}
	final, err := timelineInfo(ctx, c.httpAddr)
	if err != nil || final.LastRecordLSN <= before.LastRecordLSN {
		t.Fatalf("after the workload: %+v %v, want last_record_lsn past %s", final, err, before.LastRecordLSN)
	}
	// Uploads go on under the new generation.
	for {
		keys, err := listKeys(ctx, raw, tlPrefix)
		if err == nil && slices.Contains(keys, tlPrefix+"index_part.json-00000002") {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("no index uploaded under generation 2: %v %v", keys, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
