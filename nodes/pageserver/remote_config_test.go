package pageserver

import (
	"errors"
	"testing"
	"time"

	"github.com/stratadb/strata/engine/remote"
)

// TestRemoteStorageConfigValidate: zero fields take the defaults; a
// negative value is refused (never read as its default), as are an
// inconsistent back-off, a bad prefix and a bad download policy.
func TestRemoteStorageConfigValidate(t *testing.T) {
	if err := (RemoteStorageConfig{}).Validate(); err != nil {
		t.Fatalf("zero config: %v", err)
	}
	d := RemoteStorageConfig{}.withDefaults()
	if d.MaxInFlight != DefaultUploadMaxInFlight || d.DeletionFlushKeys != DefaultDeletionFlushKeys || d.ValidateInterval != DefaultValidateInterval ||
		d.BackgroundDownloads != DefaultBackgroundDownloads || d.EvictionInterval != DefaultEvictionInterval || d.MaxLocalLayerBytes != 0 {
		t.Errorf("defaults %+v", d)
	}
	for name, c := range map[string]RemoteStorageConfig{
		"MaxInFlight":            {MaxInFlight: -1},
		"MaxConcurrentDownloads": {MaxConcurrentDownloads: -1},
		"UploadBackoff":          {UploadBackoff: -time.Second},
		"UploadBackoffMax":       {UploadBackoff: time.Second, UploadBackoffMax: time.Millisecond},
		"ValidateInterval":       {ValidateInterval: -1},
		"DeletionFlushKeys":      {DeletionFlushKeys: -5},
		"DeletionFlushInterval":  {DeletionFlushInterval: -1},
		"ShutdownUploadTimeout":  {ShutdownUploadTimeout: -1},
		"TestFailures":           {TestFailures: -1},
		"BackgroundDownloads":    {BackgroundDownloads: -1},
		"EvictionInterval":       {EvictionInterval: -time.Second},
		"MaxLocalLayerBytes":     {MaxLocalLayerBytes: -1},
		"Prefix":                 {Prefix: "/a"},
		"Download":               {Download: remote.RetryConfig{MaxRetries: -1}},
	} {
		if err := c.Validate(); !errors.Is(err, ErrConfig) {
			t.Errorf("%s: %v, want ErrConfig", name, err)
		}
		if err := (Config{NodeID: 1, PageAddr: "a:1", RemoteStorage: c}).Validate(); !errors.Is(err, ErrConfig) {
			t.Errorf("%s in Config: %v, want ErrConfig", name, err)
		}
	}
	c := RemoteStorageConfig{UploadBackoff: 100 * time.Millisecond, UploadBackoffMax: time.Second}
	for failures, want := range map[int]time.Duration{1: 0, 2: 100 * time.Millisecond, 3: 200 * time.Millisecond, 5: 800 * time.Millisecond, 6: time.Second, 40: time.Second} {
		if got := c.backoff(failures); got != want {
			t.Errorf("backoff(%d) = %v, want %v", failures, got, want)
		}
	}
}
