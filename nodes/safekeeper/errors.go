package safekeeper

import (
	"context"
	"errors"

	"github.com/stratadb/strata/engine/skproto"
	"github.com/stratadb/strata/net"
	"github.com/stratadb/strata/nodes/safekeeper/skapi"
	"github.com/stratadb/strata/nodes/safekeeper/walstore"
)

// Errors of the safekeeper's domain code. Everything below the handlers
// returns these (or walstore's, skproto's and the disk's), wrapped with %w;
// the handlers map them to net codes once, in statusOf, keeping the error as
// the Status's in-process cause.
var (
	// ErrBadID reports a tenant or timeline id that is not 1..64
	// characters of [0-9A-Za-z_-] (InvalidArgument).
	ErrBadID = errors.New("safekeeper: invalid id")
	// ErrNoTimeline reports a timeline this safekeeper does not hold
	// (NotFound).
	ErrNoTimeline = errors.New("safekeeper: no such timeline")
	// ErrTooManyTimelines reports a creation beyond Config.MaxTimelines
	// (ResourceExhausted).
	ErrTooManyTimelines = errors.New("safekeeper: too many timelines")
	// ErrTooManyFeedbackSources reports feedback from more pageservers
	// than MaxFeedbackSources (ResourceExhausted).
	ErrTooManyFeedbackSources = errors.New("safekeeper: too many feedback sources")
	// ErrStopped reports use after Stop (Unavailable).
	ErrStopped = errors.New("safekeeper: stopped")
	// ErrUnavailable reports a timeline that cannot serve for now: an I/O
	// error dropped its state and it is reloaded from disk (Unavailable).
	ErrUnavailable = errors.New("safekeeper: timeline unavailable")
	// ErrWrongTerm reports a read for a term the acceptor is not in
	// (FailedPrecondition).
	ErrWrongTerm = errors.New("safekeeper: not in the requested term")
	// ErrNoGreeting reports a proposer message before the Greeting that
	// names the timeline (FailedPrecondition).
	ErrNoGreeting = errors.New("safekeeper: message before Greeting")
)

// codeOf maps a domain error to the net code a caller sees. Corruption is
// DataLoss: the timeline is never served again, so retrying elsewhere is
// the caller's only way on.
func codeOf(err error) net.Code {
	switch {
	case errors.Is(err, ErrBadID), errors.Is(err, skapi.ErrBadMessage):
		return net.InvalidArgument
	case errors.Is(err, ErrNoTimeline):
		return net.NotFound
	case errors.Is(err, walstore.ErrCorrupt):
		return net.DataLoss
	case errors.Is(err, ErrTooManyTimelines), errors.Is(err, ErrTooManyFeedbackSources), errors.Is(err, skproto.ErrTooLarge):
		return net.ResourceExhausted
	case errors.Is(err, walstore.ErrRange), errors.Is(err, walstore.ErrRemoved):
		// ErrRemoved: the WAL asked for was removed here after it was
		// offloaded and every pageserver had made it remote.
		return net.OutOfRange
	case errors.Is(err, ErrWrongTerm), errors.Is(err, ErrNoGreeting), errors.Is(err, skproto.ErrProtocol),
		errors.Is(err, skproto.ErrCommitTruncate), errors.Is(err, skproto.ErrCorrupt):
		return net.FailedPrecondition
	case errors.Is(err, context.Canceled):
		return net.Canceled
	case errors.Is(err, context.DeadlineExceeded):
		return net.DeadlineExceeded
	case errors.Is(err, skapi.ErrNotWireMessage):
		return net.Internal
	}
	// ErrStopped, ErrUnavailable and the disk's errors: try again later.
	return net.Unavailable
}

// statusOf is the handlers' edge: a domain error becomes a *net.Status with
// its code and the error as cause. An error that already carries a Status
// (a stream's Send or Recv failed) keeps it.
func statusOf(err error) error {
	if err == nil {
		return nil
	}
	var st *net.Status
	if errors.As(err, &st) {
		return err
	}
	return net.Wrap(codeOf(err), err)
}
