package main

import (
	"github.com/stratadb/strata/cmd/internal/proctest"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestReadyReportsUnreachableBroker: a safekeeper started with a -broker
// nobody listens on answers /ready with 503 naming the broker once
// publication has failed for -publish-failure-threshold, and counts the
// failures on /metrics; a safekeeper without -broker stays ready.
func TestReadyReportsUnreachableBroker(t *testing.T) {
	bin := buildBinary(t)
	free := proctest.FreeAddrs(t, 5)
	bad := &proc{id: "sk-1", addr: free[0], dir: t.TempDir(), httpAddr: free[1],
		args: []string{"-broker", free[2], "-publish-interval", "50ms", "-publish-failure-threshold", "300ms"}}
	alone := &proc{id: "sk-2", addr: free[3], dir: t.TempDir(), httpAddr: free[4]}
	stop := func(p *proc) {
		if p.cmd.ProcessState == nil {
			_ = p.cmd.Process.Kill()
			_ = p.cmd.Wait()
		}
	}
	for _, p := range []*proc{bad, alone} {
		p.start(t, bin)
		defer func() {
			stop(p)
			if t.Failed() {
				t.Logf("%s log:\n%s", p.id, p.log)
			}
		}()
	}
	get := func(addr, path string) (int, string) {
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		code, body := get(bad.httpAddr, "/ready")
		if code == http.StatusServiceUnavailable {
			if !strings.Contains(body, "broker publication failing") || !strings.Contains(body, free[2]) {
				t.Fatalf("/ready 503 body %q does not name the failing broker %s", body, free[2])
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/ready still %d %q with an unreachable broker", code, body)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if code, body := get(bad.httpAddr, "/metrics"); code != http.StatusOK || !strings.Contains(body, "safekeeper_broker_publish_errors_total") {
		t.Fatalf("/metrics %d lacks the publish error counter", code)
	}
	for {
		code, body := get(alone.httpAddr, "/ready")
		if code == http.StatusOK {
			break
		}
		if code != 0 || time.Now().After(deadline) {
			t.Fatalf("safekeeper without a broker: /ready %d %q", code, body)
		}
		time.Sleep(50 * time.Millisecond)
	}
	stop(bad) // its log is complete once it has exited
	if !strings.Contains(bad.log.String(), "broker publish failed") {
		t.Fatalf("no warn-level log of the failure (the daemon logs at warn in tests):\n%s", bad.log)
	}
}
