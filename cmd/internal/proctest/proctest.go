package proctest

import (
	"bytes"
	stdnet "net"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
)

// FreeAddrs returns n distinct free loopback addresses: the listeners stay
// open until all are chosen, so the kernel cannot hand out one port twice.
func FreeAddrs(t testing.TB, n int) []string {
	t.Helper()
	var out []string
	for i := 0; i < n; i++ {
		l, err := stdnet.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		out = append(out, l.Addr().String())
	}
	return out
}

// CleanEnv is the process environment without the variables whose names
// start with prefix or equal one of names, so a developer's settings
// cannot change what a test runs.
func CleanEnv(prefix string, names ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, prefix) || slices.Contains(names, k) {
			continue
		}
		env = append(env, kv)
	}
	return env
}

// SyncBuffer is a bytes.Buffer safe to read while a process writes it.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
