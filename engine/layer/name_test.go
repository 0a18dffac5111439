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
		// local: s is Neon's local form (LocalFileName), not String.
		local bool
	}{
		{k0 + "-" + kF + "__0000000001696070-00000000016960E9", KindDelta, lsn.Range{Start: 0x1696070, End: 0x16960E9}, GenerationNone, "", false},
		{k0 + "-" + kF + "__0000000001696070-00000000016960E9-0000000a", KindDelta, lsn.Range{Start: 0x1696070, End: 0x16960E9}, 10, k0 + "-" + kF + "__0000000001696070-00000000016960E9", false},
		{k1 + "-" + kF + "__00000000016960E8", KindImage, lsn.Range{Start: 0x16960E8, End: 0x16960E9}, GenerationNone, "", false},
		{k1 + "-" + kF + "__00000000016960E8-ffffffff", KindImage, lsn.Range{Start: 0x16960E8, End: 0x16960E9}, 0xFFFFFFFF, k1 + "-" + kF + "__00000000016960E8", false},
		// Neon's local file form, "<layer name>-v1-<gen 08x>".
		{k0 + "-" + kF + "__0000000001696070-00000000016960E9-v1-00000001", KindDelta, lsn.Range{Start: 0x1696070, End: 0x16960E9}, 1, k0 + "-" + kF + "__0000000001696070-00000000016960E9", true},
		{k1 + "-" + kF + "__00000000016960E8-v1-0000000a", KindImage, lsn.Range{Start: 0x16960E8, End: 0x16960E9}, 10, k1 + "-" + kF + "__00000000016960E8", true},
		// Names whose part count fits both kinds: the digit count decides.
		// An image with a generation has an 8-digit part after its LSN, a
		// delta a 16-digit one.
		{k0 + "-" + kF + "__0000000001696070-00000001", KindImage, lsn.Range{Start: 0x1696070, End: 0x1696071}, 1, k0 + "-" + kF + "__0000000001696070", false},
		{k0 + "-" + kF + "__0000000001696070-0000000100000001", KindDelta, lsn.Range{Start: 0x1696070, End: 0x100000001}, GenerationNone, "", false},
		// Delta with a generation vs image in the local form: both have
		// three parts after the LSN's start.
		{k0 + "-" + kF + "__0000000000000001-0000000000000002-0000000b", KindDelta, lsn.Range{Start: 1, End: 2}, 11, k0 + "-" + kF + "__0000000000000001-0000000000000002", false},
		{k0 + "-" + kF + "__0000000000000001-v1-0000000b", KindImage, lsn.Range{Start: 1, End: 2}, 11, k0 + "-" + kF + "__0000000000000001", true},
	}
	for _, tc := range tests {
		n, err := ParseName(tc.s)
		if err != nil {
			t.Fatalf("ParseName(%q): %v", tc.s, err)
		}
		if n.Kind != tc.kind || n.LSNRange != tc.lsns || n.Generation != tc.gen {
			t.Errorf("ParseName(%q) = %+v", tc.s, n)
		}
		formatted := n.String()
		if tc.local {
			formatted = n.LocalFileName()
		}
		if formatted != tc.s {
			t.Errorf("formatted back as %q, want %q", formatted, tc.s)
		}
		if again, err := ParseName(n.String()); err != nil || again != n {
			t.Errorf("ParseName(String()) = %+v, %v; want %+v", again, err, n)
		}
		if again, err := ParseName(n.LocalFileName()); err != nil || again != n {
			t.Errorf("ParseName(LocalFileName()) = %+v, %v; want %+v", again, err, n)
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
		{"local without gen", k0 + "-" + kF + "__00000000016960E8-v1"},
		{"local trailing dash", k0 + "-" + kF + "__00000000016960E8-v1-"},
		{"local zero gen", k0 + "-" + kF + "__00000000016960E8-v1-00000000"},
		{"local upper-case gen", k0 + "-" + kF + "__00000000016960E8-v1-0000000A"},
		{"local upper-case v", k0 + "-" + kF + "__00000000016960E8-V1-0000000a"},
		{"local other version", k0 + "-" + kF + "__00000000016960E8-v2-0000000a"},
		{"local gen twice", k0 + "-" + kF + "__00000000016960E8-v1-0000000a-0000000a"},
		{"local 16-digit gen", k0 + "-" + kF + "__00000000016960E8-v1-000000000000000a"},
		{"v1 before the lsn end", k0 + "-" + kF + "__0000000000000001-v1-0000000000000002"},
		{"gen and local gen", k0 + "-" + kF + "__0000000000000001-0000000a-v1-0000000a"},
		{"lower-case 16-digit part", k0 + "-" + kF + "__0000000000000001-000000000000000a"},
		{"12-digit part", k0 + "-" + kF + "__0000000000000001-00000000000a"},
		{"local image at max", k0 + "-" + kF + "__FFFFFFFFFFFFFFFF-v1-00000001"},
		{"local empty lsn range", k0 + "-" + kF + "__0000000000000010-0000000000000010-v1-00000001"},
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
	if d.LocalFileName() != k0+"-"+kF+"__0000000000000001-0000000000000002-v1-00000003" {
		t.Fatalf("LocalFileName = %q", d.LocalFileName())
	}
	if i.LocalFileName() != i.String() {
		t.Fatalf("LocalFileName without generation = %q, want the legacy %q", i.LocalFileName(), i.String())
	}
	if GenerationNone.String() != "none" || Generation(10).String() != "0000000a" {
		t.Fatal("Generation.String")
	}
}

// FuzzParseName: ParseName never panics, every accepted name formats back to
// the same string (through String, or LocalFileName for Neon's local form),
// and every rejection is ErrBadName.
func FuzzParseName(f *testing.F) {
	f.Add(k0 + "-" + kF + "__0000000001696070-00000000016960E9")
	f.Add(k0 + "-" + kF + "__0000000001696070-00000000016960E9-00000001")
	f.Add(k1 + "-" + kF + "__00000000016960E8")
	f.Add(k1 + "-" + kF + "__00000000016960E8-ffffffff")
	f.Add(k0 + "-" + kF + "__0000000001696070-00000000016960E9-v1-00000001")
	f.Add(k1 + "-" + kF + "__00000000016960E8-v1-ffffffff")
	f.Add(k0 + "-" + kF + "__0000000001696070-0000000100000001") // 16 digits: a delta
	f.Add(k0 + "-" + kF + "__0000000001696070-00000001")         // 8 digits: an image's generation
	f.Add(k0 + "-" + kF + "__0000000001696070-v1-")
	f.Add(k0 + "-" + kF + "__0000000001696070-v1")
	f.Add(k0 + "-" + kF + "__-")
	f.Add("garbage")
	f.Fuzz(func(t *testing.T, s string) {
		n, err := ParseName(s)
		if err != nil {
			if !errors.Is(err, ErrBadName) {
				t.Fatalf("unclassified error %v", err)
			}
			return
		}
		if n.String() != s && n.LocalFileName() != s {
			t.Fatalf("round trip: %q -> %q / %q", s, n.String(), n.LocalFileName())
		}
		for _, form := range []string{n.String(), n.LocalFileName()} {
			again, err := ParseName(form)
			if err != nil || again != n {
				t.Fatalf("reparse %q: %+v, %v", form, again, err)
			}
		}
	})
}
