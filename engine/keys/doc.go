// Package keys holds Strata's page-key model, bit-identical to Neon's:
// the 18-byte Key, its 36-hex text form, RelTag, key ranges, and the
// constructors and classifiers for relation blocks, relation sizes and
// metadata keys (docs/neon-compat.md, Keys).
//
// Invariants: Key order equals the order of Key.Bytes(); Parse(k.String())
// == k; a Range is half-open.
package keys
