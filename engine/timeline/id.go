package timeline

import (
	"encoding/hex"
	"errors"
	"fmt"
)

// ErrBadID reports a malformed timeline id.
var ErrBadID = errors.New("timeline: malformed timeline id, want 32 hex digits")

// ID names a timeline: 16 bytes, shown as 32 lower-case hex digits.
type ID [16]byte

func (id ID) String() string { return hex.EncodeToString(id[:]) }

// ParseID parses the 32-hex-digit form.
func ParseID(s string) (ID, error) {
	var id ID
	if len(s) != 32 {
		return id, fmt.Errorf("%w: %q", ErrBadID, s)
	}
	if _, err := hex.Decode(id[:], []byte(s)); err != nil {
		return id, fmt.Errorf("%w: %q", ErrBadID, s)
	}
	if id.String() != s {
		return id, fmt.Errorf("%w: %q is not lower case", ErrBadID, s)
	}
	return id, nil
}
