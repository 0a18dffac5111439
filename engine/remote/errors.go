package remote

import "errors"

// Error classes. Callers tell them apart with errors.Is.
var (
	// ErrCorrupt: an index_part.json that is not a well-formed index
	// (bad JSON, a missing or mistyped field, a bad layer name, metadata
	// that does not decode). ErrMetadataChecksum and ErrMetadataLength are
	// kinds of it: an error wrapping either also wraps ErrCorrupt.
	ErrCorrupt = errors.New("remote: corrupt index_part")
	// ErrMetadataChecksum: the legacy binary metadata's crc32c does not
	// match its body.
	ErrMetadataChecksum = errors.New("remote: metadata checksum mismatch")
	// ErrMetadataLength: the legacy binary metadata is not 512 bytes, or its
	// header's size does not fit.
	ErrMetadataLength = errors.New("remote: metadata length is wrong")
	// ErrUnsupportedVersion: a version this package does not know (0, or
	// above MaxVersion). The file may be fine; Strata cannot read it.
	ErrUnsupportedVersion = errors.New("remote: unsupported index_part version")
	// ErrEmptyIndex: Encode refuses an index that names no layers and has
	// no ancestor. Such an index describes no data at all and must never
	// replace one that does.
	ErrEmptyIndex = errors.New("remote: index names no layers and has no ancestor")
	// ErrInvalidIndex: Encode refuses an index that breaks the type's
	// invariants (unsorted or duplicate layers, an invalid name or shard).
	ErrInvalidIndex = errors.New("remote: invalid index")
	// ErrNoIndex: object storage holds no index of a generation at or below
	// the caller's, nor a legacy one.
	ErrNoIndex = errors.New("remote: no index at or below the generation")
	// ErrRetriesExhausted: a download failed with a transient error on
	// every attempt the retry policy allows.
	ErrRetriesExhausted = errors.New("remote: download retries exhausted")
	// ErrBadPrefix: a Layout prefix that would make ambiguous keys.
	ErrBadPrefix = errors.New("remote: bad key prefix")
	// ErrConfig: a retry configuration that cannot be applied.
	ErrConfig = errors.New("remote: invalid config")
)
