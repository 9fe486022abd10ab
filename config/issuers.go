package config

import (
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"
)

// Issuer is an identity provider whose JWTs (OIDC ID tokens, GitHub
// Actions OIDC tokens, Kubernetes service-account tokens) POST
// /v1/auth/token exchanges for a short-lived xroute key.
type Issuer struct {
	// Issuer is the token's exact iss; discovery is read from
	// Issuer + /.well-known/openid-configuration.
	Issuer string `yaml:"issuer"`
	// JWKSURL skips discovery (an issuer whose discovery document needs
	// credentials, such as some Kubernetes API servers).
	JWKSURL string `yaml:"jwks_url"`
	// Audiences: the token's aud must name one of them.
	Audiences []string `yaml:"audiences"`
	// Algorithms the issuer signs with (default RS256). Only asymmetric
	// algorithms: an HMAC one would make the public key a shared secret.
	Algorithms []string `yaml:"algorithms"`
	// MaxTokenLifetime refuses a token whose exp is further than this from
	// its iat (or from now without iat): a long-lived identity token is
	// itself the leak this exists to avoid (default 24h).
	MaxTokenLifetime time.Duration `yaml:"max_token_lifetime"`
	// ClockSkew tolerated on exp, nbf and iat (default 30s, at most 5m).
	ClockSkew time.Duration `yaml:"clock_skew"`
	// JWKSRefreshInterval is the least time between two JWKS fetches
	// prompted by an unknown kid (default 1m), so made-up kids cannot make
	// xroute hammer the issuer.
	JWKSRefreshInterval time.Duration `yaml:"jwks_refresh_interval"`
	// Rules are tried in order; the first whose every claim pattern
	// matches decides the account and the key. None: 403.
	Rules []IssuerRule `yaml:"rules"`
}

// IssuerRule maps a verified token's claims to an account and a key.
type IssuerRule struct {
	Name string `yaml:"name"`
	// Claims maps a claim name (dotted for nested claims:
	// kubernetes.io.namespace) to a glob (* any run, ? one character). A
	// list claim (groups) matches when one element does.
	Claims  map[string]string `yaml:"claims"`
	Account string            `yaml:"account"`
	Key     KeyTemplate       `yaml:"key"`
	// RefreshTokens hands out a refresh token beside the key: used once,
	// it returns a new key and a new refresh token; presented again it
	// revokes every key and token descended from the same exchange.
	RefreshTokens bool `yaml:"refresh_tokens"`
	// RefreshTTL is how long such a family lives from its exchange,
	// whatever is refreshed (default 24h).
	RefreshTTL time.Duration `yaml:"refresh_ttl"`
}

// KeyTemplate is what the issued key may do.
type KeyTemplate struct {
	Models        []string `yaml:"models"`
	Endpoints     []string `yaml:"endpoints"`
	RPM           int      `yaml:"rpm"`
	TPM           int      `yaml:"tpm"`
	MaxConcurrent int      `yaml:"max_concurrent"`
	// TTL of the issued key (default 1h); it never outlives the identity
	// token unless OutliveIdentity is set.
	TTL             time.Duration `yaml:"ttl"`
	OutliveIdentity bool          `yaml:"outlive_identity"`
}

// Issuer defaults.
const (
	DefaultIssuerAlgorithm     = "RS256"
	DefaultMaxTokenLifetime    = 24 * time.Hour
	DefaultClockSkew           = 30 * time.Second
	DefaultJWKSRefreshInterval = time.Minute
	DefaultExchangeTTL         = time.Hour
	DefaultRefreshTTL          = 24 * time.Hour
)

// asymmetricAlgs are the JWS algorithms an issuer may list.
var asymmetricAlgs = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}

// WithDefaults returns the issuer with its unset settings filled in.
func (is Issuer) WithDefaults() Issuer {
	if len(is.Algorithms) == 0 {
		is.Algorithms = []string{DefaultIssuerAlgorithm}
	}
	if is.MaxTokenLifetime == 0 {
		is.MaxTokenLifetime = DefaultMaxTokenLifetime
	}
	if is.ClockSkew == 0 {
		is.ClockSkew = DefaultClockSkew
	}
	if is.JWKSRefreshInterval == 0 {
		is.JWKSRefreshInterval = DefaultJWKSRefreshInterval
	}
	rules := slices.Clone(is.Rules)
	for i := range rules {
		if rules[i].Key.TTL == 0 {
			rules[i].Key.TTL = DefaultExchangeTTL
		}
		if rules[i].RefreshTTL == 0 {
			rules[i].RefreshTTL = DefaultRefreshTTL
		}
	}
	is.Rules = rules
	return is
}

func validateIssuers(issuers []Issuer, bad func(field, format string, args ...any)) {
	seen := map[string]bool{}
	for i, is := range issuers {
		f := fmt.Sprintf("auth.issuers[%d]", i)
		if is.Issuer != "" && seen[is.Issuer] {
			bad(f+".issuer", "%q is listed twice", is.Issuer)
		}
		seen[is.Issuer] = true
		validateIssuer(f+".", is, bad)
	}
}

// Validate checks one issuer with the config file's rules (the admin API
// and the CLI add issuers with it). Each problem is a *FieldError whose
// field is relative to the issuer ("audiences", "rules[0].account").
func (is Issuer) Validate() error {
	var errs []error
	validateIssuer("", is, func(field, format string, args ...any) {
		errs = append(errs, &FieldError{Field: field, Msg: fmt.Sprintf(format, args...)})
	})
	return errors.Join(errs...)
}

// validateIssuer checks one issuer; f prefixes its fields' names.
func validateIssuer(f string, is Issuer, bad func(field, format string, args ...any)) {
	u, err := url.Parse(is.Issuer)
	if is.Issuer == "" || err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		bad(f+"issuer", "must be the issuer's URL (the tokens' iss), got %q", is.Issuer)
	}
	if is.JWKSURL != "" {
		if u, err := url.Parse(is.JWKSURL); err != nil || u.Host == "" {
			bad(f+"jwks_url", "must be a URL, got %q", is.JWKSURL)
		}
	}
	if len(is.Audiences) == 0 {
		bad(f+"audiences", "list at least one audience (a token for any audience could be replayed from elsewhere)")
	}
	for j, a := range is.Algorithms {
		if !slices.Contains(asymmetricAlgs, a) {
			bad(fmt.Sprintf("%salgorithms[%d]", f, j), "%q is not allowed (allowed: %s)", a, strings.Join(asymmetricAlgs, ", "))
		}
	}
	if is.MaxTokenLifetime < 0 {
		bad(f+"max_token_lifetime", "must not be negative")
	}
	if is.ClockSkew < 0 || is.ClockSkew > 5*time.Minute {
		bad(f+"clock_skew", "must be between 0 and 5m, got %s", is.ClockSkew)
	}
	if is.JWKSRefreshInterval < 0 {
		bad(f+"jwks_refresh_interval", "must not be negative")
	}
	if len(is.Rules) == 0 {
		bad(f+"rules", "list at least one rule (without one every exchange is refused)")
	}
	for j, r := range is.Rules {
		rf := fmt.Sprintf("%srules[%d]", f, j)
		if strings.TrimSpace(r.Name) == "" {
			bad(rf+".name", "a rule needs a name (it names the issued keys and the audit rows)")
		}
		if len(r.Claims) == 0 {
			bad(rf+".claims", "list at least one claim pattern (use sub: \"*\" to match every token on purpose)")
		}
		if r.Account == "" {
			bad(rf+".account", "must name the account the issued keys spend")
		}
		if r.Key.TTL < 0 {
			bad(rf+".key.ttl", "must not be negative")
		}
		if r.RefreshTTL < 0 {
			bad(rf+".refresh_ttl", "must not be negative")
		}
		if r.Key.RPM < 0 || r.Key.TPM < 0 || r.Key.MaxConcurrent < 0 {
			bad(rf+".key", "rpm, tpm and max_concurrent must not be negative")
		}
	}
}
