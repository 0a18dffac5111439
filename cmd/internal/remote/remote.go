package remote

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/stratadb/strata/cmd/internal/daemon"
	"github.com/stratadb/strata/disk"
	"github.com/stratadb/strata/disk/objstore"
)

// ErrConfig reports remote-storage flags that cannot be used together or
// do not make sense.
var ErrConfig = errors.New("remote: bad remote storage configuration")

// ErrUnusable reports an S3 bucket that refused the start-up probe with a
// permanent error.
var ErrUnusable = errors.New("remote: object store unusable")

// MaxS3Attempts bounds -s3-max-attempts: the SDK retries inside one call,
// and the daemon's own retries multiply with these.
const MaxS3Attempts = 10

// probeTimeout bounds the start-up probe of an S3 bucket.
const probeTimeout = 10 * time.Second

// Config is the remote storage a daemon's flags describe. The zero value
// is "no remote storage".
type Config struct {
	// Dir is a local directory used as the object store.
	Dir string
	// S3 configures an S3 bucket; S3.Bucket empty means no S3.
	S3 objstore.S3Config
}

// Register defines -remote-dir and the -s3-* flags on f.
func (c *Config) Register(f *daemon.FlagSet) {
	f.String(&c.Dir, "remote-dir", "", "local directory used as object store (development; empty: none; exclusive with -s3-bucket)")
	f.String(&c.S3.Bucket, "s3-bucket", "", "S3 bucket used as object store (empty: none; exclusive with -remote-dir)")
	f.String(&c.S3.Prefix, "s3-prefix", "", `key prefix inside the bucket, so daemons can share it ("/" is appended if missing)`)
	f.String(&c.S3.Endpoint, "s3-endpoint", "", "S3 service URL, e.g. http://127.0.0.1:9000 for MinIO (empty: AWS's endpoint for the region)")
	f.String(&c.S3.Region, "s3-region", "us-east-1", "the bucket's region")
	f.Bool(&c.S3.PathStyle, "s3-path-style", false, "address the bucket as endpoint/bucket/key (MinIO and most S3-compatible services need it)")
	f.Int(&c.S3.MaxAttempts, "s3-max-attempts", 3, fmt.Sprintf("attempts per S3 call, first try included, 1..%d", MaxS3Attempts))
	f.Secret(&c.S3.AccessKey, "s3-access-key", "S3 access key id (with -s3-secret-key; both empty: the AWS SDK's default chain: AWS_ACCESS_KEY_ID, shared config, instance role)")
	f.Secret(&c.S3.SecretKey, "s3-secret-key", "S3 secret access key")
}

// Kind is "s3", "dir" or "" (no remote storage). Call after Validate.
func (c Config) Kind() string {
	switch {
	case c.S3.Bucket != "":
		return "s3"
	case c.Dir != "":
		return "dir"
	}
	return ""
}

// Enabled reports whether a remote store is configured.
func (c Config) Enabled() bool { return c.Kind() != "" }

// Validate rejects inconsistent settings and normalises the S3 prefix to
// end in "/".
func (c *Config) Validate() error {
	if c.Dir != "" && c.S3.Bucket != "" {
		return fmt.Errorf("%w: -remote-dir and -s3-bucket are mutually exclusive: give a local directory or an S3 bucket, not both", ErrConfig)
	}
	if c.S3.Bucket == "" {
		for _, s := range []struct {
			flag string
			set  bool
		}{
			{"-s3-prefix", c.S3.Prefix != ""},
			{"-s3-endpoint", c.S3.Endpoint != ""},
			{"-s3-path-style", c.S3.PathStyle},
			{"-s3-access-key", c.S3.AccessKey != ""},
			{"-s3-secret-key", c.S3.SecretKey != ""},
		} {
			if s.set {
				return fmt.Errorf("%w: %s is set but -s3-bucket is not", ErrConfig, s.flag)
			}
		}
		return nil
	}
	if c.S3.MaxAttempts < 1 || c.S3.MaxAttempts > MaxS3Attempts {
		return fmt.Errorf("%w: -s3-max-attempts %d out of [1, %d]", ErrConfig, c.S3.MaxAttempts, MaxS3Attempts)
	}
	if c.S3.Prefix != "" && !strings.HasSuffix(c.S3.Prefix, "/") {
		c.S3.Prefix += "/"
	}
	if err := c.S3.Validate(); err != nil {
		return fmt.Errorf("%w: %w", ErrConfig, err)
	}
	return nil
}

// OpenOptions are what Open needs besides the configuration.
type OpenOptions struct {
	// Now stamps objects of a local store (the daemon's clock).
	Now func() time.Time
	// InstanceID names this process in a local store's temporary files.
	InstanceID string
	// Log receives one line describing the store (never credentials).
	Log *slog.Logger
}

// Open builds the store c describes; nil with no error when none is
// configured. c must have passed Validate. A local directory is created if
// missing. An S3 bucket is probed with a one-key List under the prefix: a
// permanent error (no such bucket, bad credentials, no s3:ListBucket
// permission) is ErrUnusable; a retryable one is logged and the daemon
// starts anyway (the service may be briefly unavailable, and every call
// retries).
func Open(ctx context.Context, c Config, o OpenOptions) (objstore.Store, error) {
	log := o.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	switch c.Kind() {
	case "dir":
		if err := os.MkdirAll(c.Dir, 0o755); err != nil {
			return nil, fmt.Errorf("remote: %w", err)
		}
		st, err := objstore.NewLocal(disk.Dir(c.Dir), ".", objstore.LocalOptions{Now: o.Now, InstanceID: o.InstanceID})
		if err != nil {
			return nil, fmt.Errorf("remote: local store in %s: %w", c.Dir, err)
		}
		// A Put cut short by a crash of this instance leaves a temp file
		// that nothing else will remove; sweeping is bounded per call and
		// failing to sweep only costs disk space, so it is not fatal.
		if n, err := st.SweepTemp(ctx); err != nil {
			log.Warn("remote storage: temp sweep failed", "dir", c.Dir, "removed", n, "err", err)
		} else if n > 0 {
			log.Info("remote storage: removed temp files left by a crash", "dir", c.Dir, "removed", n)
		}
		log.Info("remote storage", "kind", "dir", "dir", c.Dir)
		return st, nil
	case "s3":
		st, err := objstore.NewS3(ctx, c.S3)
		if err != nil {
			return nil, fmt.Errorf("remote: %w", err)
		}
		pctx, cancel := context.WithTimeout(ctx, probeTimeout)
		_, err = st.List(pctx, "", objstore.ListOptions{MaxKeys: 1})
		cancel()
		switch {
		case errors.Is(err, objstore.ErrPermanent):
			return nil, fmt.Errorf("%w: s3 bucket %q (prefix %q, endpoint %q): %w", ErrUnusable, c.S3.Bucket, c.S3.Prefix, c.S3.Endpoint, err)
		case err != nil:
			log.Warn("remote storage probe failed; starting anyway", "bucket", c.S3.Bucket, "err", err)
		}
		log.Info("remote storage", "kind", "s3", "bucket", c.S3.Bucket, "prefix", c.S3.Prefix,
			"endpoint", c.S3.Endpoint, "region", c.S3.Region, "path_style", c.S3.PathStyle,
			"static_credentials", c.S3.AccessKey != "")
		return st, nil
	}
	return nil, nil
}
