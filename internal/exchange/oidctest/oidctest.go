// Package oidctest is an OpenID Connect issuer for tests: discovery and a
// JWKS served by httptest, tokens signed with go-jose, key rotation, and
// the malformed tokens an attacker would send (alg none, HS256 keyed with
// the public key). Fixtures shaped like GitHub Actions and Kubernetes
// service-account tokens.
package oidctest

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// Issuer is a running test issuer.
type Issuer struct {
	URL string

	srv       *httptest.Server
	mu        sync.Mutex
	keys      []jose.JSONWebKey // private; keys[0] signs
	published []jose.JSONWebKey // public, what the JWKS serves
	n         int
	fetches   atomic.Int64
}

// New starts an issuer with one published RSA key.
func New(t testing.TB) *Issuer {
	t.Helper()
	is := &Issuer{}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(map[string]any{"issuer": is.URL, "jwks_uri": is.URL + "/keys",
			"id_token_signing_alg_values_supported": []string{"RS256"}})
	})
	mux.HandleFunc("GET /keys", func(w http.ResponseWriter, r *http.Request) {
		is.fetches.Add(1)
		is.mu.Lock()
		set := jose.JSONWebKeySet{Keys: append([]jose.JSONWebKey(nil), is.published...)}
		is.mu.Unlock()
		json.NewEncoder(w).Encode(set)
	})
	is.srv = httptest.NewServer(mux)
	t.Cleanup(is.srv.Close)
	is.URL = is.srv.URL
	is.Rotate(true)
	return is
}

// Fetches counts the JWKS requests served.
func (is *Issuer) Fetches() int64 { return is.fetches.Load() }

// Rotate makes a new signing key current and returns its kid; publish
// says whether the JWKS serves it yet (false: tokens carry a kid the
// verifier has never seen, until Publish).
func (is *Issuer) Rotate(publish bool) string {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	is.mu.Lock()
	defer is.mu.Unlock()
	is.n++
	jwk := jose.JSONWebKey{Key: k, KeyID: "k" + strconv.Itoa(is.n), Algorithm: "RS256", Use: "sig"}
	is.keys = append([]jose.JSONWebKey{jwk}, is.keys...)
	if publish {
		is.published = append(is.published, jwk.Public())
	}
	return jwk.KeyID
}

// Publish serves every key in the JWKS.
func (is *Issuer) Publish() {
	is.mu.Lock()
	defer is.mu.Unlock()
	is.published = is.published[:0]
	for _, k := range is.keys {
		is.published = append(is.published, k.Public())
	}
}

// Claims are a token's claims: iss, aud "xroute", sub, iat now, exp in
// ten minutes, a fresh jti.
func (is *Issuer) Claims(sub string) map[string]any {
	now := time.Now()
	return map[string]any{"iss": is.URL, "aud": "xroute", "sub": sub, "iat": now.Unix(),
		"nbf": now.Add(-time.Second).Unix(), "exp": now.Add(10 * time.Minute).Unix(), "jti": rand.Text()}
}

// Sign signs claims with the current key (RS256, its kid in the header).
func (is *Issuer) Sign(claims map[string]any) string {
	is.mu.Lock()
	k := is.keys[0]
	is.mu.Unlock()
	sig, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: k}, (&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		panic(err)
	}
	return sign(sig, claims)
}

// SignHS256WithPublicKey is the key-confusion attack: an HMAC keyed with
// the issuer's public key (PEM, as a careless verifier would read it),
// with the current kid.
func (is *Issuer) SignHS256WithPublicKey(claims map[string]any) string {
	is.mu.Lock()
	k := is.keys[0]
	is.mu.Unlock()
	der, _ := x509.MarshalPKIXPublicKey(&k.Key.(*rsa.PrivateKey).PublicKey)
	secret := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	opts := (&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", k.KeyID)
	sig, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.HS256, Key: secret}, opts)
	if err != nil {
		panic(err)
	}
	return sign(sig, claims)
}

// Unsigned is an alg none token (go-jose will not make one; it is three
// base64url parts, the last empty).
func Unsigned(claims map[string]any) string {
	enc := base64.RawURLEncoding
	h, _ := json.Marshal(map[string]string{"alg": "none", "typ": "JWT"})
	p, _ := json.Marshal(claims)
	return enc.EncodeToString(h) + "." + enc.EncodeToString(p) + "."
}

func sign(sig jose.Signer, claims map[string]any) string {
	p, err := json.Marshal(claims)
	if err != nil {
		panic(err)
	}
	obj, err := sig.Sign(p)
	if err != nil {
		panic(err)
	}
	s, err := obj.CompactSerialize()
	if err != nil {
		panic(err)
	}
	return s
}

// GitHubActions returns claims shaped like a GitHub Actions OIDC token
// (a push to main of octo-org/octo-repo).
func (is *Issuer) GitHubActions(repo, ref string) map[string]any {
	c := is.Claims("repo:" + repo + ":ref:" + ref)
	owner, _, _ := cut(repo)
	for k, v := range map[string]any{"repository": repo, "repository_owner": owner, "ref": ref, "ref_type": "branch",
		"event_name": "push", "workflow": "ci", "actor": "octocat", "run_id": "42", "environment": "",
		"job_workflow_ref": repo + "/.github/workflows/ci.yml@" + ref, "runner_environment": "github-hosted"} {
		c[k] = v
	}
	return c
}

// Kubernetes returns claims shaped like a projected service-account
// token: sub system:serviceaccount:NS:SA and the kubernetes.io object.
func (is *Issuer) Kubernetes(ns, sa string) map[string]any {
	c := is.Claims("system:serviceaccount:" + ns + ":" + sa)
	c["aud"] = []string{"xroute"}
	c["kubernetes.io"] = map[string]any{"namespace": ns,
		"serviceaccount": map[string]any{"name": sa, "uid": "8b9f1e7c-0000-4000-8000-000000000001"},
		"pod":            map[string]any{"name": sa + "-7d9c", "uid": "8b9f1e7c-0000-4000-8000-000000000002"}}
	return c
}

func cut(s string) (string, string, bool) {
	for i := 0; i < len(s); i++ {
		if s[i] == '/' {
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}
