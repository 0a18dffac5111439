package main

import (
	"crypto/ed25519"
	"github.com/stratadb/strata/cmd/internal/proctest"
	stdnet "net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stratadb/strata/net/jwtauth"
	"github.com/stratadb/strata/nodes/storcon"
)

// clearEnv unsets every variable parse reads, for the test's duration.
func clearEnv(t *testing.T) {
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "STRATA_STORCON_") {
			t.Setenv(k, "")
			os.Unsetenv(k)
		}
	}
	for _, a := range secretAliases {
		t.Setenv(a, "")
		os.Unsetenv(a)
	}
}

func TestParseFlagsAndEnv(t *testing.T) {
	for _, tc := range []struct {
		name    string
		env     map[string]string
		args    []string
		wantErr string
		check   func(options) bool
	}{
		{"defaults", nil, nil, "", func(o options) bool {
			return o.listen == defaultListen && o.daemon.HTTPAddr == defaultListen && o.dataDir == defaultDataDir &&
				o.databaseURL == "" && o.sc.HeartbeatInterval == storcon.DefaultHeartbeatInterval && o.computeHookURL == ""
		}},
		{"flags", nil, []string{"-listen", ":9", "-data-dir", "d", "-public-key", "a.pem,b.pem", "-compute-hook-url", "http://cp:3000/hooks/",
			"-heartbeat-interval", "2s", "-offline-after", "10s", "-max-concurrent-reconciles", "7"}, "",
			func(o options) bool {
				return o.listen == ":9" && o.daemon.HTTPAddr == ":9" && o.dataDir == "d" && o.publicKeyFiles == "a.pem,b.pem" &&
					o.computeHookURL == "http://cp:3000/hooks" && o.sc.HeartbeatInterval == 2*time.Second &&
					o.sc.OfflineAfter == 10*time.Second && o.sc.MaxConcurrentReconciles == 7
			}},
		{"hook URL naming the path", nil, []string{"-compute-hook-url", "http://cp/notify-attach"}, "",
			func(o options) bool { return o.computeHookURL == "http://cp" }},
		{"env fallback", map[string]string{"STRATA_STORCON_LISTEN": ":5", "STRATA_STORCON_DATA_DIR": "e",
			"STRATA_STORCON_PAGESERVER_JWT_TOKEN": "pt", "STRATA_STORCON_COMPUTE_HOOK_TOKEN": "ct", "STRATA_STORCON_DRAIN_TIMEOUT": "3s"}, nil, "",
			func(o options) bool {
				return o.listen == ":5" && o.dataDir == "e" && o.sc.PageserverToken == "pt" && o.sc.ComputeHookToken == "ct" &&
					o.daemon.DrainTimeout == 3*time.Second
			}},
		{"database URL from the environment", map[string]string{"STRATA_STORCON_DATABASE_URL": "postgres://x/db"}, nil, "",
			func(o options) bool { return o.databaseURL == "postgres://x/db" }},
		{"secret aliases", map[string]string{"STORCON_DATABASE_URL": "postgres://alias/db", "PAGESERVER_JWT_TOKEN": "ps-alias",
			"CONTROL_PLANE_JWT_TOKEN": "cp-alias"}, nil, "",
			func(o options) bool {
				return o.databaseURL == "postgres://alias/db" && o.sc.PageserverToken == "ps-alias" && o.sc.ComputeHookToken == "cp-alias"
			}},
		{"prefixed env beats alias", map[string]string{"STORCON_DATABASE_URL": "postgres://alias/db", "STRATA_STORCON_DATABASE_URL": "postgres://main/db"}, nil, "",
			func(o options) bool { return o.databaseURL == "postgres://main/db" }},
		{"flag beats env", map[string]string{"STRATA_STORCON_PAGESERVER_JWT_TOKEN": "env", "PAGESERVER_JWT_TOKEN": "alias"},
			[]string{"-pageserver-jwt-token", "cli"}, "", func(o options) bool { return o.sc.PageserverToken == "cli" }},
		{"empty flag beats alias", map[string]string{"PAGESERVER_JWT_TOKEN": "alias"},
			[]string{"-pageserver-jwt-token="}, "", func(o options) bool { return o.sc.PageserverToken == "" }},
		{"both stores", nil, []string{"-data-dir", "d", "-database-url", "postgres://x/db"}, "choose one store", nil},
		{"no store", nil, []string{"-data-dir", ""}, "-data-dir is empty", nil},
		{"empty listen", nil, []string{"-listen", ""}, "-listen is required", nil},
		{"a second HTTP address", nil, []string{"-http", ":7"}, `-http ":7"`, nil},
		{"same HTTP address", nil, []string{"-http", ":7", "-listen", ":7"}, "", func(o options) bool { return o.daemon.HTTPAddr == ":7" }},
		{"bad hook URL", nil, []string{"-compute-hook-url", "cp:3000"}, "want http:// or https://", nil},
		{"bad pool size", nil, []string{"-db-max-conns", "0"}, "-db-max-conns 0", nil},
		{"settle below the statement timeout", nil, []string{"-database-url", "postgres://x/db", "-db-statement-timeout", "8s"},
			"-lost-write-settle 6s must exceed -db-statement-timeout 8s", nil},
		{"settle and statement timeout", nil, []string{"-database-url", "postgres://x/db", "-db-statement-timeout", "8s", "-lost-write-settle", "9s"}, "",
			func(o options) bool { return o.dbStmtTimeout == 8*time.Second && o.sc.LostWriteSettle == 9*time.Second }},
		{"predecessor", map[string]string{"STRATA_STORCON_PREDECESSOR_TOKEN": "adm"},
			[]string{"-database-url", "postgres://x/db", "-predecessor-url", "http://old:1234/", "-step-down-timeout", "3s"}, "",
			func(o options) bool {
				return o.sc.Predecessor == nil && o.predecessorURL == "http://old:1234" && o.predecessorTok == "adm" &&
					o.sc.StepDownTimeout == 3*time.Second
			}},
		{"predecessor without a shared database", nil, []string{"-predecessor-url", "http://old:1234"}, "needs -database-url", nil},
		{"bad predecessor URL", nil, []string{"-database-url", "postgres://x/db", "-predecessor-url", "old:1234"}, "want http:// or https://", nil},
		{"negative duration", nil, []string{"-heartbeat-interval", "-1s"}, "HeartbeatInterval -1s is negative", nil},
		{"inconsistent durations", nil, []string{"-heartbeat-timeout", "10s"}, "HeartbeatTimeout 10s exceeds HeartbeatInterval", nil},
		{"bad env duration", map[string]string{"STRATA_STORCON_OFFLINE_AFTER": "soon"}, nil, "STRATA_STORCON_OFFLINE_AFTER for -offline-after", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clearEnv(t)
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			o, err := parse(tc.args)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !tc.check(o) {
				t.Fatalf("options %+v", o)
			}
		})
	}
}

func TestReadPublicKeys(t *testing.T) {
	dir := t.TempDir()
	var files []string
	for i := 0; i < 2; i++ {
		pub, _, err := ed25519.GenerateKey(nil)
		if err != nil {
			t.Fatal(err)
		}
		pem, err := jwtauth.MarshalPublicKeyPEM(pub)
		if err != nil {
			t.Fatal(err)
		}
		f := filepath.Join(dir, "k"+string(rune('0'+i))+".pem")
		if err := os.WriteFile(f, pem, 0o644); err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
	}
	keys, err := readPublicKeys(files[0] + ", " + files[1] + ",")
	if err != nil || len(keys) != 2 {
		t.Fatalf("keys %d, err %v", len(keys), err)
	}
	if _, err := readPublicKeys(filepath.Join(dir, "none.pem")); err == nil || !strings.Contains(err.Error(), "-public-key: open") {
		t.Fatalf("missing file: %v", err)
	}
}

// runBinary runs the storcon binary to completion (within 20 s).
func runBinary(t *testing.T, env []string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	p := &proc{name: "storcon", bin: bin(t, "storcon"), args: args, env: env}
	p.start(t)
	err := p.wait(t, 20*time.Second)
	code = exitCode(err)
	if code < 0 {
		t.Fatalf("%v: %v\n%s", args, err, p.log)
	}
	return code, p.out.String(), p.log.String()
}

// TestCommandLine runs the binary: -help and -version exit 0, bad flags
// exit 2 naming the flag, a failed start exits 1 with its error printed
// once.
func TestCommandLine(t *testing.T) {
	busy, err := stdnet.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	dir := t.TempDir()
	badKey := filepath.Join(t.TempDir(), "key.pem")
	if err := os.WriteFile(badKey, []byte("not a key"), 0o644); err != nil {
		t.Fatal(err)
	}
	listen := proctest.FreeAddrs(t, 1)[0]
	base := []string{"-data-dir", dir, "-listen", listen}
	for _, tc := range []struct {
		name     string
		env      []string
		args     []string
		wantCode int
		wantOut  string
		wantErr  []string
		notErr   string
	}{
		{"help", nil, []string{"-help"}, 0, "", []string{"-public-key", "-database-url", "-compute-hook-url", "STRATA_STORCON_DATABASE_URL",
			"STORCON_DATABASE_URL", "PAGESERVER_JWT_TOKEN", "CONTROL_PLANE_JWT_TOKEN", "STRATA_STORCON_LOG_LEVEL"}, ""},
		{"help hides secrets", []string{"STRATA_STORCON_DATABASE_URL=postgres://u:hunter2@h/db"}, []string{"-help"}, 0, "", nil, "hunter2"},
		{"version", nil, []string{"-version"}, 0, "storcon ", nil, ""},
		{"version reports go", nil, []string{"-version"}, 0, runtime.Version(), nil, ""},
		{"unknown flag", nil, []string{"-no-such-flag"}, 2, "", []string{"flag provided but not defined: -no-such-flag"}, ""},
		{"both stores", nil, append(base, "-database-url", "postgres://x/db"), 2, "", []string{"storcon: bad flag value: -data-dir", "run storcon -help"}, ""},
		{"bad env", []string{"STRATA_STORCON_HEARTBEAT_INTERVAL=often"}, nil, 2, "", []string{"STRATA_STORCON_HEARTBEAT_INTERVAL for -heartbeat-interval"}, ""},
		{"missing key file", nil, append(base, "-public-key", filepath.Join(dir, "none.pem")), 1, "", []string{"storcon: -public-key: open "}, ""},
		{"bad key file", nil, append(base, "-public-key", badKey), 1, "", []string{"storcon: -public-key " + badKey + ": jwtauth: bad key"}, ""},
		{"database unreachable", []string{"STRATA_STORCON_DATABASE_URL=postgres://u:hunter2@" + busyClosedAddr(t) + "/db?connect_timeout=2"},
			[]string{"-listen", listen}, 1, "", []string{"storcon: -database-url: "}, "hunter2"},
		{"listen address in use", nil, []string{"-data-dir", dir, "-listen", busy.Addr().String()}, 1, "", []string{"storcon: daemon: http listen"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := runBinary(t, tc.env, tc.args...)
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
			if tc.notErr != "" && (strings.Contains(errOut, tc.notErr) || strings.Contains(out, tc.notErr)) {
				t.Errorf("output contains %q:\n%s", tc.notErr, errOut)
			}
		})
	}
}

// busyClosedAddr is a loopback address nothing listens on.
func busyClosedAddr(t *testing.T) string {
	l, err := stdnet.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// TestDaemonLifecycle: the daemon becomes ready on an empty embedded
// store, a second one on the same data directory exits 1 naming the
// holder, and SIGTERM stops the first cleanly (exit 0); restarted, it is
// ready again on the same store.
func TestDaemonLifecycle(t *testing.T) {
	addrs := proctest.FreeAddrs(t, 2)
	dir := t.TempDir()
	first := &proc{name: "first", bin: bin(t, "storcon"), args: []string{"-data-dir", dir, "-listen", addrs[0], "-log-format", "text"}}
	first.start(t)
	defer stopAll(t, []*proc{first})
	waitReady(t, "http://"+addrs[0]+"/ready", 30*time.Second)
	for _, path := range []string{"/live", "/status", "/metrics"} {
		waitReady(t, "http://"+addrs[0]+path, time.Second)
	}

	code, _, errOut := runBinary(t, nil, "-data-dir", dir, "-listen", addrs[1])
	if code != 1 || !strings.Contains(errOut, "data directory is in use") || !strings.Contains(errOut, "storcon pid") {
		t.Fatalf("second controller on the same data directory: exit %d\n%s", code, errOut)
	}

	if err := first.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := first.wait(t, 30*time.Second); exitCode(err) != 0 {
		t.Fatalf("after SIGTERM: %v\n%s", err, first.log)
	}
	if !strings.Contains(first.log.String(), "stopped") {
		t.Errorf("no stop line in the log:\n%s", first.log)
	}

	again := &proc{name: "again", bin: bin(t, "storcon"), args: []string{"-data-dir", dir, "-listen", addrs[0]}}
	again.start(t)
	defer stopAll(t, []*proc{again})
	waitReady(t, "http://"+addrs[0]+"/ready", 30*time.Second)
}
