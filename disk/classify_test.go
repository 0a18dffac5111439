package disk

import (
	"errors"
	"io/fs"
	"os"
	"strings"
	"syscall"
	"testing"
)

func TestClassify(t *testing.T) {
	tests := []struct {
		in    error
		class error
	}{
		{&fs.PathError{Op: "write", Path: "/abs/x", Err: syscall.ENOSPC}, ErrNoSpace},
		{&fs.PathError{Op: "write", Path: "/abs/x", Err: syscall.EDQUOT}, ErrNoSpace},
		{&fs.PathError{Op: "read", Path: "/abs/x", Err: syscall.EIO}, ErrIO},
		{&fs.PathError{Op: "open", Path: "/abs/x", Err: syscall.ENOENT}, fs.ErrNotExist},
		{&os.LinkError{Op: "link", Old: "/abs/a", New: "/abs/b", Err: syscall.EEXIST}, fs.ErrExist},
		{&fs.PathError{Op: "open", Path: "/abs/x", Err: syscall.EACCES}, fs.ErrPermission},
		{&fs.PathError{Op: "read", Path: "/abs/x", Err: os.ErrClosed}, ErrClosed},
	}
	for _, tc := range tests {
		got := classify("op", "x", tc.in)
		if !errors.Is(got, tc.class) {
			t.Errorf("classify(%v) = %v, want class %v", tc.in, got, tc.class)
		}
		if strings.Contains(got.Error(), "/abs/") {
			t.Errorf("classify(%v) = %q leaks the absolute path", tc.in, got)
		}
	}
	if classify("op", "x", nil) != nil {
		t.Error("classify(nil) != nil")
	}
}
