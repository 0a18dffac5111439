package objstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// S3Config configures an S3 store.
type S3Config struct {
	// Endpoint is the service URL (e.g. "http://127.0.0.1:9000" for MinIO
	// or a fake). Empty: AWS's endpoint for Region.
	Endpoint string
	// Region is the bucket's region. Default "us-east-1".
	Region string
	// Bucket must exist.
	Bucket string
	// Prefix is prepended to every key (usually ending in "/"), so several
	// stores can share a bucket. Keys reported by List have it removed.
	Prefix string
	// AccessKey and SecretKey are static credentials. Both empty: the SDK's
	// default credential chain (environment, shared config, instance role).
	AccessKey, SecretKey string
	// PathStyle addresses the bucket as a path ("endpoint/bucket/key")
	// rather than a host name; fakes and MinIO need it.
	PathStyle bool
	// MaxAttempts bounds the SDK's attempts per call, first try included.
	// Default 3. Retries beyond the SDK's belong to the caller, who sees the
	// classified error.
	MaxAttempts int
	// MaxBackoff caps the delay between the SDK's attempts. Default 2s.
	MaxBackoff time.Duration
	// HTTPClient overrides the HTTP client (tests); nil: the SDK's default.
	HTTPClient s3.HTTPClient
}

// Validate reports a configuration NewS3 cannot use.
func (c S3Config) Validate() error {
	switch {
	case c.Bucket == "":
		return fmt.Errorf("objstore: S3Config.Bucket is empty")
	case c.MaxAttempts < 0:
		return fmt.Errorf("objstore: S3Config.MaxAttempts = %d is negative", c.MaxAttempts)
	case c.MaxBackoff < 0:
		return fmt.Errorf("objstore: S3Config.MaxBackoff = %v is negative", c.MaxBackoff)
	case (c.AccessKey == "") != (c.SecretKey == ""):
		return fmt.Errorf("objstore: S3Config needs both AccessKey and SecretKey, or neither")
	case len(c.Prefix) >= MaxKeyBytes:
		return fmt.Errorf("objstore: S3Config.Prefix is longer than a key may be")
	}
	if c.Endpoint != "" {
		if u, err := url.Parse(c.Endpoint); err != nil || u.Scheme == "" || u.Host == "" {
			return fmt.Errorf("objstore: S3Config.Endpoint %q is not an absolute URL", c.Endpoint)
		}
	}
	return nil
}

const (
	defaultS3Region      = "us-east-1"
	defaultS3MaxAttempts = 3
	defaultS3MaxBackoff  = 2 * time.Second
)

// S3 is a Store on an S3-compatible service (aws-sdk-go-v2). It runs only
// in real mode: the SDK has its own goroutines and timers.
//
// Conditional puts use PutObject with If-None-Match: "*", which S3 evaluates
// atomically. Every error is classified (see classifyS3).
type S3 struct {
	client *s3.Client
	bucket string
	prefix string
}

var _ Store = (*S3)(nil)

// NewS3 builds an S3 store. It does not contact the service.
func NewS3(ctx context.Context, cfg S3Config) (*S3, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	region := cfg.Region
	if region == "" {
		region = defaultS3Region
	}
	attempts := cfg.MaxAttempts
	if attempts == 0 {
		attempts = defaultS3MaxAttempts
	}
	backoff := cfg.MaxBackoff
	if backoff == 0 {
		backoff = defaultS3MaxBackoff
	}
	opts := s3.Options{
		Region:       region,
		UsePathStyle: cfg.PathStyle,
		Retryer: retry.NewStandard(func(o *retry.StandardOptions) {
			o.MaxAttempts = attempts
			o.MaxBackoff = backoff
			// No client-side retry quota: MaxAttempts alone bounds the
			// retries, so behaviour under sustained errors is predictable;
			// callers back off on the classified error.
			o.RateLimiter = ratelimit.None
			// A conditional write that raced another is worth retrying: the
			// retry then gets a definite 412 or success. So is an operation
			// that met a conflicting one in progress. (The two 409 codes
			// classifyS3 calls transient.)
			o.Retryables = append(o.Retryables, retry.RetryableErrorCode{
				Codes: map[string]struct{}{"ConditionalRequestConflict": {}, "OperationAborted": {}},
			})
		}),
		// Checksums only where the API requires them: S3-compatible
		// services vary in their support of the newer trailing checksums.
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
		ResponseChecksumValidation: aws.ResponseChecksumValidationWhenRequired,
	}
	if cfg.Endpoint != "" {
		opts.BaseEndpoint = aws.String(cfg.Endpoint)
	}
	if cfg.HTTPClient != nil {
		opts.HTTPClient = cfg.HTTPClient
	}
	if cfg.AccessKey != "" {
		opts.Credentials = credentials.NewStaticCredentialsProvider(cfg.AccessKey, cfg.SecretKey, "")
	} else {
		awsCfg, err := config.LoadDefaultConfig(ctx, config.WithRegion(region))
		if err != nil {
			return nil, fmt.Errorf("objstore: S3 credentials: %w: %w", ErrPermanent, err)
		}
		opts.Credentials = awsCfg.Credentials
	}
	return &S3{client: s3.New(opts), bucket: cfg.Bucket, prefix: cfg.Prefix}, nil
}

func (s *S3) fullKey(key string) (string, error) {
	if err := CheckKey(key); err != nil {
		return "", err
	}
	if len(s.prefix)+len(key) > MaxKeyBytes {
		return "", fmt.Errorf("%w: key %q with prefix exceeds %d bytes", ErrPermanent, key, MaxKeyBytes)
	}
	return s.prefix + key, nil
}

// classifyS3 maps an SDK error to exactly one error class:
// 404 / NoSuchKey / NotFound → ErrNotFound; 412 / PreconditionFailed →
// ErrPreconditionFailed; SlowDown, throttling codes and 503 → ErrThrottled;
// the two 409 codes AWS documents as "try again" (ConditionalRequestConflict:
// a conditional write raced another; OperationAborted: a conflicting
// operation is in progress), other 5xx, timeouts, cancelled contexts and
// connection errors → ErrTransient; every other 409 (BucketAlreadyExists,
// BucketNotEmpty, InvalidBucketState, a file-backed server's
// ObjectParentIsFile…), other 4xx and invalid parameters → ErrPermanent,
// because a conflict with the resource's state does not go away by
// retrying, and a caller retrying transient errors forever must not spin on
// it. Unknown errors without an HTTP status are treated as transient
// (network-level failures), since retrying an idempotent-by-design call is
// safe.
func classifyS3(op, key string, err error) error {
	if err == nil {
		return nil
	}
	class := s3Class(err)
	return fmt.Errorf("objstore: s3 %s %q: %w: %w", op, key, class, err)
}

func s3Class(err error) error {
	var apiErr smithy.APIError
	code := ""
	if errors.As(err, &apiErr) {
		code = apiErr.ErrorCode()
	}
	switch code {
	case "NoSuchKey", "NotFound", "NoSuchBucket":
		if code == "NoSuchBucket" {
			return ErrPermanent
		}
		return ErrNotFound
	case "PreconditionFailed":
		return ErrPreconditionFailed
	case "SlowDown", "Throttling", "ThrottlingException", "RequestLimitExceeded", "TooManyRequests", "RequestThrottled":
		return ErrThrottled
	case "ConditionalRequestConflict", "InternalError", "RequestTimeout", "OperationAborted":
		return ErrTransient
	}
	var respErr *smithyhttp.ResponseError
	if errors.As(err, &respErr) && respErr.Response != nil {
		status := respErr.HTTPStatusCode()
		switch {
		case status == 404:
			return ErrNotFound
		case status == 412:
			return ErrPreconditionFailed
		case status == 503 || status == 429:
			return ErrThrottled
		case status == 408 || status >= 500:
			return ErrTransient
		case status >= 400: // 409 too: its retryable codes are above
			return ErrPermanent
		}
	}
	var invalid smithy.InvalidParamsError
	if errors.As(err, &invalid) {
		return ErrPermanent
	}
	var netErr net.Error
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) || errors.As(err, &netErr) {
		return ErrTransient
	}
	if apiErr != nil {
		// An API error with a code we do not know and no status: the
		// service rejected the request.
		return ErrPermanent
	}
	return ErrTransient
}

// Put implements Store.
func (s *S3) Put(ctx context.Context, key string, data []byte, opts PutOptions) error {
	full, err := s.fullKey(key)
	if err != nil {
		return err
	}
	in := &s3.PutObjectInput{
		Bucket:        aws.String(s.bucket),
		Key:           aws.String(full),
		Body:          bytes.NewReader(data),
		ContentLength: aws.Int64(int64(len(data))),
	}
	if opts.IfNoneMatch {
		in.IfNoneMatch = aws.String("*")
	}
	_, err = s.client.PutObject(ctx, in)
	return classifyS3("put", key, err)
}

// Get implements Store.
func (s *S3) Get(ctx context.Context, key string) ([]byte, error) {
	return s.get(ctx, "get", key, "")
}

func (s *S3) get(ctx context.Context, op, key, rng string) ([]byte, error) {
	full, err := s.fullKey(key)
	if err != nil {
		return nil, err
	}
	in := &s3.GetObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(full)}
	if rng != "" {
		in.Range = aws.String(rng)
	}
	out, err := s.client.GetObject(ctx, in)
	if err != nil {
		return nil, classifyS3(op, key, err)
	}
	defer out.Body.Close()
	data, err := io.ReadAll(out.Body)
	if err != nil {
		return nil, classifyS3(op, key, err)
	}
	return data, nil
}

// GetRange implements Store. A range starting at or past the end is empty
// (S3 answers 416 InvalidRange; the Store contract truncates instead).
func (s *S3) GetRange(ctx context.Context, key string, offset, length int64) ([]byte, error) {
	if offset < 0 {
		return nil, fmt.Errorf("objstore: s3 get %q: %w: negative offset %d", key, ErrPermanent, offset)
	}
	if length == 0 {
		// HTTP cannot express an empty range; still report a missing key.
		if _, err := s.Head(ctx, key); err != nil {
			return nil, err
		}
		return []byte{}, nil
	}
	if length > math.MaxInt64-offset {
		length = -1 // past any possible end: read to the end, without overflow
	}
	rng := "bytes=" + strconv.FormatInt(offset, 10) + "-"
	if length > 0 {
		rng += strconv.FormatInt(offset+length-1, 10)
	}
	data, err := s.get(ctx, "get", key, rng)
	if err != nil {
		var apiErr smithy.APIError
		var respErr *smithyhttp.ResponseError
		if (errors.As(err, &apiErr) && apiErr.ErrorCode() == "InvalidRange") ||
			(errors.As(err, &respErr) && respErr.HTTPStatusCode() == 416) {
			return []byte{}, nil
		}
		return nil, err
	}
	if length > 0 && int64(len(data)) > length {
		// A server that ignored the Range header sent the whole object.
		if offset >= int64(len(data)) {
			return []byte{}, nil
		}
		data = data[offset:][:min(int64(len(data))-offset, length)]
	}
	return data, nil
}

// Head implements Store.
func (s *S3) Head(ctx context.Context, key string) (ObjectInfo, error) {
	full, err := s.fullKey(key)
	if err != nil {
		return ObjectInfo{}, err
	}
	out, err := s.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(full)})
	if err != nil {
		return ObjectInfo{}, classifyS3("head", key, err)
	}
	info := ObjectInfo{Key: key, Size: aws.ToInt64(out.ContentLength)}
	if out.LastModified != nil {
		info.LastModified = *out.LastModified
	}
	return info, nil
}

// List implements Store, paginating with StartAfter.
func (s *S3) List(ctx context.Context, prefix string, opts ListOptions) (Page, error) {
	maxKeys := opts.MaxKeys
	if maxKeys <= 0 || maxKeys > MaxListKeys {
		maxKeys = MaxListKeys
	}
	in := &s3.ListObjectsV2Input{
		Bucket:  aws.String(s.bucket),
		Prefix:  aws.String(s.prefix + prefix),
		MaxKeys: aws.Int32(int32(maxKeys)),
	}
	if opts.StartAfter != "" {
		in.StartAfter = aws.String(s.prefix + opts.StartAfter)
	}
	out, err := s.client.ListObjectsV2(ctx, in)
	if err != nil {
		return Page{}, classifyS3("list", prefix, err)
	}
	var page Page
	for _, o := range out.Contents {
		k := strings.TrimPrefix(aws.ToString(o.Key), s.prefix)
		info := ObjectInfo{Key: k, Size: aws.ToInt64(o.Size)}
		if o.LastModified != nil {
			info.LastModified = *o.LastModified
		}
		page.Objects = append(page.Objects, info)
	}
	if aws.ToBool(out.IsTruncated) && len(page.Objects) > 0 {
		page.NextStartAfter = page.Objects[len(page.Objects)-1].Key
	}
	return page, nil
}

// Delete implements Store with one DeleteObjects call.
func (s *S3) Delete(ctx context.Context, keys []string) error {
	if len(keys) > MaxDeleteBatch {
		return fmt.Errorf("objstore: s3 delete: %w: %d keys exceed the batch limit %d", ErrPermanent, len(keys), MaxDeleteBatch)
	}
	if len(keys) == 0 {
		return nil
	}
	ids := make([]types.ObjectIdentifier, len(keys))
	for i, k := range keys {
		full, err := s.fullKey(k)
		if err != nil {
			return err
		}
		ids[i] = types.ObjectIdentifier{Key: aws.String(full)}
	}
	out, err := s.client.DeleteObjects(ctx, &s3.DeleteObjectsInput{
		Bucket: aws.String(s.bucket),
		Delete: &types.Delete{Objects: ids, Quiet: aws.Bool(true)},
	})
	if err != nil {
		return classifyS3("delete", keys[0], err)
	}
	for _, e := range out.Errors {
		code := aws.ToString(e.Code)
		if code == "NoSuchKey" {
			continue // missing keys are not an error
		}
		apiErr := &smithy.GenericAPIError{Code: code, Message: aws.ToString(e.Message)}
		return classifyS3("delete", strings.TrimPrefix(aws.ToString(e.Key), s.prefix), apiErr)
	}
	return nil
}

// Copy implements Store with CopyObject (objects up to 5 GiB).
func (s *S3) Copy(ctx context.Context, src, dst string) error {
	fullSrc, err := s.fullKey(src)
	if err != nil {
		return err
	}
	fullDst, err := s.fullKey(dst)
	if err != nil {
		return err
	}
	_, err = s.client.CopyObject(ctx, &s3.CopyObjectInput{
		Bucket:     aws.String(s.bucket),
		Key:        aws.String(fullDst),
		CopySource: aws.String(copySource(s.bucket, fullSrc)),
	})
	return classifyS3("copy", src, err)
}

// copySource is "bucket/key" with each path segment URL-encoded, as
// CopyObject's x-amz-copy-source header requires.
func copySource(bucket, key string) string {
	segs := strings.Split(key, "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	return url.PathEscape(bucket) + "/" + strings.Join(segs, "/")
}
