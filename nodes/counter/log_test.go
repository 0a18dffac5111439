package counter

import (
	"bytes"
	"errors"
	"fmt"
	"testing"

	"github.com/stratadb/strata/sim/simdisk"
)

func encode(recs ...Record) []byte {
	var out []byte
	for _, r := range recs {
		var b [RecordBytes]byte
		encodeRecord(b[:], r)
		out = append(out, b[:]...)
	}
	return out
}

func TestDecodeSegment(t *testing.T) {
	good := encode(Record{1, 1}, Record{2, 1}, Record{1, 2})
	flipped := bytes.Clone(good)
	flipped[20] ^= 1
	for _, tc := range []struct {
		name  string
		in    []byte
		recs  int
		valid int
	}{
		{"empty", nil, 0, 0},
		{"three", good, 3, 48},
		{"partial tail", append(bytes.Clone(good), 1, 2, 3), 3, 48},
		{"zero sector tail", append(bytes.Clone(good), make([]byte, 512)...), 3, 48},
		{"bad crc in second", flipped, 1, 16},
		{"seq zero", encode(Record{1, 0}), 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			recs, valid := DecodeSegment(tc.in)
			if len(recs) != tc.recs || valid != tc.valid {
				t.Fatalf("got %d records, valid %d; want %d, %d", len(recs), valid, tc.recs, tc.valid)
			}
		})
	}
}

func FuzzDecodeSegment(f *testing.F) {
	f.Add(encode(Record{1, 1}, Record{7, 9}))
	f.Add([]byte{1, 2, 3})
	f.Add(make([]byte, 32))
	f.Fuzz(func(t *testing.T, b []byte) {
		recs, valid := DecodeSegment(b)
		if valid%RecordBytes != 0 || valid > len(b) || len(recs) != valid/RecordBytes {
			t.Fatalf("valid %d, %d records, input %d bytes", valid, len(recs), len(b))
		}
		if !bytes.Equal(encode(recs...), b[:valid]) {
			t.Fatal("decoded records do not re-encode to the valid prefix")
		}
	})
}

func TestSegmentNames(t *testing.T) {
	for _, tc := range []struct {
		name string
		i    int
		ok   bool
	}{
		{"seg-00000001", 1, true},
		{"seg-12345678", 12345678, true},
		{"seg-1", 0, false},
		{"seg-0000000x", 0, false},
		{"junk", 0, false},
	} {
		i, err := parseSegmentName(tc.name)
		if (err == nil) != tc.ok || (tc.ok && i != tc.i) {
			t.Errorf("%s: got %d, %v", tc.name, i, err)
		}
		if !tc.ok && !errors.Is(err, ErrBadName) {
			t.Errorf("%s: error %v is not ErrBadName", tc.name, err)
		}
	}
}

func TestReadLogTornTailAndCorruption(t *testing.T) {
	fsys := simdisk.New(simdisk.Options{})
	if err := fsys.MkdirAll("c"); err != nil {
		t.Fatal(err)
	}
	write := func(name string, b []byte) {
		f, err := fsys.Create(name)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.Write(b); err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
	write("c/seg-00000001", encode(Record{1, 1}, Record{1, 2}))
	write("c/seg-00000002", append(encode(Record{2, 1}), 9, 9, 9))
	recs, err := ReadLog(fsys, "c")
	if err != nil || len(recs) != 3 || recs[2] != (Record{2, 1}) {
		t.Fatalf("got %v, %v", recs, err)
	}
	// A bad record before the last segment is corruption, not a torn tail.
	write("c/seg-00000001", append(encode(Record{1, 1}), 1))
	if _, err := ReadLog(fsys, "c"); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("got %v, want ErrCorrupt", err)
	}
	if recs, err := ReadLog(fsys, "missing"); err != nil || len(recs) != 0 {
		t.Fatalf("missing dir: %v, %v", recs, err)
	}
}

func TestConfigValidate(t *testing.T) {
	fatal := func(error) {}
	for _, tc := range []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"defaults", Config{Addr: "s:1", OnFatal: fatal}, true},
		{"no addr", Config{OnFatal: fatal}, false},
		{"no fatal", Config{Addr: "s:1"}, false},
		{"segment too big", Config{Addr: "s:1", OnFatal: fatal, SegmentEntries: MaxSegmentEntries + 1}, false},
		{"negative segment entries", Config{Addr: "s:1", OnFatal: fatal, SegmentEntries: -1}, false},
		{"negative clients", Config{Addr: "s:1", OnFatal: fatal, MaxClients: -1}, false},
		{"negative waiting", Config{Addr: "s:1", OnFatal: fatal, MaxWaiting: -1}, false},
	} {
		before := fmt.Sprintf("%+v", tc.cfg)
		err := tc.cfg.Validate()
		if (err == nil) != tc.ok || (!tc.ok && !errors.Is(err, ErrConfig)) {
			t.Errorf("%s: %v", tc.name, err)
		}
		if after := fmt.Sprintf("%+v", tc.cfg); after != before {
			t.Errorf("%s: Validate changed the config: %s, was %s", tc.name, after, before)
		}
	}
	d := Config{}.withDefaults()
	if d.Dir != DefaultDir || d.SegmentEntries != DefaultSegmentEntries || d.MaxClients != DefaultMaxClients || d.MaxWaiting != DefaultMaxWaiting {
		t.Errorf("withDefaults: %+v", d)
	}
}
