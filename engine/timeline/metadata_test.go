package timeline

import (
	"errors"
	"reflect"
	"testing"

	"github.com/stratadb/strata/engine/keys"
	"github.com/stratadb/strata/engine/layer"
	"github.com/stratadb/strata/engine/lsn"
)

func sampleMetadata() metadata {
	all := keys.Range{Start: keys.Min, End: keys.Max}
	return metadata{
		DiskConsistentLSN: 0x200,
		AncestorTimeline:  ID{1}.String(),
		AncestorLSN:       0x100,
		LatestGCCutoff:    0x180,
		InitLSN:           0x100,
		Layers: []string{
			layer.DeltaName(all, lsn.Range{Start: 0x101, End: 0x180}).WithGeneration(2).String(),
			layer.ImageName(all, 0x1FF).WithGeneration(2).String(),
		},
	}
}

func TestMetadataRoundTrip(t *testing.T) {
	m := sampleMetadata()
	b, err := encodeMetadata(m)
	if err != nil {
		t.Fatal(err)
	}
	got, err := decodeMetadata(b)
	if err != nil || !reflect.DeepEqual(got, m) {
		t.Fatalf("round trip: %+v, %v", got, err)
	}
}

func TestMetadataRejects(t *testing.T) {
	good, _ := encodeMetadata(sampleMetadata())
	mutate := func(f func(m *metadata)) []byte {
		m := sampleMetadata()
		f(&m)
		b, _ := encodeMetadata(m)
		return b
	}
	cases := []struct {
		name string
		b    []byte
	}{
		{"empty", nil},
		{"short", good[:10]},
		{"bad magic", append([]byte("XXXXXXXX"), good[8:]...)},
		{"truncated body", good[:len(good)-1]},
		{"flipped byte", func() []byte { b := append([]byte(nil), good...); b[len(b)-3] ^= 1; return b }()},
		{"dcl below init", mutate(func(m *metadata) { m.DiskConsistentLSN = 0x50; m.Layers = nil })},
		{"cutoff below init", mutate(func(m *metadata) { m.LatestGCCutoff = 0x50 })},
		{"bad ancestor", mutate(func(m *metadata) { m.AncestorTimeline = "xyz" })},
		{"unsorted layers", mutate(func(m *metadata) { m.Layers[0], m.Layers[1] = m.Layers[1], m.Layers[0] })},
		{"bad layer name", mutate(func(m *metadata) { m.Layers = []string{"nonsense"} })},
		{"layer above dcl", mutate(func(m *metadata) { m.DiskConsistentLSN = 0x1F0 })},
	}
	for _, c := range cases {
		if _, err := decodeMetadata(c.b); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: %v, want ErrCorrupt", c.name, err)
		}
	}
}

// FuzzDecodeMetadata: decoding never panics, and whatever decodes encodes
// back to something that decodes to the same value.
func FuzzDecodeMetadata(f *testing.F) {
	good, _ := encodeMetadata(sampleMetadata())
	f.Add(good)
	f.Add(good[:20])
	root, _ := encodeMetadata(metadata{DiskConsistentLSN: 5, Layers: []string{}})
	f.Add(root)
	f.Add([]byte(metadataMagic))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := decodeMetadata(b)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error without ErrCorrupt: %v", err)
			}
			return
		}
		b2, err := encodeMetadata(m)
		if err != nil {
			t.Fatal(err)
		}
		m2, err := decodeMetadata(b2)
		if err != nil || !reflect.DeepEqual(m, m2) {
			t.Fatalf("re-decode: %+v vs %+v, %v", m, m2, err)
		}
	})
}

func TestParseID(t *testing.T) {
	cases := []struct {
		s  string
		ok bool
	}{
		{ID{0xAB, 1}.String(), true},
		{"", false},
		{"AB010000000000000000000000000000", false},
		{"zz010000000000000000000000000000", false},
		{"ab01", false},
	}
	for _, c := range cases {
		id, err := ParseID(c.s)
		if (err == nil) != c.ok || (c.ok && id.String() != c.s) {
			t.Errorf("ParseID(%q) = %s, %v", c.s, id, err)
		}
	}
}
