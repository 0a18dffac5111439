package remote

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// FuzzParseIndexPart: Parse never panics; every rejection is classified;
// whatever parses either re-encodes, re-parses equal (but for the version,
// which Encode always writes as CurrentVersion) and re-encodes to the same
// bytes, or is refused by Encode for a reason Validate states.
func FuzzParseIndexPart(f *testing.F) {
	entries, err := os.ReadDir("testdata")
	if err != nil {
		f.Fatal(err)
	}
	for _, e := range entries {
		if filepath.Ext(e.Name()) != ".json" {
			continue
		}
		data, err := os.ReadFile(filepath.Join("testdata", e.Name()))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"version":15,"layer_metadata":{},"disk_consistent_lsn":"0/1","metadata_bytes":{"disk_consistent_lsn":"0/1","ancestor_timeline":"00000000000000000000000000000001","ancestor_lsn":"0/0","latest_gc_cutoff_lsn":"0/0","initdb_lsn":"0/0","pg_version":0}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		ip, err := Parse(data)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrUnsupportedVersion) {
				t.Fatalf("unclassified error: %v", err)
			}
			return
		}
		enc, err := Encode(&ip)
		if err != nil {
			if !errors.Is(err, ErrEmptyIndex) {
				t.Fatalf("Encode of a parsed index: %v", err)
			}
			if verr := ip.Validate(); !errors.Is(verr, ErrEmptyIndex) {
				t.Fatalf("Encode refused (%v) but Validate says %v", err, verr)
			}
			return
		}
		again, err := Parse(enc)
		if err != nil {
			t.Fatalf("re-parse of %s: %v", enc, err)
		}
		if again.Version != CurrentVersion {
			t.Fatalf("re-parsed version %d", again.Version)
		}
		again.Version = ip.Version
		if !reflect.DeepEqual(again, ip) {
			t.Fatalf("round trip differs:\n%+v\n%+v", ip, again)
		}
		enc2, err := Encode(&again)
		if err != nil || string(enc2) != string(enc) {
			t.Fatalf("re-encode differs:\n%s\n%s (%v)", enc, enc2, err)
		}
	})
}
