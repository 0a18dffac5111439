package net_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/stratadb/strata/net"
)

var errDomain = errors.New("store: corrupt")

// TestStatusKeepsCauseInProcess: a Status built from a domain error keeps it
// for errors.Is/As in the same process, and ToStatus (what every transport
// applies) drops it, keeping code and message.
func TestStatusKeepsCauseInProcess(t *testing.T) {
	wrapped := fmt.Errorf("timeline t/l: %w", errDomain)
	for _, tc := range []struct {
		name string
		err  error
		code net.Code
		msg  string
	}{
		{"Errorf %w", net.Errorf(net.DataLoss, "sk: %w", wrapped), net.DataLoss, "sk: timeline t/l: store: corrupt"},
		{"Wrap", net.Wrap(net.DataLoss, wrapped), net.DataLoss, "timeline t/l: store: corrupt"},
		{"wrapped status", fmt.Errorf("handler: %w", net.Wrap(net.OutOfRange, errDomain)), net.OutOfRange, "store: corrupt"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if !errors.Is(tc.err, errDomain) {
				t.Fatalf("errors.Is(%v, errDomain) = false in-process", tc.err)
			}
			if got := net.CodeOf(tc.err); got != tc.code {
				t.Fatalf("CodeOf = %v, want %v", got, tc.code)
			}
			w := net.ToStatus(tc.err)
			if w.Code != tc.code || w.Msg != tc.msg {
				t.Fatalf("ToStatus = %v/%q, want %v/%q", w.Code, w.Msg, tc.code, tc.msg)
			}
			if errors.Is(w, errDomain) || w.Unwrap() != nil {
				t.Fatalf("ToStatus kept the in-process cause: %v", w.Unwrap())
			}
		})
	}
}

func TestStatusWithoutCause(t *testing.T) {
	err := net.Errorf(net.NotFound, "no timeline %s", "x")
	var st *net.Status
	if !errors.As(err, &st) || st.Unwrap() != nil || st.Msg != "no timeline x" {
		t.Fatalf("Errorf without %%w: %#v", err)
	}
	if net.ToStatus(err) != st {
		t.Fatal("a Status without a cause should cross as is")
	}
	if net.Wrap(net.Internal, nil) != nil {
		t.Fatal("Wrap(nil) != nil")
	}
	// The outer code wins when statuses nest.
	inner := net.Wrap(net.DataLoss, errDomain)
	outer := net.Errorf(net.Unavailable, "retry: %w", inner)
	if net.CodeOf(outer) != net.Unavailable || !errors.Is(outer, errDomain) {
		t.Fatalf("nested: code %v, Is %t", net.CodeOf(outer), errors.Is(outer, errDomain))
	}
	if got := net.ToStatus(fmt.Errorf("x: %w", context.Canceled)); got.Code != net.Canceled {
		t.Fatalf("ToStatus(canceled) = %v", got)
	}
}
