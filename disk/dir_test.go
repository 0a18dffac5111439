package disk_test

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/stratadb/strata/disk"
	"github.com/stratadb/strata/disk/disktest"
)

func TestDirConformance(t *testing.T) {
	disktest.Run(t, func(t *testing.T) disk.FS { return disk.Dir(t.TempDir()) })
}

// TestDirStaysInsideRoot checks that no name can reach a sibling of root.
func TestDirStaysInsideRoot(t *testing.T) {
	parent := t.TempDir()
	root := filepath.Join(parent, "root")
	if err := os.Mkdir(root, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(parent, "secret"), []byte("s"), 0o644); err != nil {
		t.Fatal(err)
	}
	fsys := disk.Dir(root)
	for _, name := range []string{"../secret", "/" + filepath.ToSlash(filepath.Join(parent, "secret"))} {
		if _, err := fsys.Open(name); !errors.Is(err, disk.ErrInvalidName) {
			t.Errorf("Open(%q) = %v, want ErrInvalidName", name, err)
		}
		if err := fsys.Remove(name); !errors.Is(err, disk.ErrInvalidName) {
			t.Errorf("Remove(%q) = %v, want ErrInvalidName", name, err)
		}
	}
	if _, err := os.Stat(filepath.Join(parent, "secret")); err != nil {
		t.Fatal(err)
	}
}

func TestCheckName(t *testing.T) {
	tests := []struct {
		name string
		ok   bool
	}{
		{".", true}, {"a", true}, {"a/b.c", true}, {"a..b", true},
		{"", false}, {"/a", false}, {"..", false}, {"a/..", false}, {"a//b", false}, {"a/", false},
	}
	for _, tc := range tests {
		err := disk.CheckName("test", tc.name)
		if (err == nil) != tc.ok {
			t.Errorf("CheckName(%q) = %v, want ok=%v", tc.name, err, tc.ok)
		}
		if err != nil && !errors.Is(err, fs.ErrInvalid) {
			t.Errorf("CheckName(%q) error %v does not match fs.ErrInvalid", tc.name, err)
		}
	}
}
