package timeline

import (
	"errors"
	"testing"

	"github.com/stratadb/strata/engine/keys"
	"github.com/stratadb/strata/engine/walrec"
	"github.com/stratadb/strata/sim/simdisk"
)

// TestTombstoneInImageLayer drops a relation, has compaction write image
// layers at LSNs where its size key is a tombstone (alone in its partition,
// and beside live keys), and checks that the images hold the tombstone and
// that reads answer as walrec says: the size key is gone (ErrNotFound for
// GetPage and RelSize), before and after a reopen, while the relation's
// earlier size is still readable below the drop.
func TestTombstoneInImageLayer(t *testing.T) {
	other := keys.RelTag{SpcNode: 1663, DbNode: 5, RelNode: 16385}
	tests := []struct {
		name string
		live bool // whether another relation's keys share the partition
	}{
		{"only the tombstone", false},
		{"tombstone among live keys", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fs := simdisk.New(simdisk.Options{})
			cfg := Config{ImageCreationThreshold: 1}
			tn := openTenant(t, fs, cfg)
			tl, err := tn.Create(ID{1}, 0)
			if err != nil {
				t.Fatal(err)
			}
			mustIngest(t, tl, 0x10, walrec.RelSizeChange{Rel: rel, NBlocks: 4})
			if tc.live {
				mustIngest(t, tl, 0x18, walrec.FullPageImage{Rel: other, Blk: 0, Page: page(7)})
				mustIngest(t, tl, 0x19, walrec.RelSizeChange{Rel: other, NBlocks: 1})
			}
			mustIngest(t, tl, 0x20, walrec.RelDrop{Rel: rel})
			if err := tl.Flush(); err != nil {
				t.Fatal(err)
			}
			st, err := tl.Compact()
			if err != nil {
				t.Fatal(err)
			}
			if st.ImagesWritten == 0 {
				t.Fatalf("no image written: %+v", st)
			}
			// The image layer holds the size key, as an empty value.
			sizeKey := keys.RelSizeKey(rel)
			held := false
			for _, l := range tl.snapshot().Historic() {
				f := l.(*fileLayer)
				if f.name.IsDelta() {
					continue
				}
				_, image, err := f.acquire()
				if err != nil {
					t.Fatal(err)
				}
				p, found, err := image.Get(sizeKey)
				f.release()
				if err != nil {
					t.Fatal(err)
				}
				if found {
					held = true
					if len(p) != 0 {
						t.Fatalf("image holds a %d-byte size for a dropped relation", len(p))
					}
				}
			}
			if !held {
				t.Fatal("no image layer holds the dropped relation's size key")
			}
			if tc.live {
				// rel's block 0 was never written: not found.
				if _, err := tl.GetPage(keys.RelBlockKey(rel, 0), 0x20); !errors.Is(err, ErrNotFound) {
					t.Fatalf("unwritten block: %v", err)
				}
				if got, err := tl.GetPage(keys.RelBlockKey(other, 0), 0x20); err != nil || got[0] != 7 {
					t.Fatalf("live block: %v", err)
				}
			}
			checkDropped := func(tl *Timeline) {
				t.Helper()
				if _, err := tl.GetPage(sizeKey, 0x20); !errors.Is(err, ErrNotFound) {
					t.Fatalf("GetPage(size key) after drop: %v, want ErrNotFound", err)
				}
				if n, err := tl.RelSize(rel, 0x20); !errors.Is(err, ErrNotFound) {
					t.Fatalf("RelSize after drop: %d, %v, want ErrNotFound", n, err)
				}
				if n, err := tl.RelSize(rel, 0x1F); err != nil || n != 4 {
					t.Fatalf("RelSize before drop: %d, %v, want 4", n, err)
				}
			}
			checkDropped(tl)
			// Recreating the relation above the image makes it readable again.
			mustIngest(t, tl, 0x30, walrec.RelSizeChange{Rel: rel, NBlocks: 2})
			if n, err := tl.RelSize(rel, 0x30); err != nil || n != 2 {
				t.Fatalf("RelSize after recreate: %d, %v", n, err)
			}
			if err := tl.Flush(); err != nil {
				t.Fatal(err)
			}
			tn.Close()
			tn = openTenant(t, fs, cfg)
			defer tn.Close()
			tl, err = tn.Get(ID{1})
			if err != nil {
				t.Fatal(err)
			}
			checkDropped(tl)
			if n, err := tl.RelSize(rel, 0x30); err != nil || n != 2 {
				t.Fatalf("RelSize after recreate and reopen: %d, %v", n, err)
			}
		})
	}
}
