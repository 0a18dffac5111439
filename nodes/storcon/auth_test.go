package storcon

import (
	"crypto/ed25519"
	"strings"
	"testing"

	"github.com/stratadb/strata/engine/shard"
	"github.com/stratadb/strata/net"
	"github.com/stratadb/strata/net/jwtauth"
	"github.com/stratadb/strata/nodes/storcon/storconapi"
)

func testKey(b byte) ed25519.PrivateKey {
	var seed [ed25519.SeedSize]byte
	for i := range seed {
		seed[i] = b + byte(i)
	}
	return ed25519.NewKeyFromSeed(seed[:])
}

func sign(t *testing.T, key ed25519.PrivateKey, scope jwtauth.Scope) string {
	t.Helper()
	tok, err := jwtauth.Sign(key, jwtauth.Claims{Scope: scope})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// TestAuthEveryRoute: every route of every family refuses a request
// without a token (401), with a token of another scope (403) and with a
// token signed by an unknown key (401); its own scope and admin pass; the
// open routes need nothing.
func TestAuthEveryRoute(t *testing.T) {
	key, other := testKey(1), testKey(100)
	admin := sign(t, key, jwtauth.ScopeAdmin)
	cfg := Config{AuthKeys: []ed25519.PublicKey{key.Public().(ed25519.PublicKey)}}
	runClusterToken(t, 1, cfg, admin, func(c *cluster) {
		tenant := tenantID(50)
		params := strings.NewReplacer(
			"{tenant_id}", tenant.String(),
			"{tenant_shard_id}", shard.UnshardedID(tenant).String(),
			"{node_id}", "99",
			"{timeline_id}", shard.TimelineID{1}.String(),
		)
		routes := []struct {
			pattern string
			scope   jwtauth.Scope // "" = open
		}{
			{storconapi.RouteTenantCreate, jwtauth.ScopePageServerAPI},
			{storconapi.RouteTenantDelete, jwtauth.ScopePageServerAPI},
			{storconapi.RouteLocationConfig, jwtauth.ScopePageServerAPI},
			{storconapi.RouteTimelineCreate, jwtauth.ScopePageServerAPI},
			{storconapi.RouteTimelineDelete, jwtauth.ScopePageServerAPI},
			{storconapi.RouteTenantConfigSet, jwtauth.ScopePageServerAPI},
			{storconapi.RouteReAttach, jwtauth.ScopeGenerationsAPI},
			{storconapi.RouteValidate, jwtauth.ScopeGenerationsAPI},
			{storconapi.RouteNodeRegister, jwtauth.ScopeInfra},
			{storconapi.RouteNodeList, jwtauth.ScopeInfra},
			{storconapi.RouteNodeConfig, jwtauth.ScopeAdmin},
			{storconapi.RouteNodeDelete, jwtauth.ScopeAdmin},
			{storconapi.RouteNodeDrain, jwtauth.ScopeAdmin},
			{storconapi.RouteNodeDrainStop, jwtauth.ScopeAdmin},
			{storconapi.RouteNodeFill, jwtauth.ScopeAdmin},
			{storconapi.RouteNodeFillStop, jwtauth.ScopeAdmin},
			{storconapi.RouteTenantList, jwtauth.ScopeAdmin},
			{storconapi.RouteTenantDescribe, jwtauth.ScopeAdmin},
			{storconapi.RouteTenantPolicy, jwtauth.ScopeAdmin},
			{storconapi.RouteShardMigrate, jwtauth.ScopeAdmin},
			{storconapi.RouteConsistencyCheck, jwtauth.ScopeAdmin},
			{storconapi.RouteReconcileAll, jwtauth.ScopeAdmin},
			{storconapi.RouteSchedulerDump, jwtauth.ScopeAdmin},
			{storconapi.RouteTenantDump, jwtauth.ScopeAdmin},
			{storconapi.RouteNodeDrop, jwtauth.ScopeAdmin},
			{storconapi.RouteTenantDrop, jwtauth.ScopeAdmin},
			{storconapi.RouteStepDown, jwtauth.ScopeAdmin}, // last: with admin it steps down
			{storconapi.RouteStatus, ""},
			{storconapi.RouteLive, ""},
			{storconapi.RouteReady, ""},
		}
		serve := func(pattern, token string) error {
			method, path, _ := strings.Cut(pattern, " ")
			r := &net.HTTPRequest{Method: method, Path: params.Replace(path)}
			if token != "" {
				r.Authorization = "Bearer " + token
			}
			_, err := c.sc.Router().Serve(c.ctx, r)
			return err
		}
		wrongScope := sign(t, key, jwtauth.ScopeScrubber)
		badSig := sign(t, other, jwtauth.ScopeAdmin)
		for _, rt := range routes {
			denied := func(err error) bool {
				code := net.CodeOf(err)
				return code == net.Unauthenticated || code == net.PermissionDenied
			}
			if rt.scope == "" {
				if err := serve(rt.pattern, ""); denied(err) {
					t.Errorf("%s (open) without a token: %v", rt.pattern, err)
				}
				continue
			}
			if err := serve(rt.pattern, ""); net.CodeOf(err) != net.Unauthenticated || httpStatusOf(err, 200) != 401 {
				t.Errorf("%s without a token: %v, want 401", rt.pattern, err)
			}
			if err := serve(rt.pattern, wrongScope); net.CodeOf(err) != net.PermissionDenied || httpStatusOf(err, 200) != 403 {
				t.Errorf("%s with scope scrubber: %v, want 403", rt.pattern, err)
			}
			if err := serve(rt.pattern, badSig); net.CodeOf(err) != net.Unauthenticated {
				t.Errorf("%s signed by an unknown key: %v, want 401", rt.pattern, err)
			}
			if err := serve(rt.pattern, admin); denied(err) {
				t.Errorf("%s with admin: %v", rt.pattern, err)
			}
			if err := serve(rt.pattern, sign(t, key, rt.scope)); denied(err) {
				t.Errorf("%s with scope %s: %v", rt.pattern, rt.scope, err)
			}
		}
	})
}
