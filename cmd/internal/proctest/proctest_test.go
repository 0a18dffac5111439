package proctest

import (
	"fmt"
	"strings"
	"sync"
	"testing"
)

func TestFreeAddrsDistinct(t *testing.T) {
	addrs := FreeAddrs(t, 8)
	seen := map[string]bool{}
	for _, a := range addrs {
		if seen[a] || !strings.HasPrefix(a, "127.0.0.1:") {
			t.Fatalf("addresses %v: %q repeated or not loopback", addrs, a)
		}
		seen[a] = true
	}
}

func TestCleanEnv(t *testing.T) {
	t.Setenv("STRATA_X_FLAG", "1")
	t.Setenv("SECRET_ALIAS", "2")
	t.Setenv("KEEP_ME", "3")
	env := strings.Join(CleanEnv("STRATA_", "SECRET_ALIAS"), "\n")
	if strings.Contains(env, "STRATA_X_FLAG=") || strings.Contains(env, "SECRET_ALIAS=") || !strings.Contains(env, "KEEP_ME=3") {
		t.Fatalf("CleanEnv kept or dropped the wrong variables:\n%s", env)
	}
}

func TestSyncBufferConcurrent(t *testing.T) {
	var b SyncBuffer
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 100 {
				fmt.Fprintf(&b, "%d", i)
				_ = b.String()
			}
		}()
	}
	wg.Wait()
	if n := len(b.String()); n != 400 {
		t.Fatalf("%d bytes written, want 400", n)
	}
}
