package disk

import (
	"fmt"
	"path"
)

// MkdirAllDurable creates name and its missing parents and makes every new
// directory entry durable by syncing each parent from the top down. Plain
// MkdirAll leaves new directories undurable (the crash contract treats them
// like any other directory entry).
func MkdirAllDurable(fsys FS, name string) error {
	if err := CheckName("mkdirall", name); err != nil {
		return err
	}
	if err := fsys.MkdirAll(name); err != nil {
		return err
	}
	if name == "." {
		return nil
	}
	// Sync every ancestor, root first: a directory entry is durable only once
	// the directory holding it is synced.
	var dirs []string
	for d := path.Dir(name); ; d = path.Dir(d) {
		dirs = append(dirs, d)
		if d == "." {
			break
		}
	}
	for i := len(dirs) - 1; i >= 0; i-- {
		if err := fsys.SyncDir(dirs[i]); err != nil {
			return err
		}
	}
	return nil
}

// WriteFileAtomic durably replaces name with data: it writes a temporary
// sibling (name + ".tmp"), syncs it, renames it over name and syncs the
// parent directory. After a crash name holds either its old content or
// data, never a mix. The parent directory must exist, and be durable for
// name to be (MkdirAllDurable). If the final directory sync fails the new
// content is visible but a crash may still undo it; calling again with the
// same data makes it durable.
func WriteFileAtomic(fsys FS, name string, data []byte) (err error) {
	if err := CheckName("writefile", name); err != nil {
		return err
	}
	if name == "." {
		return fmt.Errorf("%w %q in writefile: the root is a directory", ErrInvalidName, name)
	}
	tmp := name + ".tmp"
	f, err := fsys.Create(tmp)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = fsys.Remove(tmp)
		}
	}()
	if _, err = f.WriteAt(data, 0); err != nil {
		_ = f.Close()
		return err
	}
	if err = f.Sync(); err != nil {
		_ = f.Close()
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	if err = fsys.Rename(tmp, name); err != nil {
		return err
	}
	return fsys.SyncDir(Parent(name))
}

// ReadFile reads the whole of name.
func ReadFile(fsys FS, name string) ([]byte, error) {
	f, err := fsys.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	size, err := f.Size()
	if err != nil {
		return nil, err
	}
	buf := make([]byte, size)
	n, err := f.ReadAt(buf, 0)
	if n == len(buf) {
		return buf, nil
	}
	return nil, err
}
