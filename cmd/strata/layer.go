package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/stratadb/strata/engine/layer"
	"github.com/stratadb/strata/engine/lsn"
)

func init() { register(newLayerCmd) }

func newLayerCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "layer",
		Short: "Inspect layer names",
	}
	cmd.AddCommand(newLayerExplainCmd())
	return cmd
}

// layerExplainOutput is the JSON shape of `strata layer explain --json`.
// An image layer has lsn; a delta layer has lsn_start and lsn_end (end
// exclusive). Generation is null for a legacy name without suffix. Form is
// the spelling NAME used: "legacy" (no generation), "generation"
// ("<layer name>-<gen>", what Strata writes) or "neon-local" (Neon's local
// file name "<layer name>-v1-<gen>"); Name is always Strata's spelling.
type layerExplainOutput struct {
	Name       string   `json:"name"`
	Form       string   `json:"form"`
	LayerName  string   `json:"layer_name"`
	Kind       string   `json:"kind"`
	KeyStart   string   `json:"key_start"`
	KeyEnd     string   `json:"key_end"`
	LSN        *lsn.LSN `json:"lsn,omitempty"`
	LSNStart   *lsn.LSN `json:"lsn_start,omitempty"`
	LSNEnd     *lsn.LSN `json:"lsn_end,omitempty"`
	Generation *uint32  `json:"generation"`
}

func newLayerExplainCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "explain [--json] NAME",
		Short: "Decode a layer file name: kind, key range, LSNs and generation",
		Long: `Decode a layer file name. NAME may be a path (remote or local): only the
part after the last "/" is read. Accepted forms: the bare layer name (legacy,
no generation), "<layer name>-<gen 08x>" (Strata's file name and Neon's
remote object name) and Neon's local file name "<layer name>-v1-<gen 08x>".`,
		Example: `  strata layer explain 000000000000000000000000000000000000-FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF__0000000001696070-00000000016960E9-0000000a
  strata layer explain 000000000000000000000000000000000000-FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF__0000000001696070-00000000016960E9-v1-0000000a`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			base := args[0][strings.LastIndex(args[0], "/")+1:]
			n, err := layer.ParseName(base)
			if err != nil {
				return err
			}
			form := "generation"
			switch {
			case n.Generation.IsNone():
				form = "legacy"
			case base == n.LocalFileName():
				form = "neon-local"
			}
			out := layerExplainOutput{
				Name:      n.String(),
				Form:      form,
				LayerName: n.LayerName(),
				Kind:      n.Kind.String(),
				KeyStart:  n.KeyRange.Start.String(),
				KeyEnd:    n.KeyRange.End.String(),
			}
			if n.Kind == layer.KindImage {
				l := n.LSN()
				out.LSN = &l
			} else {
				s, e := n.LSNRange.Start, n.LSNRange.End
				out.LSNStart, out.LSNEnd = &s, &e
			}
			if !n.Generation.IsNone() {
				g := uint32(n.Generation)
				out.Generation = &g
			}
			if asJSON {
				return writeJSON(cmd.OutOrStdout(), out)
			}
			w := cmd.OutOrStdout()
			lines := []string{
				"kind        " + out.Kind,
				"key range   " + out.KeyStart + " .. " + out.KeyEnd + " (end exclusive)",
			}
			if out.LSN != nil {
				lines = append(lines, "lsn         "+out.LSN.String())
			} else {
				lines = append(lines, fmt.Sprintf("lsn range   %s .. %s (end exclusive)", out.LSNStart, out.LSNEnd))
			}
			if out.Generation != nil {
				lines = append(lines, fmt.Sprintf("generation  %d (%s)", *out.Generation, n.Generation))
			} else {
				lines = append(lines, "generation  none (legacy name)")
			}
			if form == "neon-local" {
				lines = append(lines, "form        Neon's local file name (<layer name>-v1-<gen>); Strata's name: "+out.Name)
			}
			for _, l := range lines {
				if _, err := fmt.Fprintln(w, l); err != nil {
					return err
				}
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}
