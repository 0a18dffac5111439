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
type Status struct {
	Code Code
	Msg  string
}

func (s *Status) Error() string { return "net: " + s.Code.String() + ": " + s.Msg }

// Errorf builds a *Status error.
func Errorf(c Code, format string, args ...any) error {
	return &Status{Code: c, Msg: fmt.Sprintf(format, args...)}
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
