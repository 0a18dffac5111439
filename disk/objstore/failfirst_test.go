package objstore_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/stratadb/strata/disk/objstore"
	"github.com/stratadb/strata/disk/objstore/objstoretest"
)

func newFailFirst(t *testing.T, inner objstore.Store, n int) *objstore.FailFirst {
	t.Helper()
	f, err := objstore.NewFailFirst(inner, n)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// TestFailFirstZeroConformance: with n = 0 the wrapper changes nothing.
func TestFailFirstZeroConformance(t *testing.T) {
	objstoretest.Run(t, func(t *testing.T) objstore.Store {
		return newFailFirst(t, newSimLocal(t), 0)
	})
}

// TestFailFirstPerOperation: each distinct operation fails exactly its
// first n attempts, with ErrTransient before anything happened, and
// operations count separately.
func TestFailFirstPerOperation(t *testing.T) {
	ctx := context.Background()
	inner := newSimLocal(t)
	const n = 3
	f := newFailFirst(t, inner, n)
	for i := 1; i <= n; i++ {
		err := f.Put(ctx, "a", []byte("v"), objstore.PutOptions{})
		objstoretest.WantClass(t, "Put", err, objstore.ErrTransient)
		if !strings.Contains(err.Error(), `put "a"`) || !strings.Contains(err.Error(), "attempt") {
			t.Errorf("error %q does not name the operation and attempt", err)
		}
		// Nothing happened: the object is not there.
		if _, err := inner.Head(ctx, "a"); !errors.Is(err, objstore.ErrNotFound) {
			t.Fatalf("failed put %d reached the store: %v", i, err)
		}
	}
	if err := f.Put(ctx, "a", []byte("v"), objstore.PutOptions{}); err != nil {
		t.Fatalf("put after %d failures: %v", n, err)
	}
	// Get of the same key is another operation: it fails n times too, and
	// GetRange counts as the same download.
	for i := 0; i < n-1; i++ {
		if _, err := f.Get(ctx, "a"); !errors.Is(err, objstore.ErrTransient) {
			t.Fatalf("get %d: %v", i, err)
		}
	}
	if _, err := f.GetRange(ctx, "a", 0, 1); !errors.Is(err, objstore.ErrTransient) {
		t.Fatalf("getrange as the third get: %v", err)
	}
	if b, err := f.Get(ctx, "a"); err != nil || string(b) != "v" {
		t.Fatalf("get after failures = %q, %v", b, err)
	}
	// A different key starts from zero.
	if _, err := f.Get(ctx, "b"); !errors.Is(err, objstore.ErrTransient) {
		t.Fatalf("first get of another key: %v", err)
	}
	// List pages are distinct operations; so are delete batches.
	for i := 0; i < n; i++ {
		if _, err := f.List(ctx, "", objstore.ListOptions{}); !errors.Is(err, objstore.ErrTransient) {
			t.Fatalf("list %d: %v", i, err)
		}
	}
	if p, err := f.List(ctx, "", objstore.ListOptions{}); err != nil || len(p.Objects) != 1 {
		t.Fatalf("list after failures = %+v, %v", p, err)
	}
	if _, err := f.List(ctx, "", objstore.ListOptions{StartAfter: "a"}); !errors.Is(err, objstore.ErrTransient) {
		t.Fatalf("list of another page: %v", err)
	}
	if err := f.Delete(ctx, []string{"a", "b"}); !errors.Is(err, objstore.ErrTransient) {
		t.Fatalf("delete: %v", err)
	}
	if got, want := f.Injected(), n+(n)+1+n+1+1; got != want {
		t.Errorf("Injected = %d, want %d", got, want)
	}
}

// TestFailFirstDeterministic: two wrappers fed the same calls fail the same
// ones.
func TestFailFirstDeterministic(t *testing.T) {
	ctx := context.Background()
	run := func() []bool {
		f := newFailFirst(t, newSimLocal(t), 2)
		var out []bool
		for i := 0; i < 12; i++ {
			key := string(rune('a' + i%3))
			out = append(out, f.Put(ctx, key, nil, objstore.PutOptions{}) != nil)
		}
		return out
	}
	a, b := run(), run()
	want := []bool{true, true, true, true, true, true, false, false, false, false, false, false}
	for i := range a {
		if a[i] != b[i] || a[i] != want[i] {
			t.Fatalf("runs differ or unexpected: %v %v, want %v", a, b, want)
		}
	}
}

func TestNewFailFirstRejects(t *testing.T) {
	if _, err := objstore.NewFailFirst(newSimLocal(t), -1); err == nil {
		t.Error("negative n accepted")
	}
	if _, err := objstore.NewFailFirst(nil, 1); err == nil {
		t.Error("nil store accepted")
	}
}
