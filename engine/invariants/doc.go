// Package invariants holds Strata's assertion helper: checks of a structure's
// or a step machine's invariants that run in test, simulator and CI builds and
// compile away in release builds.
//
// Assertions are on by default (go test, go run ./cmd/strata sim, CI) and
// compiled out by the `release` build tag (`go build -tags release ./cmd/...`,
// see docs/architecture.md); the `invariants` tag turns them back on even in a
// release build. Enabled is a constant, so `if invariants.Enabled { … }` around
// an expensive check (a layer map's O(n²) Check) costs nothing in a release
// binary.
//
// A failed assertion panics when Enabled: a broken invariant means the code is
// wrong, and the simulator or test that found it must stop at the spot with
// the seed in hand. In a release build the same call returns an error wrapping
// ErrViolated instead, so a caller that propagates it refuses the operation
// rather than crash a production daemon over a check it was never meant to
// run.
//
// Rules for callers: an assertion never has side effects; its message names
// the structure and the values that disagree; it is placed at a step
// machine's exit or right after an edit of shared structure, where a
// violation is still attributable to the code that caused it.
package invariants
