package main

import (
	"encoding/json"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/stratadb/strata/engine/keys"
	"github.com/stratadb/strata/engine/shard"
)

func init() { register(newKeyCmd) }

func newKeyCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "key",
		Short: "Inspect page keys",
	}
	cmd.AddCommand(newKeyExplainCmd())
	return cmd
}

// keyExplainOutput is the JSON shape of `strata key explain --json`.
type keyExplainOutput struct {
	Key    string     `json:"key"`
	Fields keyFields  `json:"fields"`
	Class  string     `json:"class"`
	Rel    *relOutput `json:"rel,omitempty"`
	Block  *uint32    `json:"block,omitempty"`
	// Shard and the fields after it are present only with --count.
	Shard      *uint8  `json:"shard,omitempty"`
	ShardCount *uint8  `json:"shard_count,omitempty"`
	StripeSize *uint32 `json:"stripe_size,omitempty"`
	ShardIndex string  `json:"shard_index,omitempty"`
	Shard0Key  *bool   `json:"shard0_key,omitempty"`
	Global     *bool   `json:"global,omitempty"`
}

type keyFields struct {
	Field1 uint8  `json:"field1"`
	Field2 uint32 `json:"field2"`
	Field3 uint32 `json:"field3"`
	Field4 uint32 `json:"field4"`
	Field5 uint8  `json:"field5"`
	Field6 uint32 `json:"field6"`
}

type relOutput struct {
	SpcNode uint32 `json:"spcnode"`
	DbNode  uint32 `json:"dbnode"`
	RelNode uint32 `json:"relnode"`
	ForkNum uint8  `json:"forknum"`
	Text    string `json:"text"`
}

func newKeyExplainCmd() *cobra.Command {
	var (
		count  int
		stripe uint32
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "explain [--count N --stripe S] [--json] HEX36",
		Short: "Decode a 36-hex-digit key: fields, class, relation and block, and its shard",
		Example: `  strata key explain 000000067F00000005000040000000000007
  strata key explain --count 4 --json 000000067F00000005000040000000000007`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			k, err := keys.Parse(args[0])
			if err != nil {
				return err
			}
			countSet := cmd.Flags().Changed("count")
			if countSet && (count < 0 || count > 255) {
				return fmt.Errorf("--count %d: want 0..255", count)
			}
			if stripe == 0 {
				return fmt.Errorf("--stripe 0: want a positive number of pages")
			}
			out := explainKey(k)
			if countSet {
				id := shard.ShardIdentity{Count: shard.ShardCount(count), StripeSize: stripe}
				n, c := uint8(id.ShardOf(k)), uint8(count)
				s0, g := shard.IsShard0Key(k), shard.IsKeyGlobal(k)
				out.Shard, out.ShardCount, out.StripeSize = &n, &c, &stripe
				out.ShardIndex = shard.ShardIndex{Number: shard.ShardNumber(n), Count: shard.ShardCount(c)}.String()
				out.Shard0Key, out.Global = &s0, &g
			}
			if asJSON {
				return writeJSON(cmd.OutOrStdout(), out)
			}
			return writeKeyText(cmd.OutOrStdout(), out)
		},
	}
	cmd.Flags().IntVar(&count, "count", 0, "shard count of the tenant; prints the key's shard")
	cmd.Flags().Uint32Var(&stripe, "stripe", shard.DefaultStripeSize, "stripe size in pages (with --count)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func explainKey(k keys.Key) keyExplainOutput {
	out := keyExplainOutput{
		Key:    k.String(),
		Fields: keyFields{k.Field1, k.Field2, k.Field3, k.Field4, k.Field5, k.Field6},
		Class:  k.Class().String(),
	}
	if rel, ok := k.ToRelTag(); ok {
		out.Rel = &relOutput{SpcNode: rel.SpcNode, DbNode: rel.DbNode, RelNode: rel.RelNode, ForkNum: rel.ForkNum, Text: rel.String()}
	}
	if blk, ok := k.BlockNumber(); ok {
		out.Block = &blk
	}
	return out
}

func writeKeyText(w io.Writer, o keyExplainOutput) error {
	f := o.Fields
	lines := []string{
		fmt.Sprintf("key     %s", o.Key),
		fmt.Sprintf("fields  %02X %08X %08X %08X %02X %08X", f.Field1, f.Field2, f.Field3, f.Field4, f.Field5, f.Field6),
		fmt.Sprintf("class   %s", o.Class),
	}
	if o.Rel != nil {
		lines = append(lines, fmt.Sprintf("rel     %s (spc %d, db %d, rel %d, fork %d)", o.Rel.Text, o.Rel.SpcNode, o.Rel.DbNode, o.Rel.RelNode, o.Rel.ForkNum))
	}
	if o.Block != nil {
		lines = append(lines, fmt.Sprintf("block   %d", *o.Block))
	}
	if o.Shard != nil {
		where := "mapped by stripe"
		switch {
		case *o.Global:
			where = "global: stored on every shard, owned by shard 0"
		case *o.Shard0Key:
			where = "shard-0 key"
		}
		lines = append(lines, fmt.Sprintf("shard   %d of %d (index %s, stripe %d pages; %s)", *o.Shard, *o.ShardCount, o.ShardIndex, *o.StripeSize, where))
	}
	for _, l := range lines {
		if _, err := fmt.Fprintln(w, l); err != nil {
			return err
		}
	}
	return nil
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
