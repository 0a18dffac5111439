package objstore

import (
	"errors"
	"io/fs"
	"strings"
	"testing"
)

func TestEscSegmentRoundTrip(t *testing.T) {
	for _, s := range []string{"", ".", "..", "a b", "100%", "x/y", "ünï", "A-z_0.9", "\x01\xff", "%41"} {
		e := escSegment(s)
		if !fs.ValidPath("d"+e) || strings.Contains(e, "/") {
			t.Errorf("escSegment(%q) = %q is not a valid path element", s, e)
		}
		got, ok := unescSegment(e)
		if !ok || got != s {
			t.Errorf("unescSegment(escSegment(%q)) = %q, %v", s, got, ok)
		}
	}
	for _, bad := range []string{"%", "%4", "%ZZ"} {
		if _, ok := unescSegment(bad); ok {
			t.Errorf("unescSegment(%q) accepted", bad)
		}
	}
}

func TestKeyPath(t *testing.T) {
	tests := []struct {
		key, dir, file string
		err            error
	}{
		{"a", "r", "oa", nil},
		{"a/b", "r/da", "ob", nil},
		{"a/", "r/da", "o", nil},
		{"/a", "r/d", "oa", nil},
		{"../x", "r/d..", "ox", nil},
		{"tenants/x/timelines/y/000-000__0000-00000001", "r/dtenants/dx/dtimelines/dy", "o000-000__0000-00000001", nil},
		{"", "", "", ErrPermanent},
		{strings.Repeat("k", MaxKeyBytes+1), "", "", ErrPermanent},
		{strings.Repeat("k", 300), "", "", ErrPermanent},
		{"a\x00b", "", "", ErrPermanent},
	}
	for _, tc := range tests {
		dir, file, err := keyPath("r", tc.key)
		if !errors.Is(err, tc.err) && !(err == nil && tc.err == nil) {
			t.Errorf("keyPath(%q) err = %v, want %v", tc.key, err, tc.err)
			continue
		}
		if err == nil && (dir != tc.dir || file != tc.file) {
			t.Errorf("keyPath(%q) = %q, %q; want %q, %q", tc.key, dir, file, tc.dir, tc.file)
		}
	}
}

func FuzzEscSegment(f *testing.F) {
	for _, s := range []string{"", "a", "%", "a/b", "..", "\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		e := escSegment(s)
		if strings.ContainsAny(e, "/\x00") {
			t.Fatalf("escSegment(%q) = %q", s, e)
		}
		got, ok := unescSegment(e)
		if !ok || got != s {
			t.Fatalf("round trip of %q gave %q, %v", s, got, ok)
		}
		// Decoding arbitrary input must never panic.
		unescSegment(s)
	})
}
