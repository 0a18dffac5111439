package disktest

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"strings"
	"sync"
	"testing"

	"github.com/stratadb/strata/disk"
)

// Run runs the conformance suite. newFS returns a fresh, empty FS for each
// subtest.
func Run(t *testing.T, newFS func(t *testing.T) disk.FS) {
	tests := []struct {
		name string
		fn   func(t *testing.T, fsys disk.FS)
	}{
		{"CreateWriteRead", testCreateWriteRead},
		{"AppendIndependentOfWriteAt", testAppend},
		{"ConcurrentAppend", testConcurrentAppend},
		{"ReadAtPastEOF", testReadPastEOF},
		{"WriteAtHoleZeroFilled", testHole},
		{"Truncate", testTruncate},
		{"CreateTruncatesExisting", testCreateTruncates},
		{"OpenReadOnly", testOpenReadOnly},
		{"OpenRW", testOpenRW},
		{"OpenMissing", testOpenMissing},
		{"OpenDirectoryFails", testOpenDir},
		{"ClosedFile", testClosed},
		{"RenameReplaces", testRenameReplaces},
		{"RenameAcrossDirs", testRenameAcrossDirs},
		{"RenameMissing", testRenameMissing},
		{"RenameKeepsOpenFile", testRenameKeepsOpenFile},
		{"Link", testLink},
		{"Remove", testRemove},
		{"RemoveNonEmptyDir", testRemoveNonEmptyDir},
		{"RemoveAll", testRemoveAll},
		{"MkdirAll", testMkdirAll},
		{"ReadDirSorted", testReadDirSorted},
		{"Stat", testStat},
		{"SyncDir", testSyncDir},
		{"FreeSpace", testFreeSpace},
		{"InvalidNames", testInvalidNames},
		{"Helpers", testHelpers},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.fn(t, newFS(t))
		})
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func writeFile(t *testing.T, fsys disk.FS, name, data string) {
	t.Helper()
	f, err := fsys.Create(name)
	must(t, err)
	if _, err := f.Write([]byte(data)); err != nil {
		t.Fatal(err)
	}
	must(t, f.Sync())
	must(t, f.Close())
}

func readFile(t *testing.T, fsys disk.FS, name string) string {
	t.Helper()
	b, err := disk.ReadFile(fsys, name)
	must(t, err)
	return string(b)
}

func wantClass(t *testing.T, what string, err, class error) {
	t.Helper()
	if !errors.Is(err, class) {
		t.Fatalf("%s: got error %v, want one matching %v", what, err, class)
	}
}

func testCreateWriteRead(t *testing.T, fsys disk.FS) {
	f, err := fsys.Create("a")
	must(t, err)
	if f.Name() != "a" {
		t.Fatalf("Name() = %q, want a", f.Name())
	}
	n, err := f.WriteAt([]byte("hello world"), 0)
	if err != nil || n != 11 {
		t.Fatalf("WriteAt = %d, %v", n, err)
	}
	buf := make([]byte, 5)
	n, err = f.ReadAt(buf, 6)
	if err != nil || n != 5 || string(buf) != "world" {
		t.Fatalf("ReadAt = %d %q %v", n, buf[:n], err)
	}
	if size, err := f.Size(); err != nil || size != 11 {
		t.Fatalf("Size = %d, %v", size, err)
	}
	must(t, f.Sync())
	must(t, f.Close())
	if got := readFile(t, fsys, "a"); got != "hello world" {
		t.Fatalf("content %q", got)
	}
}

func testAppend(t *testing.T, fsys disk.FS) {
	f, err := fsys.Create("log")
	must(t, err)
	for _, s := range []string{"ab", "cd", "ef"} {
		if n, err := f.Write([]byte(s)); err != nil || n != len(s) {
			t.Fatalf("Write(%q) = %d, %v", s, n, err)
		}
	}
	// WriteAt in the middle must not move the append point.
	if _, err := f.WriteAt([]byte("X"), 1); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write([]byte("gh")); err != nil {
		t.Fatal(err)
	}
	// WriteAt past the end moves the end, so the next append follows it.
	if _, err := f.WriteAt([]byte("Z"), 9); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write([]byte("!")); err != nil {
		t.Fatal(err)
	}
	must(t, f.Close())
	if got, want := readFile(t, fsys, "log"), "aXcdefgh\x00Z!"; got != want {
		t.Fatalf("content %q, want %q", got, want)
	}
	// Reopening appends at the existing end.
	f, err = fsys.OpenRW("log")
	must(t, err)
	if _, err := f.Write([]byte("?")); err != nil {
		t.Fatal(err)
	}
	must(t, f.Close())
	if got, want := readFile(t, fsys, "log"), "aXcdefgh\x00Z!?"; got != want {
		t.Fatalf("content after reopen %q, want %q", got, want)
	}
}

// testConcurrentAppend appends fixed-size records from several goroutines
// through two handles: every record must land whole, none lost or torn.
func testConcurrentAppend(t *testing.T, fsys disk.FS) {
	const writers, records, size = 4, 50, 100
	f1, err := fsys.Create("log")
	must(t, err)
	defer f1.Close()
	f2, err := fsys.OpenRW("log")
	must(t, err)
	defer f2.Close()
	var wg sync.WaitGroup
	errs := make([]error, writers)
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			f := f1
			if w%2 == 1 {
				f = f2
			}
			rec := bytes.Repeat([]byte{byte('A' + w)}, size)
			for i := 0; i < records; i++ {
				if _, err := f.Write(rec); err != nil {
					errs[w] = err
					return
				}
			}
		}(w)
	}
	wg.Wait()
	for _, err := range errs {
		must(t, err)
	}
	got := readFile(t, fsys, "log")
	if len(got) != writers*records*size {
		t.Fatalf("log has %d bytes, want %d", len(got), writers*records*size)
	}
	counts := map[byte]int{}
	for off := 0; off < len(got); off += size {
		rec := got[off : off+size]
		if strings.Count(rec, rec[:1]) != size {
			t.Fatalf("record at %d is torn: %q", off, rec)
		}
		counts[rec[0]]++
	}
	for w := 0; w < writers; w++ {
		if counts[byte('A'+w)] != records {
			t.Fatalf("writer %d has %d records, want %d", w, counts[byte('A'+w)], records)
		}
	}
}

func testReadPastEOF(t *testing.T, fsys disk.FS) {
	writeFile(t, fsys, "f", "0123456789")
	f, err := fsys.Open("f")
	must(t, err)
	defer f.Close()
	tests := []struct {
		off   int64
		size  int
		want  string
		isEOF bool
	}{
		{0, 10, "0123456789", false},
		{5, 10, "56789", true},
		{10, 1, "", true},
		{100, 4, "", true},
		{3, 0, "", false},
	}
	for _, tc := range tests {
		buf := make([]byte, tc.size)
		n, err := f.ReadAt(buf, tc.off)
		if string(buf[:n]) != tc.want {
			t.Errorf("ReadAt(%d, %d) read %q, want %q", tc.off, tc.size, buf[:n], tc.want)
		}
		if tc.isEOF && err != io.EOF {
			t.Errorf("ReadAt(%d, %d) err = %v, want io.EOF", tc.off, tc.size, err)
		}
		if !tc.isEOF && err != nil {
			t.Errorf("ReadAt(%d, %d) err = %v, want nil", tc.off, tc.size, err)
		}
	}
	if _, err := f.ReadAt(make([]byte, 1), -1); err == nil {
		t.Error("ReadAt at a negative offset succeeded")
	}
}

func testHole(t *testing.T, fsys disk.FS) {
	f, err := fsys.Create("h")
	must(t, err)
	_, err = f.WriteAt([]byte("x"), 1000)
	must(t, err)
	must(t, f.Close())
	got := readFile(t, fsys, "h")
	if len(got) != 1001 || got[1000] != 'x' || got[:1000] != string(make([]byte, 1000)) {
		t.Fatalf("hole not zero-filled: len %d", len(got))
	}
}

func testTruncate(t *testing.T, fsys disk.FS) {
	writeFile(t, fsys, "t", "abcdef")
	f, err := fsys.OpenRW("t")
	must(t, err)
	must(t, f.Truncate(3))
	if size, _ := f.Size(); size != 3 {
		t.Fatalf("size after shrink = %d", size)
	}
	must(t, f.Truncate(5))
	if _, err := f.Write([]byte("Z")); err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(-1); !errors.Is(err, fs.ErrInvalid) {
		t.Fatalf("Truncate(-1) = %v, want fs.ErrInvalid", err)
	}
	must(t, f.Close())
	if got, want := readFile(t, fsys, "t"), "abc\x00\x00Z"; got != want {
		t.Fatalf("content %q, want %q", got, want)
	}
}

func testCreateTruncates(t *testing.T, fsys disk.FS) {
	writeFile(t, fsys, "c", "old content")
	writeFile(t, fsys, "c", "new")
	if got := readFile(t, fsys, "c"); got != "new" {
		t.Fatalf("content %q, want new", got)
	}
}

func testOpenReadOnly(t *testing.T, fsys disk.FS) {
	writeFile(t, fsys, "r", "data")
	f, err := fsys.Open("r")
	must(t, err)
	defer f.Close()
	if _, err := f.Write([]byte("x")); !errors.Is(err, fs.ErrPermission) {
		t.Errorf("Write on read-only file = %v, want fs.ErrPermission", err)
	}
	if _, err := f.WriteAt([]byte("x"), 0); !errors.Is(err, fs.ErrPermission) {
		t.Errorf("WriteAt on read-only file = %v, want fs.ErrPermission", err)
	}
	if err := f.Truncate(0); !errors.Is(err, fs.ErrPermission) {
		t.Errorf("Truncate on read-only file = %v, want fs.ErrPermission", err)
	}
	if got := readFile(t, fsys, "r"); got != "data" {
		t.Fatalf("read-only file changed to %q", got)
	}
}

func testOpenRW(t *testing.T, fsys disk.FS) {
	writeFile(t, fsys, "rw", "abcd")
	f, err := fsys.OpenRW("rw")
	must(t, err)
	_, err = f.WriteAt([]byte("XY"), 1)
	must(t, err)
	must(t, f.Close())
	if got := readFile(t, fsys, "rw"); got != "aXYd" {
		t.Fatalf("content %q", got)
	}
	// Two handles on one file see each other's writes.
	f1, err := fsys.OpenRW("rw")
	must(t, err)
	defer f1.Close()
	f2, err := fsys.Open("rw")
	must(t, err)
	defer f2.Close()
	_, err = f1.Write([]byte("e"))
	must(t, err)
	if size, _ := f2.Size(); size != 5 {
		t.Fatalf("second handle sees size %d, want 5", size)
	}
}

func testOpenMissing(t *testing.T, fsys disk.FS) {
	_, err := fsys.Open("nope")
	wantClass(t, "Open missing", err, fs.ErrNotExist)
	_, err = fsys.OpenRW("nope")
	wantClass(t, "OpenRW missing", err, fs.ErrNotExist)
	_, err = fsys.Create("nodir/f")
	wantClass(t, "Create in missing dir", err, fs.ErrNotExist)
	_, err = fsys.Stat("nope")
	wantClass(t, "Stat missing", err, fs.ErrNotExist)
	_, err = fsys.ReadDir("nope")
	wantClass(t, "ReadDir missing", err, fs.ErrNotExist)
	err = fsys.Remove("nope")
	wantClass(t, "Remove missing", err, fs.ErrNotExist)
	err = fsys.SyncDir("nope")
	wantClass(t, "SyncDir missing", err, fs.ErrNotExist)
}

func testOpenDir(t *testing.T, fsys disk.FS) {
	must(t, fsys.MkdirAll("d"))
	if f, err := fsys.Open("d"); err == nil {
		f.Close()
		t.Error("Open of a directory succeeded")
	}
	if f, err := fsys.Create("d"); err == nil {
		f.Close()
		t.Error("Create over a directory succeeded")
	}
	if f, err := fsys.Open("."); err == nil {
		f.Close()
		t.Error("Open of the root succeeded")
	}
}

func testClosed(t *testing.T, fsys disk.FS) {
	f, err := fsys.Create("x")
	must(t, err)
	must(t, f.Close())
	checks := []struct {
		op  string
		err error
	}{
		{"ReadAt", func() error { _, err := f.ReadAt(make([]byte, 1), 0); return err }()},
		{"WriteAt", func() error { _, err := f.WriteAt([]byte("a"), 0); return err }()},
		{"Write", func() error { _, err := f.Write([]byte("a")); return err }()},
		{"Sync", f.Sync()},
		{"Truncate", f.Truncate(0)},
		{"Size", func() error { _, err := f.Size(); return err }()},
		{"Close", f.Close()},
	}
	for _, c := range checks {
		if !errors.Is(c.err, disk.ErrClosed) {
			t.Errorf("%s on closed file = %v, want disk.ErrClosed", c.op, c.err)
		}
	}
}

func testRenameReplaces(t *testing.T, fsys disk.FS) {
	writeFile(t, fsys, "a", "A")
	writeFile(t, fsys, "b", "B")
	must(t, fsys.Rename("a", "b"))
	if got := readFile(t, fsys, "b"); got != "A" {
		t.Fatalf("b = %q after rename, want A", got)
	}
	_, err := fsys.Stat("a")
	wantClass(t, "Stat renamed-away name", err, fs.ErrNotExist)
	// Renaming a name onto itself is a no-op.
	must(t, fsys.Rename("b", "b"))
	if got := readFile(t, fsys, "b"); got != "A" {
		t.Fatalf("b = %q after self-rename", got)
	}
}

func testRenameAcrossDirs(t *testing.T, fsys disk.FS) {
	must(t, fsys.MkdirAll("x/y"))
	must(t, fsys.MkdirAll("z"))
	writeFile(t, fsys, "x/y/f", "F")
	must(t, fsys.Rename("x/y/f", "z/g"))
	if got := readFile(t, fsys, "z/g"); got != "F" {
		t.Fatalf("z/g = %q", got)
	}
	// Directories can be renamed too, taking their contents.
	writeFile(t, fsys, "x/y/h", "H")
	must(t, fsys.Rename("x/y", "z/w"))
	if got := readFile(t, fsys, "z/w/h"); got != "H" {
		t.Fatalf("z/w/h = %q", got)
	}
	_, err := fsys.Stat("x/y")
	wantClass(t, "Stat renamed dir", err, fs.ErrNotExist)
}

func testRenameMissing(t *testing.T, fsys disk.FS) {
	err := fsys.Rename("nope", "x")
	wantClass(t, "Rename missing source", err, fs.ErrNotExist)
	writeFile(t, fsys, "a", "A")
	err = fsys.Rename("a", "nodir/a")
	wantClass(t, "Rename into missing dir", err, fs.ErrNotExist)
	if got := readFile(t, fsys, "a"); got != "A" {
		t.Fatalf("failed rename changed source: %q", got)
	}
}

func testRenameKeepsOpenFile(t *testing.T, fsys disk.FS) {
	f, err := fsys.Create("tmp")
	must(t, err)
	_, err = f.Write([]byte("12"))
	must(t, err)
	must(t, fsys.Rename("tmp", "final"))
	_, err = f.Write([]byte("34"))
	must(t, err)
	must(t, f.Close())
	if got := readFile(t, fsys, "final"); got != "1234" {
		t.Fatalf("final = %q, want writes through the handle after rename", got)
	}
}

func testLink(t *testing.T, fsys disk.FS) {
	writeFile(t, fsys, "a", "A")
	must(t, fsys.Link("a", "b"))
	// Both names reach the same file.
	f, err := fsys.OpenRW("a")
	must(t, err)
	_, err = f.Write([]byte("+"))
	must(t, err)
	must(t, f.Close())
	if got := readFile(t, fsys, "b"); got != "A+" {
		t.Fatalf("b = %q, want A+", got)
	}
	must(t, fsys.Remove("a"))
	if got := readFile(t, fsys, "b"); got != "A+" {
		t.Fatalf("b after removing a = %q", got)
	}
	writeFile(t, fsys, "c", "C")
	err = fsys.Link("b", "c")
	wantClass(t, "Link onto existing name", err, fs.ErrExist)
	err = fsys.Link("nope", "d")
	wantClass(t, "Link missing source", err, fs.ErrNotExist)
}

func testRemove(t *testing.T, fsys disk.FS) {
	writeFile(t, fsys, "a", "A")
	// An open file stays readable after its name is removed.
	f, err := fsys.Open("a")
	must(t, err)
	defer f.Close()
	must(t, fsys.Remove("a"))
	_, err = fsys.Stat("a")
	wantClass(t, "Stat removed", err, fs.ErrNotExist)
	buf := make([]byte, 1)
	if n, err := f.ReadAt(buf, 0); n != 1 || buf[0] != 'A' {
		t.Fatalf("read from removed open file: %d %v", n, err)
	}
	must(t, fsys.MkdirAll("d"))
	must(t, fsys.Remove("d"))
	_, err = fsys.Stat("d")
	wantClass(t, "Stat removed dir", err, fs.ErrNotExist)
}

func testRemoveNonEmptyDir(t *testing.T, fsys disk.FS) {
	must(t, fsys.MkdirAll("d"))
	writeFile(t, fsys, "d/f", "x")
	if err := fsys.Remove("d"); err == nil {
		t.Fatal("Remove of a non-empty directory succeeded")
	}
	if got := readFile(t, fsys, "d/f"); got != "x" {
		t.Fatalf("d/f = %q", got)
	}
}

func testRemoveAll(t *testing.T, fsys disk.FS) {
	must(t, fsys.MkdirAll("d/e/f"))
	writeFile(t, fsys, "d/e/f/g", "x")
	writeFile(t, fsys, "d/h", "y")
	writeFile(t, fsys, "keep", "z")
	must(t, fsys.RemoveAll("d"))
	_, err := fsys.Stat("d")
	wantClass(t, "Stat after RemoveAll", err, fs.ErrNotExist)
	must(t, fsys.RemoveAll("d")) // missing is no error
	must(t, fsys.RemoveAll("keep"))
	ents, err := fsys.ReadDir(".")
	must(t, err)
	if len(ents) != 0 {
		t.Fatalf("root not empty after RemoveAll: %d entries", len(ents))
	}
}

func testMkdirAll(t *testing.T, fsys disk.FS) {
	must(t, fsys.MkdirAll("a/b/c"))
	must(t, fsys.MkdirAll("a/b/c")) // existing is no error
	must(t, fsys.MkdirAll("."))
	for _, name := range []string{"a", "a/b", "a/b/c"} {
		st, err := fsys.Stat(name)
		must(t, err)
		if !st.IsDir() {
			t.Fatalf("%s is not a directory", name)
		}
	}
	writeFile(t, fsys, "a/file", "x")
	if err := fsys.MkdirAll("a/file/sub"); err == nil {
		t.Fatal("MkdirAll below a file succeeded")
	}
	if err := fsys.MkdirAll("a/file"); err == nil {
		t.Fatal("MkdirAll over a file succeeded")
	}
}

func testReadDirSorted(t *testing.T, fsys disk.FS) {
	names := []string{"zeta", "alpha", "Beta", "m", "a-b", "a_b", "0"}
	for _, n := range names {
		writeFile(t, fsys, n, n)
	}
	must(t, fsys.MkdirAll("dir"))
	ents, err := fsys.ReadDir(".")
	must(t, err)
	want := []string{"0", "Beta", "a-b", "a_b", "alpha", "dir", "m", "zeta"}
	if len(ents) != len(want) {
		t.Fatalf("ReadDir returned %d entries, want %d", len(ents), len(want))
	}
	for i, e := range ents {
		if e.Name() != want[i] {
			t.Fatalf("entry %d = %q, want %q", i, e.Name(), want[i])
		}
		if e.IsDir() != (e.Name() == "dir") {
			t.Fatalf("entry %q IsDir = %v", e.Name(), e.IsDir())
		}
	}
	writeFile(t, fsys, "dir/x", "x")
	if _, err := fsys.ReadDir("dir/x"); err == nil {
		t.Fatal("ReadDir of a file succeeded")
	}
}

func testStat(t *testing.T, fsys disk.FS) {
	must(t, fsys.MkdirAll("d"))
	writeFile(t, fsys, "d/f", "12345")
	st, err := fsys.Stat("d/f")
	must(t, err)
	if st.Name() != "f" || st.Size() != 5 || st.IsDir() || !st.Mode().IsRegular() {
		t.Fatalf("Stat(d/f) = name %q size %d dir %v mode %v", st.Name(), st.Size(), st.IsDir(), st.Mode())
	}
	st, err = fsys.Stat("d")
	must(t, err)
	if st.Name() != "d" || !st.IsDir() {
		t.Fatalf("Stat(d) = name %q dir %v", st.Name(), st.IsDir())
	}
	st, err = fsys.Stat(".")
	must(t, err)
	if !st.IsDir() {
		t.Fatal("Stat(.) is not a directory")
	}
	_, err = fsys.Stat("d/f/g")
	if err == nil {
		t.Fatal("Stat below a file succeeded")
	}
}

func testSyncDir(t *testing.T, fsys disk.FS) {
	must(t, fsys.MkdirAll("d"))
	writeFile(t, fsys, "d/f", "x")
	must(t, fsys.SyncDir("d"))
	must(t, fsys.SyncDir("."))
	if err := fsys.SyncDir("d/f"); err == nil {
		t.Fatal("SyncDir of a file succeeded")
	}
}

func testFreeSpace(t *testing.T, fsys disk.FS) {
	free, err := fsys.FreeSpace()
	must(t, err)
	if free == 0 {
		t.Fatal("FreeSpace = 0 on a fresh file system")
	}
}

func testInvalidNames(t *testing.T, fsys disk.FS) {
	writeFile(t, fsys, "ok", "x")
	bad := []string{"", "/abs", "../up", "a/../../up", "a/./b", "a//b", "a/", "./a", ".."}
	for _, name := range bad {
		ops := []struct {
			op  string
			err error
		}{
			{"Create", func() error { _, err := fsys.Create(name); return err }()},
			{"Open", func() error { _, err := fsys.Open(name); return err }()},
			{"OpenRW", func() error { _, err := fsys.OpenRW(name); return err }()},
			{"Rename from", fsys.Rename(name, "x")},
			{"Rename to", fsys.Rename("ok", name)},
			{"Link", fsys.Link("ok", name)},
			{"Remove", fsys.Remove(name)},
			{"RemoveAll", fsys.RemoveAll(name)},
			{"MkdirAll", fsys.MkdirAll(name)},
			{"ReadDir", func() error { _, err := fsys.ReadDir(name); return err }()},
			{"Stat", func() error { _, err := fsys.Stat(name); return err }()},
			{"SyncDir", fsys.SyncDir(name)},
		}
		for _, o := range ops {
			if !errors.Is(o.err, disk.ErrInvalidName) || !errors.Is(o.err, fs.ErrInvalid) {
				t.Errorf("%s(%q) = %v, want disk.ErrInvalidName", o.op, name, o.err)
			}
		}
	}
	if got := readFile(t, fsys, "ok"); got != "x" {
		t.Fatalf("ok changed to %q", got)
	}
	if err := fsys.Remove("."); err == nil {
		t.Error("Remove(.) succeeded")
	}
	if err := fsys.RemoveAll("."); err == nil {
		t.Error("RemoveAll(.) succeeded")
	}
}

func testHelpers(t *testing.T, fsys disk.FS) {
	must(t, disk.MkdirAllDurable(fsys, "p/q/r"))
	st, err := fsys.Stat("p/q/r")
	must(t, err)
	if !st.IsDir() {
		t.Fatal("p/q/r is not a directory")
	}
	must(t, disk.WriteFileAtomic(fsys, "p/q/r/ctl", []byte("v1")))
	must(t, disk.WriteFileAtomic(fsys, "p/q/r/ctl", []byte("version 2")))
	if got := readFile(t, fsys, "p/q/r/ctl"); got != "version 2" {
		t.Fatalf("ctl = %q", got)
	}
	ents, err := fsys.ReadDir("p/q/r")
	must(t, err)
	if len(ents) != 1 {
		t.Fatalf("WriteFileAtomic left %d entries, want 1 (no temp file)", len(ents))
	}
	big := bytes.Repeat([]byte("0123456789abcdef"), 1000)
	must(t, disk.WriteFileAtomic(fsys, "big", big))
	if got := readFile(t, fsys, "big"); got != string(big) {
		t.Fatal("big file content differs")
	}
}
