package pageserver

import (
	"fmt"
	"sync"
	"time"

	"github.com/stratadb/strata/engine/lsn"
)

// MaxLeasesPerTimeline bounds the LSN leases a timeline holds; one more is
// refused (ResourceExhausted) until some expire.
const MaxLeasesPerTimeline = 1024

// leaseSet is a timeline's LSN leases: GC keeps what reads at a leased LSN
// need until the lease expires. Expiry is on the node's monotonic clock.
type leaseSet struct {
	mu     sync.Mutex
	expiry map[lsn.LSN]time.Duration
}

// grant leases at until the monotonic time until (extending an existing
// lease, never shortening it).
func (s *leaseSet) grant(at lsn.LSN, now, until time.Duration) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.expiry == nil {
		s.expiry = map[lsn.LSN]time.Duration{}
	}
	s.pruneLocked(now)
	if _, ok := s.expiry[at]; !ok && len(s.expiry) >= MaxLeasesPerTimeline {
		return fmt.Errorf("%w: %d LSN leases, limit %d", ErrBusy, len(s.expiry), MaxLeasesPerTimeline)
	}
	s.expiry[at] = max(s.expiry[at], until)
	return nil
}

func (s *leaseSet) pruneLocked(now time.Duration) {
	for l, exp := range s.expiry { //strata:nondeterministic deleting expired entries; the result does not depend on order
		if exp <= now {
			delete(s.expiry, l)
		}
	}
}

// min returns the lowest unexpired leased LSN.
func (s *leaseSet) min(now time.Duration) (lsn.LSN, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pruneLocked(now)
	var lo lsn.LSN
	found := false
	for l := range s.expiry { //strata:nondeterministic a minimum does not depend on order
		if !found || l < lo {
			lo, found = l, true
		}
	}
	return lo, found
}
