package objstore

import (
	"context"
	"errors"
	"time"
)

// Store is the object-store seam: a flat namespace of immutable objects keyed
// by slash-separated strings, as S3 provides. Object storage is Strata's
// source of truth, so every implementation classifies its errors (below) to
// let callers retry exactly the retryable ones.
type Store interface {
	// Put writes an object. With opts.IfNoneMatch it fails with
	// ErrPreconditionFailed if the key already exists.
	Put(ctx context.Context, key string, data []byte, opts PutOptions) error
	// Get reads a whole object.
	Get(ctx context.Context, key string) ([]byte, error)
	// GetRange reads length bytes at offset; a range past the end is
	// truncated to the object's end. length < 0 means "to the end".
	GetRange(ctx context.Context, key string, offset, length int64) ([]byte, error)
	// Head describes an object without reading it.
	Head(ctx context.Context, key string) (ObjectInfo, error)
	// List returns keys with the given prefix in lexical order, at most
	// opts.MaxKeys per page (default and upper bound 1000), resuming after
	// opts.StartAfter. Page.NextStartAfter is empty on the last page.
	List(ctx context.Context, prefix string, opts ListOptions) (Page, error)
	// Delete removes keys; missing keys are not an error. At most
	// MaxDeleteBatch keys per call.
	Delete(ctx context.Context, keys []string) error
	// Copy copies src to dst within the store.
	Copy(ctx context.Context, src, dst string) error
}

// MaxDeleteBatch is the largest key count Delete accepts (S3's limit).
const MaxDeleteBatch = 1000

// MaxListKeys is the largest page List returns.
const MaxListKeys = 1000

// PutOptions qualifies a Put.
type PutOptions struct {
	// IfNoneMatch makes the Put conditional on the key not existing.
	IfNoneMatch bool
}

// ListOptions qualifies a List.
type ListOptions struct {
	StartAfter string
	MaxKeys    int
}

// Page is one page of List results.
type Page struct {
	Objects        []ObjectInfo
	NextStartAfter string
}

// ObjectInfo describes an object.
type ObjectInfo struct {
	Key          string
	Size         int64
	LastModified time.Time
}

// Error classes. Every error a Store returns wraps exactly one of these.
var (
	ErrNotFound           = errors.New("objstore: not found")
	ErrPreconditionFailed = errors.New("objstore: precondition failed")
	// ErrThrottled: slow down and retry.
	ErrThrottled = errors.New("objstore: throttled")
	// ErrTransient: retry; the operation may or may not have taken effect.
	ErrTransient = errors.New("objstore: transient error")
	// ErrPermanent: do not retry (bad request, access denied, invalid key).
	ErrPermanent = errors.New("objstore: permanent error")
)

// Retryable reports whether err is worth retrying.
func Retryable(err error) bool {
	return errors.Is(err, ErrThrottled) || errors.Is(err, ErrTransient)
}
