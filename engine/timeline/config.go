package timeline

import (
	"errors"
	"fmt"
)

// ErrConfig reports an invalid Config.
var ErrConfig = errors.New("timeline: invalid config")

// Config is a tenant's page-engine policy. The zero value of a field means
// its default (the Default* constants; withDefaults fills them in); Validate
// rejects negative and inconsistent values. Open applies both.
type Config struct {
	// CheckpointDistanceBytes is the accounted size of the open in-memory
	// layer at which ingest freezes it and flushes it to an L0 delta file.
	// Default 256 MiB (Neon's checkpoint_distance).
	CheckpointDistanceBytes int64
	// CompactionThreshold is the number of L0 delta layers at which
	// compaction merges them into key-partitioned L1 deltas. Default 10.
	CompactionThreshold int
	// CompactionTargetSizeBytes is the target size of an L1 delta file and
	// of an image layer's key partition (8 KiB per page). Default 128 MiB.
	CompactionTargetSizeBytes int64
	// ImageCreationThreshold is the number of delta layers above a key
	// partition's newest image at which compaction writes a new image layer
	// for the partition. Default 3.
	ImageCreationThreshold int
	// GCHorizonBytes is the point-in-time-recovery window, in LSN bytes: GC
	// moves the cutoff to last_record_lsn - GCHorizonBytes. Default 64 MiB.
	GCHorizonBytes uint64
	// MaxL0Merge bounds how many L0 layers one compaction merges, which
	// bounds its memory use. Default 32.
	MaxL0Merge int
}

// Defaults (see Config).
const (
	DefaultCheckpointDistanceBytes   = 256 << 20
	DefaultCompactionThreshold       = 10
	DefaultCompactionTargetSizeBytes = 128 << 20
	DefaultImageCreationThreshold    = 3
	DefaultGCHorizonBytes            = 64 << 20
	DefaultMaxL0Merge                = 32
)

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{}.withDefaults()
}

func (c Config) withDefaults() Config {
	if c.CheckpointDistanceBytes == 0 {
		c.CheckpointDistanceBytes = DefaultCheckpointDistanceBytes
	}
	if c.CompactionThreshold == 0 {
		c.CompactionThreshold = DefaultCompactionThreshold
	}
	if c.CompactionTargetSizeBytes == 0 {
		c.CompactionTargetSizeBytes = DefaultCompactionTargetSizeBytes
	}
	if c.ImageCreationThreshold == 0 {
		c.ImageCreationThreshold = DefaultImageCreationThreshold
	}
	if c.GCHorizonBytes == 0 {
		c.GCHorizonBytes = DefaultGCHorizonBytes
	}
	if c.MaxL0Merge == 0 {
		c.MaxL0Merge = DefaultMaxL0Merge
	}
	return c
}

// Validate checks c after defaults are applied (c itself is not changed):
// a negative field is an error, never read as its default, and so are
// inconsistent ones. Errors wrap ErrConfig and name the field.
func (c Config) Validate() error {
	c = c.withDefaults()
	switch {
	case c.CheckpointDistanceBytes < 0:
		return fmt.Errorf("%w: CheckpointDistanceBytes %d < 0", ErrConfig, c.CheckpointDistanceBytes)
	case c.CompactionThreshold < 2:
		return fmt.Errorf("%w: CompactionThreshold %d < 2", ErrConfig, c.CompactionThreshold)
	case c.CompactionTargetSizeBytes < pageBytes:
		return fmt.Errorf("%w: CompactionTargetSizeBytes %d below one page (%d)", ErrConfig, c.CompactionTargetSizeBytes, pageBytes)
	case c.ImageCreationThreshold < 1:
		return fmt.Errorf("%w: ImageCreationThreshold %d < 1", ErrConfig, c.ImageCreationThreshold)
	case c.MaxL0Merge < 0:
		return fmt.Errorf("%w: MaxL0Merge %d < 0", ErrConfig, c.MaxL0Merge)
	case c.MaxL0Merge < c.CompactionThreshold:
		return fmt.Errorf("%w: MaxL0Merge %d below CompactionThreshold %d", ErrConfig, c.MaxL0Merge, c.CompactionThreshold)
	}
	return nil
}
