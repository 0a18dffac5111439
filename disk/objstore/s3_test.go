package objstore_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"

	"github.com/stratadb/strata/disk/objstore"
	"github.com/stratadb/strata/disk/objstore/objstoretest"
	"github.com/stratadb/strata/disk/objstore/s3test"
)

const fakeBucket = "strata-test"

// newFakeS3 serves an in-memory gofakes3 bucket over HTTP in-process.
func newFakeS3(t *testing.T) *httptest.Server {
	t.Helper()
	backend := s3mem.New()
	if err := backend.CreateBucket(fakeBucket); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(gofakes3.New(backend).Server())
	t.Cleanup(srv.Close)
	return srv
}

func newS3(t *testing.T, endpoint, prefix string, attempts int) *objstore.S3 {
	t.Helper()
	s, err := objstore.NewS3(context.Background(), objstore.S3Config{
		Endpoint:    endpoint,
		Region:      "us-east-1",
		Bucket:      fakeBucket,
		Prefix:      prefix,
		AccessKey:   "test",
		SecretKey:   "test",
		PathStyle:   true,
		MaxAttempts: attempts,
		MaxBackoff:  10 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestS3OnGofakes3Conformance(t *testing.T) {
	objstoretest.Run(t, func(t *testing.T) objstore.Store {
		return newS3(t, newFakeS3(t).URL, "", 1)
	})
}

// TestS3OnVersitygwConformance runs the suite against a real S3 server in
// another process (disk/objstore/s3test), a fresh bucket per case, skipping
// only the cases that need what its file-backed store lacks.
func TestS3OnVersitygwConformance(t *testing.T) {
	srv := s3test.Start(t)
	objstoretest.RunWithOptions(t, func(t *testing.T) objstore.Store {
		return srv.Store(t, srv.NewBucket(t), "")
	}, s3test.ConformanceOptions())
}

// TestS3OnVersitygwPrefixConformance is the suite through a key prefix, the
// way the daemons share a bucket.
func TestS3OnVersitygwPrefixConformance(t *testing.T) {
	srv := s3test.Start(t)
	bucket := srv.NewBucket(t)
	var n atomic.Int32
	objstoretest.RunWithOptions(t, func(t *testing.T) objstore.Store {
		return srv.Store(t, bucket, fmt.Sprintf("store-%d/", n.Add(1)))
	}, s3test.ConformanceOptions())
}

func TestS3PrefixIsolation(t *testing.T) {
	srv := newFakeS3(t)
	a := newS3(t, srv.URL, "a/", 1)
	b := newS3(t, srv.URL, "b/", 1)
	ctx := context.Background()
	if err := a.Put(ctx, "k", []byte("from a"), objstore.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Get(ctx, "k"); !errors.Is(err, objstore.ErrNotFound) {
		t.Fatalf("b sees a's key: %v", err)
	}
	page, err := a.List(ctx, "", objstore.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Objects) != 1 || page.Objects[0].Key != "k" {
		t.Fatalf("List through prefix = %+v, want key k without the prefix", page.Objects)
	}
}

// TestS3ErrorClasses drives the client against a server answering each
// failure status and checks the class the caller sees, and that the SDK
// retried exactly the retryable ones. A 409 is classified by its code:
// only the two AWS documents as worth another try are transient, so a put
// that can never succeed is not retried forever.
func TestS3ErrorClasses(t *testing.T) {
	tests := []struct {
		status int
		code   string
		class  error
	}{
		{503, "SlowDown", objstore.ErrThrottled},
		{503, "ServiceUnavailable", objstore.ErrThrottled},
		{500, "InternalError", objstore.ErrTransient},
		{502, "BadGateway", objstore.ErrTransient},
		{409, "ConditionalRequestConflict", objstore.ErrTransient},
		{409, "OperationAborted", objstore.ErrTransient},
		{409, "BucketAlreadyExists", objstore.ErrPermanent},
		{409, "BucketAlreadyOwnedByYou", objstore.ErrPermanent},
		{409, "BucketNotEmpty", objstore.ErrPermanent},
		{409, "InvalidBucketState", objstore.ErrPermanent},
		{409, "ObjectParentIsFile", objstore.ErrPermanent},        // versitygw: the key's parent is an object
		{409, "ExistingObjectIsDirectory", objstore.ErrPermanent}, // versitygw: the key is another's parent
		{409, "", objstore.ErrPermanent},
		{412, "PreconditionFailed", objstore.ErrPreconditionFailed},
		{404, "NoSuchKey", objstore.ErrNotFound},
		{403, "AccessDenied", objstore.ErrPermanent},
		{400, "InvalidArgument", objstore.ErrPermanent},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%d_%s", tc.status, tc.code), func(t *testing.T) {
			var calls atomic.Int32
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				calls.Add(1)
				w.Header().Set("Content-Type", "application/xml")
				w.WriteHeader(tc.status)
				fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>%s</Code><Message>injected</Message></Error>`, tc.code)
			}))
			defer srv.Close()
			s := newS3(t, srv.URL, "", 2)
			err := s.Put(context.Background(), "k", []byte("v"), objstore.PutOptions{})
			objstoretest.WantClass(t, "Put", err, tc.class)
			want := int32(1)
			if objstore.Retryable(err) {
				want = 2 // MaxAttempts
			}
			if calls.Load() != want {
				t.Fatalf("%d attempts, want %d", calls.Load(), want)
			}
		})
	}
}

func TestS3ConnectionErrorTransient(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close() // nothing listens there any more
	s := newS3(t, url, "", 1)
	_, err := s.Get(context.Background(), "k")
	objstoretest.WantClass(t, "Get from a closed port", err, objstore.ErrTransient)
}

func TestS3ConfigValidate(t *testing.T) {
	bad := []objstore.S3Config{
		{},
		{Bucket: "b", MaxAttempts: -1},
		{Bucket: "b", AccessKey: "only-access"},
		{Bucket: "b", Endpoint: "not a url"},
	}
	for _, c := range bad {
		if _, err := objstore.NewS3(context.Background(), c); err == nil {
			t.Errorf("NewS3(%+v) accepted", c)
		}
	}
}
