package jwtauth

import (
	"crypto/ed25519"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/stratadb/strata/net"
)

// Scope is what a token's holder may do.
type Scope string

// The scopes Strata's services check.
const (
	// ScopeTenant: the page service for one tenant (with the tenant_id claim).
	ScopeTenant Scope = "tenant"
	// ScopePageServerAPI: a pageserver's management API.
	ScopePageServerAPI Scope = "pageserverapi"
	// ScopeGenerationsAPI: the controller's upcalls (re-attach, validate).
	ScopeGenerationsAPI Scope = "generations_api"
	// ScopeSafekeeperData: a safekeeper's WAL API.
	ScopeSafekeeperData Scope = "safekeeperdata"
	// ScopeAdmin passes every scope check.
	ScopeAdmin Scope = "admin"
	// ScopeScrubber: the scrubber's controller routes.
	ScopeScrubber Scope = "scrubber"
	// ScopeInfra: infrastructure routes of the controller (node registration).
	ScopeInfra Scope = "infra"
)

// Known reports whether s is one of the scopes above.
func (s Scope) Known() bool {
	switch s {
	case ScopeTenant, ScopePageServerAPI, ScopeGenerationsAPI, ScopeSafekeeperData, ScopeAdmin, ScopeScrubber, ScopeInfra:
		return true
	}
	return false
}

// Error classes (test with errors.Is).
var (
	// ErrNoToken: the request carries no bearer token.
	ErrNoToken = errors.New("jwtauth: no bearer token")
	// ErrBadToken: the token does not parse, is not signed by a trusted key,
	// has expired or is not valid yet, or carries no known scope.
	ErrBadToken = errors.New("jwtauth: invalid token")
	// ErrForbidden: the token is valid but does not grant what was asked.
	ErrForbidden = errors.New("jwtauth: permission denied")
	// ErrKey: a key file holds no usable Ed25519 key.
	ErrKey = errors.New("jwtauth: bad key")
)

// Claims are the claims Strata reads from a token.
type Claims struct {
	Scope Scope `json:"scope"`
	// TenantID is the 32-hex-digit tenant the tenant scope is limited to.
	TenantID string `json:"tenant_id,omitempty"`
	jwt.RegisteredClaims
}

// MaxTokenBytes bounds the token a Verifier parses; anything longer is
// refused before decoding.
const MaxTokenBytes = 4 << 10

// Verifier checks tokens against a set of trusted public keys.
type Verifier struct {
	keys []ed25519.PublicKey
	now  func() time.Time
}

// NewVerifier trusts keys and reads the time from now (the node's
// Clock.Now). At least one key is required.
func NewVerifier(keys []ed25519.PublicKey, now func() time.Time) (*Verifier, error) {
	if len(keys) == 0 {
		return nil, fmt.Errorf("%w: no public key", ErrKey)
	}
	if now == nil {
		return nil, errors.New("jwtauth: NewVerifier needs a clock")
	}
	return &Verifier{keys: keys, now: now}, nil
}

// Verify parses token (without the "Bearer " prefix) and returns its claims
// if a trusted key signed it, it is within its validity window and its scope
// is known.
func (v *Verifier) Verify(token string) (Claims, error) {
	if token == "" {
		return Claims{}, ErrNoToken
	}
	if len(token) > MaxTokenBytes {
		return Claims{}, fmt.Errorf("%w: token is %d bytes, limit %d", ErrBadToken, len(token), MaxTokenBytes)
	}
	var last error
	for _, k := range v.keys {
		var c Claims
		_, err := jwt.ParseWithClaims(token, &c, func(*jwt.Token) (any, error) { return k, nil },
			jwt.WithValidMethods([]string{jwt.SigningMethodEdDSA.Alg()}),
			jwt.WithTimeFunc(v.now))
		if err == nil {
			if !c.Scope.Known() {
				return Claims{}, fmt.Errorf("%w: unknown scope %q", ErrBadToken, c.Scope)
			}
			return c, nil
		}
		last = err
		if !errors.Is(err, jwt.ErrTokenSignatureInvalid) {
			break // malformed or expired: another key will not help
		}
	}
	return Claims{}, fmt.Errorf("%w: %v", ErrBadToken, last)
}

// VerifyHeader verifies an "authorization" header value of the form
// "Bearer <token>".
func (v *Verifier) VerifyHeader(h string) (Claims, error) {
	if h == "" {
		return Claims{}, ErrNoToken
	}
	tok, ok := strings.CutPrefix(h, "Bearer ")
	if !ok {
		return Claims{}, fmt.Errorf("%w: authorization is not a Bearer token", ErrBadToken)
	}
	return v.Verify(strings.TrimSpace(tok))
}

// Authorize reports whether c grants scope. For ScopeTenant, c must be a
// tenant token for exactly tenantID (or an admin token); for every other
// scope tenantID is ignored.
func Authorize(c Claims, scope Scope, tenantID string) error {
	switch {
	case c.Scope == ScopeAdmin:
		return nil
	case c.Scope != scope:
		return fmt.Errorf("%w: token scope %q, need %q", ErrForbidden, c.Scope, scope)
	case scope == ScopeTenant && !strings.EqualFold(c.TenantID, tenantID):
		return fmt.Errorf("%w: token is for tenant %q, not %q", ErrForbidden, c.TenantID, tenantID)
	}
	return nil
}

// StatusOf maps an error from this package to the net.Status a service
// returns: Unauthenticated for a missing or invalid token, PermissionDenied
// for a valid one that does not grant the request.
func StatusOf(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ErrForbidden):
		return net.Wrap(net.PermissionDenied, err)
	default:
		return net.Wrap(net.Unauthenticated, err)
	}
}

// Sign issues a token for c signed with key (operators' tooling and tests).
func Sign(key ed25519.PrivateKey, c Claims) (string, error) {
	s, err := jwt.NewWithClaims(jwt.SigningMethodEdDSA, c).SignedString(key)
	if err != nil {
		return "", fmt.Errorf("jwtauth: sign: %w", err)
	}
	return s, nil
}

// ParsePublicKeysPEM reads every "PUBLIC KEY" block of a PEM file and
// returns the Ed25519 keys; a block of another type or algorithm is an
// error, so a misconfigured key file stops a daemon at start-up.
func ParsePublicKeysPEM(data []byte) ([]ed25519.PublicKey, error) {
	var out []ed25519.PublicKey
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			break
		}
		if b.Type != "PUBLIC KEY" {
			return nil, fmt.Errorf("%w: PEM block %q, want PUBLIC KEY", ErrKey, b.Type)
		}
		k, err := x509.ParsePKIXPublicKey(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrKey, err)
		}
		ek, ok := k.(ed25519.PublicKey)
		if !ok {
			return nil, fmt.Errorf("%w: key is %T, want Ed25519", ErrKey, k)
		}
		out = append(out, ek)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: no PUBLIC KEY block", ErrKey)
	}
	return out, nil
}

// MarshalPublicKeyPEM encodes key as a PEM "PUBLIC KEY" block.
func MarshalPublicKeyPEM(key ed25519.PublicKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(key)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrKey, err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), nil
}
