package main

import (
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/stratadb/strata/engine/placement"
	"github.com/stratadb/strata/nodes/storcon/storconapi"
)

func newCtlNodesCmd(f *ctlFlags) *cobra.Command {
	cmd := &cobra.Command{Use: "nodes", Short: "List, register, drain, fill and configure pageservers"}
	cmd.AddCommand(newCtlNodesListCmd(f), newCtlNodesRegisterCmd(f), newCtlNodesDrainFillCmd(f, "drain"),
		newCtlNodesDrainFillCmd(f, "fill"), newCtlNodesPolicyCmd(f), newCtlNodesDeleteCmd(f), newCtlNodesDropCmd(f))
	return cmd
}

func newCtlNodesListCmd(f *ctlFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List the registered pageservers with availability, policy and shard counts",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, cancel, err := f.open(cmd.Context())
			if err != nil {
				return err
			}
			defer cancel()
			nodes, err := c.api.ListNodes(c.ctx)
			if err != nil {
				return c.fail("list nodes", err)
			}
			if f.json {
				return writeJSON(cmd.OutOrStdout(), nodes)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tHTTP\tPAGE\tAZ\tAVAILABILITY\tSCHEDULING\tSHARDS\tATTACHED\tUTILIZATION")
			for _, n := range nodes {
				// The page service: gRPC when registered (Strata's
				// pageservers), else the libpq address.
				pg := "-"
				switch {
				case n.ListenGRPCAddr != "":
					pg = storconapi.JoinHostPort(n.ListenGRPCAddr, n.ListenGRPCPort)
				case n.ListenPGAddr != "":
					pg = storconapi.JoinHostPort(n.ListenPGAddr, n.ListenPGPort)
				}
				fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%d\t%d\t%s\n", n.ID, storconapi.JoinHostPort(n.ListenHTTPAddr, n.ListenHTTPPort),
					pg, orDash(n.AvailabilityZoneID), n.Availability, n.Scheduling, n.Shards, n.AttachedShards, utilization(n.UtilizationScore))
			}
			return tw.Flush()
		},
	}
}

// utilization renders a score as a percentage of full (10⁶).
func utilization(score uint64) string {
	return fmt.Sprintf("%.1f%%", float64(score)*100/float64(placement.FullScore))
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func newCtlNodesRegisterCmd(f *ctlFlags) *cobra.Command {
	var id uint64
	var httpAddr, pgAddr, grpcAddr, az string
	cmd := &cobra.Command{
		Use:   "register --id N --http HOST:PORT [--pg HOST:PORT] [--grpc HOST:PORT] [--az AZ]",
		Short: "Register a pageserver (or update its addresses)",
		Long: `register adds a pageserver to the controller (POST /control/v1/node).
A pageserver started with --control-plane-api registers itself through
re-attach; this is for nodes that do not. Registering a node again with the
same fields changes nothing; with other addresses it updates them.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := requireFlags("http", httpAddr); err != nil {
				return err
			}
			if id == 0 {
				return fmt.Errorf("%w: --id is required (a positive integer)", errUsage)
			}
			req := storconapi.NodeRegisterRequest{NodeID: id, AvailabilityZoneID: az}
			var err error
			if req.ListenHTTPAddr, req.ListenHTTPPort, err = storconapi.SplitHostPort(httpAddr); err != nil {
				return fmt.Errorf("%w: --http: %v", errUsage, err)
			}
			if pgAddr != "" {
				if req.ListenPGAddr, req.ListenPGPort, err = storconapi.SplitHostPort(pgAddr); err != nil {
					return fmt.Errorf("%w: --pg: %v", errUsage, err)
				}
			}
			if grpcAddr != "" {
				if req.ListenGRPCAddr, req.ListenGRPCPort, err = storconapi.SplitHostPort(grpcAddr); err != nil {
					return fmt.Errorf("%w: --grpc: %v", errUsage, err)
				}
			}
			if err := req.Validate(); err != nil {
				return fmt.Errorf("%w: %v", errUsage, err)
			}
			c, cancel, err := f.open(cmd.Context())
			if err != nil {
				return err
			}
			defer cancel()
			if err := c.api.RegisterNode(c.ctx, req); err != nil {
				return c.fail(fmt.Sprintf("register node %d", id), err)
			}
			return done(cmd, f, req, "registered node %d at %s", id, httpAddr)
		},
	}
	fl := cmd.Flags()
	fl.Uint64Var(&id, "id", 0, "node id (required)")
	fl.StringVar(&httpAddr, "http", "", "management API address host:port (required)")
	fl.StringVar(&pgAddr, "pg", "", "page service address host:port")
	fl.StringVar(&grpcAddr, "grpc", "", "gRPC address host:port")
	fl.StringVar(&az, "az", "", "availability zone")
	return cmd
}

// newCtlNodesDrainFillCmd builds `nodes drain` and `nodes fill`.
func newCtlNodesDrainFillCmd(f *ctlFlags, what string) *cobra.Command {
	var stop bool
	short := map[string]string{
		"drain": "Move a node's attached shards elsewhere, gracefully and bounded (before a restart)",
		"fill":  "Move attached shards back onto a node, gracefully and bounded (after a restart)",
	}[what]
	cmd := &cobra.Command{
		Use:   what + " NODE_ID [--stop]",
		Short: short,
		Long: short + `. The controller runs the work in
the background (watch it with 'nodes list': the node's scheduling policy is
Draining or Filling until it is done); --stop cancels it.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := parseNodeID(args[0])
			if err != nil {
				return err
			}
			c, cancel, err := f.open(cmd.Context())
			if err != nil {
				return err
			}
			defer cancel()
			call := c.api.Drain
			if what == "fill" {
				call = c.api.Fill
			}
			if err := call(c.ctx, id, stop); err != nil {
				verb := what
				if stop {
					verb = "stop " + what + "ing"
				}
				return c.fail(fmt.Sprintf("%s node %d", verb, id), err)
			}
			state := "started"
			if stop {
				state = "stopped"
			}
			return done(cmd, f, map[string]any{"node_id": id, what: state}, "%s of node %d %s", what, id, state)
		},
	}
	cmd.Flags().BoolVar(&stop, "stop", false, "cancel a "+what+" in progress")
	return cmd
}

func newCtlNodesPolicyCmd(f *ctlFlags) *cobra.Command {
	var scheduling, availability string
	cmd := &cobra.Command{
		Use:   "policy NODE_ID [--scheduling Active|Pause|PauseForRestart|Draining|Filling] [--availability Active|Offline]",
		Short: "Set a node's scheduling policy and/or availability",
		Long: `policy changes a node's scheduling policy (Pause keeps new shards away,
Active lets them come) or, for tests and emergencies, its availability
(Offline moves its attached shards away at once).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := parseNodeID(args[0])
			if err != nil {
				return err
			}
			var req storconapi.NodeConfigRequest
			if scheduling != "" {
				p, err := parseEnum[placement.NodePolicy]("scheduling", scheduling)
				if err != nil {
					return err
				}
				req.Scheduling = &p
			}
			if availability != "" {
				a, err := parseEnum[placement.Availability]("availability", availability)
				if err != nil {
					return err
				}
				req.Availability = &a
			}
			if req.Scheduling == nil && req.Availability == nil {
				return fmt.Errorf("%w: %w: give --scheduling and/or --availability", errUsage, errNothingToDo)
			}
			c, cancel, err := f.open(cmd.Context())
			if err != nil {
				return err
			}
			defer cancel()
			if err := c.api.NodeConfig(c.ctx, id, req); err != nil {
				return c.fail(fmt.Sprintf("configure node %d", id), err)
			}
			return done(cmd, f, req, "node %d configured", id)
		},
	}
	cmd.Flags().StringVar(&scheduling, "scheduling", "", "scheduling policy")
	cmd.Flags().StringVar(&availability, "availability", "", "availability")
	return cmd
}

func newCtlNodesDeleteCmd(f *ctlFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "delete NODE_ID",
		Short: "Remove a node gracefully: its shards move elsewhere first",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := parseNodeID(args[0])
			if err != nil {
				return err
			}
			c, cancel, err := f.open(cmd.Context())
			if err != nil {
				return err
			}
			defer cancel()
			if err := c.api.DeleteNode(c.ctx, id); err != nil {
				return c.fail(fmt.Sprintf("delete node %d", id), err)
			}
			return done(cmd, f, map[string]any{"node_id": id, "deleted": true}, "node %d deleted", id)
		},
	}
}

func newCtlNodesDropCmd(f *ctlFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "drop NODE_ID",
		Short: "Forget a node without moving its shards (operators only; prefer delete)",
		Long: `drop removes a node from the controller at once (POST
/debug/v1/node/ID/drop): shards whose intent names it are rescheduled by
the next reconciles, but nothing is moved gracefully and the pageserver is
not told. For a node that is gone for good; use 'nodes delete' otherwise.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := parseNodeID(args[0])
			if err != nil {
				return err
			}
			c, cancel, err := f.open(cmd.Context())
			if err != nil {
				return err
			}
			defer cancel()
			if err := c.api.DropNode(c.ctx, id); err != nil {
				return c.fail(fmt.Sprintf("drop node %d", id), err)
			}
			return done(cmd, f, map[string]any{"node_id": id, "dropped": true}, "node %d dropped", id)
		},
	}
}
