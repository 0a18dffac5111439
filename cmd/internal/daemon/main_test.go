package daemon

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"
)

// testParse is a daemon's parse function: one required flag, one optional.
func testParse(args []string) (Options, error) {
	var o Options
	var dir string
	fs := NewFlagSet("testd")
	fs.SetOutput(&bytes.Buffer{})
	fs.lookup = func(string) (string, bool) { return "", false }
	fs.String(&dir, "data-dir", "", "data directory (required)")
	o.Register(fs)
	fs.Required("data-dir")
	return o, fs.Parse(args)
}

func TestMainExitCodesAndMessages(t *testing.T) {
	for _, tc := range []struct {
		name     string
		args     []string
		runErr   error
		wantCode int
		wantRun  bool
		wantOut  string
		wantErr  []string // substrings of stderr
		notErr   []string // must not appear on stderr
	}{
		{"help", []string{"-help"}, nil, ExitOK, false, "", nil, nil},
		{"h", []string{"-h"}, nil, ExitOK, false, "", nil, nil},
		{"version", []string{"-version"}, nil, ExitOK, false, "testd (devel)", nil, nil},
		{"version beats a missing flag", []string{"-version"}, errors.New("not run"), ExitOK, false, "testd ", nil, nil},
		{"missing required flag named by flag", nil, nil, ExitUsage, false, "",
			[]string{"testd: -data-dir is required (or set STRATA_TESTD_DATA_DIR)", "-help"}, []string{"DataDir", "dataDir"}},
		{"unknown flag printed once", []string{"-nope"}, nil, ExitUsage, false, "", nil, nil},
		{"run error prefixed once", []string{"-data-dir", "d"}, errors.New("testd: open: boom"), ExitFailed, true, "",
			[]string{"testd: open: boom\n"}, []string{"testd: testd:"}},
		{"run error gets the prefix", []string{"-data-dir", "d"}, errors.New("walstore: corrupt"), ExitFailed, true, "",
			[]string{"testd: walstore: corrupt\n"}, nil},
		{"clean run", []string{"-data-dir", "d", "-drain-timeout", "1s"}, nil, ExitOK, true, "", nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			ran := false
			code := Main("testd", tc.args, &out, &errOut, testParse, func(o Options) error {
				ran = true
				return tc.runErr
			})
			if code != tc.wantCode {
				t.Fatalf("exit %d, want %d; stderr %q", code, tc.wantCode, errOut.String())
			}
			if ran != tc.wantRun {
				t.Errorf("run called = %v, want %v", ran, tc.wantRun)
			}
			if !strings.Contains(out.String(), tc.wantOut) {
				t.Errorf("stdout %q lacks %q", out.String(), tc.wantOut)
			}
			for _, w := range tc.wantErr {
				if !strings.Contains(errOut.String(), w) {
					t.Errorf("stderr %q lacks %q", errOut.String(), w)
				}
			}
			for _, w := range tc.notErr {
				if strings.Contains(errOut.String(), w) {
					t.Errorf("stderr %q contains %q", errOut.String(), w)
				}
			}
			if tc.name == "unknown flag printed once" && errOut.Len() != 0 {
				// The flag package already printed it to the flag set's
				// output (discarded here); Main must not repeat it.
				t.Errorf("stderr %q, want nothing", errOut.String())
			}
		})
	}
}

func TestRequiredFromEnvironment(t *testing.T) {
	fs := NewFlagSet("testd")
	fs.SetOutput(&bytes.Buffer{})
	fs.lookup = func(k string) (string, bool) { return "/from/env", k == "STRATA_TESTD_DATA_DIR" }
	var dir string
	fs.String(&dir, "data-dir", "", "")
	fs.Required("data-dir")
	if err := fs.Parse(nil); err != nil || dir != "/from/env" {
		t.Fatalf("Parse = %v, dir %q", err, dir)
	}
	fs = NewFlagSet("testd")
	fs.SetOutput(&bytes.Buffer{})
	fs.lookup = func(string) (string, bool) { return "", false }
	fs.String(&dir, "id", "", "")
	fs.String(&dir, "data-dir", "", "")
	fs.Required("id", "data-dir")
	err := fs.Parse(nil)
	var mf *MissingFlagError
	if !errors.Is(err, ErrRequired) || !errors.As(err, &mf) || !strings.Contains(err.Error(), "-id is required") ||
		!strings.Contains(err.Error(), "-data-dir is required") {
		t.Fatalf("Parse = %v, want both flags named", err)
	}
}

// TestLoggerDurationsAsText: a duration attribute reads "1.5s" in both
// formats (the JSON handler would write 1500000000).
func TestLoggerDurationsAsText(t *testing.T) {
	for _, format := range []string{"json", "text"} {
		var buf bytes.Buffer
		log, err := Options{LogFormat: format, LogLevel: "info"}.Logger(&buf)
		if err != nil {
			t.Fatal(err)
		}
		log.Info("shutting down", "drain_timeout", 1500*time.Millisecond)
		log.WithGroup("g").Info("nested", "d", 2*time.Second)
		got := buf.String()
		if strings.Contains(got, "1500000000") || strings.Contains(got, "2000000000") {
			t.Errorf("%s: durations logged as nanoseconds: %s", format, got)
		}
		if !strings.Contains(got, "1.5s") || !strings.Contains(got, "2s") {
			t.Errorf("%s: durations not logged as text: %s", format, got)
		}
	}
}
