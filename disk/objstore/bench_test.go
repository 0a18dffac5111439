package objstore_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/stratadb/strata/disk"
	"github.com/stratadb/strata/disk/objstore"
	"github.com/stratadb/strata/sim/simdisk"
)

func benchPutGet(b *testing.B, fsys disk.FS) {
	s, err := objstore.NewLocal(fsys, "o", objstore.LocalOptions{})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	data := make([]byte, 64<<10)
	b.SetBytes(int64(len(data)))
	for i := 0; b.Loop(); i++ {
		key := fmt.Sprintf("tenants/t/timelines/l/layer-%06d", i%100)
		if err := s.Put(ctx, key, data, objstore.PutOptions{}); err != nil {
			b.Fatal(err)
		}
		if _, err := s.Get(ctx, key); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkLocalPutGet measures a 64 KiB Put (temp, sync, rename, dir
// syncs) plus Get on the simulator's disk and on the real one.
func BenchmarkLocalPutGet(b *testing.B) {
	b.Run("simdisk", func(b *testing.B) { benchPutGet(b, simdisk.New(simdisk.Options{})) })
	b.Run("dir", func(b *testing.B) { benchPutGet(b, disk.Dir(b.TempDir())) })
}
