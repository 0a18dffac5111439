// Package disktest is the conformance suite every disk.FS implementation
// must pass unchanged (disk.Dir, sim/simdisk, and any fault wrapper that is
// transparent when no fault is configured).
//
// It checks the observable, crash-free behaviour of the seam: file I/O and
// append semantics, directory operations, sorted listings, and the error
// classes (fs.ErrNotExist, fs.ErrExist, fs.ErrInvalid, fs.ErrPermission,
// disk.ErrClosed, io.EOF). The crash contract cannot be observed through the
// FS interface alone; implementations that can crash (simdisk) test it
// themselves.
package disktest
