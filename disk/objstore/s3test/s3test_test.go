package s3test

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/stratadb/strata/disk/objstore"
	"github.com/stratadb/strata/disk/objstore/objstoretest"
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

// startWithout runs Start with binary as the server (a path with no
// versitygw of the pinned version) and CI set to ci, and reports how it gave
// up.
func startWithout(t *testing.T, binary, ci string) *recorder {
	t.Setenv(BinEnv, binary)
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

// TestMissingBinaryFailsInCI: in CI a machine without the pinned server
// fails the test; elsewhere it skips with the command that installs it. A
// binary of another program counts as missing.
func TestMissingBinaryFailsInCI(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for _, bin := range []string{t.TempDir() + "/versitygw", self} {
		for _, ci := range []string{"true", "1"} {
			r := startWithout(t, bin, ci)
			if r.fatal == "" || r.skip != "" || !strings.Contains(r.fatal, "required in CI") || !strings.Contains(r.fatal, InstallCommand) {
				t.Errorf("CI=%s with %s: fatal %q, skip %q; want a failure naming %q", ci, bin, r.fatal, r.skip, InstallCommand)
			}
		}
		for _, ci := range []string{"", "false", "0"} {
			r := startWithout(t, bin, ci)
			if r.skip == "" || r.fatal != "" || !strings.Contains(r.skip, InstallCommand) {
				t.Errorf("CI=%q with %s: fatal %q, skip %q; want a skip naming %q", ci, bin, r.fatal, r.skip, InstallCommand)
			}
		}
	}
}

// TestKnownGaps checks that the server still has the gaps
// ConformanceOptions skips (so a version that closes one is noticed and
// the option dropped), that each shows up as a permanent error or a
// cleaned key and not as a retried one, and that the suite skips exactly
// those cases.
func TestKnownGaps(t *testing.T) {
	srv := Start(t)
	s := srv.Store(t, srv.NewBucket(t), "")
	ctx := context.Background()

	// An object and a key below it: refused with a 409 that is permanent.
	if err := s.Put(ctx, "a", []byte("x"), objstore.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	err := s.Put(ctx, "a/b", []byte("y"), objstore.PutOptions{})
	objstoretest.WantClass(t, "Put a/b below object a", err, objstore.ErrPermanent)
	if !strings.Contains(err.Error(), "409") || !strings.Contains(err.Error(), "ObjectParentIsFile") {
		t.Fatalf("Put a/b: %v, want 409 ObjectParentIsFile", err)
	}
	if err := s.Put(ctx, "d/e", []byte("x"), objstore.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	err = s.Put(ctx, "d", []byte("y"), objstore.PutOptions{})
	objstoretest.WantClass(t, "Put d above object d/e", err, objstore.ErrPermanent)

	// Dot segments are cleaned away, a trailing "/" with data refused.
	if err := s.Put(ctx, "x/../y", []byte("z"), objstore.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	page, err := s.List(ctx, "", objstore.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, o := range page.Objects {
		keys = append(keys, o.Key)
	}
	if want := []string{"a", "d/e", "y"}; !slices.Equal(keys, want) {
		t.Fatalf("keys %q, want %q (x/../y stored as y)", keys, want)
	}
	err = s.Put(ctx, "trailing/", []byte("data"), objstore.PutOptions{})
	objstoretest.WantClass(t, "Put trailing/ with data", err, objstore.ErrPermanent)

	// The suite skips exactly the two cases, naming the option and why.
	opts := ConformanceOptions()
	if opts.NoKeyBelowObject == "" || opts.NoDotOrEmptySegments == "" || opts.SkipConcurrentIfNoneMatch != "" {
		t.Fatalf("ConformanceOptions = %+v", opts)
	}
}
