// Package exchange turns a verified identity token into a short-lived
// xroute key: OAuth 2.0 Token Exchange (RFC 8693) without the HTTP. A
// trusted issuer (from the config file or added through the admin API,
// see Registry) vouches for the token (its signature by a key
// from its JWKS, iss, aud, exp, nbf, iat, an allowed algorithm, a jti
// not seen before); the first of the issuer's rules whose claim patterns
// match decides the account and what the key may do; the key is an
// ordinary caller key with an expiry (hashed at rest, the same auth
// cache, instant revocation, no database write per request).
package exchange

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"path"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/xroute/xroute/config"
	"github.com/xroute/xroute/internal/store"
	"github.com/xroute/xroute/keys"
	"github.com/xroute/xroute/keys/auditlog"
)

// RFC 8693 identifiers.
const (
	GrantTokenExchange  = "urn:ietf:params:oauth:grant-type:token-exchange"
	TokenTypeJWT        = "urn:ietf:params:oauth:token-type:jwt"
	TokenTypeIDToken    = "urn:ietf:params:oauth:token-type:id_token"
	TokenTypeAccess     = "urn:ietf:params:oauth:token-type:access_token"
	maxSubjectTokenSize = 16 << 10
	maxJTI              = 256
)

// Error codes (RFC 6749 §5.2, RFC 8693 §2.2.2). A subject token that is
// invalid or unacceptable is invalid_request, as RFC 8693 requires; an
// identity no rule admits is unauthorized_client.
const (
	CodeInvalidRequest       = "invalid_request"
	CodeInvalidGrant         = "invalid_grant"
	CodeInvalidScope         = "invalid_scope"
	CodeUnauthorizedClient   = "unauthorized_client"
	CodeUnsupportedGrantType = "unsupported_grant_type"
	CodeServerError          = "server_error"
	CodeUnavailable          = "temporarily_unavailable"
)

// Audit kinds.
const (
	AuditExchanged = "token.exchanged"
	AuditRefused   = "token.exchange_refused"
)

// Error is a refused exchange, in the RFC's vocabulary. Description is
// for the caller; Reason is a short stable tag for the audit row and the
// metric (wrong_issuer, expired, replayed_jti, no_rule, ...).
type Error struct {
	Code        string
	Description string
	Reason      string
}

func (e *Error) Error() string { return e.Code + ": " + e.Description }

func refuse(code, reason, format string, args ...any) *Error {
	return &Error{Code: code, Reason: reason, Description: fmt.Sprintf(format, args...)}
}

// Request is a token request's parameters.
type Request struct {
	GrantType          string
	SubjectToken       string
	SubjectTokenType   string
	RequestedTokenType string
	Scope              string
	RefreshToken       string // grant_type refresh_token
	IP                 string // for the audit row
}

// Token is an issued token.
type Token struct {
	AccessToken     string
	IssuedTokenType string
	ExpiresIn       int64 // seconds
	ExpiresAt       time.Time
	Scope           string
	RefreshToken    string // "" unless the rule hands them out
	KeyID           string
	AccountID       string
}

// Minter creates, reads and revokes keys (keys.Service).
type Minter interface {
	Create(ctx context.Context, p keys.CreateParams) (string, keys.Key, error)
	Get(ctx context.Context, id string) (keys.Key, error)
	Revoke(ctx context.Context, id, actor string) error
}

// Store remembers exchanged token ids and refresh tokens (store.DB).
type Store interface {
	ClaimJTI(ctx context.Context, issuer, jti string, expires time.Time) (bool, error)
	CreateRefreshToken(ctx context.Context, t store.RefreshToken) error
	SpendRefreshToken(ctx context.Context, hash string, now time.Time) (store.RefreshToken, bool, error)
	RevokeRefreshFamily(ctx context.Context, family string, now time.Time) ([]string, error)
	RecordExchangedKey(ctx context.Context, id string, expires time.Time) error
}

// Auditor records audit rows (auditlog.Auditor).
type Auditor interface {
	Record(ctx context.Context, e auditlog.Event) error
}

// Options are a Service's dependencies; Client and Now have defaults.
type Options struct {
	Issuers []config.Issuer
	Minter  Minter
	Store   Store
	Audit   Auditor
	Client  *http.Client
	Now     func() time.Time
	// OnOutcome is told every exchange's outcome ("issued" or the refusal's
	// Reason), for metrics; nil: nobody.
	OnOutcome func(outcome string)
}

type issuer struct {
	cfg  config.Issuer
	algs []jose.SignatureAlgorithm
	keys *keySet
}

// Service exchanges identity tokens for keys. Its issuers are swapped
// whole (SetIssuers) while exchanges run: each exchange reads one set.
type Service struct {
	issuers   atomic.Pointer[map[string]*issuer]
	setMu     sync.Mutex // one SetIssuers at a time
	client    *http.Client
	minter    Minter
	st        Store
	audit     Auditor
	now       func() time.Time
	onOutcome func(string)
}

// parseAlgs are the algorithms a token may be parsed with before its
// issuer is known; the issuer's own list is checked next. HMAC is here
// only so that such a token is refused by name, never verified.
var parseAlgs = []jose.SignatureAlgorithm{jose.RS256, jose.RS384, jose.RS512, jose.PS256, jose.PS384, jose.PS512,
	jose.ES256, jose.ES384, jose.ES512, jose.EdDSA, jose.HS256, jose.HS384, jose.HS512}

// New builds the service; the issuers are validated by config.Validate.
func New(o Options) (*Service, error) {
	if o.Minter == nil || o.Store == nil || o.Audit == nil {
		return nil, errors.New("exchange: a minter, a store and an audit log are required")
	}
	s := &Service{minter: o.Minter, st: o.Store, audit: o.Audit, now: o.Now, onOutcome: o.OnOutcome}
	if s.now == nil {
		s.now = time.Now
	}
	if s.onOutcome == nil {
		s.onOutcome = func(string) {}
	}
	s.client = o.Client
	if s.client == nil {
		s.client = &http.Client{Timeout: 10 * time.Second}
	}
	s.SetIssuers(o.Issuers)
	return s, nil
}

// SetIssuers replaces the trusted issuers (the config's and those added
// through the admin API), validated by the caller. Exchanges already
// verifying finish with the set they read; the next ones use this one.
// An issuer whose key source (iss, jwks_url, refresh interval) is
// unchanged keeps its cached JWKS, so a reload costs no fetch; an issuer
// left out is untrusted from now on.
func (s *Service) SetIssuers(list []config.Issuer) {
	s.setMu.Lock()
	defer s.setMu.Unlock()
	var old map[string]*issuer
	if p := s.issuers.Load(); p != nil {
		old = *p
	}
	next := make(map[string]*issuer, len(list))
	for _, c := range list {
		c = c.WithDefaults()
		is := &issuer{cfg: c}
		if prev, ok := old[c.Issuer]; ok && prev.cfg.JWKSURL == c.JWKSURL && prev.cfg.JWKSRefreshInterval == c.JWKSRefreshInterval {
			is.keys = prev.keys
		} else {
			is.keys = &keySet{issuer: c.Issuer, jwksURL: c.JWKSURL, client: s.client, every: c.JWKSRefreshInterval, now: s.now}
		}
		for _, a := range c.Algorithms {
			is.algs = append(is.algs, jose.SignatureAlgorithm(a))
		}
		next[c.Issuer] = is
	}
	s.issuers.Store(&next)
}

// issuer is the trusted issuer iss, if it is one now.
func (s *Service) issuer(iss string) (*issuer, bool) {
	is, ok := (*s.issuers.Load())[iss]
	return is, ok
}

// identity is a verified subject token.
type identity struct {
	issuer *issuer
	claims map[string]any
	std    jwt.Claims
}

// Exchange verifies the subject token, picks the rule and mints the key.
// Every outcome writes one audit row.
func (s *Service) Exchange(ctx context.Context, r Request) (Token, error) {
	if r.GrantType == GrantRefreshToken {
		return s.refresh(ctx, r)
	}
	tok, id, rule, err := s.exchange(ctx, r)
	ev := auditlog.Event{Actor: "exchange", IP: r.IP, Details: map[string]any{}}
	if id != nil {
		ev.Actor = "oidc:" + clip(id.std.Subject)
		ev.Details["issuer"] = id.issuer.cfg.Issuer
		ev.Details["sub"] = clip(id.std.Subject)
		if id.std.ID != "" {
			ev.Details["jti"] = clip(id.std.ID)
		}
	}
	if rule != nil {
		ev.Details["rule"] = rule.Name
		ev.AccountID = rule.Account
	}
	var xe *Error
	switch {
	case err == nil:
		ev.Kind, ev.Subject = AuditExchanged, tok.KeyID
		ev.Details["expires_at"] = tok.ExpiresAt.UTC().Format(time.RFC3339)
		s.onOutcome("issued")
	case errors.As(err, &xe):
		ev.Kind = AuditRefused
		ev.Details["error"], ev.Details["reason"] = xe.Code, xe.Reason
		s.onOutcome(xe.Reason)
	default:
		ev.Kind = AuditRefused
		ev.Details["error"], ev.Details["reason"] = CodeServerError, "internal"
		s.onOutcome("internal")
	}
	if aerr := s.audit.Record(ctx, ev); aerr != nil && err == nil {
		// An exchange the audit log cannot show is not issued.
		return Token{}, fmt.Errorf("exchange: audit: %w", aerr)
	}
	return tok, err
}

func (s *Service) exchange(ctx context.Context, r Request) (Token, *identity, *config.IssuerRule, error) {
	if r.GrantType != GrantTokenExchange {
		if r.GrantType == "" {
			return Token{}, nil, nil, refuse(CodeInvalidRequest, "no_grant_type", "grant_type is required")
		}
		return Token{}, nil, nil, refuse(CodeUnsupportedGrantType, "unsupported_grant_type", "grant_type %q is not supported; use %s", clip(r.GrantType), GrantTokenExchange)
	}
	switch {
	case r.SubjectToken == "":
		return Token{}, nil, nil, refuse(CodeInvalidRequest, "no_subject_token", "subject_token is required")
	case len(r.SubjectToken) > maxSubjectTokenSize:
		return Token{}, nil, nil, refuse(CodeInvalidRequest, "malformed", "subject_token is larger than %d bytes", maxSubjectTokenSize)
	case r.SubjectTokenType != TokenTypeJWT && r.SubjectTokenType != TokenTypeIDToken:
		return Token{}, nil, nil, refuse(CodeInvalidRequest, "subject_token_type", "subject_token_type must be %s or %s", TokenTypeJWT, TokenTypeIDToken)
	case r.RequestedTokenType != "" && r.RequestedTokenType != TokenTypeAccess:
		return Token{}, nil, nil, refuse(CodeInvalidRequest, "requested_token_type", "requested_token_type must be %s (the only type issued)", TokenTypeAccess)
	}
	id, err := s.verify(ctx, r.SubjectToken)
	if err != nil {
		return Token{}, id, nil, err
	}
	rule := matchRule(id.issuer.cfg.Rules, id.claims)
	if rule == nil {
		return Token{}, id, nil, refuse(CodeUnauthorizedClient, "no_rule", "no rule of issuer %s admits this identity", id.issuer.cfg.Issuer)
	}
	models, endpoints, scope, err := narrow(rule.Key, r.Scope)
	if err != nil {
		return Token{}, id, rule, err
	}
	now := s.now()
	exp := now.Add(rule.Key.TTL)
	if tokExp := id.std.Expiry.Time(); !rule.Key.OutliveIdentity && tokExp.Before(exp) {
		exp = tokExp
	}
	exp = exp.UTC().Truncate(time.Second)
	if !exp.After(now) {
		return Token{}, id, rule, refuse(CodeInvalidRequest, "expired", "the subject token has no life left to hand on")
	}
	if jti := id.std.ID; jti != "" {
		fresh, err := s.st.ClaimJTI(ctx, id.issuer.cfg.Issuer, jti, id.std.Expiry.Time().Add(id.issuer.cfg.ClockSkew))
		if err != nil {
			return Token{}, id, rule, fmt.Errorf("exchange: %w", err)
		}
		if !fresh {
			return Token{}, id, rule, refuse(CodeInvalidRequest, "replayed_jti", "this subject token (its jti) was already exchanged")
		}
	}
	plain, k, err := s.mint(ctx, keys.CreateParams{
		AccountID:        rule.Account,
		Name:             clip("exchange:" + rule.Name + ":" + id.std.Subject),
		AllowedModels:    models,
		AllowedEndpoints: endpoints,
		RPM:              rule.Key.RPM,
		TPM:              rule.Key.TPM,
		MaxConcurrent:    rule.Key.MaxConcurrent,
		Metadata:         map[string]string{"exchange_issuer": id.issuer.cfg.Issuer, "exchange_sub": clip(id.std.Subject), "exchange_rule": rule.Name},
		ExpiresAt:        &exp,
		Actor:            "exchange",
	})
	if err != nil {
		return Token{}, id, rule, fmt.Errorf("exchange: mint: %w", err)
	}
	tok := Token{AccessToken: plain, IssuedTokenType: TokenTypeAccess, ExpiresAt: exp,
		ExpiresIn: int64(exp.Sub(now).Round(time.Second) / time.Second), Scope: scope, KeyID: k.ID, AccountID: k.AccountID}
	if rule.RefreshTokens {
		tok.RefreshToken, err = s.newRefresh(ctx, keys.NewID("rtf_"), k, id.issuer.cfg.Issuer, rule.Name, now, now.Add(rule.RefreshTTL))
		if err != nil {
			// The key is useless without the pair the caller asked for.
			s.minter.Revoke(ctx, k.ID, "exchange")
			return Token{}, id, rule, err
		}
	}
	return tok, id, rule, nil
}

// verify checks the token's signature and claims against its issuer. The
// identity is returned once the issuer is known (for the audit row).
func (s *Service) verify(ctx context.Context, raw string) (*identity, error) {
	tok, err := jwt.ParseSigned(raw, parseAlgs)
	if err != nil {
		return nil, refuse(CodeInvalidRequest, "malformed", "subject_token is not a signed JWT with an accepted algorithm (alg none is never accepted)")
	}
	var unverified jwt.Claims
	if err := tok.UnsafeClaimsWithoutVerification(&unverified); err != nil {
		return nil, refuse(CodeInvalidRequest, "malformed", "subject_token's claims are not a JSON object")
	}
	is, ok := s.issuer(unverified.Issuer)
	if !ok {
		return nil, refuse(CodeInvalidRequest, "wrong_issuer", "the subject token's issuer is not trusted")
	}
	id := &identity{issuer: is}
	if len(tok.Headers) != 1 {
		return id, refuse(CodeInvalidRequest, "malformed", "subject_token must have one signature")
	}
	h := tok.Headers[0]
	if !slices.Contains(is.algs, jose.SignatureAlgorithm(h.Algorithm)) {
		return id, refuse(CodeInvalidRequest, "alg_not_allowed", "algorithm %s is not allowed for issuer %s", clip(h.Algorithm), is.cfg.Issuer)
	}
	cands, err := is.keys.keys(ctx, h.KeyID)
	if err != nil {
		return id, refuse(CodeUnavailable, "issuer_unavailable", "the issuer's signing keys cannot be read now; retry later")
	}
	if len(cands) == 0 {
		return id, refuse(CodeInvalidRequest, "unknown_kid", "the subject token's signing key (kid) is not among the issuer's keys")
	}
	var std jwt.Claims
	var all map[string]any
	verified := false
	for _, k := range cands {
		if k.Algorithm != "" && k.Algorithm != h.Algorithm {
			continue
		}
		if err := tok.Claims(k.Key, &std, &all); err == nil {
			verified = true
			break
		}
	}
	if !verified {
		return id, refuse(CodeInvalidRequest, "bad_signature", "the subject token's signature does not verify")
	}
	id.std, id.claims = std, all
	c := is.cfg
	now := s.now()
	if std.Expiry == nil {
		return id, refuse(CodeInvalidRequest, "no_exp", "the subject token has no exp")
	}
	if err := std.ValidateWithLeeway(jwt.Expected{Issuer: c.Issuer, Time: now}, c.ClockSkew); err != nil {
		switch {
		case errors.Is(err, jwt.ErrExpired):
			return id, refuse(CodeInvalidRequest, "expired", "the subject token has expired")
		case errors.Is(err, jwt.ErrNotValidYet):
			return id, refuse(CodeInvalidRequest, "not_yet_valid", "the subject token is not valid yet (nbf)")
		case errors.Is(err, jwt.ErrIssuedInTheFuture):
			return id, refuse(CodeInvalidRequest, "issued_in_future", "the subject token was issued in the future (iat)")
		default:
			return id, refuse(CodeInvalidRequest, "invalid_claims", "the subject token's claims are not valid")
		}
	}
	if !slices.ContainsFunc(c.Audiences, std.Audience.Contains) {
		return id, refuse(CodeInvalidRequest, "wrong_audience", "the subject token's audience is not one this gateway accepts")
	}
	from := now
	if std.IssuedAt != nil {
		from = std.IssuedAt.Time()
	}
	if std.Expiry.Time().Sub(from) > c.MaxTokenLifetime+c.ClockSkew {
		return id, refuse(CodeInvalidRequest, "lifetime", "the subject token lives longer than the issuer's max_token_lifetime (%s)", c.MaxTokenLifetime)
	}
	if len(std.ID) > maxJTI {
		return id, refuse(CodeInvalidRequest, "malformed", "the subject token's jti is longer than %d bytes", maxJTI)
	}
	return id, nil
}

// narrow applies a requested scope to the rule's key template. The scope
// is space-separated model:NAME and endpoint:NAME items; each must fall
// within the template (a model the template's globs allow, an endpoint
// it lists), never widen it. Empty: the template's own. It returns the
// key's models and endpoints and the granted scope's text.
func narrow(t config.KeyTemplate, scope string) (models, endpoints []string, granted string, err error) {
	items := strings.Fields(scope)
	if len(items) == 0 {
		return t.Models, t.Endpoints, renderScope(t.Models, t.Endpoints), nil
	}
	for _, it := range items {
		kind, val, _ := strings.Cut(it, ":")
		switch {
		case kind == "model" && val != "":
			if len(t.Models) > 0 && !slices.ContainsFunc(t.Models, func(p string) bool { ok, _ := path.Match(p, val); return ok }) {
				return nil, nil, "", refuse(CodeInvalidScope, "scope_wider", "scope %q is wider than this identity may have", clip(it))
			}
			models = append(models, val)
		case kind == "endpoint" && val != "":
			if !slices.Contains(keys.Endpoints, val) {
				return nil, nil, "", refuse(CodeInvalidScope, "scope_unknown", "scope %q names no endpoint (known: %s)", clip(it), strings.Join(keys.Endpoints, ", "))
			}
			if len(t.Endpoints) > 0 && !slices.Contains(t.Endpoints, val) && !slices.Contains(t.Endpoints, "*") {
				return nil, nil, "", refuse(CodeInvalidScope, "scope_wider", "scope %q is wider than this identity may have", clip(it))
			}
			endpoints = append(endpoints, val)
		default:
			return nil, nil, "", refuse(CodeInvalidScope, "scope_unknown", "scope %q is not model:NAME or endpoint:NAME", clip(it))
		}
	}
	if models == nil {
		models = t.Models
	}
	if endpoints == nil {
		endpoints = t.Endpoints
	}
	return models, endpoints, renderScope(models, endpoints), nil
}

func renderScope(models, endpoints []string) string {
	var b []string
	for _, m := range models {
		b = append(b, "model:"+m)
	}
	for _, e := range endpoints {
		b = append(b, "endpoint:"+e)
	}
	return strings.Join(b, " ")
}

// clip bounds caller-controlled text that reaches an answer, a key name
// or the audit log.
func clip(s string) string {
	const n = 200
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// mint creates a key and marks it as the exchange's, so that its row is
// swept once it has long expired (store.SweepExchangedKeys). A key that
// cannot be marked is revoked and not handed out: it would outlive its
// use as a row nobody removes.
func (s *Service) mint(ctx context.Context, p keys.CreateParams) (string, keys.Key, error) {
	plain, k, err := s.minter.Create(ctx, p)
	if err != nil {
		return "", keys.Key{}, err
	}
	if err := s.st.RecordExchangedKey(ctx, k.ID, *p.ExpiresAt); err != nil {
		s.minter.Revoke(ctx, k.ID, "exchange")
		return "", keys.Key{}, err
	}
	return plain, k, nil
}
