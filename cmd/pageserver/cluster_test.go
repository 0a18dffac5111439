package main

import (
	"fmt"
	"github.com/stratadb/strata/cmd/internal/proctest"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

const (
	testTenant   = "0a0b0c0d0e0f00010203040506070809"
	testTimeline = "f0e0d0c0b0a090807060504030201000"
)

// cluster is a broker, three safekeepers and a pageserver, each a process
// on loopback.
type cluster struct {
	broker, ps *proc
	sks        []*proc
	skAddrs    []string
	pageAddr   string
	httpAddr   string // host:port of the pageserver's -http
	psDir      string // the pageserver's -data-dir
}

func (c *cluster) procs() []*proc { return append([]*proc{c.broker, c.ps}, c.sks...) }

// startCluster starts the processes; psArgs are extra pageserver flags.
func startCluster(t *testing.T, nSK int, psArgs ...string) *cluster {
	t.Helper()
	return startClusterEnv(t, nSK, nil, psArgs...)
}

// startClusterEnv is startCluster with psEnv (KEY=value) added to the
// pageserver's environment.
func startClusterEnv(t *testing.T, nSK int, psEnv []string, psArgs ...string) *cluster {
	t.Helper()
	a := proctest.FreeAddrs(t, 3+nSK)
	c := &cluster{pageAddr: a[1], httpAddr: a[2], psDir: t.TempDir()}
	c.broker = &proc{name: "broker", bin: bin(t, "broker"), args: []string{"-listen", a[0], "-log-level", "warn"}}
	c.broker.start(t)
	for i := 1; i <= nSK; i++ {
		addr := a[2+i]
		c.skAddrs = append(c.skAddrs, addr)
		sk := &proc{name: fmt.Sprintf("sk-%d", i), bin: bin(t, "safekeeper"), args: []string{"-id", fmt.Sprintf("sk-%d", i), "-listen", addr,
			"-data-dir", t.TempDir(), "-broker", a[0], "-publish-interval", "200ms", "-log-level", "warn"}}
		sk.start(t)
		c.sks = append(c.sks, sk)
	}
	c.ps = &proc{name: "pageserver", bin: bin(t, "pageserver"), args: append([]string{"-id", "1", "-listen", c.pageAddr, "-http", c.httpAddr,
		"-data-dir", c.psDir, "-broker", a[0], "-log-level", "warn"}, psArgs...), env: psEnv}
	c.ps.start(t)
	t.Cleanup(func() { stopAll(t, c.procs()) })
	waitReady(t, "http://"+c.httpAddr+"/ready")
	return c
}

// restart starts a killed process again with the same flags (and data
// directory).
func (p *proc) restart(t *testing.T) {
	t.Helper()
	log := p.log.String()
	p.start(t)
	_, _ = p.log.Write([]byte("--- restarted; before:\n" + log))
}

// TestClusterProcesses runs broker, three safekeepers and a pageserver as
// processes and `strata workload` against them. While the workload writes
// and reads, the pageserver and one safekeeper are SIGKILLed and
// restarted: the workload's reads retry through the outage and every page
// it reads afterwards — all blocks at the last commit and a sample of
// earlier LSNs, from before the kill too — equals its model. Then SIGTERM
// stops every daemon cleanly.
func TestClusterProcesses(t *testing.T) {
	c := startCluster(t, 3)
	wl := &proc{name: "workload", bin: bin(t, "strata"), args: []string{"workload", "--safekeepers", strings.Join(c.skAddrs, ","),
		"--pageserver", c.pageAddr, "--pageserver-http", "http://" + c.httpAddr, "--tenant", testTenant, "--timeline", testTimeline,
		"--duration", "8s", "--blocks", "64", "--progress", "250ms", "--seed", "11", "--max-lag-mib", "8", "--read-timeout", "45s"}}
	wl.start(t)
	defer stopAll(t, []*proc{wl})
	// Let it write and read for a while, then kill.
	progress := regexp.MustCompile(`pages read +(\d+)`)
	deadline := time.Now().Add(30 * time.Second)
	for {
		m := progress.FindAllStringSubmatch(wl.out.String(), -1)
		if len(m) > 0 {
			if n, _ := strconv.Atoi(m[len(m)-1][1]); n >= 64 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the workload read nothing in 30 s:\n%s\n%s", wl.out, wl.log)
		}
		time.Sleep(20 * time.Millisecond)
	}
	killedAt := strings.Count(wl.out.String(), "\n")
	c.ps.kill(t)
	c.sks[2].kill(t)
	time.Sleep(time.Second) // reads fail meanwhile; writes go on with two safekeepers
	c.ps.restart(t)
	c.sks[2].restart(t)
	waitReady(t, "http://"+c.httpAddr+"/ready")

	if err := wl.wait(t, 3*time.Minute); err != nil {
		t.Fatalf("workload: %v\nstdout:\n%s\nstderr:\n%s", err, wl.out, wl.log)
	}
	out := wl.out.String()
	t.Logf("workload stdout:\n%s\nstderr:\n%s", out, wl.log)
	for _, want := range []string{"created timeline " + testTimeline, "final check of all 64 blocks", "summary: 0 mismatches"} {
		if !strings.Contains(out, want) {
			t.Errorf("workload output lacks %q:\n%s", want, out)
		}
	}
	// Reads retry in the page client (its summary counts them) or, for
	// reads whose ingest is behind, in the workload itself (it logs them).
	clientRetries := regexp.MustCompile(`page client: \d+ calls, (\d+) retried`).FindStringSubmatch(out)
	if !strings.Contains(wl.log.String(), "retrying") && (clientRetries == nil || clientRetries[1] == "0") {
		t.Errorf("no read was retried while the pageserver was down:\n%s\n%s", out, wl.log)
	}
	// It went on reading after the restart.
	after := progress.FindAllStringSubmatch(strings.Join(strings.Split(out, "\n")[killedAt:], "\n"), -1)
	if len(after) < 2 || after[0][1] == after[len(after)-1][1] {
		t.Errorf("no pages read after the restart:\n%s", out)
	}
	if m := regexp.MustCompile(`and (\d+) earlier LSNs again`).FindStringSubmatch(out); m == nil || m[1] == "0" {
		t.Errorf("no earlier LSN read again:\n%s", out)
	}

	// The pageserver's HTTP side: metrics of what it served and ingested.
	resp, err := http.Get("http://" + c.httpAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, m := range []string{"strata_pageserver_getpage_seconds_bucket", "strata_pageserver_pages_served_total",
		"strata_pageserver_ingest_bytes_total", "strata_pageserver_last_record_lsn{tenant_shard_id=\"" + testTenant + "\""} {
		if !strings.Contains(string(body), m) {
			t.Errorf("/metrics lacks %s", m)
		}
	}

	for _, p := range c.procs() {
		if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range c.procs() {
		if err := p.wait(t, 20*time.Second); err != nil {
			t.Errorf("%s exited with %v after SIGTERM:\n%s", p.name, err, p.log)
		}
	}
}
