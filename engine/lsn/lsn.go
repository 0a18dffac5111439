package lsn

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// LSN is a byte position in a timeline's WAL stream.
type LSN uint64

// Invalid is the zero LSN, which never names a record.
const Invalid LSN = 0

// Max is the largest LSN.
const Max LSN = ^LSN(0)

// ErrSyntax reports a malformed LSN text.
var ErrSyntax = errors.New("lsn: malformed LSN, want X/X in hex")

// String formats l as Postgres does: high and low 32 bits in upper-case hex.
func (l LSN) String() string {
	return fmt.Sprintf("%X/%X", uint32(l>>32), uint32(l))
}

// Parse parses the X/X form.
func Parse(s string) (LSN, error) {
	hi, lo, ok := strings.Cut(s, "/")
	if !ok || hi == "" || lo == "" || len(hi) > 8 || len(lo) > 8 {
		return 0, fmt.Errorf("%w: %q", ErrSyntax, s)
	}
	h, err := strconv.ParseUint(hi, 16, 32)
	if err != nil {
		return 0, fmt.Errorf("%w: %q", ErrSyntax, s)
	}
	l, err := strconv.ParseUint(lo, 16, 32)
	if err != nil {
		return 0, fmt.Errorf("%w: %q", ErrSyntax, s)
	}
	return LSN(h<<32 | l), nil
}

// MarshalText implements encoding.TextMarshaler (JSON uses the X/X form).
func (l LSN) MarshalText() ([]byte, error) { return []byte(l.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (l *LSN) UnmarshalText(b []byte) error {
	v, err := Parse(string(b))
	if err != nil {
		return err
	}
	*l = v
	return nil
}
