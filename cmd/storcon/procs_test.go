package main

import (
	"errors"
	"fmt"
	"github.com/stratadb/strata/cmd/internal/proctest"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"
)

// binDir holds the binaries the tests run, built once (bin).
var (
	binDir    string
	buildOnce sync.Once
	buildErr  error
)

func TestMain(m *testing.M) {
	var err error
	if binDir, err = os.MkdirTemp("", "storcon-test"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	_ = os.RemoveAll(binDir)
	os.Exit(code)
}

// bin builds the storcon, pageserver, strata, broker and safekeeper
// binaries once and returns the path of the named one.
func bin(t *testing.T, name string) string {
	t.Helper()
	buildOnce.Do(func() {
		cmd := exec.Command("go", "build", "-o", binDir+"/", ".", "../pageserver", "../strata", "../broker", "../safekeeper")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return filepath.Join(binDir, name)
}

// proc is one daemon (or CLI) process a test runs.
type proc struct {
	name     string
	bin      string
	args     []string
	env      []string // added to proctest.CleanEnv("STRATA_", slices.Collect(maps.Values(secretAliases))...)
	cmd      *exec.Cmd
	out, log *proctest.SyncBuffer
	done     chan struct{} // closed when the process was waited for
	err      error         // its exit (after done)
}

func (p *proc) start(t *testing.T) {
	t.Helper()
	p.out, p.log = &proctest.SyncBuffer{}, &proctest.SyncBuffer{}
	p.cmd = exec.Command(p.bin, p.args...)
	p.cmd.Env = append(proctest.CleanEnv("STRATA_", slices.Collect(maps.Values(secretAliases))...), p.env...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.log
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p.done = make(chan struct{})
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
}

// kill SIGKILLs the process and waits for it.
func (p *proc) kill(t *testing.T) {
	t.Helper()
	_ = p.cmd.Process.Kill()
	<-p.done
}

// running reports whether the process has not exited.
func (p *proc) running() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// wait waits up to d for the process to exit and returns its error.
func (p *proc) wait(t *testing.T, d time.Duration) error {
	t.Helper()
	select {
	case <-p.done:
		return p.err
	case <-time.After(d):
		t.Fatalf("%s did not exit within %v; stderr:\n%s", p.name, d, p.log)
		return nil
	}
}

// exitCode is the process's exit code after wait (-1 for a signal).
func exitCode(err error) int {
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		return ee.ExitCode()
	}
	return -2
}

// stopAll ends every process still running (at the end of a test) and
// shows the logs of a failed test.
func stopAll(t *testing.T, ps []*proc) {
	for _, p := range ps {
		if p == nil || p.cmd == nil {
			continue
		}
		if p.running() {
			_ = p.cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("%s stderr (last 8 KiB):\n%s", p.name, tail(p.log.String(), 8<<10))
		}
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

// waitReady polls url until it answers 200 (within d).
func waitReady(t *testing.T, url string, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
			err = fmt.Errorf("HTTP %d", resp.StatusCode)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not ready within %v: %v", url, d, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
