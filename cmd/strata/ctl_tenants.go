package main

import (
	"crypto/rand"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/stratadb/strata/engine/placement"
	"github.com/stratadb/strata/engine/shard"
	"github.com/stratadb/strata/net"
	"github.com/stratadb/strata/nodes/pageserver/pageapi"
	"github.com/stratadb/strata/nodes/storcon/storconapi"
)

func newCtlTenantsCmd(f *ctlFlags) *cobra.Command {
	cmd := &cobra.Command{Use: "tenants", Aliases: []string{"tenant"}, Short: "Create, list, describe, migrate, split and configure tenants"}
	cmd.AddCommand(newCtlTenantsCreateCmd(f), newCtlTenantsListCmd(f), newCtlTenantsDescribeCmd(f),
		newCtlTenantsMigrateCmd(f), newCtlTenantsSplitCmd(f), newCtlTenantsPolicyCmd(f), newCtlTenantsDeleteCmd(f), newCtlTenantsDropCmd(f))
	return cmd
}

// parseTenantArg parses a tenant id argument.
func parseTenantArg(s string) (shard.TenantID, error) {
	t, err := shard.ParseTenantID(s)
	if err != nil {
		return t, fmt.Errorf("%w: tenant id: %v", errUsage, err)
	}
	return t, nil
}

func newCtlTenantsCreateCmd(f *ctlFlags) *cobra.Command {
	var tenant, policy, az, conf string
	var count uint8
	var stripe uint32
	cmd := &cobra.Command{
		Use:   "create [--tenant ID] [--shard-count N] [--stripe-size PAGES] [--placement P] [--az AZ] [--config JSON]",
		Short: "Create a tenant with all its shards (all or nothing)",
		Long: `create makes a tenant on the controller (POST /v1/tenant): every shard is
placed, given a generation and attached, or nothing is created. Without
--tenant a random id is used. --shard-count 0 (the default) is unsharded.
--placement is attached[:N] (one attached location and N warm secondaries),
secondary, detached, or the API's JSON ({"Attached":1}). --config is the
tenant_conf JSON object passed to the pageservers.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			req := storconapi.TenantCreateRequest{ShardParameters: storconapi.ShardParameters{Count: count, StripeSize: stripe}, PreferredAZ: az}
			if tenant == "" {
				_, _ = rand.Read(req.NewTenantID[:])
			} else {
				var err error
				if req.NewTenantID, err = parseTenantArg(tenant); err != nil {
					return err
				}
			}
			if policy != "" {
				p, err := parsePolicy(policy)
				if err != nil {
					return err
				}
				req.PlacementPolicy = &p
			}
			if conf != "" {
				req.Config = &pageapi.TenantConf{}
				if err := net.DecodeJSON(strings.NewReader(conf), req.Config); err != nil {
					return fmt.Errorf("%w: --config: %v", errUsage, err)
				}
			}
			c, cancel, err := f.open(cmd.Context())
			if err != nil {
				return err
			}
			defer cancel()
			resp, err := c.api.CreateTenant(c.ctx, req)
			if err != nil {
				return c.fail("create tenant "+req.NewTenantID.String(), err)
			}
			if f.json {
				return writeJSON(cmd.OutOrStdout(), map[string]any{"tenant_id": req.NewTenantID, "shards": resp.Shards})
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "created tenant %s\n", req.NewTenantID)
			tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "SHARD\tNODE")
			for _, s := range resp.Shards {
				fmt.Fprintf(tw, "%s\t%d\n", s.ShardID, s.NodeID)
			}
			return tw.Flush()
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&tenant, "tenant", "", "tenant id (default: random)")
	fl.Uint8Var(&count, "shard-count", 0, "number of shards (0: unsharded)")
	fl.Uint32Var(&stripe, "stripe-size", 0, fmt.Sprintf("stripe size in pages (0: the default, %d)", shard.DefaultStripeSize))
	fl.StringVar(&policy, "placement", "", "placement policy: attached[:N], secondary, detached (default attached:0)")
	fl.StringVar(&az, "az", "", "preferred availability zone")
	fl.StringVar(&conf, "config", "", "tenant_conf JSON object")
	return cmd
}

func newCtlTenantsListCmd(f *ctlFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List tenants: shards, where they are attached, generations, pending work",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, cancel, err := f.open(cmd.Context())
			if err != nil {
				return err
			}
			defer cancel()
			tenants, err := c.api.ListTenants(c.ctx)
			if err != nil {
				return c.fail("list tenants", err)
			}
			if f.json {
				return writeJSON(cmd.OutOrStdout(), tenants)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "TENANT\tSHARDS\tSTRIPE\tPOLICY\tATTACHED\tSECONDARIES\tSTATUS")
			for _, t := range tenants {
				var attached, secondaries []string
				policy := "-"
				for i, s := range t.Shards {
					if i == 0 {
						policy = s.Policy.String()
					}
					attached = append(attached, nodeOrDash(s.NodeAttached))
					for _, n := range s.NodeSecondary {
						secondaries = append(secondaries, strconv.FormatUint(n, 10))
					}
				}
				fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%s\t%s\t%s\n", t.TenantID, len(t.Shards), t.StripeSize, policy,
					strings.Join(attached, ","), orDash(strings.Join(secondaries, ",")), tenantStatus(t))
			}
			return tw.Flush()
		},
	}
}

func nodeOrDash(n *uint64) string {
	if n == nil {
		return "-"
	}
	return strconv.FormatUint(*n, 10)
}

// tenantStatus summarizes the shards' flags: ok, or which work is pending.
func tenantStatus(t storconapi.TenantDescribe) string {
	var s []string
	add := func(cond bool, what string) {
		if cond && !slices.Contains(s, what) {
			s = append(s, what)
		}
	}
	for _, sh := range t.Shards {
		add(sh.IsReconciling, "reconciling")
		add(sh.IsDirty && !sh.IsReconciling, "dirty")
		add(sh.PendingComputeNotification, "notify-pending")
		add(sh.IsSplitting, "splitting")
		add(sh.Scheduling != placement.ShardActive, sh.Scheduling.String())
	}
	if len(s) == 0 {
		return "ok"
	}
	return strings.Join(s, ",")
}

// observedText renders what one node holds of a shard as the controller
// believes: "unknown", or the mode and generation.
func observedText(o storconapi.ObservedLocation) string {
	if o.Conf == nil {
		return fmt.Sprintf("%d:unknown", o.NodeID)
	}
	if o.Conf.Mode.Attached() {
		return fmt.Sprintf("%d:%s@%s", o.NodeID, o.Conf.Mode, o.Conf.Generation)
	}
	return fmt.Sprintf("%d:%s", o.NodeID, o.Conf.Mode)
}

func newCtlTenantsDescribeCmd(f *ctlFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "describe TENANT_ID",
		Short: "Describe a tenant's shards: intent, observed state, generation",
		Long: `describe prints one line per shard: its placement and scheduling
policies, intent (the attached node and the secondaries), the latest
generation and the node it was issued to, what each node is observed to
hold (NODE:MODE@GENERATION, or NODE:unknown until the controller reads it
again), and pending work.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			t, err := parseTenantArg(args[0])
			if err != nil {
				return err
			}
			c, cancel, err := f.open(cmd.Context())
			if err != nil {
				return err
			}
			defer cancel()
			d, err := c.api.DescribeTenant(c.ctx, t)
			if err != nil {
				return c.fail("describe tenant "+t.String(), err)
			}
			if f.json {
				return writeJSON(cmd.OutOrStdout(), d)
			}
			return writeDescribe(cmd.OutOrStdout(), d)
		},
	}
}

func writeDescribe(w io.Writer, d storconapi.TenantDescribe) error {
	fmt.Fprintf(w, "tenant %s: %d shard(s), stripe %d, %s\n", d.TenantID, len(d.Shards), d.StripeSize, tenantStatus(d))
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SHARD\tPOLICY\tSCHEDULING\tATTACHED\tSECONDARIES\tGENERATION\tOBSERVED\tSEQ\tSTATUS")
	for _, s := range d.Shards {
		var secondaries, observed []string
		for _, n := range s.NodeSecondary {
			secondaries = append(secondaries, strconv.FormatUint(n, 10))
		}
		for _, o := range s.Observed {
			observed = append(observed, observedText(o))
		}
		gen := "-"
		if s.Generation != nil {
			gen = strconv.FormatUint(uint64(*s.Generation), 10)
			if s.GenerationNode != 0 {
				gen += " (node " + strconv.FormatUint(s.GenerationNode, 10) + ")"
			}
		}
		one := storconapi.TenantDescribe{Shards: []storconapi.ShardDescribe{s}}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\n", s.TenantShardID, s.Policy, s.Scheduling, nodeOrDash(s.NodeAttached),
			orDash(strings.Join(secondaries, ",")), gen, orDash(strings.Join(observed, " ")), s.Sequence, tenantStatus(one))
	}
	return tw.Flush()
}

func newCtlTenantsMigrateCmd(f *ctlFlags) *cobra.Command {
	var node uint64
	cmd := &cobra.Command{
		Use:   "migrate TENANT_SHARD_ID --node N",
		Short: "Move a shard's attachment to a node (live migration)",
		Long: `migrate starts a live migration of one shard (PUT
/control/v1/tenant/TSID/migrate): the origin keeps serving while the
destination attaches with a new generation and catches up, compute is told,
then the origin steps down. A tenant id alone names an unsharded tenant's
only shard; a sharded shard is <tenant>-<nn><cc>. Follow it with
'tenants describe'.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := shard.ParseTenantShardID(args[0])
			if err != nil {
				return fmt.Errorf("%w: tenant shard id: %v", errUsage, err)
			}
			if node == 0 {
				return fmt.Errorf("%w: --node is required (a positive integer)", errUsage)
			}
			c, cancel, err := f.open(cmd.Context())
			if err != nil {
				return err
			}
			defer cancel()
			if err := c.api.Migrate(c.ctx, id, node); err != nil {
				return c.fail(fmt.Sprintf("migrate %s to node %d", id, node), err)
			}
			return done(cmd, f, map[string]any{"tenant_shard_id": id, "node_id": node}, "migrating %s to node %d", id, node)
		},
	}
	cmd.Flags().Uint64Var(&node, "node", 0, "destination node id (required)")
	return cmd
}

func newCtlTenantsSplitCmd(f *ctlFlags) *cobra.Command {
	var count uint8
	var stripe uint32
	cmd := &cobra.Command{
		Use:   "split TENANT_ID --shard-count N [--stripe-size PAGES]",
		Short: "Split every shard of a tenant into more shards",
		Long: `split grows a tenant's shard count (PUT /control/v1/tenant/ID/shard_split):
each shard is split on its pageserver into its share of the new count,
which must be the current count times a power of two; the children stay
where their parent was, in its generation, and compute is told the new
map. A split that fails part-way is rolled back: the tenant keeps the
shards it had. Repeating a split that is done answers its shards.
--stripe-size changes the stripe only while the tenant is unsharded. A
large tenant may take longer than the default --timeout.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			t, err := parseTenantArg(args[0])
			if err != nil {
				return err
			}
			if count == 0 {
				return fmt.Errorf("%w: --shard-count is required (the new count, 2 to 255)", errUsage)
			}
			req := storconapi.ShardSplitRequest{NewShardCount: shard.ShardCount(count)}
			if cmd.Flags().Changed("stripe-size") {
				req.NewStripeSize = &stripe
			}
			c, cancel, err := f.open(cmd.Context())
			if err != nil {
				return err
			}
			defer cancel()
			resp, err := c.api.ShardSplit(c.ctx, t, req)
			if err != nil {
				return c.fail(fmt.Sprintf("split tenant %s into %d shards", t, count), err)
			}
			if f.json {
				return writeJSON(cmd.OutOrStdout(), resp)
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "tenant %s has %d shards\n", t, len(resp.NewShards))
			for _, id := range resp.NewShards {
				fmt.Fprintln(out, id)
			}
			return nil
		},
	}
	cmd.Flags().Uint8Var(&count, "shard-count", 0, "the new shard count (required)")
	cmd.Flags().Uint32Var(&stripe, "stripe-size", 0, "new stripe size in pages (unsharded tenants only; default: keep)")
	return cmd
}

func newCtlTenantsPolicyCmd(f *ctlFlags) *cobra.Command {
	var policy, scheduling string
	cmd := &cobra.Command{
		Use:   "policy TENANT_ID [--placement P] [--scheduling Active|Essential|Pause|Stop]",
		Short: "Change a tenant's placement and/or shard scheduling policy",
		Long: `policy changes every shard of a tenant: --placement (attached[:N],
secondary, detached or the JSON form) reshapes its locations, --scheduling
holds the controller back (Pause freezes intent, Stop also stops
reconciles; Active lets it work again).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			t, err := parseTenantArg(args[0])
			if err != nil {
				return err
			}
			var req storconapi.TenantPolicyRequest
			if policy != "" {
				p, err := parsePolicy(policy)
				if err != nil {
					return err
				}
				req.Placement = &p
			}
			if scheduling != "" {
				s, err := parseEnum[placement.ShardSchedulingPolicy]("scheduling", scheduling)
				if err != nil {
					return err
				}
				req.Scheduling = &s
			}
			if req.Placement == nil && req.Scheduling == nil {
				return fmt.Errorf("%w: %w: give --placement and/or --scheduling", errUsage, errNothingToDo)
			}
			c, cancel, err := f.open(cmd.Context())
			if err != nil {
				return err
			}
			defer cancel()
			if err := c.api.SetTenantPolicy(c.ctx, t, req); err != nil {
				return c.fail("set policy of tenant "+t.String(), err)
			}
			return done(cmd, f, req, "tenant %s policy set", t)
		},
	}
	cmd.Flags().StringVar(&policy, "placement", "", "placement policy")
	cmd.Flags().StringVar(&scheduling, "scheduling", "", "shard scheduling policy")
	return cmd
}

func newCtlTenantsDeleteCmd(f *ctlFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "delete TENANT_ID",
		Short: "Delete a tenant from every pageserver, then from the controller",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			t, err := parseTenantArg(args[0])
			if err != nil {
				return err
			}
			c, cancel, err := f.open(cmd.Context())
			if err != nil {
				return err
			}
			defer cancel()
			if err := c.api.DeleteTenant(c.ctx, t); err != nil {
				return c.fail("delete tenant "+t.String(), err)
			}
			return done(cmd, f, map[string]any{"tenant_id": t, "deleted": true}, "tenant %s deleted", t)
		},
	}
}

func newCtlTenantsDropCmd(f *ctlFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "drop TENANT_ID",
		Short: "Forget a tenant without touching pageservers (operators only; prefer delete)",
		Long: `drop removes a tenant from the controller and its store (POST
/debug/v1/tenant/ID/drop) and leaves whatever pageservers hold in place:
for repairing a controller, not for deleting data. Use 'tenants delete'
to delete a tenant.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			t, err := parseTenantArg(args[0])
			if err != nil {
				return err
			}
			c, cancel, err := f.open(cmd.Context())
			if err != nil {
				return err
			}
			defer cancel()
			if err := c.api.DropTenant(c.ctx, t); err != nil {
				return c.fail("drop tenant "+t.String(), err)
			}
			return done(cmd, f, map[string]any{"tenant_id": t, "dropped": true}, "tenant %s dropped", t)
		},
	}
}
