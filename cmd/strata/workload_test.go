package main

import (
	"context"
	"io"
	"regexp"
	"strings"
	"testing"

	"github.com/stratadb/strata/engine/walrec"
	"github.com/stratadb/strata/net"
	"github.com/stratadb/strata/net/grpcx"
	"github.com/stratadb/strata/nodes/pageserver/pageapi"
)

// TestWorkload runs the workload against an in-process cluster of three
// safekeepers and a pageserver: it attaches the tenant, creates the
// timeline, writes, reads back and verifies; a second run finds both set
// up and goes on with a new walproposer.
func TestWorkload(t *testing.T) {
	c, err := startLocalCluster(t.TempDir(), 3)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	args := []string{"workload", "--safekeepers", strings.Join(c.skAddrs, ","), "--pageserver", c.pageAddr, "--pageserver-http", c.httpAddr,
		"--tenant", testTenant, "--timeline", testTimeline, "--duration", "1500ms", "--blocks", "48", "--batch", "16", "--progress", "500ms", "--seed", "7"}
	code, out, errOut := runCLI(t, args...)
	if code != 0 {
		t.Fatalf("workload: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	for _, want := range []string{"attached tenant " + testTenant + " at generation 1", "created timeline " + testTimeline + " (init_lsn 0/1000)",
		"seed 7", "pages read", "records/s", "final check of all 48 blocks", "summary: 0 mismatches",
		"summary: page client: ", "map unsharded@" + c.pageAddr} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if m := regexp.MustCompile(`and (\d+) earlier LSNs again \(0 below`).FindStringSubmatch(out); m == nil || m[1] == "0" {
		t.Errorf("no earlier LSN read again:\n%s", out)
	}
	if n := strings.Count(out, "MiB/s)"); n < 2 {
		t.Errorf("%d progress lines, want at least 2:\n%s", n, out)
	}
	code, out, errOut = runCLI(t, append(args, "--duration", "500ms", "--blocks", "20")...)
	if code != 0 || !strings.Contains(out, "already attached") || !strings.Contains(out, "timeline "+testTimeline+" exists") || !strings.Contains(out, "summary: 0 mismatches") {
		t.Fatalf("second workload: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
}

// wrongPages is a page service that answers every block with a zero page:
// the workload must report every read as a mismatch.
func wrongPages() *net.Mux {
	m := net.NewMux()
	net.HandleStreamProto(m, pageapi.PageService_GetPages_FullMethodName, func(ctx context.Context, s *net.ServerStreamOf[*pageapi.GetPageRequest, *pageapi.GetPageResponse]) error {
		for {
			req, err := s.Recv()
			if err == io.EOF {
				return nil
			}
			if err != nil {
				return err
			}
			resp := &pageapi.GetPageResponse{RequestId: req.RequestId, StatusCode: pageapi.GetPageStatusCode_GET_PAGE_STATUS_CODE_OK}
			for _, b := range req.BlockNumber {
				resp.Page = append(resp.Page, &pageapi.Page{BlockNumber: b, Image: make([]byte, walrec.PageSize)})
			}
			if err := s.Send(resp); err != nil {
				return err
			}
		}
	})
	net.HandleUnary(m, pageapi.PageService_GetRelSize_FullMethodName, func(ctx context.Context, r *pageapi.GetRelSizeRequest) (*pageapi.GetRelSizeResponse, error) {
		return &pageapi.GetRelSizeResponse{NumBlocks: 8}, nil
	})
	return m
}

// TestWorkloadReportsMismatch: pages that differ from the model are
// printed and make the workload exit non-zero.
func TestWorkloadReportsMismatch(t *testing.T) {
	c, err := startLocalCluster(t.TempDir(), 1)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	l, err := grpcx.New(grpcx.Options{}).Listen("127.0.0.1:0", wrongPages())
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	code, out, errOut := runCLI(t, "workload", "--safekeepers", c.skAddrs[0], "--pageserver", l.Addr(), "--skip-setup",
		"--tenant", testTenant, "--timeline", testTimeline, "--duration", "300ms", "--blocks", "8", "--progress", "0")
	if code == 0 {
		t.Fatalf("workload against a wrong page service exited 0:\n%s", out)
	}
	if !strings.Contains(out, "MISMATCH block") || !strings.Contains(out, "MISMATCHES") || !strings.Contains(errOut, "pages differ from what was committed") {
		t.Fatalf("mismatches not reported:\nstdout:\n%s\nstderr:\n%s", out, errOut)
	}
	if n := strings.Count(out, "MISMATCH block"); n != maxReportedMismatches {
		t.Errorf("%d mismatches printed one by one, want the first %d", n, maxReportedMismatches)
	}
}

func TestWorkloadBadInput(t *testing.T) {
	base := []string{"--safekeepers", "127.0.0.1:1,127.0.0.1:2,127.0.0.1:3", "--pageserver", "127.0.0.1:4", "--pageserver-http", "http://127.0.0.1:5",
		"--tenant", testTenant, "--timeline", testTimeline}
	with := func(extra ...string) []string { return append(append([]string{}, base...), extra...) }
	runCases(t, []string{"workload"}, []cliCase{
		{name: "no safekeepers", args: []string{"--pageserver", "a:1", "--tenant", testTenant, "--timeline", testTimeline}, want: "--safekeepers is required"},
		{name: "no pageserver", args: []string{"--safekeepers", "a:1", "--tenant", testTenant, "--timeline", testTimeline}, want: "--pageserver is required"},
		{name: "no management url", args: []string{"--safekeepers", "a:1", "--pageserver", "a:2", "--tenant", testTenant, "--timeline", testTimeline}, want: "--pageserver-http is required"},
		{name: "empty safekeeper", args: with("--safekeepers", "a:1,,b:2"), want: "has an empty address"},
		{name: "sharded tenant", args: with("--tenant", testTenant+"-0002"), want: "drives an unsharded tenant"},
		{name: "bad timeline", args: with("--timeline", "nope"), want: "--timeline:"},
		{name: "bad rel", args: with("--rel", "a/b/c"), want: "--rel"},
		{name: "blocks 0", args: with("--blocks", "0"), want: "--blocks 0 not in [1, "},
		{name: "batch too big", args: with("--batch", "5000"), want: "--batch 5000 not in"},
		{name: "write bytes 0", args: with("--write-bytes", "0"), want: "--write-bytes 0 not in"},
		{name: "write bytes over a page", args: with("--write-bytes", "8193"), want: "--write-bytes 8193 not in"},
		{name: "full page pct", args: with("--full-page-pct", "101"), want: "--full-page-pct 101 not in"},
		{name: "reads per lsn", args: with("--reads-per-lsn", "33"), want: "--reads-per-lsn 33 not in"},
		{name: "start lsn 0", args: with("--start-lsn", "0/0"), want: "--start-lsn 0/0"},
		{name: "bad start lsn", args: with("--start-lsn", "x"), want: "--start-lsn: lsn"},
		{name: "duration 0", args: with("--duration", "0s"), want: "--duration 0s not in"},
		{name: "read timeout 0", args: with("--read-timeout", "0s"), want: "--read-timeout 0s must be positive"},
		{name: "negative progress", args: with("--progress", "-1s"), want: "--progress -1s is negative"},
		{name: "bad generation", args: with("--generation", "-2"), want: "--generation -2 not in"},
		{name: "negative lag", args: with("--max-lag-mib", "-1"), want: "--max-lag-mib -1 not in"},
	})
}
