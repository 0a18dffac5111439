package persist_test

import (
	"context"
	"testing"

	"github.com/stratadb/strata/clock"
	"github.com/stratadb/strata/disk"
	"github.com/stratadb/strata/nodes/storcon/persist"
	"github.com/stratadb/strata/nodes/storcon/persist/persisttest"
	"github.com/stratadb/strata/sim/simdisk"
)

// benchShards is the scale the controller aims at: 10k shards on 100
// nodes (2500 tenants of 4 shards).
const (
	benchTenants = 2500
	benchNodes   = 100
)

// loaded opens a store on fsys holding benchTenants tenants whose shards
// have generations on benchNodes nodes.
func loaded(b *testing.B, fsys disk.FS) *persist.DiskStore {
	b.Helper()
	ctx := context.Background()
	s, err := persist.OpenDisk(clock.NewReal(), fsys, "storcon", persist.DiskConfig{})
	if err != nil {
		b.Fatal(err)
	}
	for i := range benchTenants {
		rows := persisttest.Tenant(0, 4)
		for k := range rows {
			rows[k].ID.TenantID[0], rows[k].ID.TenantID[1] = byte(i), byte(i>>8)
			rows[k].Generation, rows[k].GenerationNode = 1, persist.NodeID((i*4+k)%benchNodes+1)
		}
		if err := s.InsertTenantShards(ctx, rows); err != nil {
			b.Fatal(err)
		}
	}
	return s
}

// BenchmarkIncrementGeneration: one durable increment with 10k shards
// loaded (compactions included, amortized).
func BenchmarkIncrementGeneration(b *testing.B) {
	for _, bc := range []struct {
		name string
		fsys func(b *testing.B) disk.FS
	}{
		{"simdisk", func(*testing.B) disk.FS { return simdisk.New(simdisk.Options{}) }},
		{"osdir", func(b *testing.B) disk.FS { return disk.Dir(b.TempDir()) }},
	} {
		b.Run(bc.name, func(b *testing.B) {
			s := loaded(b, bc.fsys(b))
			defer s.Close()
			ctx := context.Background()
			rows, err := s.ListTenantShards(ctx)
			if err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for i := range b.N {
				if _, err := s.IncrementGeneration(ctx, rows[i%len(rows)].ID, 7); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkReAttach: one node's re-attach (100 of 10k shards) on simdisk.
func BenchmarkReAttach(b *testing.B) {
	s := loaded(b, simdisk.New(simdisk.Options{}))
	defer s.Close()
	ctx := context.Background()
	b.ResetTimer()
	for i := range b.N {
		rows, err := s.ReAttach(ctx, persist.NodeID(i%benchNodes+1))
		if err != nil || len(rows) != benchTenants*4/benchNodes {
			b.Fatalf("%d rows, %v", len(rows), err)
		}
	}
}

// BenchmarkOpen: start-up of a store holding 10k shards (snapshot read and
// log replay).
func BenchmarkOpen(b *testing.B) {
	fsys := simdisk.New(simdisk.Options{})
	loaded(b, fsys).Close()
	b.ResetTimer()
	for range b.N {
		s, err := persist.OpenDisk(clock.NewReal(), fsys, "storcon", persist.DiskConfig{})
		if err != nil {
			b.Fatal(err)
		}
		s.Close()
	}
}
