package persist_test

import (
	"testing"

	"github.com/stratadb/strata/clock"
	"github.com/stratadb/strata/disk"
	"github.com/stratadb/strata/nodes/storcon/persist"
	"github.com/stratadb/strata/nodes/storcon/persist/persisttest"
	"github.com/stratadb/strata/sim/simdisk"
)

func diskOpener(fsys disk.FS, cfg persist.DiskConfig) persisttest.Opener {
	return func(t *testing.T) persist.Store {
		t.Helper()
		s, err := persist.OpenDisk(clock.NewReal(), fsys, "storcon", cfg)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
}

// TestConformanceOSDir runs the suite on the operating system's file system.
func TestConformanceOSDir(t *testing.T) {
	persisttest.Run(t, func(t *testing.T) persisttest.Opener {
		return diskOpener(disk.Dir(t.TempDir()), persist.DiskConfig{})
	})
}

// TestConformanceSimDisk runs the suite on the simulator's disk.
func TestConformanceSimDisk(t *testing.T) {
	persisttest.Run(t, func(t *testing.T) persisttest.Opener {
		return diskOpener(simdisk.New(simdisk.Options{}), persist.DiskConfig{})
	})
}

// TestConformanceCompactEveryWrite runs the suite with a log limit of one
// byte, so every mutation compacts and every reopen starts from a snapshot.
func TestConformanceCompactEveryWrite(t *testing.T) {
	persisttest.Run(t, func(t *testing.T) persisttest.Opener {
		return diskOpener(simdisk.New(simdisk.Options{}), persist.DiskConfig{MaxLogBytes: 1})
	})
}
