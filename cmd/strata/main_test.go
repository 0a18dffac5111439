package main

import (
	"bytes"
	"context"
	"runtime"
	"strings"
	"testing"
)

// runCLI runs the CLI in-process and returns its exit code and output.
func runCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(context.Background(), "strata", args, &out, &errb)
	return code, out.String(), errb.String()
}

// TestHelpListsSubcommands checks that `strata --help` lists every
// registered subcommand (whichever files of this package registered them)
// with its short description.
func TestHelpListsSubcommands(t *testing.T) {
	code, out, errOut := runCLI(t, "--help")
	if code != 0 {
		t.Fatalf("strata --help: exit %d, stderr %q", code, errOut)
	}
	if !strings.Contains(out, "Available Commands:") {
		t.Fatalf("strata --help lists no commands:\n%s", out)
	}
	root := newRootCmd()
	if len(root.Commands()) == 0 {
		t.Fatal("no subcommands registered")
	}
	names := map[string]bool{}
	for _, c := range root.Commands() {
		names[c.Name()] = true
		if !c.IsAvailableCommand() {
			continue
		}
		if !strings.Contains(out, "  "+c.Name()+" ") || !strings.Contains(out, c.Short) {
			t.Errorf("strata --help does not list %q (%q):\n%s", c.Name(), c.Short, out)
		}
	}
	if !names["version"] {
		t.Errorf("version subcommand not registered; have %v", names)
	}
}

func TestCommands(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantOut  string // substring of stdout
		wantErr  string // substring of stderr
	}{
		{"no args prints help", nil, 0, "Available Commands:", ""},
		{"version subcommand", []string{"version"}, 0, "strata ", ""},
		{"version reports go version", []string{"version"}, 0, runtime.Version(), ""},
		{"version flag", []string{"--version"}, 0, "strata ", ""},
		{"unknown subcommand", []string{"no-such-command"}, 1, "", `strata: unknown command "no-such-command"`},
		{"version takes no args", []string{"version", "extra"}, 1, "", "strata: unknown command \"extra\""},
		{"unknown flag", []string{"--no-such-flag"}, 1, "", "strata: unknown flag: --no-such-flag"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := runCLI(t, tt.args...)
			if code != tt.wantCode {
				t.Errorf("exit code = %d, want %d (stdout %q, stderr %q)", code, tt.wantCode, out, errOut)
			}
			if !strings.Contains(out, tt.wantOut) {
				t.Errorf("stdout %q does not contain %q", out, tt.wantOut)
			}
			if !strings.Contains(errOut, tt.wantErr) {
				t.Errorf("stderr %q does not contain %q", errOut, tt.wantErr)
			}
		})
	}
}
