package timeline

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/stratadb/strata/clock"
	"github.com/stratadb/strata/engine/keys"
	"github.com/stratadb/strata/engine/lsn"
	"github.com/stratadb/strata/engine/walrec"
	"github.com/stratadb/strata/sim/simdisk"
)

var rel = keys.RelTag{SpcNode: 1663, DbNode: 5, RelNode: 16384}

func page(fill byte) []byte { return bytes.Repeat([]byte{fill}, walrec.PageSize) }

func openTenant(t *testing.T, fs *simdisk.FS, cfg Config) *Tenant {
	t.Helper()
	tn, err := Open(Options{FS: fs, Clock: clock.NewReal(), Dir: "tenant", Config: cfg, Generation: 1})
	if err != nil {
		t.Fatal(err)
	}
	return tn
}

func mustIngest(t *testing.T, tl *Timeline, at lsn.LSN, rec walrec.Record) {
	t.Helper()
	if err := tl.Ingest(at, rec); err != nil {
		t.Fatalf("ingest at %s: %v", at, err)
	}
}

func wantPage(t *testing.T, tl *Timeline, blk uint32, at lsn.LSN, want []byte) {
	t.Helper()
	got, err := tl.GetPage(keys.RelBlockKey(rel, blk), at)
	if err != nil {
		t.Fatalf("block %d at %s: %v", blk, at, err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("block %d at %s: got %x..., want %x...", blk, at, got[:8], want[:8])
	}
}

func patched(base []byte, off int, data []byte) []byte {
	p := bytes.Clone(base)
	copy(p[off:], data)
	return p
}

func TestFlushReadReopen(t *testing.T) {
	fs := simdisk.New(simdisk.Options{})
	tn := openTenant(t, fs, Config{})
	id := ID{1}
	tl, err := tn.Create(id, 0x10)
	if err != nil {
		t.Fatal(err)
	}
	mustIngest(t, tl, 0x20, walrec.FullPageImage{Rel: rel, Blk: 0, Page: page(0xAA)})
	mustIngest(t, tl, 0x21, walrec.RelSizeChange{Rel: rel, NBlocks: 1})
	mustIngest(t, tl, 0x30, walrec.PageWrite{Rel: rel, Blk: 0, Offset: 100, Data: []byte("hello")})
	if err := tl.Flush(); err != nil {
		t.Fatal(err)
	}
	if got := tl.DiskConsistentLSN(); got != 0x30 {
		t.Fatalf("disk_consistent_lsn %s, want 0/30", got)
	}
	mustIngest(t, tl, 0x40, walrec.PageWrite{Rel: rel, Blk: 0, Offset: 200, Data: []byte("world")})
	mustIngest(t, tl, 0x41, walrec.RelSizeChange{Rel: rel, NBlocks: 3})
	p20 := page(0xAA)
	p30 := patched(p20, 100, []byte("hello"))
	p40 := patched(p30, 200, []byte("world"))
	wantPage(t, tl, 0, 0x20, p20)
	wantPage(t, tl, 0, 0x3F, p30)
	wantPage(t, tl, 0, 0x40, p40)
	if n, err := tl.RelSize(rel, 0x41); err != nil || n != 3 {
		t.Fatalf("rel size at 0/41: %d, %v", n, err)
	}
	if _, err := tl.GetPage(keys.RelBlockKey(rel, 0), 0x50); !errors.Is(err, ErrFutureLSN) {
		t.Fatalf("future read: %v", err)
	}
	if _, err := tl.GetPage(keys.RelBlockKey(rel, 9), 0x41); !errors.Is(err, ErrNotFound) {
		t.Fatalf("absent block: %v", err)
	}
	if err := tl.Ingest(0x41, walrec.RelDrop{Rel: rel}); !errors.Is(err, ErrOutOfOrder) {
		t.Fatalf("out-of-order ingest: %v", err)
	}

	// Crash without flushing the last two records: they are lost, the rest
	// survives, and the timeline says where to resume.
	fs.Crash(rand.New(rand.NewPCG(1, 2)), true)
	tn2 := openTenant(t, fs, Config{})
	tl2, err := tn2.Get(id)
	if err != nil {
		t.Fatal(err)
	}
	if tl2.DiskConsistentLSN() != 0x30 || tl2.LastRecordLSN() != 0x30 {
		t.Fatalf("after crash: dcl %s last %s", tl2.DiskConsistentLSN(), tl2.LastRecordLSN())
	}
	wantPage(t, tl2, 0, 0x30, p30)
	if n, err := tl2.RelSize(rel, 0x30); err != nil || n != 1 {
		t.Fatalf("rel size after crash: %d, %v", n, err)
	}
	mustIngest(t, tl2, 0x40, walrec.PageWrite{Rel: rel, Blk: 0, Offset: 200, Data: []byte("world")})
	wantPage(t, tl2, 0, 0x40, p40)
}

func TestCorruptMetadataFailsOpen(t *testing.T) {
	fs := simdisk.New(simdisk.Options{})
	tn := openTenant(t, fs, Config{})
	tl, err := tn.Create(ID{2}, 0)
	if err != nil {
		t.Fatal(err)
	}
	mustIngest(t, tl, 8, walrec.FullPageImage{Rel: rel, Blk: 1, Page: page(1)})
	if err := tl.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := fs.Corrupt(tl.dir+"/"+metadataName, 30); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(Options{FS: fs, Clock: clock.NewReal(), Dir: "tenant"}); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("open with corrupt metadata: %v", err)
	}
}

func TestConfigValidate(t *testing.T) {
	cases := []struct {
		name  string
		cfg   Config
		field string // named by the error; "" if valid
	}{
		{"defaults", Config{}, ""},
		{"negative checkpoint", Config{CheckpointDistanceBytes: -1}, "CheckpointDistanceBytes"},
		{"threshold 1", Config{CompactionThreshold: 1}, "CompactionThreshold"},
		{"negative threshold", Config{CompactionThreshold: -3}, "CompactionThreshold"},
		{"tiny target", Config{CompactionTargetSizeBytes: 100}, "CompactionTargetSizeBytes"},
		{"negative target", Config{CompactionTargetSizeBytes: -1}, "CompactionTargetSizeBytes"},
		{"negative image threshold", Config{ImageCreationThreshold: -1}, "ImageCreationThreshold"},
		{"negative merge", Config{MaxL0Merge: -1}, "MaxL0Merge"},
		{"merge below threshold", Config{CompactionThreshold: 20, MaxL0Merge: 10}, "MaxL0Merge"},
	}
	for _, c := range cases {
		before := c.cfg
		err := c.cfg.Validate()
		if c.cfg != before {
			t.Errorf("%s: Validate changed its receiver", c.name)
		}
		switch {
		case c.field == "" && err != nil:
			t.Errorf("%s: %v", c.name, err)
		case c.field != "" && (!errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), c.field)):
			t.Errorf("%s: %v; want ErrConfig naming %s", c.name, err, c.field)
		}
		if c.field != "" {
			if _, err := Open(Options{FS: simdisk.New(simdisk.Options{}), Clock: clock.NewReal(), Config: c.cfg}); !errors.Is(err, ErrConfig) {
				t.Errorf("%s: Open: %v", c.name, err)
			}
		}
	}
	if d := DefaultConfig(); d.CompactionThreshold != DefaultCompactionThreshold || d.GCHorizonBytes != DefaultGCHorizonBytes {
		t.Errorf("defaults: %+v", d)
	}
	for _, o := range []Options{{Clock: clock.NewReal()}, {FS: simdisk.New(simdisk.Options{})}} {
		if _, err := Open(o); !errors.Is(err, ErrConfig) {
			t.Errorf("Open without FS or Clock: %v", err)
		}
	}
}

// snapshot returns the current layer map, unpinned: for tests that inspect
// the layer set while nothing else runs.
func (t *Timeline) snapshot() *layerMap { return t.peek().layers }

// listedFiles returns the layer files the current version lists.
func (t *Timeline) listedFiles() []string { return t.peek().files }
