package lsn

import "testing"

func TestRange(t *testing.T) {
	r := Range{Start: 10, End: 20}
	tests := []struct {
		l    LSN
		want bool
	}{{9, false}, {10, true}, {19, true}, {20, false}}
	for _, tc := range tests {
		if got := r.Contains(tc.l); got != tc.want {
			t.Errorf("Contains(%d) = %v", tc.l, got)
		}
	}
	if !r.Overlaps(Range{19, 30}) || r.Overlaps(Range{20, 30}) || r.Overlaps(Range{0, 10}) {
		t.Error("Overlaps wrong at the edges")
	}
	if r.Empty() || !(Range{5, 5}).Empty() {
		t.Error("Empty wrong")
	}
	if got := r.String(); got != "0/A..0/14" {
		t.Errorf("String = %q", got)
	}
}
