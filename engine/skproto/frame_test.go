package skproto

import (
	"bytes"
	"errors"
	"testing"
)

func TestFrameRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name     string
		payloads []string
	}{
		{"empty", nil},
		{"one", []string{"hello"}},
		{"several", []string{"a", "", "bcd", string(make([]byte, 1000))}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b []byte
			for _, p := range tc.payloads {
				b = AppendFrame(b, []byte(p))
			}
			if got := ValidPrefix(b); got != len(b) {
				t.Fatalf("ValidPrefix = %d, want %d", got, len(b))
			}
			got, err := SplitFrames(b)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tc.payloads) {
				t.Fatalf("got %d frames, want %d", len(got), len(tc.payloads))
			}
			for i := range got {
				if string(got[i]) != tc.payloads[i] {
					t.Fatalf("frame %d = %q", i, got[i])
				}
			}
		})
	}
}

func TestFrameCorruption(t *testing.T) {
	b := AppendFrame(nil, []byte("first"))
	good := len(b)
	b = AppendFrame(b, []byte("second"))
	for _, tc := range []struct {
		name string
		mut  func([]byte) []byte
	}{
		{"flipped payload bit", func(b []byte) []byte { b[good+FrameHeaderBytes] ^= 1; return b }},
		{"torn tail", func(b []byte) []byte { return b[:len(b)-2] }},
		{"huge length", func(b []byte) []byte { b[good+3] = 0xff; return b }},
		{"zeroed", func(b []byte) []byte {
			for i := good; i < len(b); i++ {
				b[i] = 0
			}
			return b
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := tc.mut(bytes.Clone(b))
			if got := ValidPrefix(m); got != good {
				t.Fatalf("ValidPrefix = %d, want %d", got, good)
			}
			if _, err := SplitFrames(m); !errors.Is(err, ErrFrame) {
				t.Fatalf("SplitFrames err = %v, want ErrFrame", err)
			}
		})
	}
}

func FuzzFrames(f *testing.F) {
	f.Add(AppendFrame(AppendFrame(nil, []byte("x")), []byte("yz")))
	f.Add([]byte{1, 2, 3})
	f.Add(make([]byte, 16))
	f.Fuzz(func(t *testing.T, b []byte) {
		n := ValidPrefix(b)
		if n > len(b) {
			t.Fatalf("prefix %d beyond input %d", n, len(b))
		}
		ps, err := SplitFrames(b[:n])
		if err != nil {
			t.Fatalf("valid prefix does not split: %v", err)
		}
		var re []byte
		for _, p := range ps {
			re = AppendFrame(re, p)
		}
		if !bytes.Equal(re, b[:n]) {
			t.Fatal("re-encoding differs")
		}
	})
}
