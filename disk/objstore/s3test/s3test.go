package s3test

import (
	"bytes"
	"context"
	"debug/buildinfo"
	"fmt"
	"go/build"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/stratadb/strata/disk/objstore"
	"github.com/stratadb/strata/disk/objstore/objstoretest"
)

const (
	// Module is the Go module of the server.
	Module = "github.com/versity/versitygw"
	// Version is the pinned version; .ci/run installs the same.
	Version = "v1.8.0"
	// InstallCommand installs the server into $GOBIN (or $GOPATH/bin).
	InstallCommand = "go install " + Module + "/cmd/versitygw@" + Version
	// BinEnv names the server binary's path, used instead of searching.
	BinEnv = "STRATA_VERSITYGW"

	// AccessKey and SecretKey are the server's root credentials.
	AccessKey = "strata-test"
	SecretKey = "strata-test-secret"
	// Region is the region the server answers for.
	Region = "us-east-1"
)

const (
	// startAttempts bounds the retries of a start that lost its free port
	// to another process.
	startAttempts = 3
	// readyTimeout bounds the wait for the server to answer HTTP.
	readyTimeout = 20 * time.Second
	// stopTimeout bounds the wait for the killed server to exit.
	stopTimeout = 10 * time.Second
)

// ConformanceOptions are the objstoretest options for this server: the
// capabilities its posix backend lacks, each with the reason (doc.go,
// Known gaps).
func ConformanceOptions() objstoretest.Options {
	return objstoretest.Options{
		NoKeyBelowObject: "versitygw's posix backend keeps object k as a file at path k, so k cannot " +
			"also be the directory of k/x (409 ObjectParentIsFile); Strata's keys never need it " +
			"(disk/objstore/s3test/doc.go)",
		NoDotOrEmptySegments: "versitygw's posix backend cleans keys as paths (x/../y is stored as y, x//y as x/y, " +
			"and trailing/ with data is refused); Strata's keys never have such segments " +
			"(disk/objstore/s3test/doc.go)",
	}
}

// Server is a running throwaway versitygw.
type Server struct {
	// Endpoint is the server's URL, http://127.0.0.1:<port>.
	Endpoint string
	// Path is the binary; Version the module version it was built from.
	Path, Version string

	root       string
	cmd        *exec.Cmd
	exited     chan struct{} // closed when cmd has exited
	log        *syncBuffer
	client     *s3.Client
	nextBucket atomic.Int64
	stopOnce   sync.Once
}

// ciRequired reports whether CI is set, so a missing server must fail the
// test rather than skip it.
func ciRequired() bool {
	v := os.Getenv("CI")
	return v != "" && v != "false" && v != "0"
}

// FindBinary returns the path of the pinned versitygw and its version, or
// an error saying what is missing.
func FindBinary() (path, version string, err error) {
	path, err = lookBinary()
	if err != nil {
		return "", "", err
	}
	info, err := buildinfo.ReadFile(path)
	if err != nil {
		return "", "", fmt.Errorf("%s: no Go build information: %w", path, err)
	}
	if info.Main.Path != Module || info.Main.Version != Version {
		return "", "", fmt.Errorf("%s is %s %s, want %s %s", path, info.Main.Path, info.Main.Version, Module, Version)
	}
	return path, info.Main.Version, nil
}

func lookBinary() (string, error) {
	if p := os.Getenv(BinEnv); p != "" {
		if st, err := os.Stat(p); err != nil || st.IsDir() {
			return "", fmt.Errorf("%s=%s is not a file", BinEnv, p)
		}
		return p, nil
	}
	if p, err := exec.LookPath("versitygw"); err == nil {
		return p, nil
	}
	var dirs []string
	if gobin := os.Getenv("GOBIN"); gobin != "" {
		dirs = append(dirs, gobin)
	}
	for _, gp := range filepath.SplitList(build.Default.GOPATH) {
		dirs = append(dirs, filepath.Join(gp, "bin"))
	}
	for _, d := range dirs {
		p := filepath.Join(d, "versitygw")
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return p, nil
		}
	}
	return "", fmt.Errorf("no versitygw in $%s, on the PATH or in %s", BinEnv, strings.Join(dirs, ", "))
}

// Start starts a server for t and stops it when t ends. Without the pinned
// binary it skips t, or fails it when CI is set.
func Start(t testing.TB) *Server {
	t.Helper()
	path, version, err := FindBinary()
	if err != nil {
		if ciRequired() {
			t.Fatalf("the real S3 server is required in CI (CI=%q): %v; install it with %s (.ci/run does)", os.Getenv("CI"), err, InstallCommand)
		}
		t.Skipf("real-S3 tests skipped: %v; install the server with %s to run them", err, InstallCommand)
	}
	s := &Server{Path: path, Version: version, root: t.TempDir()}
	t.Cleanup(func() { s.Stop(t) })
	for attempt := 1; ; attempt++ {
		err := s.start(freePort(t))
		if err == nil {
			break
		}
		if attempt == startAttempts {
			t.Fatalf("versitygw start (attempt %d): %v\nserver log:\n%s", attempt, err, s.log)
		}
	}
	s.client = s3.New(s3.Options{
		Region:       Region,
		BaseEndpoint: aws.String(s.Endpoint),
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(AccessKey, SecretKey, ""),
	})
	t.Logf("versitygw %s (%s) serving S3 on %s, buckets in %s", s.Version, s.Path, s.Endpoint, s.root)
	return s
}

// start runs the server on port and waits until it answers HTTP.
func (s *Server) start(port int) error {
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	s.Endpoint = "http://" + addr
	s.log = &syncBuffer{}
	s.cmd = exec.Command(s.Path, "--port", addr, "--access", AccessKey, "--secret", SecretKey,
		"--region", Region, "--quiet", "posix", s.root)
	s.cmd.Env = hermeticEnv()
	s.cmd.Stdout = s.log
	s.cmd.Stderr = s.log
	if err := s.cmd.Start(); err != nil {
		return err
	}
	s.exited = make(chan struct{})
	go func(cmd *exec.Cmd, exited chan struct{}) {
		_ = cmd.Wait()
		close(exited)
	}(s.cmd, s.exited)
	hc := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(readyTimeout)
	for {
		// Any HTTP answer (403 to an unsigned request) means it serves.
		resp, err := hc.Get(s.Endpoint + "/")
		if err == nil {
			resp.Body.Close()
			return nil
		}
		select {
		case <-s.exited:
			return fmt.Errorf("versitygw exited: %v", s.cmd.ProcessState)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.kill()
			return fmt.Errorf("versitygw did not answer on %s within %v: %w", addr, readyTimeout, err)
		}
	}
}

// hermeticEnv is the environment without the server's own variables
// (VGW_*, ROOT_*), so a developer's settings cannot change the test server.
func hermeticEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "VGW_") || strings.HasPrefix(kv, "ROOT_") {
			continue
		}
		env = append(env, kv)
	}
	return env
}

func (s *Server) kill() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	select {
	case <-s.exited:
	case <-time.After(stopTimeout):
	}
}

// Stop kills the server (it holds nothing worth a clean shutdown) and, if
// the test failed, logs the server's output. The test's cleanup calls it;
// calling it again does nothing.
func (s *Server) Stop(t testing.TB) {
	s.stopOnce.Do(func() {
		s.kill()
		if t.Failed() && s.log != nil {
			t.Logf("versitygw log:\n%s", s.log)
		}
	})
}

// NewBucket creates an empty bucket and returns its name.
func (s *Server) NewBucket(t testing.TB) string {
	t.Helper()
	name := fmt.Sprintf("strata-test-%d", s.nextBucket.Add(1))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := s.client.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(name)}); err != nil {
		t.Fatalf("create bucket %s: %v", name, err)
	}
	return name
}

// Config is an objstore.S3Config for bucket on this server: path-style,
// the server's credentials, two attempts a call with short back-off.
func (s *Server) Config(bucket, prefix string) objstore.S3Config {
	return objstore.S3Config{
		Endpoint:    s.Endpoint,
		Region:      Region,
		Bucket:      bucket,
		Prefix:      prefix,
		AccessKey:   AccessKey,
		SecretKey:   SecretKey,
		PathStyle:   true,
		MaxAttempts: 2,
		MaxBackoff:  10 * time.Millisecond,
	}
}

// Store is an objstore.S3 on bucket, built from Config.
func (s *Server) Store(t testing.TB, bucket, prefix string) *objstore.S3 {
	t.Helper()
	st, err := objstore.NewS3(context.Background(), s.Config(bucket, prefix))
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// syncBuffer is the server's output, written by exec's copying goroutine
// and read by the test.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	if b == nil {
		return ""
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
