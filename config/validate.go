package config

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"
)

// FieldError names the field that failed validation.
type FieldError struct {
	Field string
	Msg   string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Msg }

// Validate checks every setting and reports all problems at once.
func (c *Config) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, &FieldError{Field: field, Msg: fmt.Sprintf(format, args...)})
	}
	if c.Server.Addr == "" {
		bad("server.addr", "must not be empty")
	}
	if c.Cache.MaxBytes < 0 {
		bad("cache.max_bytes", "must not be negative")
	}
	if c.Cache.PriceFraction < 0 || c.Cache.PriceFraction > 1 {
		bad("cache.price_fraction", "must be between 0 and 1, got %v", c.Cache.PriceFraction)
	}
	for i, m := range c.Models {
		if m.Cache == nil {
			continue
		}
		f := fmt.Sprintf("models[%d].cache", i)
		switch m.Cache.Scope {
		case "", "account", "global":
		default:
			bad(f+".scope", "must be account or global, got %q", m.Cache.Scope)
		}
		if m.Cache.TTL < 0 {
			bad(f+".ttl", "must not be negative")
		}
		if m.Cache.MaxEntryBytes < 0 {
			bad(f+".max_entry_bytes", "must not be negative")
		}
	}
	if c.Server.MaxBodyBytes <= 0 {
		bad("server.max_body_bytes", "must be positive, got %d", c.Server.MaxBodyBytes)
	}
	if c.Server.ShutdownTimeout < 0 {
		bad("server.shutdown_timeout", "must not be negative")
	}
	if c.Server.RequestTimeout <= 0 {
		bad("server.request_timeout", "must be positive")
	}
	for i, p := range c.Server.TrustedProxies {
		if _, err := netip.ParsePrefix(p); err != nil {
			if _, err := netip.ParseAddr(p); err != nil {
				bad(fmt.Sprintf("server.trusted_proxies[%d]", i), "%q is neither an IP nor a CIDR", p)
			}
		}
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		bad("log.level", "must be one of debug, info, warn, error; got %q", c.Log.Level)
	}
	switch c.Log.Format {
	case "json", "console":
	default:
		bad("log.format", "must be json or console; got %q", c.Log.Format)
	}
	if c.Database.Path == "" {
		bad("database.path", "must not be empty")
	}
	if c.Database.URL != "" && !c.Database.Postgres() {
		bad("database.url", "must be a postgres:// or postgresql:// URL")
	}
	// A hold swept while its request still runs, or before the usage
	// writer (its retries, its flush interval) has stored the request's
	// debit, could be spent twice: keep a minute's margin over the
	// longest request.
	if floor := max(c.Server.RequestTimeout, 0) + time.Minute; c.Database.HoldTTL < floor {
		bad("database.hold_ttl", "must be at least server.request_timeout (%s) + 1m = %s; got %s", c.Server.RequestTimeout, floor, c.Database.HoldTTL)
	}
	if c.Redis.Timeout <= 0 || c.Redis.Timeout > 5*time.Second {
		bad("redis.timeout", "must be above 0 and at most 5s; got %s", c.Redis.Timeout)
	}
	if c.Auth.Pepper == "" && c.Auth.PepperFile == "" {
		bad("auth.pepper_file", "set auth.pepper_file or XROUTE_AUTH_PEPPER")
	}
	if c.Auth.Pepper != "" && len(c.Auth.Pepper) < 32 {
		bad("auth.pepper", "must be at least 32 characters")
	}
	if c.Auth.CacheTTL <= 0 {
		bad("auth.cache_ttl", "must be positive")
	}
	if c.Auth.EphemeralMaxTTL <= 0 {
		bad("auth.ephemeral_max_ttl", "must be positive (the longest life of a minted child key, e.g. 1h)")
	}
	if c.Auth.RotationOverlap < 0 {
		bad("auth.rotation_overlap", "must not be negative (0 expires the old key at once)")
	}
	if c.Auth.FailedAuthBurst <= 0 {
		bad("auth.failed_auth_burst", "must be at least 1")
	}
	validateIssuers(c.Auth.Issuers, bad)
	if c.Auth.FailedAuthMaxBackoff <= 0 {
		bad("auth.failed_auth_max_backoff", "must be positive")
	}
	if c.Limits.RPM < 0 || c.Limits.TPM < 0 || c.Limits.MaxConcurrent < 0 {
		bad("limits", "rpm, tpm and max_concurrent must not be negative")
	}
	if c.Server.MetricsToken != "" && len(c.Server.MetricsToken) < 16 {
		bad("server.metrics_token", "must be at least 16 characters")
	}
	if c.Server.MetricsAddr != "" && c.Server.MetricsAddr == c.Server.Addr {
		bad("server.metrics_addr", "must differ from server.addr (leave it empty to serve /metrics there)")
	}
	if c.Anomaly.Webhook != "" && c.Anomaly.WebhookSecret == "" && c.Anomaly.WebhookSecretFile == "" {
		bad("anomaly.webhook_secret_file", "webhooks are signed: set anomaly.webhook_secret_file or XROUTE_ANOMALY_WEBHOOK_SECRET")
	}
	if c.Anomaly.WebhookSecret != "" && len(c.Anomaly.WebhookSecret) < 16 {
		bad("anomaly.webhook_secret", "must be at least 16 characters")
	}
	if c.Vault.MasterKey == "" && c.Vault.MasterKeyFile == "" {
		bad("vault.master_key_file", "set vault.master_key_file or XROUTE_VAULT_MASTER_KEY")
	}
	if c.Anomaly.Enabled {
		if c.Anomaly.SpikeFactor <= 1 {
			bad("anomaly.spike_factor", "must be above 1, got %v", c.Anomaly.SpikeFactor)
		}
		if c.Anomaly.AuthFailures <= 0 {
			bad("anomaly.auth_failures", "must be at least 1")
		}
		switch c.Anomaly.Action {
		case "log", "suspend":
		case "webhook":
			if !strings.HasPrefix(c.Anomaly.Webhook, "http://") && !strings.HasPrefix(c.Anomaly.Webhook, "https://") {
				bad("anomaly.webhook", "action webhook needs an http(s) URL")
			}
		default:
			bad("anomaly.action", "must be log, webhook or suspend; got %q", c.Anomaly.Action)
		}
	}
	if c.Usage.SpoolMaxBytes < 1<<20 {
		bad("usage.spool_max_bytes", "must be at least 1 MiB (1048576); got %d", c.Usage.SpoolMaxBytes)
	}
	if c.Usage.BatchSize <= 0 {
		bad("usage.batch_size", "must be positive")
	}
	if c.Usage.FlushInterval <= 0 {
		bad("usage.flush_interval", "must be positive")
	}
	if c.Usage.QueueSize < c.Usage.BatchSize {
		bad("usage.queue_size", "must be at least usage.batch_size (%d)", c.Usage.BatchSize)
	}
	if c.Router.MaxAttempts <= 0 {
		bad("router.max_attempts", "must be at least 1")
	}
	if c.Server.StreamKeepAlive < 0 {
		bad("server.stream_keepalive", "must not be negative (0 turns pings off)")
	}
	if c.Server.BodyReadTimeout <= 0 {
		bad("server.body_read_timeout", "must be positive (e.g. 30s)")
	}
	if c.Server.WriteTimeout <= 0 {
		bad("server.write_timeout", "must be positive (e.g. 30s)")
	}
	if c.Server.PreAuthConns < 0 {
		bad("server.preauth_conns_per_ip", "must not be negative (0 turns the cap off)")
	}
	if c.Router.FirstByteTimeout < 0 {
		bad("router.first_byte_timeout", "must not be negative (0: no bound)")
	}
	if c.Router.IdleConnsPerHost <= 0 {
		bad("router.idle_conns_per_host", "must be positive (e.g. 1024)")
	}
	if c.Router.StreamIdleTimeout < 0 {
		bad("router.stream_idle_timeout", "must not be negative (0: no bound)")
	}
	if c.Responses.Retention <= 0 {
		bad("responses.retention", "must be positive (e.g. 720h)")
	}
	if c.Responses.SweepInterval <= 0 {
		bad("responses.sweep_interval", "must be positive (e.g. 10m)")
	}
	if c.Router.BreakerFailures == 0 {
		bad("router.breaker_failures", "must be at least 1")
	}
	if c.Router.BreakerCooldown <= 0 {
		bad("router.breaker_cooldown", "must be positive")
	}
	if c.Router.KeyFailureThreshold < 1 {
		bad("router.key_failure_threshold", "must be at least 1")
	}
	if c.Router.KeyFailureCallers < 1 {
		bad("router.key_failure_callers", "must be at least 1")
	}
	if c.Router.KeyFailureWindow <= 0 {
		bad("router.key_failure_window", "must be positive (e.g. 5m)")
	}
	providers := make(map[string]bool, len(c.Providers))
	for i, p := range c.Providers {
		f := fmt.Sprintf("providers[%d]", i)
		switch {
		case p.Name == "":
			bad(f+".name", "must not be empty")
		case providers[p.Name]:
			bad(f+".name", "duplicate provider %q", p.Name)
		}
		providers[p.Name] = true
		if p.Type == "" {
			bad(f+".type", "must not be empty (e.g. openai)")
		}
		if p.BaseURL != "" && !strings.HasPrefix(p.BaseURL, "http://") && !strings.HasPrefix(p.BaseURL, "https://") {
			bad(f+".base_url", "must start with http:// or https://, got %q", p.BaseURL)
		}
		if p.APIKey != "" && p.APIKeyEnv != "" {
			bad(f+".api_key", "set api_key or api_key_env, not both")
		}
		if p.Timeout < 0 {
			bad(f+".timeout", "must not be negative")
		}
		for j, nf := range p.NativeFormats {
			if !slices.Contains(NativeFormatNames, nf) {
				bad(fmt.Sprintf("%s.native_formats[%d]", f, j), "unknown format %q (known: %s)", nf, strings.Join(NativeFormatNames, ", "))
			}
		}
	}
	models := make(map[string]bool, len(c.Models))
	for i, m := range c.Models {
		f := fmt.Sprintf("models[%d]", i)
		switch {
		case m.Name == "":
			bad(f+".name", "must not be empty")
		case models[m.Name]:
			bad(f+".name", "duplicate model %q", m.Name)
		}
		models[m.Name] = true
		if len(m.Deployments) == 0 {
			bad(f+".deployments", "needs at least one deployment")
		}
		for j, d := range m.Deployments {
			df := fmt.Sprintf("%s.deployments[%d]", f, j)
			if !providers[d.Provider] {
				bad(df+".provider", "unknown provider %q", d.Provider)
			}
			if d.Model == "" {
				bad(df+".model", "must not be empty")
			}
			for name, v := range map[string]string{"input_price": d.InputPrice, "output_price": d.OutputPrice, "cached_input_price": d.CachedInputPrice, "cache_write_input_price": d.CacheWriteInputPrice} {
				if v != "" && !isDecimal(v) {
					bad(df+"."+name, "must be a decimal number of USD per million tokens, e.g. \"0.15\"; got %q", v)
				}
			}
			if d.Free && d.Priced() {
				bad(df+".free", "a free deployment has no prices: remove free, or its prices")
			}
		}
	}
	errs = append(errs, c.Routing.Validate())
	errs = append(errs, c.Audit.Validate())
	return errors.Join(errs...)
}
