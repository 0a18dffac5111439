package daemon

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestLockDataDir: a second lock on the same directory fails with
// ErrLocked naming the directory and the holder; after Release it
// succeeds. flock locks belong to the open file, so two opens in one
// process conflict just as two processes do (cmd/safekeeper's
// TestSecondSafekeeperOnSameDataDir checks real processes).
func TestLockDataDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data") // missing: LockDataDir creates it
	first, err := LockDataDir(dir, "testd")
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, LockFileName))
	if err != nil || !strings.Contains(string(b), fmt.Sprintf("testd pid %d", os.Getpid())) {
		t.Fatalf("lock file holds %q, %v", b, err)
	}
	second, err := LockDataDir(dir, "other")
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("second lock: %v, want ErrLocked", err)
	}
	for _, want := range []string{dir, fmt.Sprintf("testd pid %d", os.Getpid())} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %q", err, want)
		}
	}
	if second != nil {
		t.Fatal("second lock returned a lock")
	}
	// The loser did not wipe the holder's description.
	if b2, _ := os.ReadFile(filepath.Join(dir, LockFileName)); string(b2) != string(b) {
		t.Errorf("lock file changed by the loser: %q -> %q", b, b2)
	}
	if err := first.Release(); err != nil {
		t.Fatal(err)
	}
	third, err := LockDataDir(dir, "testd")
	if err != nil {
		t.Fatalf("lock after release: %v", err)
	}
	_ = third.Release()
}
