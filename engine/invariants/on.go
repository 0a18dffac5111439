//go:build !release || invariants

package invariants

// Enabled reports whether assertions run: true unless the binary was built
// with the release tag (and without the invariants tag).
const Enabled = true
