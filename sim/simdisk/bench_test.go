package simdisk_test

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/stratadb/strata/sim/simdisk"
)

// BenchmarkAppendSync measures a WAL-style 4 KiB append plus Sync.
func BenchmarkAppendSync(b *testing.B) {
	d := simdisk.New(simdisk.Options{})
	f, err := d.Create("wal")
	if err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, 4096)
	b.SetBytes(int64(len(buf)))
	for i := 0; b.Loop(); i++ {
		if i%4096 == 0 { // keep the file at most 16 MiB, like a WAL segment
			if err := f.Truncate(0); err != nil {
				b.Fatal(err)
			}
		}
		if _, err := f.Write(buf); err != nil {
			b.Fatal(err)
		}
		if err := f.Sync(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCrash measures a torn crash of a disk with 200 files of 64 KiB,
// each with an unsynced 4 KiB overwrite.
func BenchmarkCrash(b *testing.B) {
	d := simdisk.New(simdisk.Options{})
	data := make([]byte, 64<<10)
	rng := rand.New(rand.NewPCG(1, 2))
	for b.Loop() {
		b.StopTimer()
		for i := 0; i < 200; i++ {
			f, err := d.Create(fmt.Sprintf("f%03d", i))
			if err != nil {
				b.Fatal(err)
			}
			f.Write(data)
			f.Sync()
			f.WriteAt(data[:4096], 8192)
		}
		d.SyncDir(".")
		b.StartTimer()
		d.Crash(rng, true)
	}
}
