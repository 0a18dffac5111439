package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stratadb/strata/engine/lsn"
	"github.com/stratadb/strata/engine/shard"
	"github.com/stratadb/strata/engine/walrec"
	"github.com/stratadb/strata/nodes/compute/walproposer"
)

const (
	testTenant   = "0a0b0c0d0e0f00010203040506070809"
	testTimeline = "f0e0d0c0b0a090807060504030201000"
)

// cliCase is one invocation and what it must print.
type cliCase struct {
	name string
	args []string
	want string // substring of stderr (an error) or, with ok, of stdout
	ok   bool
}

// runCases runs each case; a failing case must exit non-zero naming the
// problem and print nothing on stdout.
func runCases(t *testing.T, prefix []string, cases []cliCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := runCLINoPanic(t, append(append([]string{}, prefix...), tc.args...)...)
			if tc.ok {
				if code != 0 || !strings.Contains(out, tc.want) {
					t.Fatalf("exit %d, stdout %q lacks %q; stderr %q", code, out, tc.want, errOut)
				}
				return
			}
			if code == 0 {
				t.Fatalf("exit 0, want an error; stdout:\n%s", out)
			}
			if !strings.Contains(errOut, tc.want) {
				t.Errorf("stderr %q lacks %q", errOut, tc.want)
			}
			if out != "" {
				t.Errorf("printed on stdout despite the error:\n%s", out)
			}
		})
	}
}

// TestPageGetBadInput: each bad flag is refused before anything is
// contacted (the address is unreachable: an attempt would fail otherwise).
func TestPageGetBadInput(t *testing.T) {
	base := []string{"--pageserver", "127.0.0.1:1", "--tenant", testTenant, "--timeline", testTimeline, "--rel", "1663/5/16384", "--lsn", "0/2000"}
	without := func(flag string) []string {
		var out []string
		for i := 0; i < len(base); i += 2 {
			if base[i] != flag {
				out = append(out, base[i], base[i+1])
			}
		}
		return out
	}
	with := func(extra ...string) []string { return append(append([]string{}, base...), extra...) }
	runCases(t, []string{"page", "get"}, []cliCase{
		{name: "no pageserver", args: append(without("--pageserver"), "--block", "0"), want: "--pageserver is required"},
		{name: "no tenant", args: append(without("--tenant"), "--block", "0"), want: "--tenant is required"},
		{name: "no timeline", args: append(without("--timeline"), "--block", "0"), want: "--timeline is required"},
		{name: "no rel", args: append(without("--rel"), "--block", "0"), want: "--rel is required"},
		{name: "no lsn", args: append(without("--lsn"), "--block", "0"), want: "--lsn is required"},
		{name: "no block", args: with(), want: "--block is required (or --size)"},
		{name: "bad tenant", args: with("--block", "0", "--tenant", "xyz"), want: "--tenant: tenant shard id \"xyz\""},
		{name: "bad shard suffix", args: with("--block", "0", "--tenant", testTenant+"-zz"), want: "--tenant:"},
		{name: "bad timeline", args: with("--block", "0", "--timeline", "abc"), want: "--timeline:"},
		{name: "rel with two parts", args: with("--block", "0", "--rel", "1663/5"), want: "want spc/db/rel or spc/db/rel/fork"},
		{name: "rel not a number", args: with("--block", "0", "--rel", "1663/x/1"), want: `"x" is not a 32-bit unsigned number`},
		{name: "bad fork", args: with("--block", "0", "--rel", "1663/5/1/tree"), want: `fork "tree"`},
		{name: "bad lsn", args: with("--block", "0", "--lsn", "12"), want: "--lsn: lsn: malformed LSN"},
		{name: "lsn zero", args: with("--block", "0", "--lsn", "0/0"), want: "--lsn 0/0 names no record"},
		{name: "size with block", args: with("--size", "--block", "3"), want: "--size reads no page"},
		{name: "size with out", args: with("--size", "--out", "f"), want: "--size reads no page"},
		{name: "block too large", args: with("--block", "4294967295"), want: "above the largest block number"},
		{name: "bad timeout", args: with("--block", "0", "--timeout", "0s"), want: "--timeout 0s must be positive"},
		{name: "extra argument", args: with("--block", "0", "now"), want: `unknown command "now"`},
	})
}

func TestParseRel(t *testing.T) {
	for in, want := range map[string]string{"1663/5/16384": "1663/5/16384", "1663/5/16384/0": "1663/5/16384",
		"1663/5/16384/fsm": "1663/5/16384_fsm", "1/2/3/2": "1/2/3_vm", "1/2/3/init": "1/2/3_init", "1/2/3/9": "1/2/3_fork9"} {
		rel, err := parseRel(in)
		if err != nil || rel.String() != want {
			t.Errorf("parseRel(%q) = %v, %v, want %s", in, rel, err, want)
		}
	}
}

func TestHexDumpCollapsesRuns(t *testing.T) {
	page := make([]byte, walrec.PageSize)
	copy(page, "hello")
	page[8191] = 0xee
	d := hexDump(page)
	lines := strings.Split(strings.TrimSpace(d), "\n")
	if len(lines) != 4 || lines[2] != "*" || !strings.HasPrefix(lines[3], "00001ff0") || !strings.Contains(lines[0], "|hello") ||
		!strings.HasPrefix(lines[1], "00000010") {
		t.Fatalf("dump of a mostly empty page:\n%s", d)
	}
	zero := hexDump(make([]byte, 64))
	if zl := strings.Split(strings.TrimSpace(zero), "\n"); len(zl) != 3 || zl[1] != "*" || zl[2] != "00000040" {
		t.Fatalf("dump of zeroes:\n%s", zero)
	}
}

// commitPages writes a full image of each page (block i = pages[i]) of rel
// 1663/5/16384 through the cluster's safekeepers and returns the LSN after
// them, committed. The walproposer runs on until the test ends: the
// safekeepers learn the commit LSN (and so let the pageserver stream the
// WAL) from its next message.
func commitPages(t *testing.T, c *localCluster, tl shard.TimelineID, start lsn.LSN, pages [][]byte) lsn.LSN {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	wp, err := walproposer.New(benchEnv("compute", nil), walproposer.Config{ID: "test", TenantID: testTenant, TimelineID: tl.String(),
		StartLSN: start, Safekeepers: c.skAddrs})
	if err != nil {
		t.Fatal(err)
	}
	wp.Start(context.Background())
	t.Cleanup(wp.Stop)
	rel, _ := parseRel("1663/5/16384")
	recs := [][]byte{walrec.Encode(walrec.RelSizeChange{Rel: rel, NBlocks: uint32(len(pages))})}
	for i, p := range pages {
		recs = append(recs, walrec.Encode(walrec.FullPageImage{Rel: rel, Blk: uint32(i), Page: p}))
	}
	end, err := wp.Append(ctx, recs)
	if err != nil {
		t.Fatal(err)
	}
	if err := wp.WaitCommitted(ctx, end); err != nil {
		t.Fatal(err)
	}
	return end
}

// TestPageAndTimelineCommands drives tenant attach, timeline create and
// list, and page get against an in-process cluster: the page read is the
// page written, through the safekeepers and the WAL receiver.
func TestPageAndTimelineCommands(t *testing.T) {
	c, err := startLocalCluster(t.TempDir(), 1)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	mgmt := []string{"--pageserver-http", c.httpAddr, "--tenant", testTenant}
	runCases(t, nil, []cliCase{
		{name: "timeline of an unattached tenant", args: append([]string{"timeline", "create", "--timeline", testTimeline}, mgmt...), want: "NotFound: pageserver: tenant shard not attached here"},
		{name: "attach", args: append([]string{"tenant", "attach", "--generation", "2"}, mgmt...), want: "attached " + testTenant + " at generation 2", ok: true},
		{name: "older generation refused", args: append([]string{"tenant", "attach", "--generation", "1"}, mgmt...), want: "AlreadyExists"},
		{name: "tenant list", args: []string{"tenant", "list", "--pageserver-http", c.httpAddr}, want: testTenant + "  AttachedSingle  2", ok: true},
		{name: "create", args: append([]string{"timeline", "create", "--timeline", testTimeline, "--init-lsn", "0/1000"}, mgmt...), want: testTimeline, ok: true},
		{name: "create again", args: append([]string{"timeline", "create", "--timeline", testTimeline}, mgmt...), want: "AlreadyExists"},
		{name: "branch above the last record", args: append([]string{"timeline", "create", "--ancestor", testTimeline, "--ancestor-lsn", "5/0"}, mgmt...), want: "InvalidArgument"},
	})
	tl, _ := shard.ParseTimelineID(testTimeline)
	pages := [][]byte{fillPage(1), fillPage(2), fillPage(3)}
	end := commitPages(t, c, tl, 0x1000, pages)

	pg := []string{"page", "get", "--pageserver", c.pageAddr, "--tenant", testTenant, "--timeline", testTimeline, "--rel", "1663/5/16384", "--lsn", end.String()}
	out := filepath.Join(t.TempDir(), "page")
	if code, stdout, errOut := runCLI(t, append(pg, "--block", "1", "--out", out)...); code != 0 || !strings.Contains(stdout, "8192 bytes") {
		t.Fatalf("page get --out: exit %d, %q %q", code, stdout, errOut)
	}
	if got, err := os.ReadFile(out); err != nil || !bytes.Equal(got, pages[1]) {
		t.Fatalf("page written to --out differs from the page committed (err %v)", err)
	}
	if code, stdout, errOut := runCLI(t, append(pg, "--block", "2")...); code != 0 || !strings.Contains(stdout, "block 2 of 1663/5/16384 at "+end.String()) ||
		!strings.Contains(stdout, hexDump(pages[2])) {
		t.Fatalf("page get: exit %d, stdout %.300q, stderr %q", code, stdout, errOut)
	}
	runCases(t, nil, []cliCase{
		{name: "size", args: append(pg, "--size"), want: "relation 1663/5/16384 at " + end.String() + ": 3 blocks", ok: true},
		{name: "size of a missing relation", args: append(append([]string{}, pg...), "--size", "--rel", "1663/5/1"), want: "relation 1663/5/1 does not exist", ok: true},
		{name: "list", args: append([]string{"timeline", "list"}, mgmt...), want: testTimeline + "  -         -             " + end.String(), ok: true},
		{name: "branch", args: append([]string{"timeline", "create", "--timeline", strings.Repeat("b", 32), "--ancestor", testTimeline, "--ancestor-lsn", end.String(), "--json"}, mgmt...),
			want: `"ancestor_lsn": "` + end.String() + `"`, ok: true},
		{name: "unattached tenant", args: append(append([]string{}, pg...), "--block", "0", "--tenant", strings.Repeat("e", 32)), want: "NotFound"},
		{name: "unattached timeline", args: append(append([]string{}, pg...), "--block", "0", "--timeline", strings.Repeat("c", 32)), want: "no such timeline"},
		{name: "sharded id of an unsharded tenant", args: append(append([]string{}, pg...), "--block", "0", "--tenant", testTenant+"-0102"), want: "not attached"},
		{name: "detach", args: append([]string{"tenant", "detach"}, mgmt...), want: "detached " + testTenant, ok: true},
		{name: "read after detach", args: append(pg, "--block", "0"), want: "NotFound"},
	})
}

// TestManagementBadInput: the management commands refuse bad flags before
// any request.
func TestManagementBadInput(t *testing.T) {
	mgmt := []string{"--pageserver-http", "http://127.0.0.1:1", "--tenant", testTenant}
	runCases(t, nil, []cliCase{
		{name: "create without url", args: []string{"timeline", "create", "--tenant", testTenant}, want: "--pageserver-http is required"},
		{name: "create without tenant", args: []string{"timeline", "create", "--pageserver-http", "http://127.0.0.1:1"}, want: "--tenant is required"},
		{name: "bad url scheme", args: []string{"timeline", "list", "--pageserver-http", "ftp://x", "--tenant", testTenant}, want: `want http://host:port`},
		{name: "bad tenant", args: []string{"timeline", "list", "--pageserver-http", "http://127.0.0.1:1", "--tenant", "t1"}, want: "--tenant:"},
		{name: "bad timeline", args: append([]string{"timeline", "create", "--timeline", "x"}, mgmt...), want: "--timeline:"},
		{name: "bad ancestor", args: append([]string{"timeline", "create", "--ancestor", "x"}, mgmt...), want: "--ancestor:"},
		{name: "ancestor lsn alone", args: append([]string{"timeline", "create", "--ancestor-lsn", "0/10"}, mgmt...), want: "--ancestor-lsn needs --ancestor"},
		{name: "init lsn on a branch", args: append([]string{"timeline", "create", "--ancestor", testTimeline, "--init-lsn", "0/10"}, mgmt...), want: "--init-lsn is for a root timeline"},
		{name: "bad ancestor lsn", args: append([]string{"timeline", "create", "--ancestor", testTimeline, "--ancestor-lsn", "zz"}, mgmt...), want: "--ancestor-lsn: lsn: malformed"},
		{name: "bad timeout", args: append([]string{"timeline", "list", "--timeout", "-1s"}, mgmt...), want: "--timeout -1s must be positive"},
		{name: "unreachable", args: append([]string{"timeline", "list", "--timeout", "5s"}, mgmt...), want: "Unavailable"},
		{name: "attach without generation", args: append([]string{"tenant", "attach"}, mgmt...), want: "--generation is required"},
		{name: "attach negative generation", args: append([]string{"tenant", "attach", "--generation", "-1"}, mgmt...), want: "--generation -1 not in"},
		{name: "attach huge generation", args: append([]string{"tenant", "attach", "--generation", "4294967296"}, mgmt...), want: "--generation 4294967296 not in"},
		{name: "attach bad tenant conf", args: append([]string{"tenant", "attach", "--generation", "1", "--tenant-conf", "{"}, mgmt...), want: "--tenant-conf:"},
		{name: "attach unknown tenant conf field", args: append([]string{"tenant", "attach", "--generation", "1", "--tenant-conf", `{"colour":1}`}, mgmt...), want: "unknown field"},
		{name: "attach bad duration", args: append([]string{"tenant", "attach", "--generation", "1", "--tenant-conf", `{"gc_period":"often"}`}, mgmt...), want: "gc_period"},
		{name: "attach sharded with stripe 0", args: []string{"tenant", "attach", "--generation", "1", "--pageserver-http", "http://127.0.0.1:1", "--tenant", testTenant + "-0002", "--stripe-size", "0"}, want: "shard_stripe_size 0"},
	})
}
