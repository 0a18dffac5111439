// Package detlint holds Strata's determinism analyzer: a
// golang.org/x/tools/go/analysis pass that reports, with file and line, every
// construct in engine/ and nodes/ that would let real concurrency, real time,
// global randomness, the host's OS or network, map iteration order, or
// mutable package state leak into behaviour the simulator must be able to
// replay from a seed (docs/architecture.md, Determinism rules).
//
// The lint runs inside `go test ./...` (TestDeterminismLint in this package),
// so a violation fails the ordinary test run rather than a separate tool.
// TestLayering, beside it, checks the import table of docs/architecture.md,
// and TestCitations that every file the code and docs cite is in the
// repository (docs/architecture.md, Citations).
//
// Rules (each finding names the seam to use instead):
//
//   - `go` statements and (*sync.WaitGroup).Go: start tasks with clock.Clock.Go.
//   - channel types (anywhere: declarations, make, conversions, signatures),
//     send and receive operations, range over a channel, close of a channel,
//     and `select`: use clock.Chan and the clock package's Select.
//   - time.Now/Sleep/After/AfterFunc/NewTimer/NewTicker/Tick/Since/Until and
//     context.WithTimeout/WithDeadline/WithCancel/WithCancelCause/
//     WithTimeoutCause/WithDeadlineCause/AfterFunc: they read the real clock,
//     arm real timers or spawn goroutines; the clock package has versions the
//     simulator controls.
//   - top-level functions of math/rand and math/rand/v2 other than the
//     New* constructors (rand.New(rand.NewPCG(seed1, seed2)) is the way to get
//     a seeded source; node.Env carries one), any use of crypto/rand, and the
//     random constructors of github.com/google/uuid.
//   - imports and uses of os, os/exec, os/signal, the standard library's net,
//     net/http and syscall (this module's own github.com/stratadb/strata/net is
//     the transport seam and is allowed).
//   - every `for range` over a map, and maps.Keys/Values/All except as the
//     direct argument of slices.Sorted/SortedFunc/SortedStableFunc or
//     maps.Collect/Insert: map order is randomised by the runtime, so code
//     sorts keys first (slices.Sorted(maps.Keys(m))).
//   - package-level `var` declarations, except error sentinels made with
//     errors.New or fmt.Errorf and blank `var _ I = T{}` assertions: loggers,
//     registries and caches belong to a node, or two simulated nodes share them.
//     Generated files (a "// Code generated ... DO NOT EDIT." header, e.g.
//     protoc output) are exempt from this one rule: their variables are the
//     protobuf runtime's init-time descriptor tables.
//
// Scope: only packages whose import path is under
// github.com/stratadb/strata/engine or github.com/stratadb/strata/nodes are
// checked; the analyzer reports nothing elsewhere (see InScope).
//
// Escape hatch: a comment `//strata:nondeterministic <reason>` on the
// finding's line or the line above suppresses it. The reason is mandatory; a
// missing one is itself a finding (and suppresses nothing), as is the
// misspelt `// strata:nondeterministic` with a space, which Go tooling would
// not treat as a directive. An escape comment that suppresses nothing is a
// finding too, so stale ones do not pile up. The analyzer's Result lists every escape comment
// so the lint test can report how many there are.
package detlint
