package config

import (
	"strings"
	"testing"
	"time"
)

func TestIssuerValidation(t *testing.T) {
	good := func() Issuer {
		return Issuer{Issuer: "https://token.actions.githubusercontent.com", Audiences: []string{"xroute"},
			Rules: []IssuerRule{{Name: "ci", Claims: map[string]string{"repository_owner": "octo-org"}, Account: "acct_default"}}}
	}
	cases := []struct {
		name  string
		edit  func(*Issuer)
		field string // "" when valid
	}{
		{"valid", func(*Issuer) {}, ""},
		{"no issuer", func(i *Issuer) { i.Issuer = "" }, "auth.issuers[0].issuer"},
		{"issuer not a URL", func(i *Issuer) { i.Issuer = "github" }, "auth.issuers[0].issuer"},
		{"no audience", func(i *Issuer) { i.Audiences = nil }, "auth.issuers[0].audiences"},
		{"HMAC algorithm", func(i *Issuer) { i.Algorithms = []string{"HS256"} }, "auth.issuers[0].algorithms[0]"},
		{"alg none", func(i *Issuer) { i.Algorithms = []string{"none"} }, "auth.issuers[0].algorithms[0]"},
		{"skew too large", func(i *Issuer) { i.ClockSkew = time.Hour }, "auth.issuers[0].clock_skew"},
		{"no rules", func(i *Issuer) { i.Rules = nil }, "auth.issuers[0].rules"},
		{"rule without claims", func(i *Issuer) { i.Rules[0].Claims = nil }, "auth.issuers[0].rules[0].claims"},
		{"rule without account", func(i *Issuer) { i.Rules[0].Account = "" }, "auth.issuers[0].rules[0].account"},
		{"negative ttl", func(i *Issuer) { i.Rules[0].Key.TTL = -time.Second }, "auth.issuers[0].rules[0].key.ttl"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := Default()
			c.Auth.PepperFile = "/tmp/pepper"
			is := good()
			tc.edit(&is)
			c.Auth.Issuers = []Issuer{is}
			err := c.Validate()
			switch {
			case tc.field == "" && err != nil:
				t.Fatalf("valid issuer refused: %v", err)
			case tc.field != "" && (err == nil || !strings.Contains(err.Error(), tc.field+":")):
				t.Fatalf("err %v, want one naming %s", err, tc.field)
			}
		})
	}
	c := Default()
	c.Auth.Issuers = []Issuer{good(), good()}
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "auth.issuers[1].issuer") {
		t.Fatalf("an issuer listed twice: %v", err)
	}
}

// TestIssuersFromYAML: the README's example loads, durations in the
// house syntax, nested claim names and all, with no unknown-key warning.
func TestIssuersFromYAML(t *testing.T) {
	yml := `
auth:
  pepper_file: /tmp/pepper
  issuers:
    - issuer: https://token.actions.githubusercontent.com
      audiences: [xroute]
      max_token_lifetime: 1h
      rules:
        - name: ci-main
          claims: {repository_owner: octo-org, ref: refs/heads/main}
          account: acct_default
          key: {models: ["gpt-4o*"], endpoints: [chat.completions], rpm: 60, ttl: 15m}
    - issuer: https://kubernetes.default.svc.cluster.local
      jwks_url: https://10.0.0.1/openid/v1/jwks
      audiences: [xroute]
      algorithms: [RS256, ES256]
      rules:
        - name: inference
          claims: {kubernetes.io.namespace: "ml-*", kubernetes.io.serviceaccount.name: inference}
          account: acct_default
          key: {ttl: 1d, max_concurrent: 4}
          refresh_tokens: true
          refresh_ttl: 1w
`
	c, warns, err := LoadWithWarnings(writeFile(t, yml), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(warns) != 0 {
		t.Fatalf("warnings: %v", warns)
	}
	if len(c.Auth.Issuers) != 2 {
		t.Fatalf("issuers: %+v", c.Auth.Issuers)
	}
	k8s := c.Auth.Issuers[1].Rules[0]
	if k8s.Key.TTL != 24*time.Hour || k8s.RefreshTTL != 7*24*time.Hour || !k8s.RefreshTokens || k8s.Claims["kubernetes.io.namespace"] != "ml-*" {
		t.Fatalf("rule %+v", k8s)
	}
	if c.Auth.Issuers[0].Rules[0].Key.TTL != 15*time.Minute || c.Auth.Issuers[0].MaxTokenLifetime != time.Hour {
		t.Fatalf("issuer %+v", c.Auth.Issuers[0])
	}
}
