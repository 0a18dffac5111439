// Package jwtauth checks the bearer tokens Strata's services accept: JWTs
// signed with EdDSA (Ed25519) whose "scope" claim names what the holder may
// do, and whose "tenant_id" claim, for the tenant scope, names the one tenant
// it may touch (docs/neon-compat.md, JWT scopes).
//
// A Verifier holds the public keys a service trusts and the clock that
// decides expiry (the simulator's clock in simulation: the library's own
// time.Now is never consulted). Verify parses and checks a token; Authorize
// decides whether verified claims grant a scope, for a tenant where that
// matters. Errors are classified with errors.Is: ErrNoToken and ErrBadToken
// mean "not authenticated" (gRPC Unauthenticated, HTTP 401), ErrForbidden
// means "authenticated but not allowed" (PermissionDenied, 403). StatusOf
// maps them to net.Status codes at the API edge.
//
// Invariants: only EdDSA-signed tokens verify (no "none", no HMAC with a
// public key as secret); a token without a known scope never authorizes
// anything; the admin scope passes every scope check except the tenant
// claim's tenant match, which applies only to the tenant scope.
package jwtauth
