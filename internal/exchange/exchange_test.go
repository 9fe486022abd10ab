package exchange_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/xroute/xroute/config"
	"github.com/xroute/xroute/internal/exchange"
	"github.com/xroute/xroute/internal/exchange/oidctest"
	"github.com/xroute/xroute/internal/store"
	"github.com/xroute/xroute/keys"
	"github.com/xroute/xroute/keys/auditlog"
)

// clock is a settable clock for the service (the issuer signs with the
// real time; the service's clock starts there).
type clock struct{ off atomic.Int64 }

func (c *clock) now() time.Time          { return time.Now().Add(time.Duration(c.off.Load())) }
func (c *clock) advance(d time.Duration) { c.off.Add(int64(d)) }

type fixture struct {
	svc   *exchange.Service
	keys  *keys.Service
	audit *auditlog.Auditor
	db    *store.DB
	is    *oidctest.Issuer
	clock *clock
}

func rules() []config.IssuerRule {
	return []config.IssuerRule{
		{Name: "ci-main", Claims: map[string]string{"repository_owner": "octo-org", "ref": "refs/heads/main"}, Account: keys.DefaultAccountID,
			Key: config.KeyTemplate{Models: []string{"gpt-4o*"}, Endpoints: []string{"chat.completions", "embeddings"}, RPM: 60, TTL: 15 * time.Minute}},
		{Name: "ci-any", Claims: map[string]string{"sub": "repo:octo-org/*"}, Account: keys.DefaultAccountID,
			Key: config.KeyTemplate{Models: []string{"gpt-4o-mini"}, TTL: 5 * time.Minute}},
		{Name: "k8s", Claims: map[string]string{"kubernetes.io.namespace": "ml-*", "kubernetes.io.serviceaccount.name": "inference"}, Account: keys.DefaultAccountID,
			Key: config.KeyTemplate{MaxConcurrent: 4, TTL: time.Hour}, RefreshTokens: true, RefreshTTL: 3 * time.Hour},
		{Name: "admins", Claims: map[string]string{"groups": "llm-admins", "email": "*@example.com"}, Account: keys.DefaultAccountID,
			Key: config.KeyTemplate{TTL: 2 * time.Hour, OutliveIdentity: true}},
	}
}

func newFixture(t testing.TB, mutate func(*config.Issuer)) *fixture {
	t.Helper()
	return newFixtureOn(t, filepath.Join(t.TempDir(), "x.db"), mutate)
}

// newFixtureOn opens the store at dsn (a SQLite path or a postgres URL).
func newFixtureOn(t testing.TB, dsn string, mutate func(*config.Issuer)) *fixture {
	t.Helper()
	ctx := context.Background()
	db, err := store.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	f := &fixture{db: db, is: oidctest.New(t), clock: &clock{}}
	f.keys, err = keys.NewService(db, keys.Options{Peppers: [][]byte{[]byte(strings.Repeat("p", 32))}, CacheTTL: time.Minute, Now: f.clock.now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.keys.Close)
	f.audit = auditlog.NewAuditor(db, f.clock.now)
	is := config.Issuer{Issuer: f.is.URL, Audiences: []string{"xroute"}, MaxTokenLifetime: time.Hour, Rules: rules()}
	if mutate != nil {
		mutate(&is)
	}
	f.svc, err = exchange.New(exchange.Options{Issuers: []config.Issuer{is}, Minter: f.keys, Store: db, Audit: f.audit, Now: f.clock.now})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func req(tok string) exchange.Request {
	return exchange.Request{GrantType: exchange.GrantTokenExchange, SubjectToken: tok, SubjectTokenType: exchange.TokenTypeJWT, IP: "192.0.2.1"}
}

// lastAudit returns the newest audit row of the exchange.
func (f *fixture) lastAudit(t *testing.T) auditlog.Event {
	t.Helper()
	evs, err := f.audit.List(context.Background(), auditlog.Filter{Kind: "token.", Limit: 1})
	if err != nil || len(evs) == 0 {
		t.Fatalf("no token audit row: %v", err)
	}
	return evs[0]
}

func TestExchangeChoosesTheFirstMatchingRule(t *testing.T) {
	f := newFixture(t, nil)
	user := f.is.Claims("alice")
	user["email"], user["groups"] = "alice@example.com", []any{"staff", "llm-admins"}
	user["exp"] = time.Now().Add(20 * time.Minute).Unix()
	cases := []struct {
		name       string
		claims     map[string]any
		rule       string
		models     []string
		endpoints  []string
		maxLife    time.Duration // the key's expiry at most this far from now
		minLife    time.Duration
		concurrent int
	}{
		{"github main", f.is.GitHubActions("octo-org/octo-repo", "refs/heads/main"), "ci-main", []string{"gpt-4o*"}, []string{"chat.completions", "embeddings"}, 10 * time.Minute, 9 * time.Minute, 0},
		{"github branch", f.is.GitHubActions("octo-org/octo-repo", "refs/heads/dev"), "ci-any", []string{"gpt-4o-mini"}, nil, 5 * time.Minute, 4 * time.Minute, 0},
		{"kubernetes", f.is.Kubernetes("ml-prod", "inference"), "k8s", nil, nil, 10 * time.Minute, 9 * time.Minute, 4},
		{"user in a group, outliving the token", user, "admins", nil, nil, 2 * time.Hour, 119 * time.Minute, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tok, err := f.svc.Exchange(context.Background(), req(f.is.Sign(tc.claims)))
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(tok.AccessToken, keys.CallerPrefix) || tok.IssuedTokenType != exchange.TokenTypeAccess {
				t.Fatalf("token %q type %q", keys.Hint(tok.AccessToken), tok.IssuedTokenType)
			}
			k, err := f.keys.Verify(context.Background(), tok.AccessToken)
			if err != nil {
				t.Fatal(err)
			}
			if k.Metadata["exchange_rule"] != tc.rule {
				t.Fatalf("rule %q, want %q", k.Metadata["exchange_rule"], tc.rule)
			}
			if !equal(k.AllowedModels, tc.models) || !equal(k.AllowedEndpoints, tc.endpoints) || k.MaxConcurrent != tc.concurrent {
				t.Fatalf("key models %v endpoints %v conc %d", k.AllowedModels, k.AllowedEndpoints, k.MaxConcurrent)
			}
			life := time.Until(*k.ExpiresAt)
			if life > tc.maxLife || life < tc.minLife {
				t.Fatalf("key lives %s, want between %s and %s", life, tc.minLife, tc.maxLife)
			}
			if got := time.Duration(tok.ExpiresIn) * time.Second; got > tc.maxLife+time.Second || got < tc.minLife {
				t.Fatalf("expires_in %s", got)
			}
			ev := f.lastAudit(t)
			if ev.Kind != exchange.AuditExchanged || ev.Subject != k.ID || ev.Details["rule"] != tc.rule || ev.Details["sub"] != tc.claims["sub"] {
				t.Fatalf("audit row %+v", ev)
			}
		})
	}
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestExchangeRefusals is the refusal table: each bad token is refused
// with its error and reason, and leaves an audit row saying so.
func TestExchangeRefusals(t *testing.T) {
	f := newFixture(t, nil)
	good := func() map[string]any { return f.is.GitHubActions("octo-org/octo-repo", "refs/heads/main") }
	with := func(k string, v any) map[string]any { c := good(); c[k] = v; return c }
	replayed := f.is.Sign(good())
	if _, err := f.svc.Exchange(context.Background(), req(replayed)); err != nil {
		t.Fatal(err)
	}
	other := oidctest.New(t) // a real issuer, but not one this gateway trusts
	cases := []struct {
		name   string
		r      exchange.Request
		code   string
		reason string
	}{
		{"wrong iss", req(other.Sign(other.GitHubActions("octo-org/octo-repo", "refs/heads/main"))), exchange.CodeInvalidRequest, "wrong_issuer"},
		{"trusted iss, other issuer's key", req(other.Sign(with("iss", f.is.URL))), exchange.CodeInvalidRequest, "unknown_kid_or_bad_signature"},
		{"wrong aud", req(f.is.Sign(with("aud", "someone-else"))), exchange.CodeInvalidRequest, "wrong_audience"},
		{"expired", req(f.is.Sign(with("exp", time.Now().Add(-time.Minute).Unix()))), exchange.CodeInvalidRequest, "expired"},
		{"nbf in the future", req(f.is.Sign(with("nbf", time.Now().Add(5*time.Minute).Unix()))), exchange.CodeInvalidRequest, "not_yet_valid"},
		{"iat in the future", req(f.is.Sign(with("iat", time.Now().Add(5*time.Minute).Unix()))), exchange.CodeInvalidRequest, "issued_in_future"},
		{"no exp", req(f.is.Sign(func() map[string]any { c := good(); delete(c, "exp"); return c }())), exchange.CodeInvalidRequest, "no_exp"},
		{"lives too long", req(f.is.Sign(with("exp", time.Now().Add(3*time.Hour).Unix()))), exchange.CodeInvalidRequest, "lifetime"},
		{"alg none", req(oidctest.Unsigned(good())), exchange.CodeInvalidRequest, "malformed"},
		{"HS256 keyed with the RSA public key", req(f.is.SignHS256WithPublicKey(good())), exchange.CodeInvalidRequest, "alg_not_allowed"},
		{"replayed jti", req(replayed), exchange.CodeInvalidRequest, "replayed_jti"},
		{"no rule matched", req(f.is.Sign(f.is.GitHubActions("evil-org/repo", "refs/heads/main"))), exchange.CodeUnauthorizedClient, "no_rule"},
		{"not a JWT", req("xr-not-a-jwt"), exchange.CodeInvalidRequest, "malformed"},
		{"wrong grant type", exchange.Request{GrantType: "client_credentials"}, exchange.CodeUnsupportedGrantType, "unsupported_grant_type"},
		{"wrong token type", exchange.Request{GrantType: exchange.GrantTokenExchange, SubjectToken: "x", SubjectTokenType: "urn:ietf:params:oauth:token-type:saml2"}, exchange.CodeInvalidRequest, "subject_token_type"},
		{"scope wider than the rule", func() exchange.Request { r := req(f.is.Sign(good())); r.Scope = "model:claude-3"; return r }(), exchange.CodeInvalidScope, "scope_wider"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := f.svc.Exchange(context.Background(), tc.r)
			var xe *exchange.Error
			if !errors.As(err, &xe) {
				t.Fatalf("err %v, want a refusal", err)
			}
			if xe.Code != tc.code || (xe.Reason != tc.reason && !strings.Contains(tc.reason, xe.Reason)) {
				t.Fatalf("refused %s/%s (%s), want %s/%s", xe.Code, xe.Reason, xe.Description, tc.code, tc.reason)
			}
			ev := f.lastAudit(t)
			if ev.Kind != exchange.AuditRefused || ev.Details["reason"] != xe.Reason || ev.Details["error"] != tc.code || ev.IP != tc.r.IP {
				t.Fatalf("audit row %+v", ev)
			}
		})
	}
}

// TestUnknownKidRefreshesAtMostOncePerInterval: a token signed with a key
// the issuer has not published yet is refused after one JWKS fetch; a
// flood of made-up kids in the same interval fetches nothing more; once
// the issuer publishes its rotated key, the next interval's refresh finds
// it.
func TestUnknownKidRefreshesAtMostOncePerInterval(t *testing.T) {
	f := newFixture(t, func(is *config.Issuer) { is.JWKSRefreshInterval = time.Minute })
	ctx := context.Background()
	if _, err := f.svc.Exchange(ctx, req(f.is.Sign(f.is.Kubernetes("ml-a", "inference")))); err != nil {
		t.Fatal(err)
	}
	base := f.is.Fetches()
	f.clock.advance(2 * time.Minute)
	f.is.Rotate(false) // signs with k2, the JWKS still serves k1 only
	_, err := f.svc.Exchange(ctx, req(f.is.Sign(f.is.Kubernetes("ml-a", "inference"))))
	var xe *exchange.Error
	if !errors.As(err, &xe) || xe.Reason != "unknown_kid" {
		t.Fatalf("rotated before publishing: %v", err)
	}
	if got := f.is.Fetches() - base; got != 1 {
		t.Fatalf("%d fetches for the unknown kid, want 1", got)
	}
	for range 20 {
		f.is.Rotate(false)
		f.svc.Exchange(ctx, req(f.is.Sign(f.is.Kubernetes("ml-a", "inference"))))
	}
	if got := f.is.Fetches() - base; got != 1 {
		t.Fatalf("%d fetches after a flood of unknown kids, want still 1", got)
	}
	f.is.Publish()
	f.clock.advance(time.Minute)
	if _, err := f.svc.Exchange(ctx, req(f.is.Sign(f.is.Kubernetes("ml-a", "inference")))); err != nil {
		t.Fatalf("after the issuer published its rotated key: %v", err)
	}
	if got := f.is.Fetches() - base; got != 2 {
		t.Fatalf("%d fetches, want 2", got)
	}
}

// TestReplayedJTIConcurrently: one token presented by many callers at
// once is exchanged exactly once.
func TestReplayedJTIConcurrently(t *testing.T) {
	f := newFixture(t, nil)
	tok := f.is.Sign(f.is.Kubernetes("ml-prod", "inference"))
	var wins, replays atomic.Int32
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := f.svc.Exchange(context.Background(), req(tok))
			var xe *exchange.Error
			switch {
			case err == nil:
				wins.Add(1)
			case errors.As(err, &xe) && xe.Reason == "replayed_jti":
				replays.Add(1)
			default:
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if wins.Load() != 1 || replays.Load() != 7 {
		t.Fatalf("%d won, %d refused as replays; want 1 and 7", wins.Load(), replays.Load())
	}
}

func TestScopeNarrows(t *testing.T) {
	f := newFixture(t, nil)
	r := req(f.is.Sign(f.is.GitHubActions("octo-org/octo-repo", "refs/heads/main")))
	r.Scope = "model:gpt-4o-mini endpoint:chat.completions"
	tok, err := f.svc.Exchange(context.Background(), r)
	if err != nil {
		t.Fatal(err)
	}
	if tok.Scope != r.Scope {
		t.Fatalf("scope %q", tok.Scope)
	}
	k, err := f.keys.Verify(context.Background(), tok.AccessToken)
	if err != nil {
		t.Fatal(err)
	}
	if !k.AllowsModel("gpt-4o-mini") || k.AllowsModel("gpt-4o") || k.AllowsEndpoint("embeddings") {
		t.Fatalf("narrowed key allows %v %v", k.AllowedModels, k.AllowedEndpoints)
	}
}

func TestJTIsAreSwept(t *testing.T) {
	f := newFixture(t, nil)
	ctx := context.Background()
	if _, err := f.svc.Exchange(ctx, req(f.is.Sign(f.is.Kubernetes("ml-prod", "inference")))); err != nil {
		t.Fatal(err)
	}
	if n, err := f.db.SweepJTIs(ctx, time.Now(), 10); err != nil || n != 0 {
		t.Fatalf("swept %d live jtis: %v", n, err)
	}
	if n, err := f.db.SweepJTIs(ctx, time.Now().Add(time.Hour), 10); err != nil || n != 1 {
		t.Fatalf("swept %d expired jtis, want 1: %v", n, err)
	}
}

// TestExchangedKeysAreSwept: every key the exchange mints, by exchange or
// by refresh, is marked as its own and swept once long expired; a key a
// live refresh token names stays until its family ends.
func TestExchangedKeysAreSwept(t *testing.T) {
	f := newFixture(t, nil)
	ctx := context.Background()
	ci, err := f.svc.Exchange(ctx, req(f.is.Sign(f.is.GitHubActions("octo-org/octo-repo", "refs/heads/main"))))
	if err != nil {
		t.Fatal(err)
	}
	k8s, err := f.svc.Exchange(ctx, req(f.is.Sign(f.is.Kubernetes("ml-prod", "inference"))))
	if err != nil {
		t.Fatal(err)
	}
	next, err := f.svc.Exchange(ctx, exchange.Request{GrantType: exchange.GrantRefreshToken, RefreshToken: k8s.RefreshToken})
	if err != nil {
		t.Fatal(err)
	}
	// Past every key's expiry (an hour at most), within the family (3h).
	n, err := f.db.SweepExchangedKeys(ctx, time.Now().Add(2*time.Hour), 10)
	if err != nil || n != 1 {
		t.Fatalf("swept %d, %v; want the one key no refresh token names", n, err)
	}
	if _, err := f.keys.Get(ctx, ci.KeyID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("ci key: %v, want ErrNotFound", err)
	}
	for _, id := range []string{k8s.KeyID, next.KeyID} {
		if _, err := f.keys.Get(ctx, id); err != nil {
			t.Fatalf("key %s of a live family: %v", id, err)
		}
	}
	if _, err := f.db.SweepRefreshTokens(ctx, time.Now().Add(4*time.Hour), 10); err != nil {
		t.Fatal(err)
	}
	if n, err := f.db.SweepExchangedKeys(ctx, time.Now().Add(4*time.Hour), 10); err != nil || n != 2 {
		t.Fatalf("swept %d, %v; want the family's two keys", n, err)
	}
}
