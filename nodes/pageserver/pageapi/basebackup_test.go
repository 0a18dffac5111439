package pageapi

import (
	"bytes"
	"errors"
	"testing"

	"github.com/stratadb/strata/engine/keys"
)

func sampleArchive(t *testing.T, entries map[keys.Key][]byte, order []keys.Key) []byte {
	t.Helper()
	var b bytes.Buffer
	w, err := NewBaseBackupWriter(&b, BaseBackupManifest{LSN: 0x1234, TenantShardID: "t", TimelineID: "l", Full: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range order {
		if err := w.Add(k, entries[k]); err != nil {
			t.Fatal(err)
		}
	}
	tr, err := w.Close()
	if err != nil || tr.Keys != int64(len(order)) {
		t.Fatalf("close: %+v %v", tr, err)
	}
	return b.Bytes()
}

// The archive reads back as written; one cut anywhere before its trailer
// (including at an entry boundary, where tar alone would not notice) is
// ErrBadArchive; keys
// out of order are refused on both sides.
func TestBaseBackupArchive(t *testing.T) {
	order := []keys.Key{keys.RelSizeKey(keys.RelTag{SpcNode: 1663, DbNode: 5, RelNode: 16384}), keys.SlruBlockKey(0, 0, 0), keys.ControlFileKey()}
	entries := map[keys.Key][]byte{order[0]: {4, 0, 0, 0}, order[1]: bytes.Repeat([]byte{7}, 8192), order[2]: []byte("control")}
	arch := sampleArchive(t, entries, order)
	var got []keys.Key
	m, err := ReadBaseBackup(bytes.NewReader(arch), func(k keys.Key, v []byte) error {
		if !bytes.Equal(v, entries[k]) {
			t.Errorf("value of %s differs", k)
		}
		got = append(got, k)
		return nil
	})
	if err != nil || m.Format != BaseBackupFormat || m.LSN != 0x1234 || !m.Full || len(got) != 3 || got[2] != order[2] {
		t.Fatalf("read: %+v %v %v", m, got, err)
	}
	if again := sampleArchive(t, entries, order); !bytes.Equal(again, arch) {
		t.Fatal("the same keys gave different bytes")
	}
	// Every cut before the end of the trailer (tar's two end blocks of 512
	// bytes follow it; the trailer has already proved the archive whole).
	for cut := 0; cut < len(arch)-1024; cut += 512 {
		if _, err := ReadBaseBackup(bytes.NewReader(arch[:cut]), func(keys.Key, []byte) error { return nil }); !errors.Is(err, ErrBadArchive) {
			t.Fatalf("archive cut at %d of %d: %v", cut, len(arch), err)
		}
	}
	var b bytes.Buffer
	w, _ := NewBaseBackupWriter(&b, BaseBackupManifest{})
	_ = w.Add(order[1], nil)
	if err := w.Add(order[0], nil); !errors.Is(err, ErrBadArchive) {
		t.Fatalf("out of order add: %v", err)
	}
	stop := errors.New("stop")
	if _, err := ReadBaseBackup(bytes.NewReader(arch), func(keys.Key, []byte) error { return stop }); err != stop {
		t.Fatalf("callback error: %v", err)
	}
}
