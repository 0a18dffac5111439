package pgtest

import (
	"fmt"
	"runtime"
	"strings"
	"testing"
)

// recorder is a testing.TB that records how Start gave up.
type recorder struct {
	testing.TB
	fatal, skip string
}

func (r *recorder) Helper() {}
func (r *recorder) Fatalf(format string, args ...any) {
	r.fatal = fmt.Sprintf(format, args...)
	runtime.Goexit()
}
func (r *recorder) Skipf(format string, args ...any) {
	r.skip = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

// startWithout runs Start with no PostgreSQL binaries to be found and CI set
// to ci, and reports how it gave up.
func startWithout(t *testing.T, ci string) *recorder {
	t.Setenv(BinDirEnv, t.TempDir()) // an empty directory: no initdb, no pg_ctl
	t.Setenv("CI", ci)
	r := &recorder{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		Start(r)
	}()
	<-done
	return r
}

// TestMissingBinariesFailInCI: in CI a machine without PostgreSQL fails the
// test; elsewhere it skips with a message saying what to install.
func TestMissingBinariesFailInCI(t *testing.T) {
	for _, ci := range []string{"true", "1"} {
		r := startWithout(t, ci)
		if r.fatal == "" || r.skip != "" || !strings.Contains(r.fatal, "required in CI") {
			t.Errorf("CI=%s without binaries: fatal %q, skip %q; want a failure", ci, r.fatal, r.skip)
		}
	}
	for _, ci := range []string{"", "false", "0"} {
		r := startWithout(t, ci)
		if r.skip == "" || r.fatal != "" || !strings.Contains(r.skip, "install the postgresql package") {
			t.Errorf("CI=%q without binaries: fatal %q, skip %q; want a skip naming the package", ci, r.fatal, r.skip)
		}
	}
}
