package net

import (
	"context"
	"errors"
)

// ToStatus converts any error into the *Status a transport reports for it:
// nil stays nil, a *Status anywhere in the chain is returned without its
// in-process cause (code and message only: what crosses the wire), the
// context errors map to Canceled and DeadlineExceeded, and everything else
// becomes Internal (the seam's rule for handler errors that are not *Status).
func ToStatus(err error) *Status {
	if err == nil {
		return nil
	}
	var s *Status
	if errors.As(err, &s) {
		return s.wire()
	}
	switch {
	case errors.Is(err, context.Canceled):
		return &Status{Code: Canceled, Msg: err.Error()}
	case errors.Is(err, context.DeadlineExceeded):
		return &Status{Code: DeadlineExceeded, Msg: err.Error()}
	}
	return &Status{Code: Internal, Msg: err.Error()}
}
