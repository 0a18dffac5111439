package pageserver

import (
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/stratadb/strata/engine/lsn"
	"github.com/stratadb/strata/nodes/broker/brokerapi"
)

// WALReceiverConfig configures how a timeline picks and follows a
// safekeeper. Zero fields take the defaults named beside them.
type WALReceiverConfig struct {
	// BrokerAddr is the broker the receivers ask for safekeepers. Empty: no
	// WAL receivers run (timelines are fed some other way, e.g. in tests).
	BrokerAddr string
	// PollInterval is how often a receiver asks the broker. Default 1s.
	PollInterval time.Duration
	// CandidateMaxAge drops safekeepers the broker has not heard from for
	// this long. Default 10s.
	CandidateMaxAge time.Duration
	// StallTimeout switches away from a safekeeper that sent nothing for
	// this long while another reports WAL we lack. Default 10s.
	StallTimeout time.Duration
	// MaxLagBytes switches to another safekeeper whose commit LSN is this
	// far ahead of what the current one delivered. Default 1 GiB.
	MaxLagBytes uint64
	// BackoffInitial, BackoffMax: a safekeeper that failed is not retried
	// for BackoffInitial, growing ×1.5 per failure up to BackoffMax.
	// Defaults 100ms and 15s.
	BackoffInitial, BackoffMax time.Duration
	// CallTimeout bounds dialling and broker calls. Default 5s.
	CallTimeout time.Duration
	// FeedbackInterval is how often a receiver reports its progress
	// (last_record_lsn, disk_consistent_lsn, remote_consistent_lsn) to the
	// safekeeper it streams from. Default 1s.
	FeedbackInterval time.Duration
}

// Defaults of WALReceiverConfig.
const (
	DefaultWALPollInterval  = time.Second
	DefaultCandidateMaxAge  = 10 * time.Second
	DefaultStallTimeout     = 10 * time.Second
	DefaultMaxLagBytes      = 1 << 30
	DefaultBackoffInitial   = 100 * time.Millisecond
	DefaultBackoffMax       = 15 * time.Second
	DefaultWALCallTimeout   = 5 * time.Second
	DefaultFeedbackInterval = time.Second
	backoffGrowth           = 1.5
)

func (c WALReceiverConfig) withDefaults() WALReceiverConfig {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&c.PollInterval, DefaultWALPollInterval)
	def(&c.CandidateMaxAge, DefaultCandidateMaxAge)
	def(&c.StallTimeout, DefaultStallTimeout)
	def(&c.BackoffInitial, DefaultBackoffInitial)
	def(&c.BackoffMax, DefaultBackoffMax)
	def(&c.CallTimeout, DefaultWALCallTimeout)
	def(&c.FeedbackInterval, DefaultFeedbackInterval)
	if c.MaxLagBytes == 0 {
		c.MaxLagBytes = DefaultMaxLagBytes
	}
	return c
}

// Validate reports an unusable configuration.
func (c WALReceiverConfig) Validate() error {
	c = c.withDefaults()
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"PollInterval", c.PollInterval}, {"CandidateMaxAge", c.CandidateMaxAge}, {"StallTimeout", c.StallTimeout},
		{"BackoffInitial", c.BackoffInitial}, {"BackoffMax", c.BackoffMax}, {"CallTimeout", c.CallTimeout},
		{"FeedbackInterval", c.FeedbackInterval}} {
		if d.v < 0 {
			return fmt.Errorf("%w: WALReceiver.%s %v < 0", ErrConfig, d.name, d.v)
		}
	}
	if c.BackoffMax < c.BackoffInitial {
		return fmt.Errorf("%w: WALReceiver.BackoffMax %v below BackoffInitial %v", ErrConfig, c.BackoffMax, c.BackoffInitial)
	}
	return nil
}

// candidate is one safekeeper as the broker last described it.
type candidate struct {
	id     string
	addr   string
	commit lsn.LSN
	seen   time.Duration // when the broker last heard from it (our clock)
}

type backoff struct {
	until time.Duration
	next  time.Duration
}

// selector is the WAL receiver's choice of safekeeper, as a pure state
// machine: it is fed broker answers, connection failures and successes,
// and answers which safekeeper to stream from and when to switch.
type selector struct {
	cfg     WALReceiverConfig
	cands   map[string]candidate
	backoff map[string]backoff
}

func newSelector(cfg WALReceiverConfig) *selector {
	return &selector{cfg: cfg.withDefaults(), cands: map[string]candidate{}, backoff: map[string]backoff{}}
}

// observe records a broker answer received at now.
func (s *selector) observe(now time.Duration, infos []*brokerapi.SafekeeperTimelineInfo) {
	for _, in := range infos {
		age := time.Duration(in.GetAgeMs()) * time.Millisecond
		c := candidate{id: in.GetSafekeeperId(), addr: in.GetConnectionString(), commit: lsn.LSN(in.GetCommitLsn()), seen: now - age}
		if old, ok := s.cands[c.id]; ok && old.seen > c.seen {
			continue
		}
		s.cands[c.id] = c
	}
}

// best is the candidate to stream from: heard from recently, with an
// address and a commit LSN, not backing off; the highest commit LSN wins,
// ties going to the lowest id.
func (s *selector) best(now time.Duration) (candidate, bool) {
	var out candidate
	found := false
	for _, id := range slices.Sorted(maps.Keys(s.cands)) {
		c := s.cands[id]
		if now-c.seen > s.cfg.CandidateMaxAge || c.addr == "" || c.commit == 0 || now < s.backoff[id].until {
			continue
		}
		if !found || c.commit > out.commit {
			out, found = c, true
		}
	}
	return out, found
}

// failed puts a safekeeper in back-off after a failed or abandoned
// connection.
func (s *selector) failed(id string, now time.Duration) time.Duration {
	b := s.backoff[id]
	if b.next == 0 {
		b.next = s.cfg.BackoffInitial
	}
	b.until = now + b.next
	wait := b.next
	b.next = min(time.Duration(float64(b.next)*backoffGrowth), s.cfg.BackoffMax)
	s.backoff[id] = b
	return wait
}

// succeeded clears a safekeeper's back-off once it delivered WAL.
func (s *selector) succeeded(id string) { delete(s.backoff, id) }

// switchReason says why the receiver should leave safekeeper cur, which
// delivered up to received and last sent data at lastData; "" to stay.
func (s *selector) switchReason(now time.Duration, cur string, received lsn.LSN, lastData time.Duration) string {
	b, ok := s.best(now)
	if !ok {
		return ""
	}
	if now-lastData >= s.cfg.StallTimeout && b.commit > received {
		return fmt.Sprintf("stalled: nothing from %s for %v while %s reports commit %s (have %s)", cur, now-lastData, b.id, b.commit, received)
	}
	if b.id != cur && b.commit >= received && uint64(b.commit-received) >= s.cfg.MaxLagBytes {
		return fmt.Sprintf("lagging: %s reports commit %s, %d bytes past %s from %s", b.id, b.commit, b.commit-received, received, cur)
	}
	return ""
}
