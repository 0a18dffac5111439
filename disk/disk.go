package disk

import (
	"errors"
	"io"
	"io/fs"
)

// FS is the file-system seam. Names are slash-separated paths relative to the
// file system's root (no leading slash, no "..").
//
// Crash contract (what every implementation, and every caller, relies on):
//
//   - After a crash, only data made durable by File.Sync survives. An
//     unsynced write may be lost entirely or torn at sector (512 B)
//     granularity; synced bytes are never torn.
//   - Creating, renaming or removing a directory entry is durable only after
//     SyncDir on the directory that holds it. Until then a crash may undo it.
//   - Rename is atomic: after a crash the target names either the old or the
//     new file, never a mix.
//   - Truncate is a write: durable only after Sync.
type FS interface {
	// Create creates (or truncates) name for reading and writing.
	Create(name string) (File, error)
	// Open opens an existing file read-only.
	Open(name string) (File, error)
	// OpenRW opens an existing file for reading and writing.
	OpenRW(name string) (File, error)
	// Rename atomically replaces newname with oldname.
	Rename(oldname, newname string) error
	// Link creates newname as a hard link to oldname.
	Link(oldname, newname string) error
	// Remove removes a file or an empty directory.
	Remove(name string) error
	// RemoveAll removes name and everything below it; a missing name is no error.
	RemoveAll(name string) error
	// MkdirAll creates a directory and any missing parents.
	MkdirAll(name string) error
	// ReadDir lists a directory's entries sorted by name.
	ReadDir(name string) ([]fs.DirEntry, error)
	// Stat describes a file or directory.
	Stat(name string) (fs.FileInfo, error)
	// SyncDir makes the directory's entries (creates, renames, removes) durable.
	SyncDir(name string) error
	// FreeSpace reports the bytes available to this file system.
	FreeSpace() (uint64, error)
}

// File is an open file.
type File interface {
	io.ReaderAt
	io.WriterAt
	// Write appends at the end of the file (append semantics, independent of
	// any WriteAt calls).
	io.Writer
	io.Closer
	// Sync makes every write so far durable.
	Sync() error
	// Truncate changes the file's size.
	Truncate(size int64) error
	// Size returns the file's current size, including unsynced writes.
	Size() (int64, error)
	// Name returns the name the file was opened with.
	Name() string
}

// Error classes. Implementations wrap these (with %w) so callers can test the
// class with errors.Is; the io/fs sentinels are used for not-exist and exist.
var (
	// ErrNotExist is fs.ErrNotExist.
	ErrNotExist = fs.ErrNotExist
	// ErrExist is fs.ErrExist.
	ErrExist = fs.ErrExist
	// ErrNoSpace reports that the device is full (ENOSPC).
	ErrNoSpace = errors.New("disk: no space left on device")
	// ErrIO reports a device I/O error (EIO). The operation may or may not
	// have taken effect; data written but not synced must be assumed lost.
	ErrIO = errors.New("disk: input/output error")
	// ErrClosed reports use of a closed file.
	ErrClosed = errors.New("disk: file closed")
	// ErrCrashed reports a call from a node incarnation that has crashed
	// (simulator only).
	ErrCrashed = errors.New("disk: node crashed")
)
