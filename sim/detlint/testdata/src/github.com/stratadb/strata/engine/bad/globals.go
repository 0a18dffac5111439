package bad

import (
	"errors"
	"fmt"
	"log/slog"
)

var counter int // want `package-level variable counter is mutable shared state`

var logger = slog.Default() // want `package-level variable logger`

var (
	cache   = map[string]int{}      // want `package-level variable cache`
	a, b    = 1, 2                  // want `package-level variable a` `package-level variable b`
	ErrOdd  = oddError{}            // want `package-level variable ErrOdd`
	ErrWrap = fmt.Sprint("x")       // want `package-level variable ErrWrap`
	ErrVal  error                   // want `package-level variable ErrVal`
	ErrFn   = errors.Join(nil, nil) // want `package-level variable ErrFn`
)

type oddError struct{}

func (oddError) Error() string { return "odd" }
