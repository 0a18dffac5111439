package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/stratadb/strata/engine/lsn"
	"github.com/stratadb/strata/engine/shard"
	"github.com/stratadb/strata/net"
	"github.com/stratadb/strata/net/httpx"
	"github.com/stratadb/strata/nodes/pageserver/pageapi"
)

func init() { register(newTimelineCmd) }

// mgmtClient calls a pageserver's management API.
type mgmtClient struct {
	http  net.HTTPClient
	token string
}

// newMgmtClient talks to base ("http://host:port", or "host:port").
func newMgmtClient(base, tok string) (*mgmtClient, error) {
	if base == "" {
		return nil, fmt.Errorf("%w: --pageserver-http is required", errUsage)
	}
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	if !strings.HasPrefix(base, "http://") && !strings.HasPrefix(base, "https://") {
		return nil, fmt.Errorf("%w: --pageserver-http %q: want http://host:port", errUsage, base)
	}
	return &mgmtClient{http: httpx.Client{Base: base}, token: tok}, nil
}

// do calls method path with in as the JSON body, decoding the answer into
// out; an error names the call.
func (c *mgmtClient) do(ctx context.Context, method, path string, in, out any) error {
	req := &net.HTTPRequest{Method: method, Path: path}
	if c.token != "" {
		req.Authorization = "Bearer " + c.token
	}
	if _, err := c.http.Do(ctx, req, in, out); err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	return nil
}

func (c *mgmtClient) createTimeline(ctx context.Context, id shard.TenantShardID, req pageapi.TimelineCreateRequest) (pageapi.TimelineInfo, error) {
	var info pageapi.TimelineInfo
	err := c.do(ctx, "POST", "/v1/tenant/"+id.String()+"/timeline", req, &info)
	return info, err
}

func (c *mgmtClient) listTimelines(ctx context.Context, id shard.TenantShardID) ([]pageapi.TimelineInfo, error) {
	var infos []pageapi.TimelineInfo
	err := c.do(ctx, "GET", "/v1/tenant/"+id.String()+"/timeline", nil, &infos)
	return infos, err
}

func (c *mgmtClient) setLocation(ctx context.Context, id shard.TenantShardID, conf pageapi.LocationConfig) error {
	return c.do(ctx, "PUT", "/v1/tenant/"+id.String()+"/location_config", conf, nil)
}

func (c *mgmtClient) locations(ctx context.Context) (pageapi.LocationConfigList, error) {
	var l pageapi.LocationConfigList
	err := c.do(ctx, "GET", "/v1/location_config", nil, &l)
	return l, err
}

// mgmtFlags are the flags every management command has.
type mgmtFlags struct {
	url, tenant, tok string
	timeout          time.Duration
	json             bool
	// tenantless: the command addresses the whole pageserver (no --tenant).
	tenantless bool
}

func (f *mgmtFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&f.url, "pageserver-http", "", "management API URL, http://host:port (required)")
	if !f.tenantless {
		fl.StringVar(&f.tenant, "tenant", "", "tenant shard id: <tenant> or <tenant>-<nn><cc> (required)")
	}
	fl.StringVar(&f.tok, "token", "", "JWT (scope pageserverapi) when the pageserver checks tokens (default $"+tokenEnv+")")
	fl.DurationVar(&f.timeout, "timeout", 30*time.Second, "give up after this long")
	fl.BoolVar(&f.json, "json", false, "print JSON")
}

// open checks the common flags and returns the client, the tenant shard
// and the context bounded by --timeout.
func (f *mgmtFlags) open(ctx context.Context) (*mgmtClient, shard.TenantShardID, context.Context, context.CancelFunc, error) {
	var id shard.TenantShardID
	if err := requireFlags("pageserver-http", f.url); err != nil {
		return nil, id, nil, nil, err
	}
	if !f.tenantless {
		if err := requireFlags("tenant", f.tenant); err != nil {
			return nil, id, nil, nil, err
		}
		var err error
		if id, err = shard.ParseTenantShardID(f.tenant); err != nil {
			return nil, id, nil, nil, fmt.Errorf("%w: --tenant: %v", errUsage, err)
		}
	}
	if f.timeout <= 0 {
		return nil, id, nil, nil, fmt.Errorf("%w: --timeout %v must be positive", errUsage, f.timeout)
	}
	c, err := newMgmtClient(f.url, token(f.tok))
	if err != nil {
		return nil, id, nil, nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, f.timeout)
	return c, id, ctx, cancel, nil
}

func newTimelineCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "timeline", Short: "Create and list a tenant's timelines on a pageserver"}
	cmd.AddCommand(newTimelineCreateCmd(), newTimelineListCmd())
	return cmd
}

// newTimelineID is a random timeline id.
func newTimelineID() shard.TimelineID {
	var id shard.TimelineID
	_, _ = rand.Read(id[:])
	return id
}

func newTimelineCreateCmd() *cobra.Command {
	var f mgmtFlags
	var timeline, ancestor, ancestorLSN, initLSN string
	cmd := &cobra.Command{
		Use:   "create --pageserver-http URL --tenant TSID [--timeline ID] [--init-lsn X/Y | --ancestor ID [--ancestor-lsn X/Y]]",
		Short: "Create a root timeline, or a branch of another at an LSN",
		Long: `create makes a timeline on an attached tenant shard: a root timeline whose
WAL starts at --init-lsn (the LSN the compute's WAL starts at; default 0/0),
or with --ancestor a branch of that timeline at --ancestor-lsn (default: its
last record LSN; a branch point below the GC cutoff is refused). Without
--timeline a random id is chosen. It prints the new timeline.`,
		Example: `  strata timeline create --pageserver-http http://127.0.0.1:9898 --tenant 0a0b0c0d0e0f00010203040506070809 \
    --timeline f0e0d0c0b0a090807060504030201000 --init-lsn 0/1000`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, id, ctx, cancel, err := f.open(cmd.Context())
			if err != nil {
				return err
			}
			defer cancel()
			req := pageapi.TimelineCreateRequest{NewTimelineID: newTimelineID()}
			if timeline != "" {
				if req.NewTimelineID, err = shard.ParseTimelineID(timeline); err != nil {
					return fmt.Errorf("%w: --timeline: %v", errUsage, err)
				}
			}
			switch {
			case ancestorLSN != "" && ancestor == "":
				return fmt.Errorf("%w: --ancestor-lsn needs --ancestor", errUsage)
			case initLSN != "" && ancestor != "":
				return fmt.Errorf("%w: --init-lsn is for a root timeline; a branch starts at --ancestor-lsn", errUsage)
			}
			if ancestor != "" {
				a, err := shard.ParseTimelineID(ancestor)
				if err != nil {
					return fmt.Errorf("%w: --ancestor: %v", errUsage, err)
				}
				req.AncestorTimelineID = &a
			}
			for _, v := range []struct {
				name, text string
				dst        **lsn.LSN
			}{{"ancestor-lsn", ancestorLSN, &req.AncestorStartLSN}, {"init-lsn", initLSN, &req.InitLSN}} {
				if v.text == "" {
					continue
				}
				l, err := parseLSN(v.name, v.text)
				if err != nil {
					return err
				}
				*v.dst = &l
			}
			info, err := c.createTimeline(ctx, id, req)
			if err != nil {
				return err
			}
			if f.json {
				return writeJSON(cmd.OutOrStdout(), info)
			}
			return writeTimelines(cmd.OutOrStdout(), []pageapi.TimelineInfo{info})
		},
	}
	f.register(cmd)
	fl := cmd.Flags()
	fl.StringVar(&timeline, "timeline", "", "new timeline id, 32 hex digits (default: random)")
	fl.StringVar(&initLSN, "init-lsn", "", "where a root timeline's WAL starts, X/Y")
	fl.StringVar(&ancestor, "ancestor", "", "branch from this timeline")
	fl.StringVar(&ancestorLSN, "ancestor-lsn", "", "branch point, X/Y (default: the ancestor's last record LSN)")
	return cmd
}

func newTimelineListCmd() *cobra.Command {
	var f mgmtFlags
	cmd := &cobra.Command{
		Use:   "list --pageserver-http URL --tenant TSID",
		Short: "List a tenant shard's timelines with their LSNs",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, id, ctx, cancel, err := f.open(cmd.Context())
			if err != nil {
				return err
			}
			defer cancel()
			infos, err := c.listTimelines(ctx, id)
			if err != nil {
				return err
			}
			if f.json {
				return writeJSON(cmd.OutOrStdout(), infos)
			}
			return writeTimelines(cmd.OutOrStdout(), infos)
		},
	}
	f.register(cmd)
	return cmd
}

// writeTimelines prints one line per timeline under a header.
func writeTimelines(w io.Writer, infos []pageapi.TimelineInfo) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TIMELINE\tANCESTOR\tANCESTOR_LSN\tLAST_RECORD_LSN\tDISK_CONSISTENT_LSN\tGC_CUTOFF_LSN")
	for _, i := range infos {
		anc, at := "-", "-"
		if i.AncestorTimelineID != nil {
			anc = i.AncestorTimelineID.String()
		}
		if i.AncestorLSN != nil {
			at = i.AncestorLSN.String()
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", i.TimelineID, anc, at, i.LastRecordLSN, i.DiskConsistentLSN, i.LatestGCCutoffLSN)
	}
	return tw.Flush()
}
