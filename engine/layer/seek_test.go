package layer

import (
	"testing"

	"github.com/stratadb/strata/engine/keys"
)

// SeekKey answers the smallest key at or after the one asked, from the
// index: between keys, on a key, before the first and past the last.
func TestSeekKey(t *testing.T) {
	fsys := newMemFS()
	if _, err := WriteDelta(fsys, "d.layer", fullRange, deltaLSNs, sampleDeltas(4, 3)); err != nil {
		t.Fatal(err)
	}
	if _, err := WriteImage(fsys, "i.layer", fullRange, 0x500, sampleImages(4)); err != nil {
		t.Fatal(err)
	}
	d, err := OpenDelta(fsys, "d.layer")
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	m, err := OpenImage(fsys, "i.layer")
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	blk := func(b uint32) keys.Key { return keys.RelBlockKey(rel, b) }
	size := keys.RelSizeKey(rel)
	cases := []struct {
		from   keys.Key
		want   keys.Key
		wantOK bool
	}{
		{keys.Min, blk(0), true},
		{blk(0), blk(0), true},
		{blk(0).Next(), blk(1), true},
		{blk(3), blk(3), true},
		{blk(4), size, true}, // blocks 4.. are absent; the size key follows them
		{size, size, true},
		{size.Next(), keys.Key{}, false},
		{keys.Max, keys.Key{}, false},
	}
	for name, seek := range map[string]func(keys.Key) (keys.Key, bool){"delta": d.SeekKey, "image": m.SeekKey} {
		for _, c := range cases {
			got, ok := seek(c.from)
			if ok != c.wantOK || got != c.want {
				t.Errorf("%s: SeekKey(%s) = %s, %v; want %s, %v", name, c.from, got, ok, c.want, c.wantOK)
			}
		}
	}
}
