package invariants

import (
	"errors"
	"strings"
	"testing"
)

func TestCheckHolds(t *testing.T) {
	if err := Check(true, "never %d", 1); err != nil {
		t.Fatalf("Check(true) = %v", err)
	}
	if err := Verify(nil); err != nil {
		t.Fatalf("Verify(nil) = %v", err)
	}
}

func TestCheckFails(t *testing.T) {
	cases := []struct {
		name string
		call func() error
		want string
	}{
		{"check", func() error { return Check(false, "commit %d > flush %d", 5, 4) }, "commit 5 > flush 4"},
		{"verify", func() error { return Verify(errors.New("layermap: overlap")) }, "layermap: overlap"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var got error
			panicked := func() (p bool) {
				defer func() {
					if r := recover(); r != nil {
						p = true
						got, _ = r.(error)
					}
				}()
				got = tc.call()
				return false
			}()
			if panicked != Enabled {
				t.Fatalf("panicked = %v, Enabled = %v", panicked, Enabled)
			}
			if got == nil || !errors.Is(got, ErrViolated) || !strings.Contains(got.Error(), tc.want) {
				t.Fatalf("got %v, want an ErrViolated naming %q", got, tc.want)
			}
		})
	}
}

// TestEnabledInTests pins that go test runs the assertions: a release tag in
// GOFLAGS would silently turn every assertion in the suite off.
func TestEnabledInTests(t *testing.T) {
	if !Enabled {
		t.Fatal("assertions are off in this test build (built with -tags release?); go test must run them")
	}
}
