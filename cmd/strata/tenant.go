package main

import (
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/stratadb/strata/engine/shard"
	"github.com/stratadb/strata/net"
	"github.com/stratadb/strata/nodes/pageserver/pageapi"
)

func init() { register(newTenantCmd) }

func newTenantCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "tenant", Short: "Attach, detach and list tenant shards on a pageserver (without a storage controller)"}
	cmd.AddCommand(newTenantAttachCmd(), newTenantDetachCmd(), newTenantListCmd())
	return cmd
}

// maxGeneration is the largest generation (a u32 on the wire).
const maxGeneration = 1<<32 - 1

// attachConf is the location config `tenant attach` sends for id.
func attachConf(id shard.TenantShardID, generation uint32, stripe uint32, tenantConf string) (pageapi.LocationConfig, error) {
	conf := pageapi.LocationConfig{Mode: pageapi.ModeAttachedSingle, Generation: &generation,
		ShardNumber: uint8(id.Shard.Number), ShardCount: uint8(id.Shard.Count), TenantConf: &pageapi.TenantConf{}}
	if id.Shard.Count >= 2 {
		conf.ShardStripeSize = stripe
	}
	if tenantConf != "" {
		if err := net.DecodeJSON(strings.NewReader(tenantConf), conf.TenantConf); err != nil {
			return conf, fmt.Errorf("%w: --tenant-conf: %v", errUsage, err)
		}
	}
	if err := conf.Validate(id); err != nil {
		return conf, fmt.Errorf("%w: %v", errUsage, err)
	}
	return conf, nil
}

func newTenantAttachCmd() *cobra.Command {
	var f mgmtFlags
	var generation int64
	var stripe uint32
	var tenantConf string
	cmd := &cobra.Command{
		Use:   "attach --pageserver-http URL --tenant TSID --generation N [--stripe-size PAGES] [--tenant-conf JSON]",
		Short: "Attach a tenant shard (location_config AttachedSingle at a generation)",
		Long: `attach sends PUT /v1/tenant/TSID/location_config with mode AttachedSingle
and --generation, as a storage controller would: the pageserver then serves
the shard and its WAL receivers follow its timelines. A generation lower than
the one the pageserver holds is refused (409). A sharded id
(<tenant>-<nn><cc>) takes its shard number and count from the id and the
stripe from --stripe-size. --tenant-conf is the tenant_conf object, e.g.
'{"gc_period":"10s","gc_horizon":1048576}' ({} for the defaults).`,
		Example: `  strata tenant attach --pageserver-http http://127.0.0.1:9898 --tenant 0a0b0c0d0e0f00010203040506070809 --generation 1`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !cmd.Flags().Changed("generation") {
				return fmt.Errorf("%w: --generation is required", errUsage)
			}
			if generation < 0 || generation > maxGeneration {
				return fmt.Errorf("%w: --generation %d not in [0, %d]", errUsage, generation, int64(maxGeneration))
			}
			c, id, ctx, cancel, err := f.open(cmd.Context())
			if err != nil {
				return err
			}
			defer cancel()
			conf, err := attachConf(id, uint32(generation), stripe, tenantConf)
			if err != nil {
				return err
			}
			if err := c.setLocation(ctx, id, conf); err != nil {
				return err
			}
			if f.json {
				return writeJSON(cmd.OutOrStdout(), conf)
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "attached %s at generation %d (AttachedSingle)\n", id, generation)
			return err
		},
	}
	f.register(cmd)
	fl := cmd.Flags()
	fl.Int64Var(&generation, "generation", 0, "attachment generation (required)")
	fl.Uint32Var(&stripe, "stripe-size", shard.DefaultStripeSize, "stripe size in pages, for a sharded tenant")
	fl.StringVar(&tenantConf, "tenant-conf", "", "tenant_conf JSON object (default {})")
	return cmd
}

func newTenantDetachCmd() *cobra.Command {
	var f mgmtFlags
	cmd := &cobra.Command{
		Use:   "detach --pageserver-http URL --tenant TSID",
		Short: "Detach a tenant shard (location_config Detached: its local data is removed)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, id, ctx, cancel, err := f.open(cmd.Context())
			if err != nil {
				return err
			}
			defer cancel()
			if err := c.setLocation(ctx, id, pageapi.LocationConfig{Mode: pageapi.ModeDetached}); err != nil {
				return err
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "detached %s\n", id)
			return err
		},
	}
	f.register(cmd)
	return cmd
}

func newTenantListCmd() *cobra.Command {
	f := mgmtFlags{tenantless: true}
	cmd := &cobra.Command{
		Use:   "list --pageserver-http URL",
		Short: "List the tenant shards a pageserver holds, with mode and generation",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, _, ctx, cancel, err := f.open(cmd.Context())
			if err != nil {
				return err
			}
			defer cancel()
			l, err := c.locations(ctx)
			if err != nil {
				return err
			}
			if f.json {
				return writeJSON(cmd.OutOrStdout(), l)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "TENANT_SHARD\tMODE\tGENERATION")
			for _, s := range l.TenantShards {
				mode, gen := "broken", "-"
				if s.Config != nil {
					mode = string(s.Config.Mode)
					if s.Config.Generation != nil {
						gen = fmt.Sprint(*s.Config.Generation)
					}
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\n", s.ID, mode, gen)
			}
			return tw.Flush()
		},
	}
	f.register(cmd)
	return cmd
}
