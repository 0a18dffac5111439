// Package scenarios is the registry of simulation scenarios: one list, built
// in one place (All), so `strata sim` and `go test` see the same set. It
// holds no mutable state; each call builds fresh Scenario values.
//
// The tests here are the CI sweep: every scenario runs seeds
// 1..Scenario.CISeeds, a sample of seeds is checked for determinism, and
// each planted bug must be caught within Scenario.BugSeeds seeds.
package scenarios
