// Package clock is a stand-in for Strata's clock package with just the
// helpers the analyzer's negative cases call.
package clock

import (
	"context"
	"time"
)

type Clock interface {
	Now() time.Time
	Mono() time.Duration
}

type Chan[T any] struct{ buf []T }

func NewChan[T any](c Clock, capacity int) *Chan[T] { return &Chan[T]{} }

func (ch *Chan[T]) Send(ctx context.Context, v T) error { ch.buf = append(ch.buf, v); return nil }

func WithTimeout(c Clock, parent context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	return parent, func() {}
}

func Sleep(ctx context.Context, c Clock, d time.Duration) error { return nil }
