package invariants

import (
	"errors"
	"fmt"
)

// ErrViolated is wrapped by every error an assertion returns in a release
// build.
var ErrViolated = errors.New("invariants: violated")

// Check asserts cond. When it is false it panics in builds with assertions on,
// and returns an error wrapping ErrViolated otherwise; when it holds it
// returns nil. The message is formatted only on failure, but the arguments
// are evaluated at the call: guard expensive ones with Enabled.
func Check(cond bool, format string, args ...any) error {
	if cond {
		return nil
	}
	return fail(fmt.Errorf("%w: %s", ErrViolated, fmt.Sprintf(format, args...)))
}

// Verify asserts that err is nil: a non-nil err is an invariant violation
// (typically from a structure's own Check method). It panics in builds with
// assertions on and returns err wrapped with ErrViolated otherwise.
func Verify(err error) error {
	if err == nil {
		return nil
	}
	return fail(fmt.Errorf("%w: %w", ErrViolated, err))
}

func fail(err error) error {
	if Enabled {
		panic(err)
	}
	return err
}
