//go:build release && !invariants

package invariants

// Enabled reports whether assertions run: false in a release build.
const Enabled = false
