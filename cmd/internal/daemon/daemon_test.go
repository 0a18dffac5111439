package daemon

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestFlagSetEnvFallback(t *testing.T) {
	for _, tc := range []struct {
		name    string
		env     map[string]string
		args    []string
		wantErr error
		want    Options
		seg     int64
	}{
		{"defaults", nil, nil, nil, Options{LogFormat: "json", LogLevel: "info", DrainTimeout: 5 * time.Second}, 16},
		{"env", map[string]string{"STRATA_TEST_HTTP": ":1", "STRATA_TEST_LOG_FORMAT": "text", "STRATA_TEST_PPROF": "true",
			"STRATA_TEST_DRAIN_TIMEOUT": "2s", "STRATA_TEST_SEGMENT_BYTES": "99"}, nil, nil,
			Options{HTTPAddr: ":1", LogFormat: "text", LogLevel: "info", Pprof: true, DrainTimeout: 2 * time.Second}, 99},
		{"flag beats env", map[string]string{"STRATA_TEST_LOG_LEVEL": "warn"}, []string{"-log-level", "debug", "-segment-bytes", "7"}, nil,
			Options{LogFormat: "json", LogLevel: "debug", DrainTimeout: 5 * time.Second}, 7},
		{"bad env duration", map[string]string{"STRATA_TEST_DRAIN_TIMEOUT": "soon"}, nil, ErrEnv, Options{}, 0},
		{"bad env bool", map[string]string{"STRATA_TEST_PPROF": "maybe"}, nil, ErrEnv, Options{}, 0},
		{"bad env int", map[string]string{"STRATA_TEST_SEGMENT_BYTES": "x"}, nil, ErrEnv, Options{}, 0},
		{"bad env small int", map[string]string{"STRATA_TEST_ATTEMPTS": "three"}, nil, ErrEnv, Options{}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs := NewFlagSet("test")
			fs.SetOutput(io.Discard)
			fs.lookup = func(k string) (string, bool) { v, ok := tc.env[k]; return v, ok }
			var o Options
			var seg int64
			var attempts int
			fs.Int64(&seg, "segment-bytes", 16, "")
			fs.Int(&attempts, "attempts", 3, "")
			o.Register(fs)
			err := fs.Parse(tc.args)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err = %v, want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil || o != tc.want || seg != tc.seg {
				t.Fatalf("got %+v seg %d err %v, want %+v seg %d", o, seg, err, tc.want, tc.seg)
			}
		})
	}
	if got := NewFlagSet("safekeeper").EnvName("data-dir"); got != "STRATA_SAFEKEEPER_DATA_DIR" {
		t.Errorf("EnvName = %q", got)
	}
}

// TestSecretFlag: a secret comes from the environment unless given on the
// command line, and -help never prints the environment's value.
func TestSecretFlag(t *testing.T) {
	const envSecret = "env-secret-value"
	for _, tc := range []struct {
		name string
		env  map[string]string
		args []string
		want string
	}{
		{"unset", nil, nil, ""},
		{"env", map[string]string{"STRATA_TEST_SECRET_KEY": envSecret}, nil, envSecret},
		{"flag beats env", map[string]string{"STRATA_TEST_SECRET_KEY": envSecret}, []string{"-secret-key", "cli"}, "cli"},
		{"empty flag beats env", map[string]string{"STRATA_TEST_SECRET_KEY": envSecret}, []string{"-secret-key="}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs := NewFlagSet("test")
			var help bytes.Buffer
			fs.SetOutput(&help)
			fs.lookup = func(k string) (string, bool) { v, ok := tc.env[k]; return v, ok }
			var got string
			fs.Secret(&got, "secret-key", "the secret")
			if err := fs.Parse(tc.args); err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Fatalf("secret = %q, want %q", got, tc.want)
			}
			fs.PrintDefaults()
			if strings.Contains(help.String(), envSecret) {
				t.Fatalf("-help shows the secret:\n%s", help.String())
			}
			if !strings.Contains(help.String(), "STRATA_TEST_SECRET_KEY") {
				t.Fatalf("-help does not point at the environment variable:\n%s", help.String())
			}
		})
	}
}

func TestLogger(t *testing.T) {
	for _, tc := range []struct {
		format, level string
		wantErr       bool
		wantPrefix    string
		debugShown    bool
	}{
		{"json", "info", false, `{"time"`, false},
		{"", "debug", false, `{"time"`, true},
		{"text", "info", false, "time=", false},
		{"xml", "info", true, "", false},
		{"json", "loud", true, "", false},
	} {
		var buf bytes.Buffer
		log, err := Options{LogFormat: tc.format, LogLevel: tc.level}.Logger(&buf)
		if tc.wantErr {
			if !errors.Is(err, ErrLogConfig) {
				t.Errorf("%s/%s: err = %v, want ErrLogConfig", tc.format, tc.level, err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s/%s: %v", tc.format, tc.level, err)
		}
		log.Debug("dbg")
		if got := strings.Contains(buf.String(), "dbg"); got != tc.debugShown {
			t.Errorf("%s/%s: debug shown = %v", tc.format, tc.level, got)
		}
		buf.Reset()
		log.Info("hello")
		if !strings.HasPrefix(buf.String(), tc.wantPrefix) {
			t.Errorf("%s/%s: line %q lacks prefix %q", tc.format, tc.level, buf.String(), tc.wantPrefix)
		}
	}
}

func TestMux(t *testing.T) {
	reg := NewRegistry()
	var notReady error = errors.New("loading")
	for _, tc := range []struct {
		path   string
		pprof  bool
		code   int
		substr string
	}{
		{"/metrics", false, 200, "go_goroutines"},
		{"/live", false, 200, "ok"},
		{"/ready", false, 503, "loading"},
		{"/debug/pprof/", false, 404, ""},
		{"/debug/pprof/", true, 200, "goroutine"},
	} {
		srv := httptest.NewServer(Mux(reg, func() error { return notReady }, tc.pprof))
		resp, err := http.Get(srv.URL + tc.path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		srv.Close()
		if resp.StatusCode != tc.code || !strings.Contains(string(body), tc.substr) {
			t.Errorf("%s (pprof %v): %d %.200q", tc.path, tc.pprof, resp.StatusCode, body)
		}
	}
}

func TestServeDrainsWithDeadline(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // the signal already arrived
	var deadline time.Time
	drainErr := errors.New("drained")
	err := Serve(ctx, Options{HTTPAddr: "127.0.0.1:0", DrainTimeout: 3 * time.Second},
		mustLogger(t), Service{Name: "t", Registry: NewRegistry(), Drain: func(c context.Context) error {
			deadline, _ = c.Deadline()
			return drainErr
		}})
	if !errors.Is(err, drainErr) {
		t.Fatalf("Serve = %v, want the drain's error", err)
	}
	if left := time.Until(deadline); left <= 0 || left > 3*time.Second {
		t.Fatalf("drain deadline %v away, want within 3s", left)
	}
}

func mustLogger(t *testing.T) *slog.Logger {
	l, err := Options{LogLevel: "error"}.Logger(io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	return l
}
