package jwtauth

import (
	"crypto/ed25519"
	"errors"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/stratadb/strata/net"
)

const tenantA = "0123456789abcdef0123456789abcdef"

func testKey(t *testing.T, seed uint64) (ed25519.PublicKey, ed25519.PrivateKey) {
	t.Helper()
	r := rand.New(rand.NewPCG(seed, 1))
	var s [ed25519.SeedSize]byte
	for i := range s {
		s[i] = byte(r.Uint32())
	}
	priv := ed25519.NewKeyFromSeed(s[:])
	return priv.Public().(ed25519.PublicKey), priv
}

func TestVerifyAndAuthorize(t *testing.T) {
	pub, priv := testKey(t, 1)
	otherPub, otherPriv := testKey(t, 2)
	now := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	v, err := NewVerifier([]ed25519.PublicKey{otherPub, pub}, func() time.Time { return now })
	if err != nil {
		t.Fatal(err)
	}
	sign := func(k ed25519.PrivateKey, c Claims) string {
		s, err := Sign(k, c)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	exp := func(d time.Duration) jwt.RegisteredClaims {
		return jwt.RegisteredClaims{ExpiresAt: jwt.NewNumericDate(now.Add(d))}
	}
	_, strangerPriv := testKey(t, 3)
	cases := []struct {
		name   string
		header string
		scope  Scope
		tenant string
		want   error // nil, ErrNoToken, ErrBadToken or ErrForbidden
		code   net.Code
	}{
		{"tenant ok", "Bearer " + sign(priv, Claims{Scope: ScopeTenant, TenantID: tenantA}), ScopeTenant, tenantA, nil, net.OK},
		{"second key", "Bearer " + sign(otherPriv, Claims{Scope: ScopeTenant, TenantID: tenantA}), ScopeTenant, tenantA, nil, net.OK},
		{"tenant upper case", "Bearer " + sign(priv, Claims{Scope: ScopeTenant, TenantID: strings.ToUpper(tenantA)}), ScopeTenant, tenantA, nil, net.OK},
		{"admin passes", "Bearer " + sign(priv, Claims{Scope: ScopeAdmin}), ScopePageServerAPI, "", nil, net.OK},
		{"other tenant", "Bearer " + sign(priv, Claims{Scope: ScopeTenant, TenantID: "ff" + tenantA[2:]}), ScopeTenant, tenantA, ErrForbidden, net.PermissionDenied},
		{"wrong scope", "Bearer " + sign(priv, Claims{Scope: ScopePageServerAPI}), ScopeTenant, tenantA, ErrForbidden, net.PermissionDenied},
		{"tenant token on mgmt API", "Bearer " + sign(priv, Claims{Scope: ScopeTenant, TenantID: tenantA}), ScopePageServerAPI, "", ErrForbidden, net.PermissionDenied},
		{"no header", "", ScopeTenant, tenantA, ErrNoToken, net.Unauthenticated},
		{"not bearer", "Basic abc", ScopeTenant, tenantA, ErrBadToken, net.Unauthenticated},
		{"garbage", "Bearer not.a.token", ScopeTenant, tenantA, ErrBadToken, net.Unauthenticated},
		{"untrusted key", "Bearer " + sign(strangerPriv, Claims{Scope: ScopeAdmin}), ScopeTenant, tenantA, ErrBadToken, net.Unauthenticated},
		{"expired", "Bearer " + sign(priv, Claims{Scope: ScopeAdmin, RegisteredClaims: exp(-time.Second)}), ScopeTenant, tenantA, ErrBadToken, net.Unauthenticated},
		{"not expired", "Bearer " + sign(priv, Claims{Scope: ScopeAdmin, RegisteredClaims: exp(time.Minute)}), ScopeTenant, tenantA, nil, net.OK},
		{"unknown scope", "Bearer " + sign(priv, Claims{Scope: "root"}), ScopeTenant, tenantA, ErrBadToken, net.Unauthenticated},
		{"oversized", "Bearer " + strings.Repeat("a", MaxTokenBytes+1), ScopeTenant, tenantA, ErrBadToken, net.Unauthenticated},
		{"hmac with public key", "Bearer " + hmacToken(t, pub), ScopeTenant, tenantA, ErrBadToken, net.Unauthenticated},
		{"alg none", "Bearer " + noneToken(t), ScopeTenant, tenantA, ErrBadToken, net.Unauthenticated},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := v.VerifyHeader(tc.header)
			if err == nil {
				err = Authorize(c, tc.scope, tc.tenant)
			}
			if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			if got := net.CodeOf(StatusOf(err)); got != tc.code {
				t.Fatalf("StatusOf: %v, want %v", got, tc.code)
			}
		})
	}
}

func hmacToken(t *testing.T, pub ed25519.PublicKey) string {
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, Claims{Scope: ScopeAdmin}).SignedString([]byte(pub))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func noneToken(t *testing.T) string {
	s, err := jwt.NewWithClaims(jwt.SigningMethodNone, Claims{Scope: ScopeAdmin}).SignedString(jwt.UnsafeAllowNoneSignatureType)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestPublicKeyPEM(t *testing.T) {
	pub, _ := testKey(t, 1)
	pub2, _ := testKey(t, 2)
	a, err := MarshalPublicKeyPEM(pub)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := MarshalPublicKeyPEM(pub2)
	keys, err := ParsePublicKeysPEM(append(a, b...))
	if err != nil || len(keys) != 2 || !keys[0].Equal(pub) || !keys[1].Equal(pub2) {
		t.Fatalf("round trip: %d keys, %v", len(keys), err)
	}
	for _, bad := range []string{"", "not pem", "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
		"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"} {
		if _, err := ParsePublicKeysPEM([]byte(bad)); !errors.Is(err, ErrKey) {
			t.Errorf("ParsePublicKeysPEM(%.30q) = %v, want ErrKey", bad, err)
		}
	}
	if _, err := NewVerifier(nil, time.Now); !errors.Is(err, ErrKey) {
		t.Errorf("NewVerifier without keys: %v", err)
	}
}
