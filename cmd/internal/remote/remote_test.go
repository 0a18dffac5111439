package remote

import (
	"context"
	"errors"
	"io/fs"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"

	"github.com/stratadb/strata/cmd/internal/daemon"
	"github.com/stratadb/strata/disk/objstore"
)

// parse registers the flags on a fresh FlagSet for daemon "remotetest"
// (environment STRATA_REMOTETEST_*), parses args and validates.
func parse(args []string) (Config, error) {
	var c Config
	fs := daemon.NewFlagSet("remotetest")
	c.Register(fs)
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	return c, c.Validate()
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name    string
		env     map[string]string
		args    []string
		wantErr string // substring of the error; "" means no error
		kind    string
		check   func(Config) bool
	}{
		{"none", nil, nil, "", "", nil},
		{"dir", nil, []string{"-remote-dir", "/tmp/x"}, "", "dir", nil},
		{"s3 defaults", nil, []string{"-s3-bucket", "b"}, "", "s3",
			func(c Config) bool { return c.S3.Region == "us-east-1" && c.S3.MaxAttempts == 3 && c.S3.Prefix == "" }},
		{"s3 full", nil, []string{"-s3-bucket", "b", "-s3-prefix", "sk/a", "-s3-endpoint", "http://127.0.0.1:9000",
			"-s3-region", "eu-west-1", "-s3-path-style", "-s3-max-attempts", "5", "-s3-access-key", "ak", "-s3-secret-key", "sk"}, "", "s3",
			func(c Config) bool {
				return c.S3.Prefix == "sk/a/" && c.S3.Endpoint == "http://127.0.0.1:9000" && c.S3.Region == "eu-west-1" &&
					c.S3.PathStyle && c.S3.MaxAttempts == 5 && c.S3.AccessKey == "ak" && c.S3.SecretKey == "sk"
			}},
		{"prefix kept when it ends in a slash", nil, []string{"-s3-bucket", "b", "-s3-prefix", "p/"}, "", "s3",
			func(c Config) bool { return c.S3.Prefix == "p/" }},
		{"credentials from env", map[string]string{"STRATA_REMOTETEST_S3_ACCESS_KEY": "ak", "STRATA_REMOTETEST_S3_SECRET_KEY": "sk",
			"STRATA_REMOTETEST_S3_BUCKET": "b"}, nil, "", "s3",
			func(c Config) bool { return c.S3.AccessKey == "ak" && c.S3.SecretKey == "sk" && c.S3.Bucket == "b" }},
		{"dir and bucket", nil, []string{"-remote-dir", "/tmp/x", "-s3-bucket", "b"}, "mutually exclusive", "", nil},
		{"dir from env and bucket from flag", map[string]string{"STRATA_REMOTETEST_REMOTE_DIR": "/tmp/x"}, []string{"-s3-bucket", "b"},
			"mutually exclusive", "", nil},
		{"prefix without bucket", nil, []string{"-s3-prefix", "p"}, "-s3-prefix is set but -s3-bucket is not", "", nil},
		{"endpoint without bucket", nil, []string{"-remote-dir", "d", "-s3-endpoint", "http://x"}, "-s3-endpoint is set but -s3-bucket is not", "", nil},
		{"path style without bucket", nil, []string{"-s3-path-style"}, "-s3-path-style", "", nil},
		{"secret without bucket", map[string]string{"STRATA_REMOTETEST_S3_SECRET_KEY": "sk"}, nil, "-s3-secret-key", "", nil},
		{"access key without secret", nil, []string{"-s3-bucket", "b", "-s3-access-key", "ak"}, "both AccessKey and SecretKey", "", nil},
		{"bad endpoint", nil, []string{"-s3-bucket", "b", "-s3-endpoint", "127.0.0.1:9000"}, "not an absolute URL", "", nil},
		{"zero attempts", nil, []string{"-s3-bucket", "b", "-s3-max-attempts", "0"}, "-s3-max-attempts 0 out of", "", nil},
		{"too many attempts", nil, []string{"-s3-bucket", "b", "-s3-max-attempts", "11"}, "-s3-max-attempts 11 out of", "", nil},
		{"bad attempts env", map[string]string{"STRATA_REMOTETEST_S3_MAX_ATTEMPTS": "many"}, []string{"-s3-bucket", "b"}, "STRATA_REMOTETEST_S3_MAX_ATTEMPTS", "", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			c, err := parse(tc.args)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
				}
				if !errors.Is(err, ErrConfig) && !errors.Is(err, daemon.ErrEnv) {
					t.Fatalf("err = %v is neither ErrConfig nor daemon.ErrEnv", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.Kind() != tc.kind || c.Enabled() != (tc.kind != "") {
				t.Fatalf("kind %q enabled %v, want %q", c.Kind(), c.Enabled(), tc.kind)
			}
			if tc.check != nil && !tc.check(c) {
				t.Fatalf("config %+v", c)
			}
		})
	}
}

func TestOpen(t *testing.T) {
	backend := s3mem.New()
	if err := backend.CreateBucket("strata"); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(gofakes3.New(backend).Server())
	defer srv.Close()
	ctx := context.Background()
	s3args := func(bucket string) []string {
		return []string{"-s3-bucket", bucket, "-s3-endpoint", srv.URL, "-s3-path-style", "-s3-max-attempts", "1",
			"-s3-access-key", "ak", "-s3-secret-key", "sk", "-s3-prefix", "daemon-a"}
	}

	t.Run("none", func(t *testing.T) {
		st, err := Open(ctx, Config{}, OpenOptions{})
		if st != nil || err != nil {
			t.Fatalf("Open of nothing = %v, %v", st, err)
		}
	})
	t.Run("dir", func(t *testing.T) {
		c, err := parse([]string{"-remote-dir", t.TempDir() + "/objects"})
		if err != nil {
			t.Fatal(err)
		}
		st, err := Open(ctx, c, OpenOptions{InstanceID: "test"})
		if err != nil {
			t.Fatal(err)
		}
		if err := st.Put(ctx, "k", []byte("v"), objstore.PutOptions{}); err != nil {
			t.Fatal(err)
		}
		if got, err := st.Get(ctx, "k"); err != nil || string(got) != "v" {
			t.Fatalf("Get = %q, %v", got, err)
		}
	})
	t.Run("dir sweeps its own crash leftovers", func(t *testing.T) {
		dir := t.TempDir() + "/objects"
		c, err := parse([]string{"-remote-dir", dir})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Open(ctx, c, OpenOptions{InstanceID: "sk-1"}); err != nil {
			t.Fatal(err)
		}
		// Temp files as a Put of instance sk-1 (and of another instance)
		// leaves them when the process dies between create and rename.
		mine, theirs := filepath.Join(dir, "tsk-1-7"), filepath.Join(dir, "tsk-2-7")
		for _, p := range []string{mine, theirs} {
			if err := os.WriteFile(p, []byte("partial"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := Open(ctx, c, OpenOptions{InstanceID: "sk-1"}); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(mine); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("own temp file survived Open: %v", err)
		}
		if _, err := os.Stat(theirs); err != nil {
			t.Errorf("another instance's temp file was touched: %v", err)
		}
	})
	t.Run("s3 under the prefix", func(t *testing.T) {
		c, err := parse(s3args("strata"))
		if err != nil {
			t.Fatal(err)
		}
		st, err := Open(ctx, c, OpenOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if err := st.Put(ctx, "wal/x", []byte("v"), objstore.PutOptions{}); err != nil {
			t.Fatal(err)
		}
		// The raw bucket holds the key below the prefix and its "/".
		raw, err := objstore.NewS3(ctx, objstore.S3Config{Endpoint: srv.URL, Bucket: "strata", PathStyle: true, AccessKey: "ak", SecretKey: "sk"})
		if err != nil {
			t.Fatal(err)
		}
		if got, err := raw.Get(ctx, "daemon-a/wal/x"); err != nil || string(got) != "v" {
			t.Fatalf("raw Get = %q, %v", got, err)
		}
	})
	t.Run("s3 missing bucket", func(t *testing.T) {
		c, err := parse(s3args("no-such-bucket"))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Open(ctx, c, OpenOptions{}); !errors.Is(err, ErrUnusable) || !strings.Contains(err.Error(), "no-such-bucket") {
			t.Fatalf("Open of a missing bucket = %v, want ErrUnusable naming it", err)
		}
	})
	t.Run("s3 unreachable starts anyway", func(t *testing.T) {
		dead := httptest.NewServer(nil)
		url := dead.URL
		dead.Close()
		c, err := parse([]string{"-s3-bucket", "strata", "-s3-endpoint", url, "-s3-path-style", "-s3-max-attempts", "1",
			"-s3-access-key", "ak", "-s3-secret-key", "sk"})
		if err != nil {
			t.Fatal(err)
		}
		if st, err := Open(ctx, c, OpenOptions{}); err != nil || st == nil {
			t.Fatalf("Open with the service down = %v, %v; want a store (retryable errors only warn)", st, err)
		}
	})
}
