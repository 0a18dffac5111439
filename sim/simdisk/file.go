package simdisk

import (
	"fmt"
	"io"
	"io/fs"

	"github.com/stratadb/strata/disk"
)

// file is an open handle. It dies (every call fails with disk.ErrCrashed)
// when the FS crashes after it was opened.
type file struct {
	fs          *FS
	ino         *inode
	name        string
	writable    bool
	incarnation uint64
	closed      bool
}

// check validates the handle. Called with f.fs.mu held.
func (f *file) check(op string) error {
	if f.incarnation != f.fs.incarnation {
		return pathErr(op, f.name, disk.ErrCrashed)
	}
	if f.closed {
		return pathErr(op, f.name, disk.ErrClosed)
	}
	return nil
}

func (f *file) checkWrite(op string) error {
	if err := f.check(op); err != nil {
		return err
	}
	if !f.writable {
		return pathErr(op, f.name, fmt.Errorf("opened read-only: %w", fs.ErrPermission))
	}
	return nil
}

func (f *file) Name() string { return f.name }

func (f *file) ReadAt(p []byte, off int64) (int, error) {
	f.fs.delay("read")
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if err := f.check("read"); err != nil {
		return 0, err
	}
	if off < 0 {
		return 0, pathErr("read", f.name, fmt.Errorf("negative offset: %w", fs.ErrInvalid))
	}
	if f.fs.fault(f.fs.faults.ReadEIO) {
		return 0, pathErr("read", f.name, disk.ErrIO)
	}
	data := f.ino.data
	if off >= int64(len(data)) {
		if len(p) == 0 {
			return 0, nil
		}
		return 0, io.EOF
	}
	n := copy(p, data[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (f *file) WriteAt(p []byte, off int64) (int, error) {
	f.fs.delay("write")
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if err := f.checkWrite("write"); err != nil {
		return 0, err
	}
	if off < 0 {
		return 0, pathErr("write", f.name, fmt.Errorf("negative offset: %w", fs.ErrInvalid))
	}
	return f.writeLocked(p, off)
}

func (f *file) Write(p []byte) (int, error) {
	f.fs.delay("write")
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if err := f.checkWrite("write"); err != nil {
		return 0, err
	}
	return f.writeLocked(p, int64(len(f.ino.data)))
}

func (f *file) writeLocked(p []byte, off int64) (int, error) {
	end := off + int64(len(p))
	if err := f.fs.reserve("write", f.name, f.ino, end); err != nil {
		return 0, err
	}
	if f.fs.fault(f.fs.faults.WriteEIO) {
		// The device failed mid-request: the write may or may not have
		// reached the page cache. Either way it is unsynced.
		if f.fs.faultRand.IntN(2) == 0 {
			f.fs.apply(f.ino, p, off)
		}
		return 0, pathErr("write", f.name, disk.ErrIO)
	}
	f.fs.apply(f.ino, p, off)
	return len(p), nil
}

// reserve checks that growing ino to size end fits and draws the NoSpace
// fault. Called with f.mu held.
func (f *FS) reserve(op, name string, ino *inode, end int64) error {
	if end > MaxFileBytes || end < 0 { // end < 0: offset + length overflowed
		return pathErr(op, name, fmt.Errorf("file size beyond %d: %w", int64(MaxFileBytes), fs.ErrInvalid))
	}
	grow := end - int64(len(ino.data))
	if grow <= 0 {
		return nil
	}
	if f.fault(f.faults.NoSpace) {
		return pathErr(op, name, disk.ErrNoSpace)
	}
	if f.opts.CapacityBytes > 0 && f.usedBytes+grow > f.opts.CapacityBytes {
		return pathErr(op, name, disk.ErrNoSpace)
	}
	return nil
}

// apply writes p at off into ino's current content.
func (f *FS) apply(ino *inode, p []byte, off int64) {
	end := off + int64(len(p))
	if end > int64(len(ino.data)) {
		f.resize(ino, end)
	}
	copy(ino.data[off:], p)
	ino.markDirty(off, end)
}

// resize sets ino's current size, zero-filling growth and accounting space.
func (f *FS) resize(ino *inode, size int64) {
	old := int64(len(ino.data))
	switch {
	case size < old:
		clear(ino.data[size:old]) // growth must read zeros, even in reused capacity
		ino.data = ino.data[:size]
	case size > old:
		if size <= int64(cap(ino.data)) {
			ino.data = ino.data[:size]
			clear(ino.data[old:size])
		} else {
			grown := make([]byte, size, max(size, 2*int64(cap(ino.data))))
			copy(grown, ino.data)
			ino.data = grown
		}
		ino.markDirty(old, size)
	}
	f.usedBytes += size - old
}

func (ino *inode) markDirty(lo, hi int64) {
	if lo >= hi {
		return
	}
	if ino.dirtyLo >= ino.dirtyHi {
		ino.dirtyLo, ino.dirtyHi = lo, hi
		return
	}
	ino.dirtyLo = min(ino.dirtyLo, lo)
	ino.dirtyHi = max(ino.dirtyHi, hi)
}

func (ino *inode) clean() bool {
	return ino.dirtyLo >= ino.dirtyHi && len(ino.data) == len(ino.durable)
}

// syncData makes ino's current content durable, copying only what changed.
func (ino *inode) syncData() {
	oldLen := int64(len(ino.durable))
	newLen := int64(len(ino.data))
	if newLen <= int64(cap(ino.durable)) {
		ino.durable = ino.durable[:newLen]
	} else {
		grown := make([]byte, newLen, max(newLen, 2*int64(cap(ino.durable))))
		copy(grown, ino.durable[:oldLen])
		ino.durable = grown
	}
	if newLen > oldLen {
		copy(ino.durable[oldLen:], ino.data[oldLen:])
	}
	lo, hi := ino.dirtyLo, min(ino.dirtyHi, oldLen, newLen)
	if lo < hi {
		copy(ino.durable[lo:hi], ino.data[lo:hi])
	}
	ino.dirtyLo, ino.dirtyHi = 0, 0
}

// revertData drops ino's unsynced writes. Called with f.mu held.
func (f *FS) revertData(ino *inode) {
	f.usedBytes += int64(len(ino.durable)) - int64(len(ino.data))
	ino.data = append(ino.data[:0], ino.durable...)
	ino.dirtyLo, ino.dirtyHi = 0, 0
}

func (f *file) Sync() error {
	f.fs.delay("sync")
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if err := f.check("sync"); err != nil {
		return err
	}
	if f.fs.fault(f.fs.faults.SyncEIO) {
		f.fs.revertData(f.ino)
		return pathErr("sync", f.name, disk.ErrIO)
	}
	f.ino.syncData()
	return nil
}

func (f *file) Truncate(size int64) error {
	f.fs.delay("truncate")
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if err := f.checkWrite("truncate"); err != nil {
		return err
	}
	if size < 0 {
		return pathErr("truncate", f.name, fmt.Errorf("negative size: %w", fs.ErrInvalid))
	}
	if err := f.fs.reserve("truncate", f.name, f.ino, size); err != nil {
		return err
	}
	if f.fs.fault(f.fs.faults.WriteEIO) {
		return pathErr("truncate", f.name, disk.ErrIO)
	}
	f.fs.resize(f.ino, size)
	return nil
}

func (f *file) Size() (int64, error) {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if err := f.check("size"); err != nil {
		return 0, err
	}
	return int64(len(f.ino.data)), nil
}

func (f *file) Close() error {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if err := f.check("close"); err != nil {
		return err
	}
	f.closed = true
	f.ino.open--
	if f.ino.open == 0 && f.ino.nlink == 0 {
		f.fs.usedBytes -= int64(len(f.ino.data))
	}
	return nil
}
