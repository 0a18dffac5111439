package main

import (
	"bytes"
	"errors"
	"fmt"
	"github.com/stratadb/strata/cmd/internal/proctest"
	stdnet "net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stratadb/strata/cmd/internal/daemon"
)

// runBinary runs the safekeeper binary to completion (within 20 s).
func runBinary(t *testing.T, bin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = proctest.CleanEnv("STRATA_SAFEKEEPER_")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	timer := time.AfterFunc(20*time.Second, func() { _ = cmd.Process.Kill() })
	defer timer.Stop()
	err := cmd.Wait()
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee) && ee.Exited():
		code = ee.ExitCode()
	default:
		t.Fatalf("%v: %v\n%s", args, err, errb.String())
	}
	return code, out.String(), errb.String()
}

// TestCommandLine runs the real binary: -help and -version exit 0, a
// missing required flag is named by its flag name, and a failed start
// prints its error once, without "safekeeper: safekeeper:".
func TestCommandLine(t *testing.T) {
	bin := buildBinary(t)
	l, err := stdnet.Listen("tcp", "127.0.0.1:0") // held: the listen address in use
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	busy := l.Addr().String()
	dir := t.TempDir()
	for _, tc := range []struct {
		name     string
		args     []string
		wantCode int
		wantOut  string
		wantErr  []string
		notErr   []string
	}{
		{"help", []string{"-help"}, 0, "", []string{"-data-dir", "-version", "STRATA_SAFEKEEPER_LOG_LEVEL"}, nil},
		{"version", []string{"-version"}, 0, "safekeeper ", nil, nil},
		{"version reports go", []string{"-version"}, 0, runtime.Version(), nil, nil},
		{"missing id", []string{"-data-dir", dir}, 2, "",
			[]string{"safekeeper: -id is required (or set STRATA_SAFEKEEPER_ID)"}, []string{"NodeID"}},
		{"missing data dir", []string{"-id", "sk-1"}, 2, "",
			[]string{"safekeeper: -data-dir is required (or set STRATA_SAFEKEEPER_DATA_DIR)"}, nil},
		{"unknown flag", []string{"-no-such-flag"}, 2, "", []string{"flag provided but not defined: -no-such-flag"}, nil},
		{"listen address in use", []string{"-id", "sk-1", "-data-dir", dir, "-listen", busy}, 1, "",
			[]string{"safekeeper: listen " + busy}, []string{"safekeeper: safekeeper:"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := runBinary(t, bin, tc.args...)
			if code != tc.wantCode {
				t.Fatalf("exit %d, want %d\nstdout %q\nstderr %q", code, tc.wantCode, out, errOut)
			}
			if !strings.Contains(out, tc.wantOut) {
				t.Errorf("stdout %q lacks %q", out, tc.wantOut)
			}
			for _, w := range tc.wantErr {
				if !strings.Contains(errOut, w) {
					t.Errorf("stderr lacks %q:\n%s", w, errOut)
				}
			}
			for _, w := range tc.notErr {
				if strings.Contains(errOut, w) {
					t.Errorf("stderr contains %q:\n%s", w, errOut)
				}
			}
		})
	}
}

// TestSecondSafekeeperOnSameDataDir: a second safekeeper process on a
// data directory the first holds exits non-zero at once, naming the
// directory and the holder's pid, and the first keeps running.
func TestSecondSafekeeperOnSameDataDir(t *testing.T) {
	bin := buildBinary(t)
	addrs := proctest.FreeAddrs(t, 2)
	first := &proc{id: "sk-1", addr: addrs[0], dir: t.TempDir()}
	first.start(t, bin)
	defer func() {
		if first.cmd.ProcessState == nil {
			_ = first.cmd.Process.Kill()
			_ = first.cmd.Wait()
		}
		if t.Failed() {
			t.Logf("first safekeeper's log:\n%s", first.log)
		}
	}()
	// The first holds the lock once it has described itself in the lock
	// file (it locks before describing).
	holder := fmt.Sprintf("safekeeper pid %d", first.cmd.Process.Pid)
	lockFile := filepath.Join(first.dir, daemon.LockFileName)
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if b, _ := os.ReadFile(lockFile); strings.Contains(string(b), holder) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("first safekeeper never took the lock")
		}
	}
	code, _, errOut := runBinary(t, bin, "-id", "sk-2", "-listen", addrs[1], "-data-dir", first.dir)
	if code == 0 {
		t.Fatalf("second safekeeper on the same data directory exited 0:\n%s", errOut)
	}
	for _, want := range []string{"data directory is in use", first.dir, holder} {
		if !strings.Contains(errOut, want) {
			t.Errorf("second safekeeper's error lacks %q:\n%s", want, errOut)
		}
	}
	// The first is unharmed and stops cleanly.
	if err := first.cmd.Process.Signal(syscall.Signal(0)); err != nil {
		t.Fatalf("first safekeeper gone: %v", err)
	}
	if err := first.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- first.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("first safekeeper exited with %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("first safekeeper did not stop on SIGTERM")
	}
}
