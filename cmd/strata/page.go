package main

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/stratadb/strata/engine/keys"
	"github.com/stratadb/strata/engine/lsn"
	"github.com/stratadb/strata/engine/shard"
	"github.com/stratadb/strata/net"
	"github.com/stratadb/strata/net/grpcx"
	"github.com/stratadb/strata/nodes/pageserver/pageapi"
)

func init() { register(newPageCmd) }

// tokenEnv is where the page and management commands read a JWT when
// --token is not given (a command line is visible to every user).
const tokenEnv = "STRATA_TOKEN"

// errUsage reports a flag value a command rejects before it contacts
// anything.
var errUsage = errors.New("bad flag")

// token is flag (if set) or $STRATA_TOKEN.
func token(flag string) string {
	if flag != "" {
		return flag
	}
	return os.Getenv(tokenEnv)
}

// requireFlags names the first of the flags that is empty.
func requireFlags(kv ...string) error {
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] == "" {
			return fmt.Errorf("%w: --%s is required", errUsage, kv[i])
		}
	}
	return nil
}

// parseTarget parses --tenant (a tenant id, or a tenant shard id
// "<tenant>-<nn><cc>") and --timeline.
func parseTarget(tenant, timeline string) (pageapi.Target, error) {
	var t pageapi.Target
	id, err := shard.ParseTenantShardID(tenant)
	if err != nil {
		return t, fmt.Errorf("%w: --tenant: %v", errUsage, err)
	}
	tl, err := shard.ParseTimelineID(timeline)
	if err != nil {
		return t, fmt.Errorf("%w: --timeline: %v", errUsage, err)
	}
	return pageapi.Target{Shard: id, Timeline: tl}, nil
}

// parseLSN parses an X/Y flag value.
func parseLSN(name, s string) (lsn.LSN, error) {
	l, err := lsn.Parse(s)
	if err != nil {
		return 0, fmt.Errorf("%w: --%s: %v", errUsage, name, err)
	}
	return l, nil
}

// forkNames are the fork names parseRel accepts besides numbers.
var forkNames = map[string]keys.ForkNum{"main": keys.ForkMain, "fsm": keys.ForkFSM, "vm": keys.ForkVM, "init": keys.ForkInit}

// parseRel parses "spc/db/rel" or "spc/db/rel/fork" (fork a number 0..255
// or main, fsm, vm, init).
func parseRel(s string) (keys.RelTag, error) {
	parts := strings.Split(s, "/")
	if len(parts) != 3 && len(parts) != 4 {
		return keys.RelTag{}, fmt.Errorf("%w: --rel %q: want spc/db/rel or spc/db/rel/fork", errUsage, s)
	}
	var oids [3]uint32
	for i, p := range parts[:3] {
		v, err := strconv.ParseUint(p, 10, 32)
		if err != nil {
			return keys.RelTag{}, fmt.Errorf("%w: --rel %q: %q is not a 32-bit unsigned number", errUsage, s, p)
		}
		oids[i] = uint32(v)
	}
	rel := keys.RelTag{SpcNode: oids[0], DbNode: oids[1], RelNode: oids[2]}
	if len(parts) == 4 {
		if f, ok := forkNames[parts[3]]; ok {
			rel.ForkNum = f
		} else if v, err := strconv.ParseUint(parts[3], 10, 8); err == nil {
			rel.ForkNum = keys.ForkNum(v)
		} else {
			return keys.RelTag{}, fmt.Errorf("%w: --rel %q: fork %q is not 0..255, main, fsm, vm or init", errUsage, s, parts[3])
		}
	}
	return rel, nil
}

// relProto is rel on the wire.
func relProto(rel keys.RelTag) *pageapi.RelTag {
	return &pageapi.RelTag{SpcOid: rel.SpcNode, DbOid: rel.DbNode, RelNumber: rel.RelNode, ForkNumber: uint32(rel.ForkNum)}
}

// pageStatusError is a GetPage request the pageserver answered with a
// failure status inside the response.
type pageStatusError struct {
	code   pageapi.GetPageStatusCode
	reason string
}

func (e *pageStatusError) Error() string {
	return fmt.Sprintf("pageserver answered %s: %s", strings.TrimPrefix(e.code.String(), "GET_PAGE_STATUS_CODE_"), e.reason)
}

// pageStream is a GetPages stream to one timeline, opened on first use and
// again after it broke. One request is in flight at a time.
type pageStream struct {
	conn   net.Conn
	target pageapi.Target
	token  string
	st     *net.ClientStreamOf[*pageapi.GetPageRequest, *pageapi.GetPageResponse]
	cancel context.CancelFunc
	nextID uint64
}

// dialPageService connects to a page service (lazily: an unreachable
// address fails the first call, Unavailable).
func dialPageService(ctx context.Context, addr string) (net.Conn, error) {
	return grpcx.New(grpcx.Options{}).Dial(ctx, addr)
}

// get reads blocks of rel at "at". A failure inside the response is a
// *pageStatusError (the stream stays usable); any other error breaks the
// stream, which the next call reopens.
func (p *pageStream) get(ctx context.Context, rel keys.RelTag, blocks []uint32, at lsn.LSN) ([]*pageapi.Page, error) {
	if p.st == nil {
		sctx, cancel := context.WithCancel(context.Background())
		st, err := net.StreamProto[*pageapi.GetPageRequest, *pageapi.GetPageResponse](pageapi.WithTarget(sctx, p.target, p.token), p.conn, pageapi.PageService_GetPages_FullMethodName)
		if err != nil {
			cancel()
			return nil, err
		}
		p.st, p.cancel = st, cancel
	}
	p.nextID++
	req := &pageapi.GetPageRequest{RequestId: &pageapi.RequestID{Id: p.nextID}, RequestClass: pageapi.GetPageClass_GET_PAGE_CLASS_NORMAL,
		ReadLsn: &pageapi.ReadLsn{RequestLsn: uint64(at)}, Rel: relProto(rel), BlockNumber: blocks}
	resp, err := p.roundTrip(ctx, req)
	if err != nil {
		p.close()
		return nil, err
	}
	if resp.StatusCode != pageapi.GetPageStatusCode_GET_PAGE_STATUS_CODE_OK {
		return nil, &pageStatusError{code: resp.StatusCode, reason: resp.Reason}
	}
	if resp.GetRequestId().GetId() != p.nextID || len(resp.Page) != len(blocks) {
		p.close()
		return nil, fmt.Errorf("pageserver answered request %d with %d pages, want request %d with %d",
			resp.GetRequestId().GetId(), len(resp.Page), p.nextID, len(blocks))
	}
	return resp.Page, nil
}

// roundTrip sends req and receives its answer, giving up when ctx ends
// (which breaks the stream).
func (p *pageStream) roundTrip(ctx context.Context, req *pageapi.GetPageRequest) (*pageapi.GetPageResponse, error) {
	stop := context.AfterFunc(ctx, p.cancel)
	defer stop()
	if err := p.st.Send(req); err != nil && err != io.EOF {
		return nil, err
	}
	resp, err := p.st.Recv()
	if err == io.EOF {
		err = errors.New("pageserver ended the GetPages stream")
	}
	if err != nil && ctx.Err() != nil {
		err = ctx.Err()
	}
	return resp, err
}

func (p *pageStream) close() {
	if p.cancel != nil {
		p.cancel()
	}
	p.st, p.cancel = nil, nil
}

// relSize asks the size of rel at "at" (GetRelSize; shard 0 answers).
func relSize(ctx context.Context, conn net.Conn, t pageapi.Target, tok string, rel keys.RelTag, at lsn.LSN) (*pageapi.GetRelSizeResponse, error) {
	return net.CallProto[*pageapi.GetRelSizeResponse](pageapi.WithTarget(ctx, t, tok), conn, pageapi.PageService_GetRelSize_FullMethodName,
		&pageapi.GetRelSizeRequest{ReadLsn: &pageapi.ReadLsn{RequestLsn: uint64(at)}, Rel: relProto(rel), AllowMissing: true})
}

// pageGetFlags are `strata page get`'s flags.
type pageGetFlags struct {
	pageserver, tenant, timeline, rel, at, tok, out string
	block                                           int64
	size                                            bool
	timeout                                         time.Duration
}

func newPageCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "page", Short: "Read pages from a pageserver's page service"}
	cmd.AddCommand(newPageGetCmd())
	return cmd
}

func newPageGetCmd() *cobra.Command {
	var f pageGetFlags
	cmd := &cobra.Command{
		Use:   "get --pageserver ADDR --tenant T[-SSCC] --timeline TL --rel SPC/DB/REL[/FORK] (--block N | --size) --lsn X/Y",
		Short: "Print one page (hex dump, or raw to --out) or, with --size, a relation's size at an LSN",
		Long: `get reads from a pageserver's page service (gRPC, page_api.PageService) one
block of a relation as of an LSN and prints it as a hex dump (or writes the
8192 raw bytes to --out), or with --size prints the relation's size in
blocks. A read above what the pageserver has ingested waits for ingest.
With auth on, pass a JWT of scope tenant with --token or in $` + tokenEnv + `.`,
		Example: `  strata page get --pageserver 127.0.0.1:6400 --tenant 0a0b0c0d0e0f00010203040506070809 \
    --timeline f0e0d0c0b0a090807060504030201000 --rel 1663/5/16384 --block 0 --lsn 0/2000
  strata page get ... --rel 1663/5/16384 --size --lsn 0/2000`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runPageGet(cmd, f) },
	}
	fl := cmd.Flags()
	fl.StringVar(&f.pageserver, "pageserver", "", "page service address host:port (required)")
	fl.StringVar(&f.tenant, "tenant", "", "tenant id, or tenant shard id <tenant>-<nn><cc> (required)")
	fl.StringVar(&f.timeline, "timeline", "", "timeline id, 32 hex digits (required)")
	fl.StringVar(&f.rel, "rel", "", "relation spc/db/rel[/fork] (required)")
	fl.Int64Var(&f.block, "block", -1, "block number")
	fl.BoolVar(&f.size, "size", false, "print the relation's size in blocks instead of a page")
	fl.StringVar(&f.at, "lsn", "", "LSN to read at, X/Y (required)")
	fl.StringVar(&f.out, "out", "", "write the raw page to this file instead of printing a hex dump")
	fl.StringVar(&f.tok, "token", "", "JWT (scope tenant) when the pageserver checks tokens (default $"+tokenEnv+")")
	fl.DurationVar(&f.timeout, "timeout", 30*time.Second, "give up after this long")
	return cmd
}

func runPageGet(cmd *cobra.Command, f pageGetFlags) error {
	if err := requireFlags("pageserver", f.pageserver, "tenant", f.tenant, "timeline", f.timeline, "rel", f.rel, "lsn", f.at); err != nil {
		return err
	}
	t, err := parseTarget(f.tenant, f.timeline)
	if err != nil {
		return err
	}
	rel, err := parseRel(f.rel)
	if err != nil {
		return err
	}
	at, err := parseLSN("lsn", f.at)
	if err != nil {
		return err
	}
	switch {
	case at == lsn.Invalid:
		return fmt.Errorf("%w: --lsn 0/0 names no record", errUsage)
	case f.size && (f.block >= 0 || f.out != ""):
		return fmt.Errorf("%w: --size reads no page: drop --block and --out", errUsage)
	case !f.size && f.block < 0:
		return fmt.Errorf("%w: --block is required (or --size)", errUsage)
	case f.block > keys.MaxBlockNumber:
		return fmt.Errorf("%w: --block %d above the largest block number %d", errUsage, f.block, uint32(keys.MaxBlockNumber))
	case f.timeout <= 0:
		return fmt.Errorf("%w: --timeout %v must be positive", errUsage, f.timeout)
	}
	ctx, cancel := context.WithTimeout(cmd.Context(), f.timeout)
	defer cancel()
	conn, err := dialPageService(ctx, f.pageserver)
	if err != nil {
		return err
	}
	defer conn.Close()
	out := cmd.OutOrStdout()
	if f.size {
		r, err := relSize(ctx, conn, t, token(f.tok), rel, at)
		if err != nil {
			return fmt.Errorf("GetRelSize %v at %s: %w", rel, at, err)
		}
		if r.Missing {
			_, err = fmt.Fprintf(out, "relation %v does not exist at %s\n", rel, at)
			return err
		}
		_, err = fmt.Fprintf(out, "relation %v at %s: %d blocks\n", rel, at, r.NumBlocks)
		return err
	}
	ps := &pageStream{conn: conn, target: t, token: token(f.tok)}
	defer ps.close()
	pages, err := ps.get(ctx, rel, []uint32{uint32(f.block)}, at)
	if err != nil {
		return fmt.Errorf("GetPage block %d of %v at %s: %w", f.block, rel, at, err)
	}
	img := pages[0].Image
	if f.out != "" {
		if err := os.WriteFile(f.out, img, 0o644); err != nil {
			return err
		}
		_, err = fmt.Fprintf(out, "wrote block %d of %v at %s (%d bytes) to %s\n", f.block, rel, at, len(img), f.out)
		return err
	}
	fmt.Fprintf(out, "block %d of %v at %s (%d bytes)\n", f.block, rel, at, len(img))
	_, err = io.WriteString(out, hexDump(img))
	return err
}

// hexDump is hex.Dump with runs of identical 16-byte lines after the first
// shown as one "*" line, as hexdump(1) prints them (a page is mostly
// zeroes).
func hexDump(b []byte) string {
	lines := strings.SplitAfter(hex.Dump(b), "\n")
	var sb strings.Builder
	starred := false
	for i, l := range lines {
		if l == "" {
			continue
		}
		if i > 0 && i*16 < len(b) && (i+1)*16 <= len(b) && string(b[i*16:(i+1)*16]) == string(b[(i-1)*16:i*16]) {
			if !starred {
				sb.WriteString("*\n")
				starred = true
			}
			continue
		}
		starred = false
		sb.WriteString(l)
	}
	if starred { // the dump ended inside a run: say where the data ends
		fmt.Fprintf(&sb, "%08x\n", len(b))
	}
	return sb.String()
}
