package objstore_test

import (
	"context"
	"testing"

	"github.com/stratadb/strata/disk"
	"github.com/stratadb/strata/disk/objstore"
	"github.com/stratadb/strata/disk/objstore/objstoretest"
	"github.com/stratadb/strata/sim/simdisk"
)

// FuzzLocalObjectFile feeds arbitrary bytes to Local as the stored file of
// one object: reading it must never panic, and must either return the
// payload after a valid header or fail with a classified error.
func FuzzLocalObjectFile(f *testing.F) {
	f.Add([]byte("SOB1\x00\x00\x00\x00\x00\x00\x00\x00payload"))
	f.Add([]byte("SOB1\x18\x00\x00\x00\x00\x00\x00\x01"))
	f.Add([]byte("SOB"))
	f.Add([]byte("XXXX\x00\x00\x00\x00\x00\x00\x00\x00payload"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, raw []byte) {
		ctx := context.Background()
		d := simdisk.New(simdisk.Options{})
		s, err := objstore.NewLocal(d, "o", objstore.LocalOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if err := disk.WriteFileAtomic(d, "o/ok", raw); err != nil {
			t.Fatal(err)
		}
		valid := len(raw) >= 12 && string(raw[:4]) == "SOB1"
		got, err := s.Get(ctx, "k")
		if valid {
			if err != nil || string(got) != string(raw[12:]) {
				t.Fatalf("valid object: Get = %q, %v", got, err)
			}
		} else {
			objstoretest.WantClass(t, "Get of a malformed object file", err, objstore.ErrTransient)
		}
		info, err := s.Head(ctx, "k")
		if valid && (err != nil || info.Size != int64(len(raw)-12)) {
			t.Fatalf("valid object: Head = %+v, %v", info, err)
		}
		if !valid && err == nil {
			t.Fatal("Head accepted a malformed object file")
		}
		if r, err := s.GetRange(ctx, "k", 3, 4); valid && (err != nil || len(r) > 4) {
			t.Fatalf("GetRange = %q, %v", r, err)
		}
		if _, err := s.List(ctx, "", objstore.ListOptions{}); valid && err != nil {
			t.Fatalf("List: %v", err)
		}
	})
}
