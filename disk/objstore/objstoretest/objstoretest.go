package objstoretest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"testing"

	"github.com/stratadb/strata/disk/objstore"
)

// Options adjusts the suite for an implementation's known gaps. Each gap
// is a named capability the implementation lacks; its value is the reason,
// which the suite reports with t.Skip on exactly the cases that need the
// capability, so a run shows what was left out and why. The zero value
// runs everything.
type Options struct {
	// SkipConcurrentIfNoneMatch, if non-empty, skips the race of concurrent
	// conditional puts.
	SkipConcurrentIfNoneMatch string
	// NoKeyBelowObject, if non-empty, says the store cannot hold an object
	// at a key k and another at a key starting with k+"/" at the same time
	// ("a" and "a/b"): a server that keeps each object as a file at the
	// key's path makes k a file in one case and a directory in the other.
	// It skips KeyBelowObject.
	NoKeyBelowObject string
	// NoDotOrEmptySegments, if non-empty, says the store does not keep
	// verbatim a key with an empty, "." or ".." segment ("x/../y", "x//y",
	// "/lead", "trailing/"): a server that maps keys to paths cleans them.
	// It skips DotOrEmptySegments.
	NoDotOrEmptySegments string
}

// Run runs the conformance suite. newStore returns a fresh, empty store for
// each subtest.
func Run(t *testing.T, newStore func(t *testing.T) objstore.Store) {
	RunWithOptions(t, newStore, Options{})
}

// RunWithOptions is Run with Options.
func RunWithOptions(t *testing.T, newStore func(t *testing.T) objstore.Store, opts Options) {
	// needs skips a case when the store lacks a capability: gap is the
	// Options field's value (the reason), name the field's name.
	needs := func(name, gap string, fn func(t *testing.T, s objstore.Store)) func(t *testing.T, s objstore.Store) {
		return func(t *testing.T, s objstore.Store) {
			if gap != "" {
				t.Skipf("store lacks a capability (Options.%s): %s", name, gap)
			}
			fn(t, s)
		}
	}
	tests := []struct {
		name string
		fn   func(t *testing.T, s objstore.Store)
	}{
		{"PutGet", testPutGet},
		{"Overwrite", testOverwrite},
		{"EmptyObject", testEmpty},
		{"OddKeys", testOddKeys},
		{"KeyBelowObject", needs("NoKeyBelowObject", opts.NoKeyBelowObject, testKeyBelowObject)},
		{"DotOrEmptySegments", needs("NoDotOrEmptySegments", opts.NoDotOrEmptySegments, testDotOrEmptySegments)},
		{"NotFound", testNotFound},
		{"InvalidKey", testInvalidKey},
		{"GetRange", testGetRange},
		{"Head", testHead},
		{"ListPrefixOrder", testListPrefixOrder},
		{"ListPagination", testListPagination},
		{"ListStartAfter", testListStartAfter},
		{"Delete", testDelete},
		{"DeleteBatchLimit", testDeleteBatchLimit},
		{"Copy", testCopy},
		{"IfNoneMatch", testIfNoneMatch},
		{"IfNoneMatchConcurrent", needs("SkipConcurrentIfNoneMatch", opts.SkipConcurrentIfNoneMatch, testIfNoneMatchConcurrent)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, newStore(t)) })
	}
}

var classes = []error{
	objstore.ErrNotFound, objstore.ErrPreconditionFailed, objstore.ErrThrottled,
	objstore.ErrTransient, objstore.ErrPermanent,
}

// WantClass fails t unless err wraps class and no other error class.
func WantClass(t testing.TB, what string, err, class error) {
	t.Helper()
	if !errors.Is(err, class) {
		t.Fatalf("%s: got %v, want an error of class %v", what, err, class)
	}
	n := 0
	for _, c := range classes {
		if errors.Is(err, c) {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("%s: error %v wraps %d classes, want exactly one", what, err, n)
	}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func put(t testing.TB, s objstore.Store, key, data string) {
	t.Helper()
	must(t, s.Put(context.Background(), key, []byte(data), objstore.PutOptions{}))
}

func get(t testing.TB, s objstore.Store, key string) string {
	t.Helper()
	b, err := s.Get(context.Background(), key)
	must(t, err)
	return string(b)
}

func listAll(t testing.TB, s objstore.Store, prefix string, pageSize int) []string {
	t.Helper()
	var keys []string
	opts := objstore.ListOptions{MaxKeys: pageSize}
	for pages := 0; ; pages++ {
		if pages > 10000 {
			t.Fatal("List never reached its last page")
		}
		page, err := s.List(context.Background(), prefix, opts)
		must(t, err)
		if pageSize > 0 && len(page.Objects) > pageSize {
			t.Fatalf("List returned %d objects, more than MaxKeys %d", len(page.Objects), pageSize)
		}
		for _, o := range page.Objects {
			keys = append(keys, o.Key)
		}
		if page.NextStartAfter == "" {
			return keys
		}
		if len(page.Objects) == 0 || page.NextStartAfter != page.Objects[len(page.Objects)-1].Key {
			t.Fatalf("NextStartAfter %q is not the page's last key", page.NextStartAfter)
		}
		opts.StartAfter = page.NextStartAfter
	}
}

func equalKeys(t testing.TB, what string, got, want []string) {
	t.Helper()
	if strings.Join(got, "\n") != strings.Join(want, "\n") || len(got) != len(want) {
		t.Fatalf("%s: got keys %q, want %q", what, got, want)
	}
}

func testPutGet(t *testing.T, s objstore.Store) {
	data := bytes.Repeat([]byte("strata"), 10000)
	must(t, s.Put(context.Background(), "obj", data, objstore.PutOptions{}))
	got, err := s.Get(context.Background(), "obj")
	must(t, err)
	if !bytes.Equal(got, data) {
		t.Fatalf("Get returned %d bytes, want the %d put", len(got), len(data))
	}
	// Binary content round-trips exactly.
	bin := make([]byte, 256)
	for i := range bin {
		bin[i] = byte(i)
	}
	must(t, s.Put(context.Background(), "bin", bin, objstore.PutOptions{}))
	if got := get(t, s, "bin"); got != string(bin) {
		t.Fatal("binary object changed")
	}
}

func testOverwrite(t *testing.T, s objstore.Store) {
	put(t, s, "k", "first version, longer")
	put(t, s, "k", "second")
	if got := get(t, s, "k"); got != "second" {
		t.Fatalf("Get = %q, want second", got)
	}
	info, err := s.Head(context.Background(), "k")
	must(t, err)
	if info.Size != 6 {
		t.Fatalf("Head size = %d, want 6", info.Size)
	}
	equalKeys(t, "List after overwrite", listAll(t, s, "", 0), []string{"k"})
}

func testEmpty(t *testing.T, s objstore.Store) {
	put(t, s, "empty", "")
	got, err := s.Get(context.Background(), "empty")
	must(t, err)
	if len(got) != 0 {
		t.Fatalf("empty object read as %d bytes", len(got))
	}
	info, err := s.Head(context.Background(), "empty")
	must(t, err)
	if info.Size != 0 || info.Key != "empty" {
		t.Fatalf("Head = %+v", info)
	}
	r, err := s.GetRange(context.Background(), "empty", 0, 10)
	must(t, err)
	if len(r) != 0 {
		t.Fatalf("range of empty object = %q", r)
	}
	equalKeys(t, "List", listAll(t, s, "", 0), []string{"empty"})
}

// oddKeys are stored and listed back verbatim by every store: awkward
// characters, and '/' next to the bytes that sort around it ('-' and '.'
// before it, '_' after), but no key that is also the directory of another
// and no empty, "." or ".." segment (those are the optional cases below).
var oddKeys = []string{
	"a/b/c",
	"a-b",
	"a.b",
	"a_b",
	"a b/with space",
	"pct%41/100%",
	"unicode/ünïcödé",
	"tenants/3f2a/timelines/9c1e/000000000000000000000000000000000000000000000000-FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF__00000000016B9C28-00000000016B9D40-00000001",
	"..x/y.",
	"plus+eq=amp&q?hash#",
}

// keysBelowObjects are keys of which some are also the directory of others
// ("a" and "a/b"): a flat namespace holds them all (Options.NoKeyBelowObject).
var keysBelowObjects = []string{"a", "a/b", "a/b/c", "a/bc", "ab"}

// dotOrEmptySegmentKeys are keys with an empty, "." or ".." segment, which
// a store must not clean as a path (Options.NoDotOrEmptySegments).
var dotOrEmptySegmentKeys = []string{
	"x/./y",
	"x/../y",
	"x//y",
	"/lead",
	"trailing/",
	"..",
	"x/..",
}

// putListGet stores each key with its own value, then reads every one back
// and lists them all in lexical order.
func putListGet(t *testing.T, s objstore.Store, keys []string) {
	t.Helper()
	for i, k := range keys {
		put(t, s, k, fmt.Sprintf("value %d", i))
	}
	for i, k := range keys {
		if got, want := get(t, s, k), fmt.Sprintf("value %d", i); got != want {
			t.Fatalf("Get(%q) = %q, want %q", k, got, want)
		}
	}
	want := append([]string(nil), keys...)
	sortStrings(want)
	equalKeys(t, "List all", listAll(t, s, "", 0), want)
	equalKeys(t, "List all in pages of 1", listAll(t, s, "", 1), want)
}

func testOddKeys(t *testing.T, s objstore.Store) {
	putListGet(t, s, oddKeys)
}

func testKeyBelowObject(t *testing.T, s objstore.Store) {
	ctx := context.Background()
	putListGet(t, s, keysBelowObjects)
	// Listing below an object's key finds only what is under it.
	equalKeys(t, "List a/", listAll(t, s, "a/", 0), []string{"a/b", "a/b/c", "a/bc"})
	equalKeys(t, "List a/b", listAll(t, s, "a/b", 0), []string{"a/b", "a/b/c", "a/bc"})
	// Deleting the upper object leaves the ones below it, and the other way.
	must(t, s.Delete(ctx, []string{"a", "a/b/c"}))
	equalKeys(t, "after delete", listAll(t, s, "", 0), []string{"a/b", "a/bc", "ab"})
	put(t, s, "a", "again")
	put(t, s, "a/b/c", "again")
	equalKeys(t, "after rewriting", listAll(t, s, "", 0), keysBelowObjects)
	must(t, s.Delete(ctx, keysBelowObjects))
	equalKeys(t, "after deleting all", listAll(t, s, "", 0), nil)
	// The ordering case of ListPrefixOrder with objects at "t" and "t/a".
	listPrefixOrder(t, s, []string{"t", "t/a"})
}

func testDotOrEmptySegments(t *testing.T, s objstore.Store) {
	putListGet(t, s, dotOrEmptySegmentKeys)
	// None of them is reachable under its cleaned name.
	for _, k := range []string{"x/y", "y", "lead", "trailing", "x"} {
		_, err := s.Head(context.Background(), k)
		WantClass(t, "Head "+k, err, objstore.ErrNotFound)
	}
}

func sortStrings(s []string) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}

func testNotFound(t *testing.T, s objstore.Store) {
	ctx := context.Background()
	put(t, s, "dir/present", "x")
	for _, k := range []string{"missing", "dir/missing", "dir", "dir/present/below", "dir/"} {
		_, err := s.Get(ctx, k)
		WantClass(t, "Get "+k, err, objstore.ErrNotFound)
		_, err = s.GetRange(ctx, k, 0, 1)
		WantClass(t, "GetRange "+k, err, objstore.ErrNotFound)
		_, err = s.Head(ctx, k)
		WantClass(t, "Head "+k, err, objstore.ErrNotFound)
	}
	err := s.Copy(ctx, "missing", "dst")
	WantClass(t, "Copy missing", err, objstore.ErrNotFound)
	_, err = s.Head(ctx, "dst")
	WantClass(t, "Head of failed copy's destination", err, objstore.ErrNotFound)
}

func testInvalidKey(t *testing.T, s objstore.Store) {
	ctx := context.Background()
	err := s.Put(ctx, "", []byte("x"), objstore.PutOptions{})
	WantClass(t, "Put empty key", err, objstore.ErrPermanent)
	_, err = s.Get(ctx, "")
	WantClass(t, "Get empty key", err, objstore.ErrPermanent)
	err = s.Put(ctx, strings.Repeat("k", objstore.MaxKeyBytes+1), []byte("x"), objstore.PutOptions{})
	WantClass(t, "Put over-long key", err, objstore.ErrPermanent)
	_, err = s.GetRange(ctx, "k", -1, 1)
	WantClass(t, "GetRange negative offset", err, objstore.ErrPermanent)
}

func testGetRange(t *testing.T, s objstore.Store) {
	put(t, s, "r", "0123456789")
	tests := []struct {
		off, length int64
		want        string
	}{
		{0, 10, "0123456789"},
		{2, 3, "234"},
		{0, -1, "0123456789"},
		{7, -1, "789"},
		{7, 100, "789"},
		{9, 1, "9"},
		{10, 5, ""},
		{25, -1, ""},
		{3, 0, ""},
		{2, math.MaxInt64, "23456789"},
		{math.MaxInt64, 1, ""},
	}
	for _, tc := range tests {
		got, err := s.GetRange(context.Background(), "r", tc.off, tc.length)
		if err != nil {
			t.Fatalf("GetRange(%d, %d): %v", tc.off, tc.length, err)
		}
		if string(got) != tc.want {
			t.Fatalf("GetRange(%d, %d) = %q, want %q", tc.off, tc.length, got, tc.want)
		}
	}
}

func testHead(t *testing.T, s objstore.Store) {
	put(t, s, "h/obj", "12345")
	info, err := s.Head(context.Background(), "h/obj")
	must(t, err)
	if info.Key != "h/obj" || info.Size != 5 {
		t.Fatalf("Head = %+v, want key h/obj size 5", info)
	}
	page, err := s.List(context.Background(), "h/", objstore.ListOptions{})
	must(t, err)
	if len(page.Objects) != 1 || page.Objects[0].Size != 5 || page.Objects[0].Key != "h/obj" {
		t.Fatalf("List = %+v", page.Objects)
	}
}

// listPrefixOrderKeys sort differently by bytes than by path: '-' (0x2D)
// sorts before '/' (0x2F), so "t/a-1" comes before "t/a/1", which a store
// walking directories in name order would get wrong.
var listPrefixOrderKeys = []string{"t/a/1", "t/a/2", "t/a-1", "t/a/b/3", "t/ab", "t/b", "u/x", "ta"}

func testListPrefixOrder(t *testing.T, s objstore.Store) {
	listPrefixOrder(t, s, nil)
}

// listPrefixOrder stores listPrefixOrderKeys plus extra and checks List by
// prefix, whole and in pages of 2, against the lexical order of the keys
// stored.
func listPrefixOrder(t *testing.T, s objstore.Store, extra []string) {
	stored := map[string]bool{}
	for _, k := range append(append([]string(nil), listPrefixOrderKeys...), extra...) {
		put(t, s, k, k)
		stored[k] = true
	}
	// Every expectation as if all of "t" and "t/a" were stored too; keys
	// not stored drop out.
	tests := []struct {
		prefix string
		want   []string
	}{
		{"t/", []string{"t/a", "t/a-1", "t/a/1", "t/a/2", "t/a/b/3", "t/ab", "t/b"}},
		{"t/a", []string{"t/a", "t/a-1", "t/a/1", "t/a/2", "t/a/b/3", "t/ab"}},
		{"t/a/", []string{"t/a/1", "t/a/2", "t/a/b/3"}},
		{"t/a/b", []string{"t/a/b/3"}},
		{"t", []string{"t", "t/a", "t/a-1", "t/a/1", "t/a/2", "t/a/b/3", "t/ab", "t/b", "ta"}},
		{"u/x", []string{"u/x"}},
		{"v", nil},
		{"t/a/b/3/", nil},
	}
	for _, tc := range tests {
		var want []string
		for _, k := range tc.want {
			if stored[k] {
				want = append(want, k)
			}
		}
		equalKeys(t, fmt.Sprintf("List(%q)", tc.prefix), listAll(t, s, tc.prefix, 0), want)
		equalKeys(t, fmt.Sprintf("List(%q) in pages of 2", tc.prefix), listAll(t, s, tc.prefix, 2), want)
	}
	var all []string
	for k := range stored {
		all = append(all, k)
	}
	sortStrings(all)
	equalKeys(t, `List("")`, listAll(t, s, "", 0), all)
	equalKeys(t, `List("") in pages of 2`, listAll(t, s, "", 2), all)
}

func testListPagination(t *testing.T, s objstore.Store) {
	const n = 23
	var want []string
	for i := 0; i < n; i++ {
		k := fmt.Sprintf("p/%03d", i)
		put(t, s, k, "")
		want = append(want, k)
	}
	put(t, s, "q/outside", "")
	for _, size := range []int{1, 5, 22, 23, 24, 0} {
		equalKeys(t, fmt.Sprintf("pages of %d", size), listAll(t, s, "p/", size), want)
	}
	page, err := s.List(context.Background(), "p/", objstore.ListOptions{MaxKeys: 23})
	must(t, err)
	if len(page.Objects) != 23 {
		t.Fatalf("page of 23 has %d objects", len(page.Objects))
	}
	// An exactly full last page may still carry a NextStartAfter (S3 does
	// not know there is nothing more); resuming from it must be empty.
	if page.NextStartAfter != "" {
		next, err := s.List(context.Background(), "p/", objstore.ListOptions{StartAfter: page.NextStartAfter})
		must(t, err)
		if len(next.Objects) != 0 || next.NextStartAfter != "" {
			t.Fatalf("page after the last = %+v", next)
		}
	}
	page, err = s.List(context.Background(), "p/", objstore.ListOptions{MaxKeys: 5})
	must(t, err)
	if len(page.Objects) != 5 || page.NextStartAfter != "p/004" {
		t.Fatalf("first page of 5: %d objects, NextStartAfter %q", len(page.Objects), page.NextStartAfter)
	}
}

func testListStartAfter(t *testing.T, s objstore.Store) {
	for _, k := range []string{"s/a", "s/b/1", "s/b/2", "s/c"} {
		put(t, s, k, "")
	}
	tests := []struct {
		startAfter string
		want       []string
	}{
		{"s/a", []string{"s/b/1", "s/b/2", "s/c"}},
		{"s/b", []string{"s/b/1", "s/b/2", "s/c"}},
		{"s/b/1", []string{"s/b/2", "s/c"}},
		{"s/b/9", []string{"s/c"}},
		{"s/c", nil},
		{"r", []string{"s/a", "s/b/1", "s/b/2", "s/c"}},
	}
	for _, tc := range tests {
		page, err := s.List(context.Background(), "s/", objstore.ListOptions{StartAfter: tc.startAfter})
		must(t, err)
		var got []string
		for _, o := range page.Objects {
			got = append(got, o.Key)
		}
		equalKeys(t, "StartAfter "+tc.startAfter, got, tc.want)
		if page.NextStartAfter != "" {
			t.Fatalf("StartAfter %q: NextStartAfter %q on the only page", tc.startAfter, page.NextStartAfter)
		}
	}
}

func testDelete(t *testing.T, s objstore.Store) {
	ctx := context.Background()
	for _, k := range []string{"d/1", "d/2", "d/sub/3", "keep"} {
		put(t, s, k, k)
	}
	must(t, s.Delete(ctx, []string{"d/1", "d/sub/3", "never-existed"}))
	equalKeys(t, "after delete", listAll(t, s, "", 0), []string{"d/2", "keep"})
	_, err := s.Get(ctx, "d/sub/3")
	WantClass(t, "Get deleted", err, objstore.ErrNotFound)
	must(t, s.Delete(ctx, nil))
	must(t, s.Delete(ctx, []string{"d/2", "keep"}))
	equalKeys(t, "after deleting all", listAll(t, s, "", 0), nil)
	// A deleted key can be written again, also conditionally.
	must(t, s.Put(ctx, "d/sub/3", []byte("again"), objstore.PutOptions{IfNoneMatch: true}))
	if got := get(t, s, "d/sub/3"); got != "again" {
		t.Fatalf("rewritten = %q", got)
	}
}

func testDeleteBatchLimit(t *testing.T, s objstore.Store) {
	keys := make([]string, objstore.MaxDeleteBatch+1)
	for i := range keys {
		keys[i] = fmt.Sprintf("k%d", i)
	}
	put(t, s, "k0", "x")
	err := s.Delete(context.Background(), keys)
	WantClass(t, "Delete over the batch limit", err, objstore.ErrPermanent)
	if got := get(t, s, "k0"); got != "x" {
		t.Fatal("a rejected Delete removed a key")
	}
	must(t, s.Delete(context.Background(), keys[:objstore.MaxDeleteBatch]))
	_, err = s.Head(context.Background(), "k0")
	WantClass(t, "Head after full batch", err, objstore.ErrNotFound)
}

func testCopy(t *testing.T, s objstore.Store) {
	ctx := context.Background()
	put(t, s, "src/obj", "payload")
	must(t, s.Copy(ctx, "src/obj", "dst/obj"))
	if got := get(t, s, "dst/obj"); got != "payload" {
		t.Fatalf("copy = %q", got)
	}
	put(t, s, "dst/other", "old")
	must(t, s.Copy(ctx, "src/obj", "dst/other"))
	if got := get(t, s, "dst/other"); got != "payload" {
		t.Fatalf("copy over existing = %q", got)
	}
	if got := get(t, s, "src/obj"); got != "payload" {
		t.Fatalf("source changed to %q", got)
	}
}

func testIfNoneMatch(t *testing.T, s objstore.Store) {
	ctx := context.Background()
	must(t, s.Put(ctx, "c/k", []byte("first"), objstore.PutOptions{IfNoneMatch: true}))
	err := s.Put(ctx, "c/k", []byte("second"), objstore.PutOptions{IfNoneMatch: true})
	WantClass(t, "conditional Put over existing", err, objstore.ErrPreconditionFailed)
	if got := get(t, s, "c/k"); got != "first" {
		t.Fatalf("failed conditional put changed content to %q", got)
	}
	// An unconditional Put still overwrites.
	put(t, s, "c/k", "third")
	if got := get(t, s, "c/k"); got != "third" {
		t.Fatalf("content %q, want third", got)
	}
	equalKeys(t, "List", listAll(t, s, "", 0), []string{"c/k"})
}

func testIfNoneMatchConcurrent(t *testing.T, s objstore.Store) {
	const racers = 8
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make([]error, racers)
	for i := 0; i < racers; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			errs[i] = s.Put(ctx, "race/k", []byte(fmt.Sprintf("racer %d", i)), objstore.PutOptions{IfNoneMatch: true})
		}(i)
	}
	wg.Wait()
	winner := -1
	for i, err := range errs {
		if err == nil {
			if winner >= 0 {
				t.Fatalf("racers %d and %d both won the conditional put", winner, i)
			}
			winner = i
			continue
		}
		WantClass(t, fmt.Sprintf("racer %d", i), err, objstore.ErrPreconditionFailed)
	}
	if winner < 0 {
		t.Fatal("no racer won the conditional put")
	}
	if got, want := get(t, s, "race/k"), fmt.Sprintf("racer %d", winner); got != want {
		t.Fatalf("content %q, want the winner's %q", got, want)
	}
}
