package simdisk

import (
	"io/fs"

	"github.com/stratadb/strata/disk"
)

// anyIncarnation marks a call through *FS itself, which is never stale.
const anyIncarnation = 0

// checkIncarnation fails a call made through a View of an incarnation that
// has crashed since. Called with f.mu held, after any latency sleep, so a
// call that was sleeping when the crash came fails too instead of touching
// the surviving state.
func (f *FS) checkIncarnation(inc uint64, op, name string) error {
	if inc != anyIncarnation && inc != f.incarnation+1 {
		return pathErr(op, name, disk.ErrCrashed)
	}
	return nil
}

// View returns a disk.FS for the current incarnation: it serves the same
// files, but once the FS crashes every call through it fails with
// disk.ErrCrashed, like the Files it opened. Give each node incarnation its
// own View so that no call from a crashed incarnation can change what the
// next one sees. Calls made on *FS directly are never stale.
func (f *FS) View() disk.FS {
	f.mu.Lock()
	defer f.mu.Unlock()
	return &view{fs: f, inc: f.incarnation + 1}
}

type view struct {
	fs  *FS
	inc uint64 // incarnation + 1, so that 0 stays anyIncarnation
}

var _ disk.FS = (*view)(nil)

func (v *view) Create(name string) (disk.File, error) {
	return v.fs.openFile(v.inc, "create", name, true, true, true)
}

func (v *view) Open(name string) (disk.File, error) {
	return v.fs.openFile(v.inc, "open", name, false, false, false)
}

func (v *view) OpenRW(name string) (disk.File, error) {
	return v.fs.openFile(v.inc, "open", name, false, false, true)
}

func (v *view) Rename(oldname, newname string) error { return v.fs.rename(v.inc, oldname, newname) }
func (v *view) Link(oldname, newname string) error   { return v.fs.linkName(v.inc, oldname, newname) }
func (v *view) Remove(name string) error             { return v.fs.remove(v.inc, name) }
func (v *view) RemoveAll(name string) error          { return v.fs.removeAll(v.inc, name) }
func (v *view) MkdirAll(name string) error           { return v.fs.mkdirAll(v.inc, name) }
func (v *view) ReadDir(name string) ([]fs.DirEntry, error) {
	return v.fs.readDir(v.inc, name)
}
func (v *view) Stat(name string) (fs.FileInfo, error) { return v.fs.stat(v.inc, name) }
func (v *view) SyncDir(name string) error             { return v.fs.syncDir(v.inc, name) }
func (v *view) FreeSpace() (uint64, error)            { return v.fs.freeSpace(v.inc) }

// Create implements disk.FS.
func (f *FS) Create(name string) (disk.File, error) {
	return f.openFile(anyIncarnation, "create", name, true, true, true)
}

// Open implements disk.FS.
func (f *FS) Open(name string) (disk.File, error) {
	return f.openFile(anyIncarnation, "open", name, false, false, false)
}

// OpenRW implements disk.FS.
func (f *FS) OpenRW(name string) (disk.File, error) {
	return f.openFile(anyIncarnation, "open", name, false, false, true)
}

// Rename implements disk.FS with POSIX rename semantics.
func (f *FS) Rename(oldname, newname string) error {
	return f.rename(anyIncarnation, oldname, newname)
}

// Link implements disk.FS.
func (f *FS) Link(oldname, newname string) error {
	return f.linkName(anyIncarnation, oldname, newname)
}

// Remove implements disk.FS.
func (f *FS) Remove(name string) error { return f.remove(anyIncarnation, name) }

// RemoveAll implements disk.FS.
func (f *FS) RemoveAll(name string) error { return f.removeAll(anyIncarnation, name) }

// MkdirAll implements disk.FS. New directories are durable only once their
// parents are synced (see disk.MkdirAllDurable).
func (f *FS) MkdirAll(name string) error { return f.mkdirAll(anyIncarnation, name) }

// ReadDir implements disk.FS.
func (f *FS) ReadDir(name string) ([]fs.DirEntry, error) {
	return f.readDir(anyIncarnation, name)
}

// Stat implements disk.FS.
func (f *FS) Stat(name string) (fs.FileInfo, error) { return f.stat(anyIncarnation, name) }

// SyncDir implements disk.FS.
func (f *FS) SyncDir(name string) error { return f.syncDir(anyIncarnation, name) }

// FreeSpace implements disk.FS.
func (f *FS) FreeSpace() (uint64, error) { return f.freeSpace(anyIncarnation) }
