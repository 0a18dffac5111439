package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/stratadb/strata/engine/placement"
	"github.com/stratadb/strata/net"
	"github.com/stratadb/strata/net/httpx"
	"github.com/stratadb/strata/nodes/storcon/storconapi"
)

func init() { register(newCtlCmd) }

// The environment `strata ctl` reads when its flags are not given.
const (
	controllerEnv      = "STRATA_CONTROLLER"
	controllerTokenEnv = "STRATA_CONTROLLER_TOKEN"
	// defaultController is the storcon daemon's default -listen.
	defaultController = "http://127.0.0.1:1234"
)

// ctlFlags are the flags every `strata ctl` command has (persistent on
// ctl).
type ctlFlags struct {
	url, tok string
	timeout  time.Duration
	json     bool
}

// ctl is one command's connection to the controller.
type ctl struct {
	api storconapi.Client
	url string
	ctx context.Context
}

// open checks the flags and returns the client and a context bounded by
// --timeout (call the cancel function when done).
func (f *ctlFlags) open(ctx context.Context) (*ctl, context.CancelFunc, error) {
	url := f.url
	if url == "" {
		url = os.Getenv(controllerEnv)
	}
	if url == "" {
		url = defaultController
	}
	if !strings.Contains(url, "://") {
		url = "http://" + url
	}
	if !strings.HasPrefix(url, "http://") && !strings.HasPrefix(url, "https://") {
		return nil, nil, fmt.Errorf("%w: --controller %q: want http://host:port", errUsage, url)
	}
	if f.timeout <= 0 {
		return nil, nil, fmt.Errorf("%w: --timeout %v must be positive", errUsage, f.timeout)
	}
	tok := f.tok
	if tok == "" {
		tok = os.Getenv(controllerTokenEnv)
	}
	ctx, cancel := context.WithTimeout(ctx, f.timeout)
	return &ctl{api: storconapi.Client{HTTP: httpx.Client{Base: strings.TrimSuffix(url, "/")}, Token: tok}, url: url, ctx: ctx}, cancel, nil
}

// fail names what failed and adds a hint for the errors an operator can
// fix (no controller there, a missing or insufficient token).
func (c *ctl) fail(what string, err error) error {
	hint := ""
	switch net.CodeOf(err) {
	case net.Unavailable:
		hint = " (is the controller running at " + c.url + "? set --controller or $" + controllerEnv + ")"
	case net.Unauthenticated:
		hint = " (the controller checks tokens: set --token or $" + controllerTokenEnv + ")"
	case net.PermissionDenied:
		hint = " (the token's scope does not allow this call: operator calls need admin)"
	case net.DeadlineExceeded:
		hint = " (raise --timeout, or check the controller's /ready)"
	}
	return fmt.Errorf("%s: %w%s", what, err, hint)
}

func newCtlCmd() *cobra.Command {
	f := &ctlFlags{}
	cmd := &cobra.Command{
		Use:   "ctl",
		Short: "Operate a storage controller: nodes, tenants, consistency check",
		Long: `ctl is the storage controller's operator client. It talks to the
controller's HTTP API at --controller (default $` + controllerEnv + `, else
` + defaultController + `) with the JWT of --token (default
$` + controllerTokenEnv + `; operator calls need scope admin, node
register and list accept infra). Tables are for people; --json prints the
controller's answer for scripts.`,
		Example: `  strata ctl nodes list
  strata ctl nodes register --id 1 --http 127.0.0.1:9898 --pg 127.0.0.1:6400 --az az-1
  strata ctl tenants create --shard-count 4 --placement attached:1
  strata ctl tenants describe 0a0b0c0d0e0f00010203040506070809
  strata ctl tenants migrate 0a0b0c0d0e0f00010203040506070809-0004 --node 2
  strata ctl tenants split 0a0b0c0d0e0f00010203040506070809 --shard-count 8
  strata ctl nodes drain 1
  strata ctl consistency-check`,
	}
	pf := cmd.PersistentFlags()
	pf.StringVar(&f.url, "controller", "", "controller URL, http://host:port (default $"+controllerEnv+", else "+defaultController+")")
	pf.StringVar(&f.tok, "token", "", "JWT for the controller (default $"+controllerTokenEnv+")")
	pf.DurationVar(&f.timeout, "timeout", 30*time.Second, "give up after this long")
	pf.BoolVar(&f.json, "json", false, "print JSON")
	cmd.AddCommand(newCtlNodesCmd(f), newCtlTenantsCmd(f), newCtlConsistencyCmd(f))
	return cmd
}

func newCtlConsistencyCmd(f *ctlFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "consistency-check",
		Short: "Check memory against the store and recount the scheduler (fails naming every difference)",
		Long: `consistency-check asks the controller to recount its scheduler's per-node
counts from every intent and to compare its nodes and shards in memory with
its store. It is refused (409) while reconciles run: retry once the cluster
is quiet. A difference fails the command with the controller's list.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, cancel, err := f.open(cmd.Context())
			if err != nil {
				return err
			}
			defer cancel()
			r, err := c.api.ConsistencyCheck(c.ctx)
			if err != nil {
				return c.fail("consistency check", err)
			}
			if f.json {
				return writeJSON(cmd.OutOrStdout(), r)
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "consistent: %d nodes, %d shards\n", r.Nodes, r.Shards)
			return err
		},
	}
}

// parseNodeID parses a node id argument.
func parseNodeID(s string) (uint64, error) {
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil || n == 0 || n > 1<<63-1 {
		return 0, fmt.Errorf("%w: node id %q: want a positive integer", errUsage, s)
	}
	return n, nil
}

// parsePolicy parses a placement policy: the API's JSON ({"Attached":1},
// "Secondary", "Detached") or the shorthand attached[:N], secondary,
// detached (case-insensitive).
func parsePolicy(s string) (placement.Policy, error) {
	var p placement.Policy
	t := strings.TrimSpace(s)
	if strings.HasPrefix(t, "{") || strings.HasPrefix(t, `"`) {
		if err := p.UnmarshalJSON([]byte(t)); err != nil {
			return p, fmt.Errorf("%w: --placement: %v", errUsage, err)
		}
		return p, nil
	}
	kind, n, hasN := strings.Cut(strings.ToLower(t), ":")
	switch {
	case kind == "attached":
		secondaries := 0
		if hasN {
			v, err := strconv.Atoi(n)
			if err != nil {
				return p, fmt.Errorf("%w: --placement %q: secondaries %q is not a number", errUsage, s, n)
			}
			secondaries = v
		}
		p = placement.Attached(secondaries)
	case kind == "secondary" && !hasN:
		p = placement.Secondary()
	case kind == "detached" && !hasN:
		p = placement.Detached()
	default:
		return p, fmt.Errorf("%w: --placement %q: want attached[:N], secondary, detached or the JSON form", errUsage, s)
	}
	if err := p.Validate(); err != nil {
		return p, fmt.Errorf("%w: --placement: %v", errUsage, err)
	}
	return p, nil
}

// parseEnum parses an enum's text form (the names the API uses), case
// as given.
func parseEnum[T any, P interface {
	*T
	UnmarshalText([]byte) error
}](flag, s string) (T, error) {
	var v T
	if err := P(&v).UnmarshalText([]byte(s)); err != nil {
		return v, fmt.Errorf("%w: --%s: %v", errUsage, flag, err)
	}
	return v, nil
}

// errNothingToDo reports a change command given nothing to change.
var errNothingToDo = errors.New("nothing to change")

// done prints an action's outcome: msg for people, obj for --json.
func done(cmd *cobra.Command, f *ctlFlags, obj any, msg string, args ...any) error {
	if f.json {
		return writeJSON(cmd.OutOrStdout(), obj)
	}
	_, err := fmt.Fprintf(cmd.OutOrStdout(), msg+"\n", args...)
	return err
}
