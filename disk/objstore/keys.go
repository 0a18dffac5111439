package objstore

import (
	"fmt"
	"strconv"
	"strings"
)

// MaxKeyBytes is the longest key any Store accepts (S3's limit).
const MaxKeyBytes = 1024

// CheckKey rejects keys no implementation can store: empty, longer than
// MaxKeyBytes, or containing NUL. The error wraps ErrPermanent.
func CheckKey(key string) error {
	switch {
	case key == "":
		return fmt.Errorf("%w: empty key", ErrPermanent)
	case len(key) > MaxKeyBytes:
		return fmt.Errorf("%w: key of %d bytes exceeds %d", ErrPermanent, len(key), MaxKeyBytes)
	case strings.IndexByte(key, 0) >= 0:
		return fmt.Errorf("%w: key %q contains NUL", ErrPermanent, key)
	}
	return nil
}

// Local's file layout: each '/'-separated key segment becomes one path
// element, so a directory listing narrows List to a prefix. A segment s is
// stored as "o"+esc(s) for the object named by the key ending there and
// "d"+esc(s) for the directory of keys continuing below it, so the keys
// "a" and "a/b" coexist. Temporary files start with "t". esc keeps
// [A-Za-z0-9._-] and writes every other byte as %XX, which makes every
// element a valid disk name (no "/", never "." or ".." or empty, thanks to
// the one-letter tag).
const (
	tagObject = 'o'
	tagDir    = 'd'
	tagTemp   = 't'
	// maxElemBytes keeps every path element within common file-system
	// name limits.
	maxElemBytes = 255
)

func escSegment(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-' {
			b.WriteByte(c)
			continue
		}
		fmt.Fprintf(&b, "%%%02X", c)
	}
	return b.String()
}

func unescSegment(e string) (string, bool) {
	var b strings.Builder
	for i := 0; i < len(e); i++ {
		if e[i] != '%' {
			b.WriteByte(e[i])
			continue
		}
		if i+2 >= len(e) {
			return "", false
		}
		c, err := strconv.ParseUint(e[i+1:i+3], 16, 8)
		if err != nil {
			return "", false
		}
		b.WriteByte(byte(c))
		i += 2
	}
	return b.String(), true
}

// keyPath maps a key to the directory holding its object file and that
// file's name.
func keyPath(root, key string) (dir, file string, err error) {
	if err := CheckKey(key); err != nil {
		return "", "", err
	}
	segs := strings.Split(key, "/")
	dir = root
	for _, s := range segs[:len(segs)-1] {
		e := string(tagDir) + escSegment(s)
		if len(e) > maxElemBytes {
			return "", "", fmt.Errorf("%w: key %q has a segment too long to store", ErrPermanent, key)
		}
		dir = joinPath(dir, e)
	}
	file = string(tagObject) + escSegment(segs[len(segs)-1])
	if len(file) > maxElemBytes {
		return "", "", fmt.Errorf("%w: key %q has a segment too long to store", ErrPermanent, key)
	}
	return dir, file, nil
}

// prefixDir maps the part of a List prefix up to its last '/' to the
// directory that holds every matching key. ok is false if no key can have
// that prefix as stored (a segment too long).
func prefixDir(root, prefix string) (dir, keyBase string, ok bool) {
	i := strings.LastIndexByte(prefix, '/')
	if i < 0 {
		return root, "", true
	}
	dir = root
	for _, s := range strings.Split(prefix[:i], "/") {
		e := string(tagDir) + escSegment(s)
		if len(e) > maxElemBytes {
			return "", "", false
		}
		dir = joinPath(dir, e)
	}
	return dir, prefix[:i+1], true
}

func joinPath(dir, elem string) string {
	if dir == "." {
		return elem
	}
	return dir + "/" + elem
}
