package remote

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"time"

	"github.com/stratadb/strata/clock"
	"github.com/stratadb/strata/disk/objstore"
)

// The download retry policy's defaults (docs/remote-storage.md, Download
// retries).
const (
	// DefaultMaxRetries: a download is tried at most 1 + 10 times.
	DefaultMaxRetries = 10
	// DefaultInfoFailures: the first 3 failures are logged at info (a
	// blip), later ones at warn (something is wrong).
	DefaultInfoFailures = 3
	// DefaultBackoffBase: after the n-th consecutive failure (n ≥ 1) the
	// retry waits BackoffBase^n seconds; the first retry is immediate.
	DefaultBackoffBase = 1.1
	// DefaultBackoffCap bounds each wait.
	DefaultBackoffCap = 3 * time.Second
)

// RetryConfig is the download retry policy. Zero fields take the defaults
// above.
type RetryConfig struct {
	// MaxRetries is how many times a failed download is retried (so at
	// most MaxRetries+1 attempts). Default DefaultMaxRetries.
	MaxRetries int
	// InfoFailures is how many failures are logged at info before later
	// ones are logged at warn. Default DefaultInfoFailures.
	InfoFailures int
	// BackoffBase (≥ 1, seconds per failure, compounded) makes the wait
	// grow with each failure. Default DefaultBackoffBase.
	BackoffBase float64
	// BackoffCap bounds a single wait. Default DefaultBackoffCap.
	BackoffCap time.Duration
}

func (c RetryConfig) withDefaults() RetryConfig {
	if c.MaxRetries == 0 {
		c.MaxRetries = DefaultMaxRetries
	}
	if c.InfoFailures == 0 {
		c.InfoFailures = DefaultInfoFailures
	}
	if c.BackoffBase == 0 {
		c.BackoffBase = DefaultBackoffBase
	}
	if c.BackoffCap == 0 {
		c.BackoffCap = DefaultBackoffCap
	}
	return c
}

// Validate reports a configuration that cannot be applied. It does not
// change c.
func (c RetryConfig) Validate() error {
	c = c.withDefaults()
	switch {
	case c.MaxRetries < 0:
		return fmt.Errorf("%w: MaxRetries %d is negative", ErrConfig, c.MaxRetries)
	case c.InfoFailures < 0:
		return fmt.Errorf("%w: InfoFailures %d is negative", ErrConfig, c.InfoFailures)
	case math.IsNaN(c.BackoffBase) || math.IsInf(c.BackoffBase, 0) || c.BackoffBase < 1:
		return fmt.Errorf("%w: BackoffBase %v must be a finite number ≥ 1 (the wait must not shrink)", ErrConfig, c.BackoffBase)
	case c.BackoffCap < 0:
		return fmt.Errorf("%w: BackoffCap %v is negative", ErrConfig, c.BackoffCap)
	}
	return nil
}

// Backoff is the wait before the retry that follows the failures-th
// consecutive failure: none after the first (failures ≤ 1: a single blip
// is retried at once), then BackoffBase^(failures-1) seconds, at most
// BackoffCap. With the defaults: 0, 1.1 s, 1.21 s, … 2.36 s before the
// tenth retry; all ten retries wait 14.9 s in total.
func (c RetryConfig) Backoff(failures int) time.Duration {
	c = c.withDefaults()
	if failures <= 1 {
		return 0
	}
	secs := math.Pow(c.BackoffBase, float64(failures-1))
	if secs*float64(time.Second) >= float64(c.BackoffCap) {
		return c.BackoffCap
	}
	return time.Duration(secs * float64(time.Second))
}

// NotFound says how a download treats objstore.ErrNotFound.
type NotFound uint8

const (
	// NotFoundFinal (the default): not found is an answer, returned at
	// once. Right for probing (is there an index of this generation?).
	NotFoundFinal NotFound = iota
	// NotFoundRetry: not found is retried like a transient error. Only for
	// an object the caller knows exists (one its index names), where a
	// miss is a stale read.
	NotFoundRetry
)

// Retrier runs downloads under a RetryConfig, sleeping on a clock and
// logging each failure.
type Retrier struct {
	clk clock.Clock
	log *slog.Logger
	cfg RetryConfig
}

// NewRetrier returns a Retrier. log may be nil (no logging).
func NewRetrier(clk clock.Clock, log *slog.Logger, cfg RetryConfig) (*Retrier, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if clk == nil {
		return nil, fmt.Errorf("%w: NewRetrier needs a clock", ErrConfig)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Retrier{clk: clk, log: log, cfg: cfg}, nil
}

// Config is the policy r applies (defaults filled in).
func (r *Retrier) Config() RetryConfig { return r.cfg }

// retryable reports whether err is worth another attempt: a throttled or
// transient store error, or not found when the caller asked. Everything
// else — objstore.ErrPermanent, a failed precondition, and any error that
// is not the store's (a corrupt body, the caller's own checks) — would
// fail the same way again.
func retryable(err error, nf NotFound) bool {
	return objstore.Retryable(err) || nf == NotFoundRetry && errors.Is(err, objstore.ErrNotFound)
}

// Do runs op until it succeeds, fails with an error that is not retryable
// (returned at once, wrapped with what), or has failed MaxRetries+1 times
// (ErrRetriesExhausted, wrapping the last error, naming what and the
// attempt count). what names the operation and its key for the logs and
// errors ("get tenants/…/index_part.json-00000005"). Waits follow
// RetryConfig.Backoff; a cancelled ctx stops at once with ctx's error.
func (r *Retrier) Do(ctx context.Context, what string, nf NotFound, op func(ctx context.Context) error) error {
	attempts := r.cfg.MaxRetries + 1
	for failures := 0; ; {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("%s: %w (after %d attempts)", what, err, failures)
		}
		err := op(ctx)
		if err == nil {
			if failures > 0 {
				r.log.Info("remote: download succeeded after retries", "op", what, "failures", failures)
			}
			return nil
		}
		failures++
		if !retryable(err, nf) {
			return fmt.Errorf("%s: %w", what, err)
		}
		if failures >= attempts {
			r.log.Warn("remote: download failed, giving up", "op", what, "attempts", failures, "err", err)
			return fmt.Errorf("%w: %s: failed %d attempts (1 + %d retries), last: %w", ErrRetriesExhausted, what, failures, r.cfg.MaxRetries, err)
		}
		wait := r.cfg.Backoff(failures)
		level := slog.LevelInfo
		if failures > r.cfg.InfoFailures {
			level = slog.LevelWarn
		}
		r.log.Log(ctx, level, "remote: download failed, will retry", "op", what, "attempt", failures, "of", attempts, "wait", wait, "err", err)
		if serr := clock.Sleep(ctx, r.clk, wait); serr != nil {
			return fmt.Errorf("%s: %w (after %d attempts, last: %v)", what, serr, failures, err)
		}
	}
}
