package disk

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
)

// ErrInvalidName reports a name that is not a clean slash-separated path
// relative to the file system's root (absolute, containing "..", "." or
// empty elements). Errors carrying it also match fs.ErrInvalid.
var ErrInvalidName = errors.New("disk: invalid name")

// CheckName returns nil if name is a valid FS name, else an error wrapping
// ErrInvalidName and fs.ErrInvalid. "." names the root itself. Every
// implementation calls it first, so a bad name never reaches the device.
func CheckName(op, name string) error {
	if !fs.ValidPath(name) {
		return fmt.Errorf("%w %q in %s: %w", ErrInvalidName, name, op, fs.ErrInvalid)
	}
	return nil
}

// Parent returns the directory holding name ("." for top-level names): the
// directory a caller must SyncDir to make name's creation durable.
func Parent(name string) string {
	return path.Dir(name)
}
