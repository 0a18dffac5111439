package net

import (
	"errors"
	"fmt"
)

// Code is a status code. The numbering matches gRPC's so adapters map 1:1.
type Code uint32

const (
	OK                 Code = 0
	Canceled           Code = 1
	Unknown            Code = 2
	InvalidArgument    Code = 3
	DeadlineExceeded   Code = 4
	NotFound           Code = 5
	AlreadyExists      Code = 6
	PermissionDenied   Code = 7
	ResourceExhausted  Code = 8
	FailedPrecondition Code = 9
	Aborted            Code = 10
	OutOfRange         Code = 11
	Unimplemented      Code = 12
	Internal           Code = 13
	Unavailable        Code = 14
	DataLoss           Code = 15
	Unauthenticated    Code = 16
)

var codeNames = [...]string{"OK", "Canceled", "Unknown", "InvalidArgument", "DeadlineExceeded",
	"NotFound", "AlreadyExists", "PermissionDenied", "ResourceExhausted", "FailedPrecondition",
	"Aborted", "OutOfRange", "Unimplemented", "Internal", "Unavailable", "DataLoss", "Unauthenticated"}

func (c Code) String() string {
	if int(c) < len(codeNames) {
		return codeNames[c]
	}
	return fmt.Sprintf("Code(%d)", uint32(c))
}

// Status is the error type every transport returns.
//
// A Status built in-process (Errorf with %w, Wrap) keeps the error it was
// built from as its cause: errors.Is and errors.As see through the Status to
// the domain sentinel (walstore.ErrCorrupt, say), so code in the same process
// never has to decide by code alone. The cause never crosses a transport:
// only Code and Msg do (ToStatus, which every transport applies to a
// handler's error, drops it), so a remote caller has the code and the text.
type Status struct {
	Code Code
	Msg  string
	// cause is what the Status was built from; in-process only.
	cause error
}

func (s *Status) Error() string { return "net: " + s.Code.String() + ": " + s.Msg }

// Unwrap returns the error the Status was built from (nil once the Status
// has crossed a transport, or when built without one).
func (s *Status) Unwrap() error { return s.cause }

// Errorf builds a *Status error. Operands of %w stay reachable in-process
// through Unwrap.
func Errorf(c Code, format string, args ...any) error {
	err := fmt.Errorf(format, args...)
	st := &Status{Code: c, Msg: err.Error()}
	if wrapsSomething(err) {
		st.cause = err
	}
	return st
}

// Wrap builds a *Status with code c from err, keeping err as its cause (the
// mapping of a domain error to its code at a handler's edge). A nil err
// gives nil.
func Wrap(c Code, err error) error {
	if err == nil {
		return nil
	}
	return &Status{Code: c, Msg: err.Error(), cause: err}
}

// wire returns s as a transport carries it: code and message, no cause.
func (s *Status) wire() *Status {
	if s.cause == nil {
		return s
	}
	return &Status{Code: s.Code, Msg: s.Msg}
}

func wrapsSomething(err error) bool {
	switch u := err.(type) {
	case interface{ Unwrap() error }:
		return u.Unwrap() != nil
	case interface{ Unwrap() []error }:
		return len(u.Unwrap()) > 0
	}
	return false
}

// CodeOf returns err's code: OK for nil, the code of a *Status anywhere in
// the chain, and Unknown otherwise.
func CodeOf(err error) Code {
	if err == nil {
		return OK
	}
	var s *Status
	if errors.As(err, &s) {
		return s.Code
	}
	return Unknown
}

// Retryable reports whether a call that failed with err may be retried:
// Unavailable, Aborted, Canceled, DeadlineExceeded and ResourceExhausted.
// Internal is never retried.
func Retryable(err error) bool {
	switch CodeOf(err) {
	case Unavailable, Aborted, Canceled, DeadlineExceeded, ResourceExhausted:
		return true
	}
	return false
}
