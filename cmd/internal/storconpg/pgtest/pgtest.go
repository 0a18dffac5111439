// Package pgtest starts a throwaway PostgreSQL server for a test, from the
// PostgreSQL binaries installed on the machine (Debian's postgresql package
// puts them in /usr/lib/postgresql/<version>/bin): a fresh data directory
// under t.TempDir(), a free port on 127.0.0.1 and the unix socket in the
// same temporary directory, stopped when the test ends. When the test runs
// as root the server runs as the postgres user (initdb refuses root).
//
// Without the binaries the test is skipped with a message saying what to
// install — unless the environment variable CI is set (to anything but
// "false" or "0"), in which case it fails: CI must never pass by skipping
// the PostgreSQL tests (.ci/run installs the package when it is missing).
package pgtest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5"
)

// BinDirEnv names a directory holding initdb and pg_ctl, used instead of
// searching /usr/lib/postgresql/*/bin.
const BinDirEnv = "STRATA_POSTGRES_BIN"

// startAttempts bounds the retries of a start that lost its free port to
// another process.
const startAttempts = 3

// Server is a running throwaway PostgreSQL server.
type Server struct {
	// Port is the TCP port on 127.0.0.1.
	Port int
	// Version is what pg_ctl --version printed.
	Version string

	binDir  string
	base    string
	runAs   string // "" to run as the current user
	nextDB  atomic.Int64
	stopped bool
}

// ciRequired reports whether CI is set, so a missing server must fail the
// test rather than skip it.
func ciRequired() bool {
	v := os.Getenv("CI")
	return v != "" && v != "false" && v != "0"
}

// findBinDir returns the directory with initdb and pg_ctl: BinDirEnv, the
// newest /usr/lib/postgresql/*/bin, or the PATH.
func findBinDir() (string, error) {
	has := func(dir string) bool {
		for _, b := range []string{"initdb", "pg_ctl"} {
			if st, err := os.Stat(filepath.Join(dir, b)); err != nil || st.IsDir() {
				return false
			}
		}
		return true
	}
	if dir := os.Getenv(BinDirEnv); dir != "" {
		if !has(dir) {
			return "", fmt.Errorf("%s=%s holds no initdb and pg_ctl", BinDirEnv, dir)
		}
		return dir, nil
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	version := func(dir string) int {
		v, _ := strconv.Atoi(filepath.Base(filepath.Dir(dir)))
		return v
	}
	slices.SortFunc(dirs, func(a, b string) int { return version(b) - version(a) })
	for _, dir := range dirs {
		if has(dir) {
			return dir, nil
		}
	}
	if p, err := exec.LookPath("initdb"); err == nil && has(filepath.Dir(p)) {
		return filepath.Dir(p), nil
	}
	return "", fmt.Errorf("no initdb and pg_ctl under /usr/lib/postgresql/*/bin, in $%s or on the PATH", BinDirEnv)
}

// Start starts a server for t and stops it when t ends.
func Start(t testing.TB) *Server {
	t.Helper()
	binDir, err := findBinDir()
	if err != nil {
		if ciRequired() {
			t.Fatalf("PostgreSQL is required in CI (CI=%q): %v; install the postgresql package (.ci/run does)", os.Getenv("CI"), err)
		}
		t.Skipf("PostgreSQL tests skipped: %v; install the postgresql package (apt-get install postgresql) to run them", err)
	}
	s := &Server{binDir: binDir, base: t.TempDir()}
	if os.Geteuid() == 0 {
		s.prepareForPostgresUser(t)
	}
	data := filepath.Join(s.base, "data")
	sock := filepath.Join(s.base, "sock")
	if err := os.Mkdir(sock, 0o700); err != nil {
		t.Fatal(err)
	}
	s.chown(t, sock)
	if out, err := s.run("pg_ctl", "--version"); err == nil {
		s.Version = strings.TrimSpace(out)
	}
	if out, err := s.run("initdb", "-D", data, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync"); err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	logFile := filepath.Join(s.base, "postgres.log")
	for attempt := 1; ; attempt++ {
		s.Port = freePort(t)
		opts := fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off", s.Port, sock)
		out, err := s.run("pg_ctl", "-D", data, "-l", logFile, "-o", opts, "-w", "-t", "60", "start")
		if err == nil {
			break
		}
		if attempt == startAttempts {
			log, _ := os.ReadFile(logFile)
			t.Fatalf("pg_ctl start (attempt %d): %v\n%s\nserver log:\n%s", attempt, err, out, log)
		}
	}
	t.Cleanup(func() { s.Stop(t) })
	t.Logf("%s running on 127.0.0.1:%d from %s (data in %s)", s.Version, s.Port, binDir, data)
	return s
}

// prepareForPostgresUser lets the postgres user use the temporary
// directory: initdb and the server refuse to run as root.
func (s *Server) prepareForPostgresUser(t testing.TB) {
	t.Helper()
	if _, err := user.Lookup("postgres"); err != nil {
		t.Fatalf("running as root, PostgreSQL must run as the postgres user, which does not exist: %v", err)
	}
	if _, err := exec.LookPath("runuser"); err != nil {
		t.Fatalf("running as root, PostgreSQL runs as the postgres user through runuser, which is missing: %v", err)
	}
	s.runAs = "postgres"
	// t.TempDir's parent is private to root: the postgres user only needs
	// to pass through it.
	if err := os.Chmod(filepath.Dir(s.base), 0o711); err != nil {
		t.Fatal(err)
	}
	s.chown(t, s.base)
}

func (s *Server) chown(t testing.TB, dir string) {
	t.Helper()
	if s.runAs == "" {
		return
	}
	u, err := user.Lookup(s.runAs)
	if err != nil {
		t.Fatal(err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	if err := os.Chown(dir, uid, gid); err != nil {
		t.Fatal(err)
	}
}

// run runs one of the PostgreSQL binaries, as the postgres user when root.
func (s *Server) run(bin string, args ...string) (string, error) {
	path := filepath.Join(s.binDir, bin)
	var cmd *exec.Cmd
	if s.runAs != "" {
		cmd = exec.Command("runuser", append([]string{"-u", s.runAs, "--", path}, args...)...)
	} else {
		cmd = exec.Command(path, args...)
	}
	cmd.Dir = s.base
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Stop stops the server at once (it holds nothing worth a clean shutdown).
// The test's cleanup calls it; calling it again does nothing.
func (s *Server) Stop(t testing.TB) {
	if s.stopped {
		return
	}
	s.stopped = true
	if out, err := s.run("pg_ctl", "-D", filepath.Join(s.base, "data"), "-m", "immediate", "-w", "-t", "60", "stop"); err != nil {
		t.Errorf("pg_ctl stop: %v\n%s", err, out)
	}
}

// URL is the connection URL of database db.
func (s *Server) URL(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", s.Port, db)
}

// NewDatabase returns the URL of a fresh, empty database: a schema of its
// own in the server's "postgres" database, selected by the URL's
// search_path (creating a whole database costs about a third of a second,
// a schema a millisecond).
func (s *Server) NewDatabase(t testing.TB) string {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, s.URL("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	name := fmt.Sprintf("strata_test_%d", s.nextDB.Add(1))
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+name); err != nil {
		t.Fatal(err)
	}
	return s.URL("postgres") + "&search_path=" + name
}
