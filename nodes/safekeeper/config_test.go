package safekeeper

import (
	"errors"
	"testing"
	"time"
)

func TestConfigValidate(t *testing.T) {
	ok := Config{NodeID: "sk-1", ListenAddr: "sk-1:5454"}
	for _, tc := range []struct {
		name string
		edit func(*Config)
		ok   bool
	}{
		{"defaults", func(*Config) {}, true},
		{"missing NodeID", func(c *Config) { c.NodeID = "" }, false},
		{"missing ListenAddr", func(c *Config) { c.ListenAddr = "" }, false},
		{"segment too small", func(c *Config) { c.SegmentBytes = 63 }, false},
		{"segment too large", func(c *Config) { c.SegmentBytes = 1<<30 + 1 }, false},
		{"negative segment", func(c *Config) { c.SegmentBytes = -1 }, false},
		{"negative PublishInterval", func(c *Config) { c.PublishInterval = -time.Second }, false},
		{"negative OffloadInterval", func(c *Config) { c.OffloadInterval = -1 }, false},
		{"negative OffloadRetries", func(c *Config) { c.OffloadRetries = -1 }, false},
		{"negative OffloadBackoff", func(c *Config) { c.OffloadBackoff = -1 }, false},
		{"negative PeerLiveness", func(c *Config) { c.PeerLiveness = -1 }, false},
		{"PeerLiveness below PublishInterval", func(c *Config) { c.PublishInterval, c.PeerLiveness = time.Second, time.Millisecond }, false},
		{"PublishInterval beyond the default PeerLiveness", func(c *Config) { c.PublishInterval = time.Minute }, true},
		{"negative PublishFailureThreshold", func(c *Config) { c.PublishFailureThreshold = -1 }, false},
		{"PublishFailureThreshold below PublishInterval", func(c *Config) { c.PublishFailureThreshold = time.Millisecond }, false},
		{"negative MaxReadBytes", func(c *Config) { c.MaxReadBytes = -1 }, false},
		{"negative MaxTimelines", func(c *Config) { c.MaxTimelines = -1 }, false},
		{"negative CallTimeout", func(c *Config) { c.CallTimeout = -1 }, false},
		{"negative RemovalInterval", func(c *Config) { c.RemovalInterval = -1 }, false},
		{"negative FeedbackExpiry", func(c *Config) { c.FeedbackExpiry = -time.Second }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := ok
			tc.edit(&c)
			before := c
			err := c.Validate()
			if (err == nil) != tc.ok || (err != nil && !errors.Is(err, ErrConfig)) {
				t.Fatalf("Validate = %v, want ok=%t (and ErrConfig otherwise)", err, tc.ok)
			}
			if c.SegmentBytes != before.SegmentBytes || c.PeerLiveness != before.PeerLiveness || c.CallTimeout != before.CallTimeout {
				t.Fatal("Validate changed the config")
			}
		})
	}
	d := Config{PublishInterval: 2 * time.Second}.withDefaults()
	if d.PeerLiveness != 6*time.Second || d.PublishFailureThreshold != 20*time.Second || d.SegmentBytes != DefaultSegmentBytes || d.MaxReadBytes != DefaultMaxReadBytes ||
		d.CallTimeout != DefaultCallTimeout || d.OffloadRetries != DefaultOffloadRetries ||
		d.RemovalInterval != DefaultRemovalInterval || d.FeedbackExpiry != DefaultFeedbackExpiry {
		t.Fatalf("withDefaults = %+v", d)
	}
	if neg := (Config{OffloadRetries: -3}).withDefaults(); neg.OffloadRetries != -3 {
		t.Fatalf("withDefaults replaced a negative value: %d", neg.OffloadRetries)
	}
}
