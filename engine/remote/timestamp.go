package remote

import (
	"fmt"
	"time"
)

// Index timestamps carry no zone: "2006-01-02T15:04:05" with an optional
// fraction of 1 to 9 digits, read and returned as UTC.

// formatTimestamp writes t (in UTC) with no zone and the shortest of 0, 3,
// 6 or 9 fraction digits that holds it exactly, as Neon's writer does.
func formatTimestamp(t time.Time) string {
	t = t.UTC()
	s := fmt.Sprintf("%04d-%02d-%02dT%02d:%02d:%02d", t.Year(), int(t.Month()), t.Day(), t.Hour(), t.Minute(), t.Second())
	switch ns := t.Nanosecond(); {
	case ns == 0:
	case ns%1_000_000 == 0:
		s += fmt.Sprintf(".%03d", ns/1_000_000)
	case ns%1_000 == 0:
		s += fmt.Sprintf(".%06d", ns/1_000)
	default:
		s += fmt.Sprintf(".%09d", ns)
	}
	return s
}

// parseTimestamp reads the zone-less form. A zone ("Z", "+01:00") is
// refused: the index's writers never emit one, and guessing would shift
// the time.
func parseTimestamp(s string) (time.Time, error) {
	bad := func(why string) (time.Time, error) {
		return time.Time{}, fmt.Errorf("timestamp %q: %s (want YYYY-MM-DDTHH:MM:SS[.fraction], no zone)", s, why)
	}
	const base = len("2006-01-02T15:04:05")
	if len(s) < base {
		return bad("too short")
	}
	num := func(from, to int) (int, bool) {
		v := 0
		for i := from; i < to; i++ {
			if s[i] < '0' || s[i] > '9' {
				return 0, false
			}
			v = v*10 + int(s[i]-'0')
		}
		return v, true
	}
	for _, sep := range []struct {
		at int
		c  byte
	}{{4, '-'}, {7, '-'}, {10, 'T'}, {13, ':'}, {16, ':'}} {
		if s[sep.at] != sep.c {
			return bad(fmt.Sprintf("want %q at offset %d", sep.c, sep.at))
		}
	}
	year, ok1 := num(0, 4)
	month, ok2 := num(5, 7)
	day, ok3 := num(8, 10)
	hour, ok4 := num(11, 13)
	minute, ok5 := num(14, 16)
	sec, ok6 := num(17, 19)
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6) {
		return bad("non-digit in a date or time field")
	}
	ns := 0
	if rest := s[base:]; rest != "" {
		if rest[0] != '.' {
			return bad("unexpected text after the seconds (a zone?)")
		}
		digits := len(rest) - 1
		if digits < 1 || digits > 9 {
			return bad("fraction of 1 to 9 digits expected")
		}
		v, ok := num(base+1, len(s))
		if !ok {
			return bad("non-digit in the fraction (a zone?)")
		}
		ns = v
		for i := digits; i < 9; i++ {
			ns *= 10
		}
	}
	if month < 1 || month > 12 || hour > 23 || minute > 59 || sec > 59 {
		return bad("field out of range")
	}
	t := time.Date(year, time.Month(month), day, hour, minute, sec, ns, time.UTC)
	if t.Day() != day || int(t.Month()) != month {
		return bad("no such day")
	}
	return t, nil
}
