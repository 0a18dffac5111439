package disk

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"syscall"
)

// Dir returns the OS implementation of FS rooted at the directory root,
// which must exist. Names are resolved below root only: CheckName rejects
// absolute names and ".." before any system call. (Symbolic links already
// inside root are followed; Strata never creates them.)
func Dir(root string) FS {
	return &osFS{root: filepath.Clean(root)}
}

type osFS struct {
	root string
}

func (d *osFS) path(op, name string) (string, error) {
	if err := CheckName(op, name); err != nil {
		return "", err
	}
	return filepath.Join(d.root, filepath.FromSlash(name)), nil
}

// classify wraps an OS error with the disk error class it belongs to and
// replaces the absolute path in it with the FS-relative name.
func classify(op, name string, err error) error {
	if err == nil {
		return nil
	}
	inner := err
	var pe *fs.PathError
	var le *os.LinkError
	switch {
	case errors.As(err, &pe):
		inner = pe.Err
	case errors.As(err, &le):
		inner = le.Err
	}
	switch {
	case errors.Is(inner, syscall.ENOSPC), errors.Is(inner, syscall.EDQUOT):
		return fmt.Errorf("disk: %s %q: %w (%w)", op, name, ErrNoSpace, inner)
	case errors.Is(inner, syscall.EIO):
		return fmt.Errorf("disk: %s %q: %w (%w)", op, name, ErrIO, inner)
	case errors.Is(inner, os.ErrClosed):
		return fmt.Errorf("disk: %s %q: %w", op, name, ErrClosed)
	}
	// fs.ErrNotExist, fs.ErrExist, fs.ErrPermission already match through
	// syscall.Errno.Is.
	return fmt.Errorf("disk: %s %q: %w", op, name, inner)
}

func errIsDir(op, name string) error {
	return fmt.Errorf("disk: %s %q: is a directory: %w", op, name, fs.ErrInvalid)
}

func (d *osFS) open(op, name string, flag int, writable bool) (File, error) {
	p, err := d.path(op, name)
	if err != nil {
		return nil, err
	}
	if name == "." {
		return nil, errIsDir(op, name)
	}
	f, err := os.OpenFile(p, flag, 0o644)
	if err != nil {
		return nil, classify(op, name, err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, classify(op, name, err)
	}
	if st.IsDir() {
		f.Close()
		return nil, errIsDir(op, name)
	}
	of := &osFile{f: f, name: name, writable: writable}
	if writable {
		// Write appends through a second descriptor opened O_APPEND, so the
		// kernel picks the offset atomically (even against other handles
		// and processes); WriteAt keeps using the first, which O_APPEND
		// would forbid.
		af, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			f.Close()
			return nil, classify(op, name, err)
		}
		ast, err := af.Stat()
		if err != nil || !os.SameFile(st, ast) {
			f.Close()
			af.Close()
			if err == nil {
				err = fmt.Errorf("disk: %s %q: replaced while opening: %w", op, name, ErrIO)
			}
			return nil, classify(op, name, err)
		}
		of.af = af
	}
	return of, nil
}

func (d *osFS) Create(name string) (File, error) {
	return d.open("create", name, os.O_RDWR|os.O_CREATE|os.O_TRUNC, true)
}

func (d *osFS) Open(name string) (File, error) {
	return d.open("open", name, os.O_RDONLY, false)
}

func (d *osFS) OpenRW(name string) (File, error) {
	return d.open("openrw", name, os.O_RDWR, true)
}

func (d *osFS) Rename(oldname, newname string) error {
	po, err := d.path("rename", oldname)
	if err != nil {
		return err
	}
	pn, err := d.path("rename", newname)
	if err != nil {
		return err
	}
	return classify("rename", oldname, os.Rename(po, pn))
}

func (d *osFS) Link(oldname, newname string) error {
	po, err := d.path("link", oldname)
	if err != nil {
		return err
	}
	pn, err := d.path("link", newname)
	if err != nil {
		return err
	}
	return classify("link", newname, os.Link(po, pn))
}

func (d *osFS) Remove(name string) error {
	p, err := d.path("remove", name)
	if err != nil {
		return err
	}
	if name == "." {
		return fmt.Errorf("disk: remove %q: cannot remove the root: %w", name, fs.ErrInvalid)
	}
	return classify("remove", name, os.Remove(p))
}

func (d *osFS) RemoveAll(name string) error {
	p, err := d.path("removeall", name)
	if err != nil {
		return err
	}
	if name == "." {
		return fmt.Errorf("disk: removeall %q: cannot remove the root: %w", name, fs.ErrInvalid)
	}
	return classify("removeall", name, os.RemoveAll(p))
}

func (d *osFS) MkdirAll(name string) error {
	p, err := d.path("mkdirall", name)
	if err != nil {
		return err
	}
	return classify("mkdirall", name, os.MkdirAll(p, 0o755))
}

func (d *osFS) ReadDir(name string) ([]fs.DirEntry, error) {
	p, err := d.path("readdir", name)
	if err != nil {
		return nil, err
	}
	ents, err := os.ReadDir(p) // sorted by name
	if err != nil {
		return nil, classify("readdir", name, err)
	}
	sort.Slice(ents, func(i, j int) bool { return ents[i].Name() < ents[j].Name() })
	return ents, nil
}

func (d *osFS) Stat(name string) (fs.FileInfo, error) {
	p, err := d.path("stat", name)
	if err != nil {
		return nil, err
	}
	st, err := os.Stat(p)
	if err != nil {
		return nil, classify("stat", name, err)
	}
	return st, nil
}

func (d *osFS) SyncDir(name string) error {
	p, err := d.path("syncdir", name)
	if err != nil {
		return err
	}
	f, err := os.Open(p)
	if err != nil {
		return classify("syncdir", name, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return classify("syncdir", name, err)
	}
	if !st.IsDir() {
		return fmt.Errorf("disk: syncdir %q: not a directory: %w", name, fs.ErrInvalid)
	}
	return classify("syncdir", name, f.Sync())
}

func (d *osFS) FreeSpace() (uint64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(d.root, &st); err != nil {
		return 0, classify("freespace", ".", err)
	}
	return st.Bavail * uint64(st.Bsize), nil
}

// osFile is an *os.File plus what the File contract needs: an O_APPEND
// descriptor for Write (writable files only), and a read-only flag so a
// write to a file opened with Open fails with fs.ErrPermission on every
// implementation alike.
type osFile struct {
	f        *os.File
	af       *os.File // O_APPEND; nil for read-only files
	name     string
	writable bool
}

func (f *osFile) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("disk: read %q: negative offset: %w", f.name, fs.ErrInvalid)
	}
	n, err := f.f.ReadAt(p, off)
	if err == io.EOF {
		return n, io.EOF
	}
	return n, classify("read", f.name, err)
}

func (f *osFile) checkWritable(op string) error {
	if !f.writable {
		return fmt.Errorf("disk: %s %q: opened read-only: %w", op, f.name, fs.ErrPermission)
	}
	return nil
}

func (f *osFile) WriteAt(p []byte, off int64) (int, error) {
	if err := f.checkWritable("write"); err != nil {
		return 0, err
	}
	if off < 0 {
		return 0, fmt.Errorf("disk: write %q: negative offset: %w", f.name, fs.ErrInvalid)
	}
	n, err := f.f.WriteAt(p, off)
	return n, classify("write", f.name, err)
}

func (f *osFile) Write(p []byte) (int, error) {
	if err := f.checkWritable("write"); err != nil {
		return 0, err
	}
	n, err := f.af.Write(p)
	return n, classify("write", f.name, err)
}

func (f *osFile) Close() error {
	err := f.f.Close()
	if f.af != nil {
		if aerr := f.af.Close(); err == nil {
			err = aerr
		}
	}
	return classify("close", f.name, err)
}

func (f *osFile) Sync() error {
	return classify("sync", f.name, f.f.Sync())
}

func (f *osFile) Truncate(size int64) error {
	if err := f.checkWritable("truncate"); err != nil {
		return err
	}
	if size < 0 {
		return fmt.Errorf("disk: truncate %q: negative size: %w", f.name, fs.ErrInvalid)
	}
	return classify("truncate", f.name, f.f.Truncate(size))
}

func (f *osFile) Size() (int64, error) {
	st, err := f.f.Stat()
	if err != nil {
		return 0, classify("size", f.name, err)
	}
	return st.Size(), nil
}

func (f *osFile) Name() string { return f.name }
