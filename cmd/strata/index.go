package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/stratadb/strata/engine/layer"
	"github.com/stratadb/strata/engine/lsn"
	"github.com/stratadb/strata/engine/remote"
	"github.com/stratadb/strata/engine/shard"
)

func init() { register(newIndexCmd) }

func newIndexCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "index",
		Short: "Inspect remote timeline indexes (index_part.json)",
	}
	cmd.AddCommand(newIndexExplainCmd())
	return cmd
}

// maxIndexFileBytes bounds what explain reads: a real index is kilobytes to
// a few megabytes (one entry per layer).
const maxIndexFileBytes = 256 << 20

// indexExplainOutput is the JSON shape of `strata index explain --json`.
// LSNs are "X/Y" text, sizes exact integers, timestamps RFC 3339 in UTC.
type indexExplainOutput struct {
	Version        int                  `json:"version"`
	MetadataForm   string               `json:"metadata_form"`
	MetadataKey    string               `json:"metadata_key"`
	Metadata       indexExplainMetadata `json:"metadata"`
	DeletedAt      *time.Time           `json:"deleted_at,omitempty"`
	ArchivedAt     *time.Time           `json:"archived_at,omitempty"`
	Lineage        *indexExplainLineage `json:"lineage,omitempty"`
	GCBlocking     *indexExplainGC      `json:"gc_blocking,omitempty"`
	LayerCount     int                  `json:"layer_count"`
	TotalSize      json.Number          `json:"total_size"`
	ImageLayers    []indexExplainLayer  `json:"image_layers"`
	DeltaLayers    []indexExplainLayer  `json:"delta_layers"`
	SkippedBackups []string             `json:"skipped_backups"`
	IgnoredFields  []string             `json:"ignored_fields"`
	Problems       []string             `json:"problems"`
}

type indexExplainMetadata struct {
	DiskConsistentLSN lsn.LSN           `json:"disk_consistent_lsn"`
	PrevRecordLSN     *lsn.LSN          `json:"prev_record_lsn"`
	AncestorTimeline  *shard.TimelineID `json:"ancestor_timeline"`
	AncestorLSN       lsn.LSN           `json:"ancestor_lsn"`
	LatestGCCutoffLSN lsn.LSN           `json:"latest_gc_cutoff_lsn"`
	InitdbLSN         lsn.LSN           `json:"initdb_lsn"`
	PGVersion         uint32            `json:"pg_version"`
}

type indexExplainLineage struct {
	ReparentingHistoryTruncated bool               `json:"reparenting_history_truncated"`
	ReparentingHistory          []shard.TimelineID `json:"reparenting_history"`
	OriginalAncestor            *shard.TimelineID  `json:"original_ancestor,omitempty"`
	OriginalAncestorLSN         *lsn.LSN           `json:"original_ancestor_lsn,omitempty"`
	DetachedAt                  *time.Time         `json:"detached_at,omitempty"`
}

type indexExplainGC struct {
	StartedAt time.Time `json:"started_at"`
	Reasons   []string  `json:"reasons"`
}

// indexExplainLayer is one layer. An image layer has lsn; a delta layer
// lsn_start and lsn_end (end exclusive). Generation is null for a legacy
// object without suffix, shard null for an unsharded writer. ObjectName is
// the remote object's last path element.
type indexExplainLayer struct {
	Name       string   `json:"name"`
	ObjectName string   `json:"object_name"`
	KeyStart   string   `json:"key_start"`
	KeyEnd     string   `json:"key_end"`
	LSN        *lsn.LSN `json:"lsn,omitempty"`
	LSNStart   *lsn.LSN `json:"lsn_start,omitempty"`
	LSNEnd     *lsn.LSN `json:"lsn_end,omitempty"`
	FileSize   uint64   `json:"file_size"`
	Generation *uint32  `json:"generation"`
	Shard      *string  `json:"shard"`
}

func newIndexExplainCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "explain [--json] FILE|-",
		Short: "Decode an index_part.json: layers by kind, metadata, lineage",
		Long: `Decode a timeline's remote index (index_part.json, any version from 1 to 15,
as Neon and Strata write it; "-" reads standard input) and print its layers,
grouped by kind, with key range, LSNs, size, generation and writing shard,
and the timeline metadata. A file that does not parse is reported with what
is wrong and exit status 1. See docs/remote-storage.md.`,
		Example: `  strata index explain index_part.json-00000005
  aws s3 cp s3://bucket/tenants/<tenant>/timelines/<timeline>/index_part.json-00000005 - | strata index explain --json -`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			data, err := readIndexInput(cmd, args[0])
			if err != nil {
				return err
			}
			ip, notes, err := remote.ParseNotes(data)
			if err != nil {
				return fmt.Errorf("%s: %w", args[0], err)
			}
			out := explainIndex(ip, notes)
			if asJSON {
				return writeJSON(cmd.OutOrStdout(), out)
			}
			return printIndex(cmd.OutOrStdout(), out)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func readIndexInput(cmd *cobra.Command, arg string) ([]byte, error) {
	var r io.Reader
	if arg == "-" {
		r = cmd.InOrStdin()
	} else {
		f, err := os.Open(arg)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		r = f
	}
	data, err := io.ReadAll(io.LimitReader(r, maxIndexFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", arg, err)
	}
	if len(data) > maxIndexFileBytes {
		return nil, fmt.Errorf("%s: larger than %d bytes; not an index", arg, maxIndexFileBytes)
	}
	return data, nil
}

func explainIndex(ip remote.IndexPart, notes remote.Notes) indexExplainOutput {
	m := ip.Metadata
	out := indexExplainOutput{
		Version:      ip.Version,
		MetadataForm: notes.MetadataForm.String(),
		MetadataKey:  notes.MetadataKey,
		Metadata: indexExplainMetadata{
			DiskConsistentLSN: m.DiskConsistentLSN, PrevRecordLSN: m.PrevRecordLSN,
			AncestorTimeline: m.AncestorTimeline, AncestorLSN: m.AncestorLSN,
			LatestGCCutoffLSN: m.LatestGCCutoffLSN, InitdbLSN: m.InitdbLSN, PGVersion: m.PGVersion,
		},
		DeletedAt:      ip.DeletedAt,
		ArchivedAt:     ip.ArchivedAt,
		LayerCount:     len(ip.Layers),
		ImageLayers:    []indexExplainLayer{},
		DeltaLayers:    []indexExplainLayer{},
		SkippedBackups: append([]string{}, notes.SkippedBackups...),
		IgnoredFields:  append([]string{}, notes.Ignored...),
		Problems:       []string{},
	}
	if !ip.Lineage.IsZero() {
		l := &indexExplainLineage{ReparentingHistoryTruncated: ip.Lineage.ReparentingHistoryTruncated, ReparentingHistory: append([]shard.TimelineID{}, ip.Lineage.ReparentingHistory...)}
		if oa := ip.Lineage.OriginalAncestor; oa != nil {
			l.OriginalAncestor, l.OriginalAncestorLSN, l.DetachedAt = &oa.Timeline, &oa.LSN, &oa.DetachedAt
		}
		out.Lineage = l
	}
	if gb := ip.GCBlocking; gb != nil {
		out.GCBlocking = &indexExplainGC{StartedAt: gb.StartedAt, Reasons: append([]string{}, gb.Reasons...)}
	}
	total := new(big.Int)
	for _, l := range ip.Layers {
		e := indexExplainLayer{
			Name:       l.Name.LayerName(),
			ObjectName: l.Name.String(),
			KeyStart:   l.Name.KeyRange.Start.String(),
			KeyEnd:     l.Name.KeyRange.End.String(),
			FileSize:   l.FileSize,
		}
		if !l.Name.Generation.IsNone() {
			g := uint32(l.Name.Generation)
			e.Generation = &g
		}
		if !l.Shard.IsUnsharded() {
			s := l.Shard.String()
			e.Shard = &s
		}
		total.Add(total, new(big.Int).SetUint64(l.FileSize))
		if l.Name.Kind == layer.KindImage {
			v := l.Name.LSN()
			e.LSN = &v
			out.ImageLayers = append(out.ImageLayers, e)
		} else {
			s, en := l.Name.LSNRange.Start, l.Name.LSNRange.End
			e.LSNStart, e.LSNEnd = &s, &en
			out.DeltaLayers = append(out.DeltaLayers, e)
		}
	}
	// Sizes are exact u64s; their sum may not fit one.
	out.TotalSize = json.Number(total.String())
	if err := ip.Validate(); err != nil {
		if errors.Is(err, remote.ErrEmptyIndex) {
			out.Problems = append(out.Problems, "names no layers and has no ancestor: Strata never uploads such an index")
		} else {
			out.Problems = append(out.Problems, err.Error())
		}
	}
	return out
}

func printIndex(w io.Writer, out indexExplainOutput) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	p := func(format string, args ...any) { fmt.Fprintf(tw, format+"\n", args...) }
	m := out.Metadata
	p("version\t%d (Strata reads %d to %d, writes %d)", out.Version, remote.MinVersion, remote.MaxVersion, remote.CurrentVersion)
	p("metadata\t%s, under %q", out.MetadataForm, out.MetadataKey)
	p("  disk_consistent_lsn\t%s", m.DiskConsistentLSN)
	p("  prev_record_lsn\t%s", optString(m.PrevRecordLSN))
	if m.AncestorTimeline != nil {
		p("  ancestor\t%s at %s", m.AncestorTimeline, m.AncestorLSN)
	} else {
		p("  ancestor\tnone")
	}
	p("  latest_gc_cutoff_lsn\t%s", m.LatestGCCutoffLSN)
	p("  initdb_lsn\t%s", m.InitdbLSN)
	p("  pg_version\t%d", m.PGVersion)
	if out.DeletedAt != nil {
		p("deleted_at\t%s", out.DeletedAt.Format(time.RFC3339Nano))
	}
	if out.ArchivedAt != nil {
		p("archived_at\t%s", out.ArchivedAt.Format(time.RFC3339Nano))
	}
	if l := out.Lineage; l != nil {
		hist := make([]string, len(l.ReparentingHistory))
		for i, id := range l.ReparentingHistory {
			hist[i] = id.String()
		}
		trunc := ""
		if l.ReparentingHistoryTruncated {
			trunc = " (truncated)"
		}
		p("lineage\treparented from [%s]%s", strings.Join(hist, ", "), trunc)
		if l.OriginalAncestor != nil {
			p("  detached from\t%s at %s on %s", l.OriginalAncestor, l.OriginalAncestorLSN, l.DetachedAt.Format(time.RFC3339Nano))
		}
	}
	if gb := out.GCBlocking; gb != nil {
		p("gc_blocking\tsince %s: %s", gb.StartedAt.Format(time.RFC3339Nano), strings.Join(gb.Reasons, ", "))
	}
	p("layers\t%d (%d image, %d delta), %s bytes", out.LayerCount, len(out.ImageLayers), len(out.DeltaLayers), out.TotalSize)
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(out.ImageLayers) > 0 {
		fmt.Fprintf(w, "\nimage layers (%d):\n", len(out.ImageLayers))
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "  KEY START\tKEY END\tLSN\tSIZE\tGENERATION\tSHARD")
		for _, l := range out.ImageLayers {
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%d\t%s\t%s\n", l.KeyStart, l.KeyEnd, l.LSN, l.FileSize, genText(l.Generation), optText(l.Shard, "unsharded"))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if len(out.DeltaLayers) > 0 {
		fmt.Fprintf(w, "\ndelta layers (%d):\n", len(out.DeltaLayers))
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "  KEY START\tKEY END\tLSN START\tLSN END\tSIZE\tGENERATION\tSHARD")
		for _, l := range out.DeltaLayers {
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%d\t%s\t%s\n", l.KeyStart, l.KeyEnd, l.LSNStart, l.LSNEnd, l.FileSize, genText(l.Generation), optText(l.Shard, "unsharded"))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	var tail []string
	if len(out.SkippedBackups) > 0 {
		tail = append(tail, fmt.Sprintf("skipped backup entries (not layers; their objects are left in storage): %s", strings.Join(out.SkippedBackups, ", ")))
	}
	if len(out.IgnoredFields) > 0 {
		tail = append(tail, "fields Strata does not read: "+strings.Join(out.IgnoredFields, ", "))
	}
	for _, pr := range out.Problems {
		tail = append(tail, "PROBLEM: "+pr)
	}
	if len(tail) > 0 {
		fmt.Fprintln(w)
	}
	for _, s := range tail {
		if _, err := fmt.Fprintln(w, s); err != nil {
			return err
		}
	}
	return nil
}

func optString(l *lsn.LSN) string {
	if l == nil {
		return "none"
	}
	return l.String()
}

func genText(g *uint32) string {
	if g == nil {
		return "none"
	}
	return fmt.Sprintf("%d (%08x)", *g, *g)
}

func optText(s *string, none string) string {
	if s == nil {
		return none
	}
	return *s
}
