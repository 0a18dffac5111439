package keys

import "testing"

func TestConstructorsLayoutAndClass(t *testing.T) {
	rel := RelTag{SpcNode: 1663, DbNode: 5, RelNode: 16384, ForkNum: ForkMain}
	tests := []struct {
		name  string
		key   Key
		hex   string
		class Class
	}{
		{"rel block", RelBlockKey(rel, 7), "000000067F00000005000040000000000007", ClassRelBlock},
		{"rel size", RelSizeKey(rel), "000000067F000000050000400000FFFFFFFF", ClassRelSize},
		{"init fork block", RelBlockKey(RelTag{1, 2, 3, ForkInit}, 0), "000000000100000002000000030300000000", ClassRelBlock},
		{"db dir", DbDirKey(), "000000000000000000000000000000000000", ClassDbDir},
		{"rel map", RelMapKey(1663, 5), "000000067F00000005000000000000000000", ClassRelMap},
		{"rel dir", RelDirKey(1663, 5), "000000067F00000005000000000000000001", ClassRelDir},
		{"slru dir", SlruDirKey(SlruMultiXactOffset), "010000000200000000000000000000000000", ClassSlruDir},
		{"slru block", SlruBlockKey(SlruClog, 3, 9), "010000000000000001000000030000000009", ClassSlruBlock},
		{"slru size", SlruSizeKey(SlruClog, 3), "0100000000000000010000000300FFFFFFFF", ClassSlruSize},
		{"control file", ControlFileKey(), "030000000000000000000000000000000000", ClassControlFile},
		{"checkpoint", CheckpointKey(), "030000000000000000000000000000000001", ClassCheckpoint},
		{"aux files", AuxFilesKey(), "030000000000000000000000000000000002", ClassAuxFiles},
		{"sparse low", Key{Field1: 0x60, Field6: 9}, "600000000000000000000000000000000009", ClassSparseMetadata},
		{"sparse high", Key{Field1: 0x7F}, "7F0000000000000000000000000000000000", ClassSparseMetadata},
		{"above sparse", Key{Field1: 0x80}, "800000000000000000000000000000000000", ClassUnknown},
		{"field1 02", Key{Field1: 0x02}, "020000000000000000000000000000000000", ClassUnknown},
		{"rel 0 with fork", Key{Field2: 1, Field5: 1}, "000000000100000000000000000100000000", ClassUnknown},
		{"checkpoint-ish 3", Key{Field1: 3, Field6: 3}, "030000000000000000000000000000000003", ClassUnknown},
		{"max", Max, "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF", ClassUnknown},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.key.String(); got != tc.hex {
				t.Errorf("String() = %s, want %s", got, tc.hex)
			}
			if got := ClassOf(tc.key); got != tc.class {
				t.Errorf("ClassOf = %v, want %v", got, tc.class)
			}
			if tc.key.Class() != tc.class {
				t.Errorf("method Class disagrees")
			}
		})
	}
}

func TestRelAccessors(t *testing.T) {
	rel := RelTag{SpcNode: 1663, DbNode: 5, RelNode: 16384, ForkNum: ForkVM}
	k := RelBlockKey(rel, 42)
	if !k.IsRelBlock() || k.IsRelSize() {
		t.Fatalf("IsRelBlock/IsRelSize wrong for %v", k)
	}
	got, ok := k.ToRelTag()
	if !ok || got != rel {
		t.Fatalf("ToRelTag = %v,%v", got, ok)
	}
	if b, ok := k.BlockNumber(); !ok || b != 42 {
		t.Fatalf("BlockNumber = %d,%v", b, ok)
	}
	sk := RelSizeKey(rel)
	if got, ok := sk.ToRelTag(); !ok || got != rel {
		t.Fatalf("size key ToRelTag = %v,%v", got, ok)
	}
	if _, ok := sk.BlockNumber(); ok {
		t.Fatal("size key has no block number")
	}
	if _, ok := CheckpointKey().ToRelTag(); ok {
		t.Fatal("checkpoint key has no rel tag")
	}
	if b, ok := SlruBlockKey(SlruClog, 1, 5).BlockNumber(); !ok || b != 5 {
		t.Fatal("slru block number")
	}
	r := RelKeyRange(rel)
	for _, in := range []Key{RelBlockKey(rel, 0), k, RelBlockKey(rel, MaxBlockNumber), sk} {
		if !r.Contains(in) {
			t.Errorf("RelKeyRange should contain %v", in)
		}
	}
	other := RelTag{SpcNode: 1663, DbNode: 5, RelNode: 16384, ForkNum: ForkInit}
	if r.Contains(RelBlockKey(other, 0)) {
		t.Error("RelKeyRange leaks into the next fork")
	}
}

func TestRelTagOrderMatchesKeyOrder(t *testing.T) {
	tags := []RelTag{
		{0, 0, 1, 0}, {0, 0, 1, 3}, {0, 0, 2, 0}, {0, 1, 0, 0}, {1, 0, 0, 0}, {1, 0, 0, 1},
	}
	for i := 1; i < len(tags); i++ {
		a, b := tags[i-1], tags[i]
		if !a.Less(b) || b.Less(a) || a.Compare(a) != 0 {
			t.Errorf("order of %v, %v wrong", a, b)
		}
		if !RelBlockKey(a, 0).Less(RelBlockKey(b, 0)) {
			t.Errorf("key order disagrees with tag order for %v, %v", a, b)
		}
	}
}

func TestRelTagString(t *testing.T) {
	tests := map[RelTag]string{
		{1663, 5, 16384, ForkMain}: "1663/5/16384",
		{1663, 5, 16384, ForkFSM}:  "1663/5/16384_fsm",
		{1663, 5, 16384, ForkVM}:   "1663/5/16384_vm",
		{1663, 5, 16384, ForkInit}: "1663/5/16384_init",
		{1663, 5, 16384, 9}:        "1663/5/16384_fork9",
	}
	for rel, want := range tests {
		if got := rel.String(); got != want {
			t.Errorf("%#v.String() = %q, want %q", rel, got, want)
		}
	}
}

func TestClassStrings(t *testing.T) {
	seen := map[string]bool{}
	for c := ClassUnknown; c <= ClassSparseMetadata; c++ {
		s := c.String()
		if s == "" || seen[s] {
			t.Errorf("class %d has empty or duplicate name %q", c, s)
		}
		seen[s] = true
	}
	if Class(200).String() != "unknown" {
		t.Error("out-of-range class should print unknown")
	}
}

func TestSparseRange(t *testing.T) {
	r := SparseRange()
	for _, tc := range []struct {
		k    Key
		want bool
	}{{Key{Field1: 0x5F, Field6: 0xFFFFFFFF}, false}, {Key{Field1: 0x60}, true}, {Key{Field1: 0x7F, Field6: 0xFFFFFFFF}, true}, {Key{Field1: 0x80}, false}} {
		if r.Contains(tc.k) != tc.want || tc.k.IsSparse() != tc.want {
			t.Errorf("%v: Contains %v, IsSparse %v, want %v", tc.k, r.Contains(tc.k), tc.k.IsSparse(), tc.want)
		}
	}
}
