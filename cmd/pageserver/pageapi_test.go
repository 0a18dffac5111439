package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/stratadb/strata/clock"
	"github.com/stratadb/strata/engine/keys"
	"github.com/stratadb/strata/engine/lsn"
	"github.com/stratadb/strata/engine/shard"
	"github.com/stratadb/strata/engine/walrec"
	"github.com/stratadb/strata/net"
	"github.com/stratadb/strata/net/grpcx"
	"github.com/stratadb/strata/net/httpx"
	"github.com/stratadb/strata/net/jwtauth"
	"github.com/stratadb/strata/nodes/compute/walproposer"
	"github.com/stratadb/strata/nodes/node"
	"github.com/stratadb/strata/nodes/pageserver/pageapi"
)

// testRel is the relation the tests write.
var testRel = keys.RelTag{SpcNode: 1663, DbNode: 5, RelNode: 16384}

func testPage(b byte) []byte { return bytes.Repeat([]byte{b}, walrec.PageSize) }

// authKeys writes a fresh Ed25519 public key as PEM and returns the file
// and the private key.
func authKeys(t *testing.T) (string, ed25519.PrivateKey) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pem, err := jwtauth.MarshalPublicKeyPEM(pub)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "auth.pem")
	if err := os.WriteFile(file, pem, 0o644); err != nil {
		t.Fatal(err)
	}
	return file, priv
}

func sign(t *testing.T, key ed25519.PrivateKey, scope jwtauth.Scope, tenant string) string {
	t.Helper()
	tok, err := jwtauth.Sign(key, jwtauth.Claims{Scope: scope, TenantID: tenant})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// TestGeneratedClient drives a pageserver process (with auth on) through
// the protoc-generated page_api client over a plain grpc.ClientConn, with
// the four metadata headers: it gets the page committed through a
// safekeeper; a missing header, request_lsn 0, a block of another shard, a
// wrong or missing token and a read below the GC cutoff each get the status
// the page service specifies.
func TestGeneratedClient(t *testing.T) {
	keyFile, key := authKeys(t)
	c := startCluster(t, 1, "-auth-public-key", keyFile)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	admin := sign(t, key, jwtauth.ScopeAdmin, "")
	tenantTok := sign(t, key, jwtauth.ScopeTenant, testTenant)
	otherTenant := strings.Repeat("e", 32)
	otherTok := sign(t, key, jwtauth.ScopeTenant, otherTenant)

	// The management API needs a pageserverapi (or admin) token.
	mgmt := httpx.Client{Base: "http://" + c.httpAddr}
	do := func(tok, method, path string, in, out any) error {
		req := &net.HTTPRequest{Method: method, Path: path}
		if tok != "" {
			req.Authorization = "Bearer " + tok
		}
		_, err := mgmt.Do(ctx, req, in, out)
		return err
	}
	if err := do("", "GET", "/v1/location_config", nil, nil); net.CodeOf(err) != net.Unauthenticated {
		t.Errorf("management API without a token: %v, want Unauthenticated (401)", err)
	}
	if err := do(tenantTok, "GET", "/v1/location_config", nil, nil); net.CodeOf(err) != net.PermissionDenied {
		t.Errorf("management API with a tenant token: %v, want PermissionDenied (403)", err)
	}
	apiTok := sign(t, key, jwtauth.ScopePageServerAPI, "")
	gen := uint32(1)
	horizon := uint64(64 << 10)
	gcPeriod := "100ms"
	tsid := testTenant
	if err := do(apiTok, "PUT", "/v1/tenant/"+tsid+"/location_config", pageapi.LocationConfig{Mode: pageapi.ModeAttachedSingle, Generation: &gen,
		TenantConf: &pageapi.TenantConf{GCHorizon: &horizon, GCPeriod: &gcPeriod}}, nil); err != nil {
		t.Fatal(err)
	}
	tl, _ := shard.ParseTimelineID(testTimeline)
	init := lsn.LSN(0x1000)
	if err := do(apiTok, "POST", "/v1/tenant/"+tsid+"/timeline", pageapi.TimelineCreateRequest{NewTimelineID: tl, InitLSN: &init}, nil); err != nil {
		t.Fatal(err)
	}
	// A tenant with two shards, both here (stripe of 8 pages).
	for n := range uint8(2) {
		id := shard.TenantShardID{TenantID: mustTenant(t, otherTenant), Shard: shard.ShardIndex{Number: shard.ShardNumber(n), Count: 2}}
		if err := do(admin, "PUT", "/v1/tenant/"+id.String()+"/location_config", pageapi.LocationConfig{Mode: pageapi.ModeAttachedSingle, Generation: &gen,
			ShardNumber: n, ShardCount: 2, ShardStripeSize: 8, TenantConf: &pageapi.TenantConf{}}, nil); err != nil {
			t.Fatal(err)
		}
		if err := do(admin, "POST", "/v1/tenant/"+id.String()+"/timeline", pageapi.TimelineCreateRequest{NewTimelineID: tl, InitLSN: &init}, nil); err != nil {
			t.Fatal(err)
		}
	}

	// Commit four pages through the safekeeper.
	env := node.Env{ID: "compute", Clock: clock.NewReal(), Net: grpcx.New(grpcx.Options{}), Rand: mrand.New(mrand.NewPCG(1, 2)),
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Metrics: prometheus.NewRegistry()}
	wp, err := walproposer.New(env, walproposer.Config{ID: "test", TenantID: testTenant, TimelineID: testTimeline, StartLSN: init, Safekeepers: c.skAddrs})
	if err != nil {
		t.Fatal(err)
	}
	wp.Start(context.Background())
	defer wp.Stop() // it runs on: the safekeeper learns each commit from its next message
	commit := func(recs ...walrec.Record) lsn.LSN {
		t.Helper()
		var enc [][]byte
		for _, r := range recs {
			enc = append(enc, walrec.Encode(r))
		}
		end, err := wp.Append(ctx, enc)
		if err != nil {
			t.Fatal(err)
		}
		if err := wp.WaitCommitted(ctx, end); err != nil {
			t.Fatal(err)
		}
		return end
	}
	recs := []walrec.Record{walrec.RelSizeChange{Rel: testRel, NBlocks: 4}}
	for b := range uint32(4) {
		recs = append(recs, walrec.FullPageImage{Rel: testRel, Blk: b, Page: testPage(byte(10 + b))})
	}
	at := commit(recs...)

	cc, err := grpc.NewClient("passthrough:///"+c.pageAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	client := pageapi.NewPageServiceClient(cc)
	headers := func(tenant, shardID, tok string) context.Context {
		kv := []string{pageapi.HeaderTenantID, tenant, pageapi.HeaderTimelineID, testTimeline, pageapi.HeaderShardID, shardID}
		if tok != "" {
			kv = append(kv, pageapi.HeaderAuthorization, "Bearer "+tok)
		}
		return metadata.AppendToOutgoingContext(ctx, kv...)
	}
	// getPages sends one request on a new stream and returns the answer or
	// the stream's error.
	getPages := func(mctx context.Context, req *pageapi.GetPageRequest) (*pageapi.GetPageResponse, error) {
		t.Helper()
		sctx, scancel := context.WithCancel(mctx)
		defer scancel()
		st, err := client.GetPages(sctx)
		if err != nil {
			return nil, err
		}
		if err := st.Send(req); err != nil && err != io.EOF {
			return nil, err
		}
		return st.Recv()
	}
	req := func(l lsn.LSN, rel keys.RelTag, blocks ...uint32) *pageapi.GetPageRequest {
		return &pageapi.GetPageRequest{RequestId: &pageapi.RequestID{Id: 1}, ReadLsn: &pageapi.ReadLsn{RequestLsn: uint64(l)},
			Rel: &pageapi.RelTag{SpcOid: rel.SpcNode, DbOid: rel.DbNode, RelNumber: rel.RelNode, ForkNumber: uint32(rel.ForkNum)}, BlockNumber: blocks}
	}

	// The right pages (the read waits for ingest if the pageserver is
	// behind), and the relation's size.
	r, err := getPages(headers(testTenant, "0000", tenantTok), req(at, testRel, 2, 0))
	if err != nil || r.StatusCode != pageapi.GetPageStatusCode_GET_PAGE_STATUS_CODE_OK || len(r.Page) != 2 ||
		!bytes.Equal(r.Page[0].Image, testPage(12)) || r.Page[0].BlockNumber != 2 || !bytes.Equal(r.Page[1].Image, testPage(10)) {
		t.Fatalf("GetPages: %v, %v", r, err)
	}
	if rs, err := client.GetRelSize(headers(testTenant, "0000", tenantTok), &pageapi.GetRelSizeRequest{ReadLsn: &pageapi.ReadLsn{RequestLsn: uint64(at)},
		Rel: req(at, testRel).Rel}); err != nil || rs.NumBlocks != 4 {
		t.Fatalf("GetRelSize: %v, %v", rs, err)
	}
	// A missing header: the stream ends InvalidArgument naming it.
	noShard := metadata.AppendToOutgoingContext(ctx, pageapi.HeaderTenantID, testTenant, pageapi.HeaderTimelineID, testTimeline,
		pageapi.HeaderAuthorization, "Bearer "+tenantTok)
	if _, err := getPages(noShard, req(at, testRel, 0)); status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), pageapi.HeaderShardID) {
		t.Errorf("missing %s: %v, want InvalidArgument naming it", pageapi.HeaderShardID, err)
	}
	// request_lsn 0: INVALID_REQUEST in the response; the stream goes on.
	if r, err := getPages(headers(testTenant, "0000", tenantTok), req(0, testRel, 0)); err != nil ||
		r.StatusCode != pageapi.GetPageStatusCode_GET_PAGE_STATUS_CODE_INVALID_REQUEST || !strings.Contains(r.Reason, "request_lsn") {
		t.Errorf("request_lsn 0: %v, %v, want INVALID_REQUEST", r, err)
	}
	// A block shard 0 of the two-shard tenant does not own.
	ident := shard.ShardIdentity{Number: 0, Count: 2, StripeSize: 8}
	var foreign uint32
	for ident.ShardOf(keys.RelBlockKey(testRel, foreign)) == 0 {
		foreign++
	}
	if r, err := getPages(headers(otherTenant, "0002", admin), req(init, testRel, foreign)); err != nil ||
		r.StatusCode != pageapi.GetPageStatusCode_GET_PAGE_STATUS_CODE_INVALID_REQUEST || !strings.Contains(r.Reason, "is on shard 0102") {
		t.Errorf("block %d of shard 0102 asked of 0002: %v, %v, want INVALID_REQUEST naming 0102", foreign, r, err)
	}
	// Tokens: another tenant's, a forged one, none.
	forged := sign(t, ed25519.NewKeyFromSeed(bytes.Repeat([]byte{1}, ed25519.SeedSize)), jwtauth.ScopeTenant, testTenant)
	for _, tc := range []struct {
		name, tok string
		want      codes.Code
	}{{"another tenant's token", otherTok, codes.PermissionDenied}, {"a token from an untrusted key", forged, codes.Unauthenticated},
		{"no token", "", codes.Unauthenticated}, {"a pageserverapi token", apiTok, codes.PermissionDenied}} {
		if _, err := getPages(headers(testTenant, "0000", tc.tok), req(at, testRel, 0)); status.Code(err) != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}

	// GC: write more than the 64 KiB horizon; the cutoff passes "at" and a
	// read there is refused, never answered from what GC left.
	for i := range 20 {
		commit(walrec.FullPageImage{Rel: testRel, Blk: 1, Page: testPage(byte(100 + i))})
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		var infos []pageapi.TimelineInfo
		if err := do(apiTok, "GET", "/v1/tenant/"+tsid+"/timeline", nil, &infos); err != nil {
			t.Fatal(err)
		}
		if len(infos) == 1 && infos[0].LatestGCCutoffLSN > at {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("GC cutoff never passed %s: %+v", at, infos)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if r, err := getPages(headers(testTenant, "0000", tenantTok), req(at, testRel, 2)); err != nil ||
		r.StatusCode != pageapi.GetPageStatusCode_GET_PAGE_STATUS_CODE_INVALID_REQUEST || !strings.Contains(r.Reason, "GC cutoff") || len(r.Page) != 0 {
		t.Errorf("read at %s below the GC cutoff: %v, %v, want INVALID_REQUEST", at, r, err)
	}
	// Reads at the newest LSN still work.
	var infos []pageapi.TimelineInfo
	if err := do(apiTok, "GET", "/v1/tenant/"+tsid+"/timeline", nil, &infos); err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(infos)
	if r, err := getPages(headers(testTenant, "0000", tenantTok), req(infos[0].LastRecordLSN, testRel, 1)); err != nil ||
		r.StatusCode != pageapi.GetPageStatusCode_GET_PAGE_STATUS_CODE_OK || !bytes.Equal(r.Page[0].Image, testPage(119)) {
		t.Errorf("read at the last record LSN (%s): %v, %v", b, r, err)
	}
}

func mustTenant(t *testing.T, s string) shard.TenantID {
	t.Helper()
	id, err := shard.ParseTenantID(s)
	if err != nil {
		t.Fatal(err)
	}
	return id
}
