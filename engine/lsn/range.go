package lsn

import "fmt"

// Range is the half-open LSN range [Start, End).
type Range struct {
	Start, End LSN
}

// Contains reports whether l is in r.
func (r Range) Contains(l LSN) bool { return l >= r.Start && l < r.End }

// Overlaps reports whether r and o share an LSN.
func (r Range) Overlaps(o Range) bool { return r.Start < o.End && o.Start < r.End }

// Empty reports whether r holds no LSN.
func (r Range) Empty() bool { return r.End <= r.Start }

func (r Range) String() string { return fmt.Sprintf("%s..%s", r.Start, r.End) }
