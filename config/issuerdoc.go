package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"time"

	"go.yaml.in/yaml/v3"
)

// IssuerDoc is an issuer as the admin API and the CLI read and write it
// (JSON, or YAML for `xroute issuers add -f`): the config file's field
// names, durations as text ("1h", "30d"; empty: the default). It is also
// how an issuer added through the admin API is stored.
type IssuerDoc struct {
	Issuer              string          `json:"issuer" yaml:"issuer"`
	JWKSURL             string          `json:"jwks_url,omitempty" yaml:"jwks_url,omitempty"`
	Audiences           []string        `json:"audiences" yaml:"audiences"`
	Algorithms          []string        `json:"algorithms,omitempty" yaml:"algorithms,omitempty"`
	MaxTokenLifetime    string          `json:"max_token_lifetime,omitempty" yaml:"max_token_lifetime,omitempty"`
	ClockSkew           string          `json:"clock_skew,omitempty" yaml:"clock_skew,omitempty"`
	JWKSRefreshInterval string          `json:"jwks_refresh_interval,omitempty" yaml:"jwks_refresh_interval,omitempty"`
	Rules               []IssuerRuleDoc `json:"rules" yaml:"rules"`
}

// IssuerRuleDoc is IssuerRule in an IssuerDoc.
type IssuerRuleDoc struct {
	Name          string            `json:"name" yaml:"name"`
	Claims        map[string]string `json:"claims" yaml:"claims"`
	Account       string            `json:"account" yaml:"account"`
	Key           KeyTemplateDoc    `json:"key" yaml:"key"`
	RefreshTokens bool              `json:"refresh_tokens,omitempty" yaml:"refresh_tokens,omitempty"`
	RefreshTTL    string            `json:"refresh_ttl,omitempty" yaml:"refresh_ttl,omitempty"`
}

// KeyTemplateDoc is KeyTemplate in an IssuerDoc.
type KeyTemplateDoc struct {
	Models          []string `json:"models,omitempty" yaml:"models,omitempty"`
	Endpoints       []string `json:"endpoints,omitempty" yaml:"endpoints,omitempty"`
	RPM             int      `json:"rpm,omitempty" yaml:"rpm,omitempty"`
	TPM             int      `json:"tpm,omitempty" yaml:"tpm,omitempty"`
	MaxConcurrent   int      `json:"max_concurrent,omitempty" yaml:"max_concurrent,omitempty"`
	TTL             string   `json:"ttl,omitempty" yaml:"ttl,omitempty"`
	OutliveIdentity bool     `json:"outlive_identity,omitempty" yaml:"outlive_identity,omitempty"`
}

// NewIssuerDoc renders is (as set, defaults not filled in).
func NewIssuerDoc(is Issuer) IssuerDoc {
	d := IssuerDoc{Issuer: is.Issuer, JWKSURL: is.JWKSURL, Audiences: is.Audiences, Algorithms: is.Algorithms,
		MaxTokenLifetime: docDuration(is.MaxTokenLifetime), ClockSkew: docDuration(is.ClockSkew),
		JWKSRefreshInterval: docDuration(is.JWKSRefreshInterval), Rules: make([]IssuerRuleDoc, len(is.Rules))}
	for i, r := range is.Rules {
		d.Rules[i] = IssuerRuleDoc{Name: r.Name, Claims: r.Claims, Account: r.Account, RefreshTokens: r.RefreshTokens, RefreshTTL: docDuration(r.RefreshTTL),
			Key: KeyTemplateDoc{Models: r.Key.Models, Endpoints: r.Key.Endpoints, RPM: r.Key.RPM, TPM: r.Key.TPM, MaxConcurrent: r.Key.MaxConcurrent,
				TTL: docDuration(r.Key.TTL), OutliveIdentity: r.Key.OutliveIdentity}}
	}
	return d
}

func docDuration(d time.Duration) string {
	if d == 0 {
		return ""
	}
	return FormatDuration(d)
}

// Parse converts the document and validates the result with the config
// file's rules. Every problem is a *FieldError naming its field
// (errors.Join of them).
func (d IssuerDoc) Parse() (Issuer, error) {
	var errs []error
	dur := func(field, v string) time.Duration {
		if v == "" {
			return 0
		}
		t, err := ParseDuration(v)
		if err != nil {
			errs = append(errs, &FieldError{Field: field, Msg: err.Error()})
		}
		return t
	}
	is := Issuer{Issuer: d.Issuer, JWKSURL: d.JWKSURL, Audiences: d.Audiences, Algorithms: d.Algorithms,
		MaxTokenLifetime:    dur("max_token_lifetime", d.MaxTokenLifetime),
		ClockSkew:           dur("clock_skew", d.ClockSkew),
		JWKSRefreshInterval: dur("jwks_refresh_interval", d.JWKSRefreshInterval)}
	for i, r := range d.Rules {
		f := fmt.Sprintf("rules[%d].", i)
		is.Rules = append(is.Rules, IssuerRule{Name: r.Name, Claims: r.Claims, Account: r.Account, RefreshTokens: r.RefreshTokens,
			RefreshTTL: dur(f+"refresh_ttl", r.RefreshTTL),
			Key: KeyTemplate{Models: r.Key.Models, Endpoints: r.Key.Endpoints, RPM: r.Key.RPM, TPM: r.Key.TPM, MaxConcurrent: r.Key.MaxConcurrent,
				TTL: dur(f+"key.ttl", r.Key.TTL), OutliveIdentity: r.Key.OutliveIdentity}})
	}
	if err := is.Validate(); err != nil {
		errs = append(errs, err)
	}
	return is, errors.Join(errs...)
}

var yamlUnknownField = regexp.MustCompile(`field (\S+) not found in type`)

// ParseIssuerDoc reads an issuer document, JSON (an object) or YAML, and
// refuses a field it does not know: a misspelt setting must not silently
// become its default. A malformed document is one *FieldError.
func ParseIssuerDoc(data []byte) (IssuerDoc, error) {
	var d IssuerDoc
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) == 0 {
		return d, &FieldError{Field: "body", Msg: "an issuer document is required"}
	}
	if trimmed[0] == '{' {
		dec := json.NewDecoder(bytes.NewReader(trimmed))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&d); err != nil {
			var te *json.UnmarshalTypeError
			if errors.As(err, &te) {
				return d, &FieldError{Field: te.Field, Msg: "want a " + te.Type.String() + ", got a JSON " + te.Value}
			}
			var name string
			if _, scanErr := fmt.Sscanf(err.Error(), "json: unknown field %q", &name); scanErr == nil {
				return d, &FieldError{Field: name, Msg: "is not an issuer setting"}
			}
			return d, &FieldError{Field: "body", Msg: "not a JSON object: " + err.Error()}
		}
		if dec.More() {
			return d, &FieldError{Field: "body", Msg: "one JSON object expected"}
		}
		return d, nil
	}
	dec := yaml.NewDecoder(bytes.NewReader(trimmed))
	dec.KnownFields(true)
	if err := dec.Decode(&d); err != nil {
		if m := yamlUnknownField.FindStringSubmatch(err.Error()); m != nil {
			return d, &FieldError{Field: m[1], Msg: "is not an issuer setting"}
		}
		return d, &FieldError{Field: "body", Msg: "not a JSON or YAML issuer: " + err.Error()}
	}
	return d, nil
}
