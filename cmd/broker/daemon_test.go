package main

import (
	"bytes"
	"errors"
	"runtime"
	"strings"
	"testing"

	"github.com/stratadb/strata/cmd/internal/daemon"
)

// TestMainCommandLine drives the broker's main (daemon.Main with its parse
// and run): -help and -version exit 0 without starting the broker, a bad
// value exits 2 naming the flag, and a run error is printed once with one
// "broker: " prefix.
func TestMainCommandLine(t *testing.T) {
	failing := func(options) error { return errors.New("broker: listen 127.0.0.1:1: address in use") }
	for _, tc := range []struct {
		name     string
		env      string // STRATA_BROKER_ENTRY_TTL, if set
		args     []string
		wantCode int
		wantOut  string
		wantErr  string
		notErr   string
	}{
		{"help", "", []string{"-help"}, daemon.ExitOK, "", "", "broker: listen"},
		{"version", "", []string{"-version"}, daemon.ExitOK, "broker ", "", "broker: listen"},
		{"version reports go", "", []string{"-version"}, daemon.ExitOK, runtime.Version(), "", ""},
		{"bad env value", "soon", nil, daemon.ExitUsage, "", "broker: daemon: bad environment value: STRATA_BROKER_ENTRY_TTL for -entry-ttl", "broker: listen"},
		{"run error once", "", nil, daemon.ExitFailed, "", "broker: listen 127.0.0.1:1: address in use\n", "broker: broker:"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.env != "" {
				t.Setenv("STRATA_BROKER_ENTRY_TTL", tc.env)
			}
			var out, errOut bytes.Buffer
			code := daemon.Main("broker", tc.args, &out, &errOut, parse, failing)
			if code != tc.wantCode {
				t.Fatalf("exit %d, want %d; stderr %q", code, tc.wantCode, errOut.String())
			}
			if !strings.Contains(out.String(), tc.wantOut) {
				t.Errorf("stdout %q lacks %q", out.String(), tc.wantOut)
			}
			if !strings.Contains(errOut.String(), tc.wantErr) {
				t.Errorf("stderr %q lacks %q", errOut.String(), tc.wantErr)
			}
			if tc.notErr != "" && strings.Contains(errOut.String(), tc.notErr) {
				t.Errorf("stderr %q contains %q", errOut.String(), tc.notErr)
			}
		})
	}
}
