package layer

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/stratadb/strata/engine/keys"
	"github.com/stratadb/strata/engine/lsn"
)

// ErrBadName reports a malformed layer name.
var ErrBadName = errors.New("layer: malformed layer name")

// Kind says whether a layer holds deltas or images.
type Kind uint8

// The layer kinds. The values are part of the file format.
const (
	KindDelta Kind = 1
	KindImage Kind = 2
)

func (k Kind) String() string {
	switch k {
	case KindDelta:
		return "delta"
	case KindImage:
		return "image"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Generation is the attachment generation that wrote a layer file.
// GenerationNone (the zero value) marks a legacy name without the
// "-<gen>" suffix; the controller never issues generation 0 (it increments
// from 0 before the first attachment), so the two cannot be confused.
type Generation uint32

// GenerationNone is the absent generation of a legacy name.
const GenerationNone Generation = 0

// IsNone reports whether g is GenerationNone.
func (g Generation) IsNone() bool { return g == GenerationNone }

// String is the 8-hex-digit suffix form, or "none".
func (g Generation) String() string {
	if g.IsNone() {
		return "none"
	}
	return fmt.Sprintf("%08x", uint32(g))
}

// Name identifies a layer: its kind, key range, LSN range and generation.
// For an image layer at LSN l, LSNRange is [l, l+1).
type Name struct {
	Kind       Kind
	KeyRange   keys.Range
	LSNRange   lsn.Range
	Generation Generation
}

// DeltaName names a delta layer over keyRange and the half-open lsnRange.
func DeltaName(keyRange keys.Range, lsnRange lsn.Range) Name {
	return Name{Kind: KindDelta, KeyRange: keyRange, LSNRange: lsnRange}
}

// ImageName names an image layer over keyRange at lsn l.
func ImageName(keyRange keys.Range, l lsn.LSN) Name {
	return Name{Kind: KindImage, KeyRange: keyRange, LSNRange: lsn.Range{Start: l, End: l + 1}}
}

// WithGeneration returns n carrying generation g.
func (n Name) WithGeneration(g Generation) Name { n.Generation = g; return n }

// LSN is an image layer's LSN (LSNRange.Start).
func (n Name) LSN() lsn.LSN { return n.LSNRange.Start }

// IsDelta reports whether n names a delta layer.
func (n Name) IsDelta() bool { return n.Kind == KindDelta }

// Validate checks n can be written and parsed back.
func (n Name) Validate() error {
	if !n.KeyRange.Start.Less(n.KeyRange.End) {
		return fmt.Errorf("%w: key range %v is empty", ErrBadName, n.KeyRange)
	}
	switch n.Kind {
	case KindDelta:
		if n.LSNRange.Start >= n.LSNRange.End {
			return fmt.Errorf("%w: delta LSN range %016X-%016X is empty", ErrBadName, uint64(n.LSNRange.Start), uint64(n.LSNRange.End))
		}
	case KindImage:
		if n.LSNRange.Start == lsn.Max || n.LSNRange.End != n.LSNRange.Start+1 {
			return fmt.Errorf("%w: image LSN range %v is not [l, l+1)", ErrBadName, n.LSNRange)
		}
	default:
		return fmt.Errorf("%w: kind %d", ErrBadName, uint8(n.Kind))
	}
	return nil
}

// LayerName is the name without the generation suffix (Neon's LayerName).
func (n Name) LayerName() string {
	ks := n.KeyRange.Start.String() + "-" + n.KeyRange.End.String() + "__"
	if n.Kind == KindImage {
		return ks + fmt.Sprintf("%016X", uint64(n.LSNRange.Start))
	}
	return ks + fmt.Sprintf("%016X-%016X", uint64(n.LSNRange.Start), uint64(n.LSNRange.End))
}

// String is the physical file name: LayerName plus "-<gen 08x>" unless the
// generation is none. It is Strata's file name, locally and remotely (Neon's
// remote object name has the same form).
func (n Name) String() string {
	if n.Generation.IsNone() {
		return n.LayerName()
	}
	return n.LayerName() + "-" + n.Generation.String()
}

// localSep separates the layer name from the generation in Neon's local
// file name.
const localSep = "-v1-"

// LocalFileName is Neon's local file name: LayerName plus "-v1-<gen 08x>"
// (the "v1" names the local path scheme, so a local file of one generation
// cannot be mistaken for another's), or the bare LayerName when the
// generation is none. Strata writes String; ParseName reads both.
func (n Name) LocalFileName() string {
	if n.Generation.IsNone() {
		return n.LayerName()
	}
	return n.LayerName() + localSep + n.Generation.String()
}

// The digit counts that tell the parts of a name apart: what follows the
// "__" is one or two LSNs of lsnDigits digits, then optionally "v1", then
// optionally a generation of genDigits digits, all separated by "-". A
// part's length alone says what it is, so an image name with a generation
// (<lsn>-<gen>) never reads as a delta (<lsn>-<lsn>) or the reverse.
const (
	keyDigits = 2 * keys.Size
	lsnDigits = 16
	genDigits = 8
)

// ParseName parses a layer file name in any of its forms: the bare layer
// name (a legacy file without generation), "<layer name>-<gen 08x>"
// (String), or Neon's local "<layer name>-v1-<gen 08x>" (LocalFileName).
// It accepts only the canonical spelling (upper-case hex keys and LSNs,
// lower-case generation) so that every accepted name formats back to
// itself through String or LocalFileName.
func ParseName(s string) (Name, error) {
	bad := func(why string) (Name, error) {
		return Name{}, fmt.Errorf("%w %q: %s", ErrBadName, s, why)
	}
	// <key36>-<key36>__
	if len(s) < 2*keyDigits+3 {
		return bad("too short for <key>-<key>__<lsn>")
	}
	if s[keyDigits] != '-' || s[2*keyDigits+1:2*keyDigits+3] != "__" {
		return bad("want <keystart36>-<keyend36>__...")
	}
	start, err := parseUpperKey(s[:keyDigits])
	if err != nil {
		return bad("key start: " + err.Error())
	}
	end, err := parseUpperKey(s[keyDigits+1 : 2*keyDigits+1])
	if err != nil {
		return bad("key end: " + err.Error())
	}
	n := Name{KeyRange: keys.Range{Start: start, End: end}}
	// <lsn>[-<lsn>][-v1][-<gen>]: each part is told apart by its length
	// (or by being "v1"), never by its position alone.
	parts := strings.Split(s[2*keyDigits+3:], "-")
	l0, err := parseUpperHex64(parts[0])
	if err != nil {
		return bad("LSN: " + err.Error())
	}
	rest := parts[1:]
	n.Kind = KindImage
	if len(rest) > 0 && len(rest[0]) == lsnDigits {
		l1, err := parseUpperHex64(rest[0])
		if err != nil {
			return bad("LSN end: " + err.Error())
		}
		n.Kind, n.LSNRange = KindDelta, lsn.Range{Start: lsn.LSN(l0), End: lsn.LSN(l1)}
		rest = rest[1:]
	} else {
		if lsn.LSN(l0) == lsn.Max {
			return bad("image LSN FFFFFFFFFFFFFFFF is reserved")
		}
		n.LSNRange = lsn.Range{Start: lsn.LSN(l0), End: lsn.LSN(l0) + 1}
	}
	local := len(rest) > 0 && rest[0] == "v1"
	if local {
		rest = rest[1:]
		if len(rest) == 0 {
			return bad(`"-v1" without "-<gen 08x>" after it`)
		}
	}
	switch len(rest) {
	case 0:
	case 1:
		g, err := parseGeneration(rest[0])
		if err != nil {
			if len(rest[0]) != genDigits && !local {
				return bad(fmt.Sprintf("part %q after the LSNs is neither a %d-digit LSN nor a %d-digit generation", rest[0], lsnDigits, genDigits))
			}
			return bad(err.Error())
		}
		n.Generation = g
	default:
		return bad("too many '-' after the key range")
	}
	if err := n.Validate(); err != nil {
		return bad(strings.TrimPrefix(err.Error(), ErrBadName.Error()+": "))
	}
	return n, nil
}

func parseUpperKey(s string) (keys.Key, error) {
	for i := 0; i < len(s); i++ {
		if !isUpperHex(s[i]) {
			return keys.Key{}, fmt.Errorf("want 36 upper-case hex digits, got %q", s)
		}
	}
	return keys.Parse(s)
}

func parseUpperHex64(s string) (uint64, error) {
	if len(s) != lsnDigits {
		return 0, fmt.Errorf("want 16 upper-case hex digits, got %q", s)
	}
	for i := 0; i < len(s); i++ {
		if !isUpperHex(s[i]) {
			return 0, fmt.Errorf("want 16 upper-case hex digits, got %q", s)
		}
	}
	return strconv.ParseUint(s, 16, 64)
}

func parseGeneration(s string) (Generation, error) {
	if len(s) != genDigits {
		return 0, fmt.Errorf("generation: want 8 lower-case hex digits, got %q", s)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return 0, fmt.Errorf("generation: want 8 lower-case hex digits, got %q", s)
		}
	}
	v, err := strconv.ParseUint(s, 16, 32)
	if err != nil {
		return 0, fmt.Errorf("generation: %q: %v", s, err)
	}
	if v == 0 {
		return 0, fmt.Errorf("generation 00000000 is reserved for none (a legacy name has no suffix)")
	}
	return Generation(v), nil
}

func isUpperHex(c byte) bool { return c >= '0' && c <= '9' || c >= 'A' && c <= 'F' }
