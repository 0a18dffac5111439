package layer

import (
	"errors"
	"strings"
	"testing"

	"github.com/stratadb/strata/engine/keys"
	"github.com/stratadb/strata/engine/lsn"
)

const (
	k0 = "000000000000000000000000000000000000"
	k1 = "000000067F00000005000040000000000007"
	kF = "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF"
)

func TestParseNameValid(t *testing.T) {
	tests := []struct {
		s      string
		kind   Kind
		lsns   lsn.Range
		gen    Generation
		layerN string
	}{
		{k0 + "-" + kF + "__0000000001696070-00000000016960E9", KindDelta, lsn.Range{Start: 0x1696070, End: 0x16960E9}, GenerationNone, ""},
		{k0 + "-" + kF + "__0000000001696070-00000000016960E9-0000000a", KindDelta, lsn.Range{Start: 0x1696070, End: 0x16960E9}, 10, k0 + "-" + kF + "__0000000001696070-00000000016960E9"},
		{k1 + "-" + kF + "__00000000016960E8", KindImage, lsn.Range{Start: 0x16960E8, End: 0x16960E9}, GenerationNone, ""},
		{k1 + "-" + kF + "__00000000016960E8-ffffffff", KindImage, lsn.Range{Start: 0x16960E8, End: 0x16960E9}, 0xFFFFFFFF, k1 + "-" + kF + "__00000000016960E8"},
	}
	for _, tc := range tests {
		n, err := ParseName(tc.s)
		if err != nil {
			t.Fatalf("ParseName(%q): %v", tc.s, err)
		}
		if n.Kind != tc.kind || n.LSNRange != tc.lsns || n.Generation != tc.gen {
			t.Errorf("ParseName(%q) = %+v", tc.s, n)
		}
		if n.String() != tc.s {
			t.Errorf("String() = %q, want %q", n.String(), tc.s)
		}
		want := tc.layerN
		if want == "" {
			want = tc.s
		}
		if n.LayerName() != want {
			t.Errorf("LayerName() = %q, want %q", n.LayerName(), want)
		}
	}
}

func TestParseNameInvalid(t *testing.T) {
	tests := []struct{ name, s string }{
		{"empty", ""},
		{"no lsn", k0 + "-" + kF + "__"},
		{"lower-case key", strings.ToLower(k1) + "-" + kF + "__00000000016960E8"},
		{"lower-case lsn", k0 + "-" + kF + "__00000000016960e8"},
		{"upper-case gen", k0 + "-" + kF + "__00000000016960E8-0000000A"},
		{"zero gen", k0 + "-" + kF + "__00000000016960E8-00000000"},
		{"short gen", k0 + "-" + kF + "__00000000016960E8-0a"},
		{"empty key range", kF + "-" + kF + "__00000000016960E8"},
		{"reversed keys", kF + "-" + k0 + "__00000000016960E8"},
		{"empty lsn range", k0 + "-" + kF + "__0000000000000010-0000000000000010"},
		{"reversed lsns", k0 + "-" + kF + "__0000000000000011-0000000000000010"},
		{"image at max", k0 + "-" + kF + "__FFFFFFFFFFFFFFFF"},
		{"too many parts", k0 + "-" + kF + "__0000000000000001-0000000000000002-00000001-00000001"},
		{"short lsn", k0 + "-" + kF + "__16960E8"},
		{"bad separator", k0 + "_" + kF + "__00000000016960E8"},
		{"one underscore", k0 + "-" + kF + "_00000000016960E8"},
		{"trailing dash", k0 + "-" + kF + "__00000000016960E8-"},
		{"not hex", k0 + "-" + kF + "__00000000016960EG"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseName(tc.s)
			if !errors.Is(err, ErrBadName) {
				t.Fatalf("ParseName(%q) = %v, want ErrBadName", tc.s, err)
			}
		})
	}
}

func TestNameConstructors(t *testing.T) {
	kr := keys.Range{Start: keys.Min, End: keys.Max}
	d := DeltaName(kr, lsn.Range{Start: 1, End: 2}).WithGeneration(3)
	if d.Kind != KindDelta || !d.IsDelta() || d.String() != k0+"-"+kF+"__0000000000000001-0000000000000002-00000003" {
		t.Fatalf("DeltaName = %v", d)
	}
	i := ImageName(kr, 0x20)
	if i.LSN() != 0x20 || i.LSNRange.End != 0x21 || i.IsDelta() {
		t.Fatalf("ImageName = %+v", i)
	}
	if GenerationNone.String() != "none" || Generation(10).String() != "0000000a" {
		t.Fatal("Generation.String")
	}
}

// FuzzParseName: ParseName never panics, every accepted name formats back to
// the same string, and every rejection is ErrBadName.
func FuzzParseName(f *testing.F) {
	f.Add(k0 + "-" + kF + "__0000000001696070-00000000016960E9")
	f.Add(k0 + "-" + kF + "__0000000001696070-00000000016960E9-00000001")
	f.Add(k1 + "-" + kF + "__00000000016960E8")
	f.Add(k1 + "-" + kF + "__00000000016960E8-ffffffff")
	f.Add("garbage")
	f.Fuzz(func(t *testing.T, s string) {
		n, err := ParseName(s)
		if err != nil {
			if !errors.Is(err, ErrBadName) {
				t.Fatalf("unclassified error %v", err)
			}
			return
		}
		if n.String() != s {
			t.Fatalf("round trip: %q -> %q", s, n.String())
		}
		again, err := ParseName(n.String())
		if err != nil || again != n {
			t.Fatalf("reparse: %+v, %v", again, err)
		}
	})
}
