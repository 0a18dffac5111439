package daemon

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// LockFileName is the file in a data directory that LockDataDir locks and
// in which the holder describes itself.
const LockFileName = "strata.lock"

// maxHolderBytes bounds how much of a lock file's holder description is
// read into an error message.
const maxHolderBytes = 512

// ErrLocked reports a data directory another process (or another open in
// this one) holds.
var ErrLocked = errors.New("daemon: data directory is in use")

// DirLock is an exclusive lock on a data directory, held until Release or
// the process exits (the kernel drops it then, even on SIGKILL, so a crash
// never leaves a stale lock).
type DirLock struct {
	f *os.File
}

// LockDataDir creates dir if it is missing and takes an exclusive,
// non-blocking flock on dir/LockFileName, then writes the holder's
// description (daemon name, pid, start time) into it. Two daemons on one
// data directory would both write its files and corrupt them; the second
// gets ErrLocked with the directory and the holder's description instead.
func LockDataDir(dir, daemon string) (*DirLock, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("data directory %s: %w", dir, err)
	}
	path := filepath.Join(dir, LockFileName)
	// No O_TRUNC: the holder's description must survive a loser's open.
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("data directory %s: %w", dir, err)
	}
	if err := flock(f); err != nil {
		holder := readHolder(f)
		_ = f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			if holder == "" {
				holder = "another process"
			}
			return nil, fmt.Errorf("%w: %s is locked by %s (%s)", ErrLocked, dir, holder, path)
		}
		return nil, fmt.Errorf("data directory %s: lock %s: %w", dir, path, err)
	}
	desc := fmt.Sprintf("%s pid %d started %s\n", daemon, os.Getpid(), time.Now().UTC().Format(time.RFC3339))
	// The description only helps the next operator's error message; the
	// lock holds whether or not it was written.
	if f.Truncate(0) == nil {
		_, _ = f.WriteAt([]byte(desc), 0)
	}
	return &DirLock{f: f}, nil
}

// flock takes an exclusive lock without waiting, retrying on EINTR.
func flock(f *os.File) error {
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if !errors.Is(err, syscall.EINTR) {
			return err
		}
	}
}

// readHolder is the holder's description from the lock file, on one line.
func readHolder(f *os.File) string {
	b, err := io.ReadAll(io.NewSectionReader(f, 0, maxHolderBytes))
	if err != nil {
		return ""
	}
	return strings.Join(strings.Fields(string(b)), " ")
}

// Release drops the lock (the lock file stays: removing it would let a
// process that opened it just before lock a file nobody else can see).
func (l *DirLock) Release() error {
	if l == nil || l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	return err
}
