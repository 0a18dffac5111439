package pageapi

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/stratadb/strata/engine/keys"
	"github.com/stratadb/strata/engine/lsn"
)

// The Strata base backup archive: what GetBaseBackup streams (after
// decompression, for GZIP), docs/pageserver.md "Base backup". A USTAR tar
// stream of regular files:
//
//  1. BaseBackupManifestName: the JSON BaseBackupManifest (format, LSN,
//     tenant shard, timeline, flags);
//  2. one entry per key with a value at the LSN, in key order, named by the
//     key's 36 upper-case hex digits (docs/neon-compat.md, Keys), holding
//     the value's bytes (a relation or SLRU size is 4 bytes, little-endian;
//     a page 8192 bytes; other metadata as stored);
//  3. BaseBackupTrailerName: the JSON BaseBackupTrailer (how many key
//     entries and value bytes came before it), so a stream cut at an entry
//     boundary is detected;
//
// then tar's end-of-archive blocks. Modification times are the Unix epoch,
// owners 0 and modes 0644, so the same keys give the same bytes.
const (
	BaseBackupFormat        = 1
	BaseBackupManifestName  = "strata_basebackup.json"
	BaseBackupTrailerName   = "strata_basebackup_end.json"
	BaseBackupChunkBytes    = 256 << 10 // GetBaseBackupResponseChunk.chunk size (the last may be shorter)
	MaxBaseBackupValueBytes = 1 << 20   // a reader refuses a larger entry (walrec images are at most this)
	maxBaseBackupJSONBytes  = 64 << 10
)

// ErrBadArchive reports a base backup archive that does not follow the
// format (including one cut short).
var ErrBadArchive = errors.New("pageapi: malformed base backup archive")

// BaseBackupManifest is the archive's first entry.
type BaseBackupManifest struct {
	// Format is BaseBackupFormat.
	Format int `json:"format"`
	// LSN is the LSN the backup was read at (the latest ingested one when
	// the request asked for 0).
	LSN lsn.LSN `json:"lsn"`
	// TenantShardID and TimelineID name what was backed up.
	TenantShardID string `json:"tenant_shard_id"`
	TimelineID    string `json:"timeline_id"`
	// Full: relation blocks are included too (the request's full flag).
	Full bool `json:"full"`
	// Replica echoes the request's replica flag (Strata's archive is the
	// same either way).
	Replica bool `json:"replica"`
}

// BaseBackupTrailer is the archive's last entry.
type BaseBackupTrailer struct {
	Keys       int64 `json:"keys"`
	ValueBytes int64 `json:"value_bytes"`
}

// BaseBackupWriter writes the archive to an io.Writer.
type BaseBackupWriter struct {
	tw      *tar.Writer
	trailer BaseBackupTrailer
	last    keys.Key
}

func entryHeader(name string, size int) *tar.Header {
	return &tar.Header{
		Typeflag: tar.TypeReg,
		Name:     name,
		Size:     int64(size),
		Mode:     0o644,
		ModTime:  time.Unix(0, 0),
		Format:   tar.FormatUSTAR,
	}
}

func (b *BaseBackupWriter) entry(name string, body []byte) error {
	if err := b.tw.WriteHeader(entryHeader(name, len(body))); err != nil {
		return err
	}
	_, err := b.tw.Write(body)
	return err
}

// NewBaseBackupWriter starts an archive on w with m as its manifest
// (m.Format is set).
func NewBaseBackupWriter(w io.Writer, m BaseBackupManifest) (*BaseBackupWriter, error) {
	m.Format = BaseBackupFormat
	body, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	b := &BaseBackupWriter{tw: tar.NewWriter(w)}
	if err := b.entry(BaseBackupManifestName, body); err != nil {
		return nil, err
	}
	return b, nil
}

// Add writes one key's value. Keys must come in increasing order.
func (b *BaseBackupWriter) Add(k keys.Key, val []byte) error {
	if b.trailer.Keys > 0 && !b.last.Less(k) {
		return fmt.Errorf("%w: key %s after %s", ErrBadArchive, k, b.last)
	}
	if len(val) > MaxBaseBackupValueBytes {
		return fmt.Errorf("%w: key %s holds %d bytes, limit %d", ErrBadArchive, k, len(val), MaxBaseBackupValueBytes)
	}
	if err := b.entry(k.String(), val); err != nil {
		return err
	}
	b.last = k
	b.trailer.Keys++
	b.trailer.ValueBytes += int64(len(val))
	return nil
}

// Close writes the trailer and tar's end of archive (it does not close the
// underlying writer) and returns what the trailer says.
func (b *BaseBackupWriter) Close() (BaseBackupTrailer, error) {
	body, err := json.Marshal(b.trailer)
	if err != nil {
		return b.trailer, err
	}
	if err := b.entry(BaseBackupTrailerName, body); err != nil {
		return b.trailer, err
	}
	return b.trailer, b.tw.Close()
}

func readJSONEntry(tr *tar.Reader, h *tar.Header, v any) error {
	if h.Typeflag != tar.TypeReg || h.Size > maxBaseBackupJSONBytes {
		return fmt.Errorf("%w: entry %s: type %c, %d bytes", ErrBadArchive, h.Name, h.Typeflag, h.Size)
	}
	body, err := io.ReadAll(io.LimitReader(tr, h.Size))
	if err != nil {
		return fmt.Errorf("%w: entry %s: %w", ErrBadArchive, h.Name, err)
	}
	d := json.NewDecoder(bytes.NewReader(body))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		return fmt.Errorf("%w: entry %s: %w", ErrBadArchive, h.Name, err)
	}
	return nil
}

// ReadBaseBackup reads an archive (already decompressed) and calls fn for
// each key in order; val is valid only during the call. It checks the
// format: the manifest first, keys increasing, the trailer's counts, and
// nothing after it; an archive cut anywhere is ErrBadArchive. An error
// from fn is returned as it is.
func ReadBaseBackup(r io.Reader, fn func(k keys.Key, val []byte) error) (BaseBackupManifest, error) {
	var m BaseBackupManifest
	tr := tar.NewReader(r)
	h, err := tr.Next()
	if err != nil {
		return m, fmt.Errorf("%w: no manifest: %w", ErrBadArchive, err)
	}
	if h.Name != BaseBackupManifestName {
		return m, fmt.Errorf("%w: first entry is %q, not the manifest", ErrBadArchive, h.Name)
	}
	if err := readJSONEntry(tr, h, &m); err != nil {
		return m, err
	}
	if m.Format != BaseBackupFormat {
		return m, fmt.Errorf("%w: format %d, this reader knows %d", ErrBadArchive, m.Format, BaseBackupFormat)
	}
	var got BaseBackupTrailer
	var last keys.Key
	var buf []byte
	for {
		h, err := tr.Next()
		if err != nil {
			// io.EOF too: the stream ended without its trailer.
			return m, fmt.Errorf("%w: after %d keys: %w", ErrBadArchive, got.Keys, err)
		}
		if h.Name == BaseBackupTrailerName {
			var want BaseBackupTrailer
			if err := readJSONEntry(tr, h, &want); err != nil {
				return m, err
			}
			if want != got {
				return m, fmt.Errorf("%w: trailer says %+v, archive holds %+v", ErrBadArchive, want, got)
			}
			if _, err := tr.Next(); err != io.EOF {
				return m, fmt.Errorf("%w: entries after the trailer (%v)", ErrBadArchive, err)
			}
			return m, nil
		}
		k, err := keys.Parse(h.Name)
		if err != nil || h.Typeflag != tar.TypeReg || h.Size > MaxBaseBackupValueBytes || k.String() != h.Name {
			return m, fmt.Errorf("%w: entry %q (type %c, %d bytes)", ErrBadArchive, h.Name, h.Typeflag, h.Size)
		}
		if got.Keys > 0 && !last.Less(k) {
			return m, fmt.Errorf("%w: key %s after %s", ErrBadArchive, k, last)
		}
		buf = buf[:0]
		if int64(cap(buf)) < h.Size {
			buf = make([]byte, 0, h.Size)
		}
		buf = buf[:h.Size]
		if _, err := io.ReadFull(tr, buf); err != nil {
			return m, fmt.Errorf("%w: key %s: %w", ErrBadArchive, k, err)
		}
		if err := fn(k, buf); err != nil {
			return m, err
		}
		last = k
		got.Keys++
		got.ValueBytes += h.Size
	}
}
