// Package config loads xroute's configuration: one YAML file, every scalar
// setting overridable from the environment, and defaults good enough that
// `xroute serve` runs with no file at all.
//
// Precedence, lowest first: built-in defaults, the YAML file, XROUTE_*
// environment variables. Validation runs last and names the offending field.
package config

import (
	"strings"
	"time"
)

// Config is the whole configuration. Field tags are the YAML keys; the env
// variable for a field is XROUTE_ followed by its YAML path in upper case,
// joined by underscores (server.addr -> XROUTE_SERVER_ADDR).
type Config struct {
	Server    Server     `yaml:"server"`
	Log       Log        `yaml:"log"`
	Database  Database   `yaml:"database"`
	Redis     Redis      `yaml:"redis"`
	Auth      Auth       `yaml:"auth"`
	Usage     Usage      `yaml:"usage"`
	Responses Responses  `yaml:"responses"`
	Router    Router     `yaml:"router"`
	Limits    Limits     `yaml:"limits"`
	Vault     Vault      `yaml:"vault"`
	Anomaly   Anomaly    `yaml:"anomaly"`
	Audit     Audit      `yaml:"audit"`
	Catalog   Catalog    `yaml:"catalog"`
	Telemetry Telemetry  `yaml:"telemetry"`
	Cache     Cache      `yaml:"cache"`
	Routing   Routing    `yaml:"routing"`
	Providers []Provider `yaml:"providers"`
	Models    []Model    `yaml:"models"`
}

// Server holds the HTTP listener settings.
type Server struct {
	Addr string `yaml:"addr"`
	// MaxBodyBytes caps a request body; larger bodies get 413.
	MaxBodyBytes int64 `yaml:"max_body_bytes"`
	// ShutdownTimeout is how long in-flight requests (streams included) may
	// run after SIGTERM before the server closes them.
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout"`
	// RequestTimeout bounds one request end to end, failover included.
	RequestTimeout time.Duration `yaml:"request_timeout"`
	// StreamKeepAlive is the upstream silence after which an Anthropic
	// Messages stream gets a ping event, as Anthropic's own streams do
	// (0: none), so idle timeouts of clients and proxies do not fire while
	// a model thinks.
	StreamKeepAlive time.Duration `yaml:"stream_keepalive"`
	// BodyReadTimeout bounds reading one request body, from the end of
	// its headers: a caller sending a byte every few seconds is cut (408)
	// instead of holding a goroutine and a socket.
	BodyReadTimeout time.Duration `yaml:"body_read_timeout"`
	// WriteTimeout bounds each write to a caller (a stream's event, an
	// answer): a caller that stops reading is cut instead of holding its
	// stream, its upstream call and its credit hold.
	WriteTimeout time.Duration `yaml:"write_timeout"`
	// PreAuthConns caps the connections one client IP may hold open
	// before any request on them authenticated (0: no cap). Connections
	// from trusted_proxies are not capped.
	PreAuthConns int `yaml:"preauth_conns_per_ip"`
	// TrustedProxies are the proxies (IPs or CIDRs) whose X-Forwarded-For
	// is believed; empty means the client IP is the connection's address.
	// IP allowlists and failed-auth throttling depend on it.
	TrustedProxies []string `yaml:"trusted_proxies"`
	// Metrics serves Prometheus metrics at /metrics (no auth by default:
	// put it behind the network boundary, bind it elsewhere with
	// MetricsAddr, require MetricsToken, or turn it off).
	Metrics bool `yaml:"metrics"`
	// MetricsAddr, when set, serves /metrics on its own listener at this
	// address (e.g. an internal interface) instead of on Addr.
	MetricsAddr string `yaml:"metrics_addr"`
	// MetricsToken, when set, is the bearer token /metrics requires
	// (Prometheus: authorization: {credentials: ...}).
	MetricsToken string `yaml:"metrics_token"`
	// PprofAddr, when set, serves net/http/pprof on its own listener
	// (keep it on loopback); off by default.
	PprofAddr string `yaml:"pprof_addr"`
}

// Log configures zap.
type Log struct {
	Level  string `yaml:"level"`  // debug, info, warn, error
	Format string `yaml:"format"` // json or console
}

// Database selects the store. Path is the SQLite file of the embedded
// default; URL (postgres://...) selects PostgreSQL instead, which several
// replicas share. HoldTTL bounds how long credit held by a request
// survives its replica: a replica killed mid-request leaves its holds in
// the shared store, and any replica's sweeper frees them after HoldTTL.
type Database struct {
	Path    string        `yaml:"path"`
	URL     string        `yaml:"url"`
	HoldTTL time.Duration `yaml:"hold_ttl"`
}

// Postgres reports whether the store is a shared PostgreSQL database.
func (d Database) Postgres() bool {
	return strings.HasPrefix(d.URL, "postgres://") || strings.HasPrefix(d.URL, "postgresql://")
}

// Redis is shared state between replicas (redis://host:port/db). With it,
// a key revoked on one replica is refused by every replica on its next
// request. Empty: single replica.
type Redis struct {
	URL string `yaml:"url"`
	// Timeout bounds each Redis call on the request path (rate limits,
	// concurrency leases). It is short because every request waits for
	// it: a slow Redis must not slow every request. A call that misses it
	// is decided by the replica alone (the limit then holds per replica,
	// so N replicas may admit up to N times a global limit), Redis is not
	// asked again for 5 s, and each such decision is counted in
	// xroute_redis_fallbacks_total. Raise it (at most 5s) on a CPU-starved
	// host where a healthy Redis misses it.
	Timeout time.Duration `yaml:"timeout"`
}

// Auth holds the secret used to hash caller keys. The pepper never lives in
// the database: it comes from XROUTE_AUTH_PEPPER or from PepperFile, which is
// created (mode 0600) on first start when it does not exist.
type Auth struct {
	Pepper     string `yaml:"pepper"`
	PepperFile string `yaml:"pepper_file"`
	// PreviousPeppers are older peppers (newest first) still accepted while
	// keys hashed with them are re-hashed under the current one on use.
	PreviousPeppers string        `yaml:"previous_peppers"`
	CacheTTL        time.Duration `yaml:"cache_ttl"`
	// RotationOverlap is how long a rotated key keeps working (0: at once).
	RotationOverlap time.Duration `yaml:"rotation_overlap"`
	// FailedAuthBurst failures from one IP within a minute start exponential
	// backoff for that IP, up to FailedAuthMaxBackoff.
	FailedAuthBurst      int           `yaml:"failed_auth_burst"`
	FailedAuthMaxBackoff time.Duration `yaml:"failed_auth_max_backoff"`
	// Issuers are the identity providers whose tokens POST /v1/auth/token
	// exchanges for short-lived keys (issuers.go).
	Issuers []Issuer `yaml:"issuers"`
	// EphemeralMaxTTL is the longest life a minted child key may ask for
	// (POST /v1/keys/ephemeral; default 1h).
	EphemeralMaxTTL time.Duration `yaml:"ephemeral_max_ttl"`
}

// Limits are the defaults for keys that set no limits of their own
// (0 = unlimited).
type Limits struct {
	RPM           int `yaml:"rpm"`
	TPM           int `yaml:"tpm"`
	MaxConcurrent int `yaml:"max_concurrent"`
}

// Vault holds the master key that encrypts provider keys at rest. It comes
// from XROUTE_VAULT_MASTER_KEY (one name: a variable spelled otherwise is a
// start-up warning naming this one) or from MasterKeyFile, never from the database.
type Vault struct {
	MasterKey     string `yaml:"master_key"`
	MasterKeyFile string `yaml:"master_key_file"`
}

// Anomaly tunes per-key anomaly detection. Defaults do not fire on normal
// traffic.
type Anomaly struct {
	Enabled bool `yaml:"enabled"`
	// SpikeFactor: a minute's request or token rate above SpikeFactor x the
	// key's baseline (after Warmup of history) is a spike.
	SpikeFactor float64       `yaml:"spike_factor"`
	Warmup      time.Duration `yaml:"warmup"`
	// AuthFailures 401/403 answers for one key within a minute is a burst.
	AuthFailures int `yaml:"auth_failures"`
	// NewIP flags a key used from an IP it has never used, once its
	// baseline is established.
	NewIP bool `yaml:"new_ip"`
	// OffHours flags use in an hour of the week the key has never been used
	// in, once Warmup of history exists.
	OffHours bool `yaml:"off_hours"`
	// Action: "log" (log + audit), "webhook" (also POST to Webhook) or
	// "suspend" (also suspend the key until an operator resumes it).
	Action  string `yaml:"action"`
	Webhook string `yaml:"webhook"`
	// WebhookSecret signs every webhook xroute sends (anomaly and budget
	// alerts): X-Xroute-Signature: t=<unix>,v1=<hex HMAC-SHA256 of
	// "<t>.<body>">. Unset, it is read from WebhookSecretFile, which is
	// created (mode 0600, a random secret) on the first start that has a
	// webhook to send to.
	WebhookSecret     string `yaml:"webhook_secret"`
	WebhookSecretFile string `yaml:"webhook_secret_file"`
}

// Usage tunes the asynchronous usage-record writer.
type Usage struct {
	// SpoolDir holds the append-only spool that makes a record durable
	// before an answer's final byte (default: the database path + ".spool").
	SpoolDir      string        `yaml:"spool_dir"`
	BatchSize     int           `yaml:"batch_size"`
	FlushInterval time.Duration `yaml:"flush_interval"`
	QueueSize     int           `yaml:"queue_size"`
	// SpoolMaxBytes bounds the spool. While the database is down records
	// wait there; once it is (nearly) full, new requests get 503 rather
	// than run unmetered.
	SpoolMaxBytes int64 `yaml:"spool_max_bytes"`
}

// Responses tunes the Responses API's stored responses (kept in the
// database for GET /v1/responses/{id} and previous_response_id, unless a
// request says store: false).
type Responses struct {
	// Retention is how long a stored response stays readable (OpenAI
	// keeps them 30 days); a sweep deletes it after.
	Retention time.Duration `yaml:"retention"`
	// SweepInterval is how often expired responses are deleted.
	SweepInterval time.Duration `yaml:"sweep_interval"`
}

// Router tunes failover.
type Router struct {
	// MaxAttempts is how many deployments one request may try.
	MaxAttempts int `yaml:"max_attempts"`
	// Breaker settings, per deployment.
	BreakerFailures uint32        `yaml:"breaker_failures"`
	BreakerCooldown time.Duration `yaml:"breaker_cooldown"`
	// FirstByteTimeout bounds the wait for a stream's first chunk, from
	// the request (headers included): a silent upstream fails over to the
	// next deployment, the caller having seen nothing (0: no bound).
	FirstByteTimeout time.Duration `yaml:"first_byte_timeout"`
	// StreamIdleTimeout bounds the silence between two chunks of a stream
	// that started: the stream then ends with an error event in the
	// caller's format, and what was delivered is billed (0: no bound).
	// routing.deployments may set either per deployment.
	StreamIdleTimeout time.Duration `yaml:"stream_idle_timeout"`
	// A vault key the upstream refuses (401, invalid key) in
	// KeyFailureThreshold distinct requests within KeyFailureWindow is
	// probed; it leaves the pool during the probe only when those requests
	// came from KeyFailureCallers distinct caller keys, and for good only
	// when the probe is refused too, and never when it is the provider's
	// last key.
	KeyFailureThreshold int           `yaml:"key_failure_threshold"`
	KeyFailureCallers   int           `yaml:"key_failure_callers"`
	KeyFailureWindow    time.Duration `yaml:"key_failure_window"`
	// IdleConnsPerHost is how many idle connections to one provider host
	// are kept for reuse (each closes after 90 s unused). More keeps a
	// burst of streams from dialling (and handshaking) anew when the next
	// burst comes, at the memory of the connections kept: at 5,000
	// streams, 8,192 against 1,024 took the added time to first token
	// from +210 to +84 ms and peak RSS from 1.14x to 1.34x the bare
	// proxy's (loadtest/cmd/bench's many-streams phase).
	IdleConnsPerHost int `yaml:"idle_conns_per_host"`
}

// Telemetry configures OpenTelemetry traces (internal/telemetry). Tracing
// is off unless an endpoint is set here or in OTEL_EXPORTER_OTLP_ENDPOINT
// (or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT), as in every OpenTelemetry SDK.
// A key set here wins over its OTEL_* variable; an empty one leaves the
// variable (or the SDK's default) in force.
type Telemetry struct {
	// Endpoint is the OTLP collector's base URL, as OTEL_EXPORTER_OTLP_ENDPOINT
	// (http://host:4318; /v1/traces is appended for OTLP/HTTP), or its
	// host:port (4317) for gRPC.
	Endpoint string `yaml:"endpoint"`
	// Protocol is http/protobuf (the default) or grpc.
	Protocol string `yaml:"protocol"`
	// Headers are sent with every export, as OTEL_EXPORTER_OTLP_HEADERS
	// ("k1=v1,k2=v2"); never logged.
	Headers string `yaml:"headers"`
	// Insecure exports over gRPC without TLS (an http:// endpoint is plain
	// already).
	Insecure bool `yaml:"insecure"`
	// ServiceName is service.name (default "xroute"), as OTEL_SERVICE_NAME.
	ServiceName string `yaml:"service_name"`
	// ResourceAttributes are added to the resource, as
	// OTEL_RESOURCE_ATTRIBUTES ("deployment.environment.name=prod,...").
	ResourceAttributes string `yaml:"resource_attributes"`
	// Sampler and SamplerArg are OTEL_TRACES_SAMPLER and its argument
	// (parentbased_traceidratio with 0.01 samples 1% of new traces and
	// follows the caller's decision otherwise). Default: parentbased_always_on.
	Sampler    string `yaml:"sampler"`
	SamplerArg string `yaml:"sampler_arg"`
	// CaptureContent puts prompts and completions on spans
	// (gen_ai.input.messages, gen_ai.output.messages). Off by default:
	// they are the callers' data.
	CaptureContent bool `yaml:"capture_content"`
}

// Catalog controls the embedded model catalog (prices, limits,
// capabilities) and the providers enabled from their usual env variables.
type Catalog struct {
	// File is a YAML file in the catalog's format whose entries replace or
	// add to the embedded ones (e.g. negotiated prices).
	File string `yaml:"file"`
	// FromEnv enables every known provider whose key variable is set
	// (OPENAI_API_KEY, ANTHROPIC_API_KEY, GROQ_API_KEY, ...).
	FromEnv bool `yaml:"from_env"`
}

// Provider is one upstream account: a wire format (Type), where it lives and
// the key to use. APIKeyEnv names an environment variable holding the key so
// that secrets stay out of the file.
type Provider struct {
	Name      string        `yaml:"name"`
	Type      string        `yaml:"type"`
	BaseURL   string        `yaml:"base_url"`
	APIKey    string        `yaml:"api_key"`
	APIKeyEnv string        `yaml:"api_key_env"`
	Timeout   time.Duration `yaml:"timeout"`
	// APIVersion is Azure OpenAI's api-version (and Anthropic's
	// anthropic-version when set).
	APIVersion string `yaml:"api_version"`
	// Region is the cloud region of regional APIs (AWS Bedrock).
	Region string `yaml:"region"`
	// Headers are extra headers sent on every upstream request (e.g.
	// OpenRouter's HTTP-Referer). Never put secrets here: use api_key.
	Headers map[string]string `yaml:"headers"`
	// NativeFormats are the API shapes besides chat that an "openai" or
	// "azure" upstream serves itself ("responses", "completions"): a
	// request in one of them is passed through instead of translated.
	// Default: both for api.openai.com, responses for Azure's v1 API, none
	// for other compatible APIs (most serve chat only). ["none"] turns the
	// default off.
	NativeFormats []string `yaml:"native_formats"`
	// Free marks every model this provider serves as costing nothing (a
	// self-hosted server): its deployments without prices of their own,
	// and the provider/model addresses callers build, are served without
	// a credit hold. Without it a model xroute has no price for is refused
	// (400 model_not_priced): free is never a default.
	Free bool `yaml:"free"`
}

// NativeFormatNames are the values native_formats accepts.
var NativeFormatNames = []string{"responses", "completions", "none"}

// Model is a public model name callers use, served by one or more
// deployments tried in order.
type Model struct {
	Name        string       `yaml:"name"`
	OwnedBy     string       `yaml:"owned_by"`
	Deployments []Deployment `yaml:"deployments"`
	// Cache is the model's response cache policy (nil: not cached).
	Cache *ModelCache `yaml:"cache"`
}

// Cache sizes the response cache shared by the models that turn it on
// (each model's own `cache:`), and says what a hit costs.
type Cache struct {
	// MaxBytes bounds the memory the cached answers take on a replica
	// (0: 256 MiB).
	MaxBytes int64 `yaml:"max_bytes"`
	// PriceFraction is the part of the price a hit is billed, 0 to 1
	// (0, the default: a hit is free).
	PriceFraction float64 `yaml:"price_fraction"`
	// CountTPM counts a hit's tokens against the key's TPM limit (off: a
	// hit counts 0 tokens; its request still counts against RPM).
	CountTPM bool `yaml:"count_tpm"`
	// Redis shares the cache between replicas through redis.url when one
	// is configured (default true; false keeps it per replica).
	Redis *bool `yaml:"redis"`
}

// ModelCache is one model's response cache policy. Off unless enabled.
type ModelCache struct {
	Enabled bool `yaml:"enabled"`
	// TTL is how long an answer is kept (0: 1h).
	TTL time.Duration `yaml:"ttl"`
	// Scope is "account" (the default: an answer serves only the account
	// that paid for it) or "global" (every account).
	Scope string `yaml:"scope"`
	// Sampled caches requests with temperature > 0 too (their answers are
	// not deterministic: an operator's choice).
	Sampled bool `yaml:"sampled"`
	// MaxEntryBytes bounds one cached answer (0: 1 MiB); larger ones are
	// not kept.
	MaxEntryBytes int `yaml:"max_entry_bytes"`
}

// Deployment is a provider plus the model id that provider knows.
// Prices (USD per million tokens, as decimal strings such as "0.15") are
// needed only where the catalog does not know the deployment; they
// override the catalog where it does.
type Deployment struct {
	Provider         string `yaml:"provider"`
	Model            string `yaml:"model"`
	InputPrice       string `yaml:"input_price"`
	OutputPrice      string `yaml:"output_price"`
	CachedInputPrice string `yaml:"cached_input_price"`
	// CacheWriteInputPrice prices prompt tokens written to the provider's
	// prompt cache (Anthropic: 1.25x input for 5-minute entries).
	CacheWriteInputPrice string `yaml:"cache_write_input_price"`
	// Free marks this deployment as costing nothing, whatever the catalog
	// says; it excludes prices. A deployment with neither a price (its
	// own or the catalog's) nor free is refused at request time.
	Free bool `yaml:"free"`
}

// Priced reports whether the deployment sets a price of its own.
func (d Deployment) Priced() bool {
	return d.InputPrice != "" || d.OutputPrice != "" || d.CachedInputPrice != "" || d.CacheWriteInputPrice != ""
}

// Default returns the configuration used when no file is given.
func Default() Config {
	return Config{
		Server: Server{
			Addr:            "127.0.0.1:8080",
			MaxBodyBytes:    10 << 20,
			ShutdownTimeout: 30 * time.Second,
			RequestTimeout:  10 * time.Minute,
			StreamKeepAlive: 10 * time.Second,
			BodyReadTimeout: 30 * time.Second,
			WriteTimeout:    30 * time.Second,
			PreAuthConns:    128,
			Metrics:         true,
		},
		Log:      Log{Level: "info", Format: "json"},
		Database: Database{Path: "xroute.db", HoldTTL: 15 * time.Minute},
		Redis:    Redis{Timeout: 200 * time.Millisecond},
		Auth: Auth{PepperFile: "xroute.pepper", CacheTTL: 30 * time.Second, RotationOverlap: 24 * time.Hour, EphemeralMaxTTL: time.Hour,
			FailedAuthBurst: 10, FailedAuthMaxBackoff: 5 * time.Minute},
		Usage:     Usage{BatchSize: 256, FlushInterval: 200 * time.Millisecond, QueueSize: 65536, SpoolMaxBytes: 512 << 20},
		Responses: Responses{Retention: 30 * 24 * time.Hour, SweepInterval: 10 * time.Minute},
		Router: Router{MaxAttempts: 3, IdleConnsPerHost: 1024, BreakerFailures: 5, BreakerCooldown: 30 * time.Second, FirstByteTimeout: time.Minute, StreamIdleTimeout: time.Minute,
			KeyFailureThreshold: 3, KeyFailureCallers: 2, KeyFailureWindow: 5 * time.Minute},
		Vault: Vault{MasterKeyFile: "xroute.master"},
		Anomaly: Anomaly{Enabled: true, SpikeFactor: 10, Warmup: 24 * time.Hour, AuthFailures: 20,
			NewIP: true, OffHours: false, Action: "log", WebhookSecretFile: "xroute.webhook_secret"},
	}
}

// ProviderKey resolves a provider's API key from the config or its env var.
func (p Provider) ProviderKey(getenv func(string) string) string {
	if p.APIKeyEnv != "" {
		return getenv(p.APIKeyEnv)
	}
	return p.APIKey
}

// isDecimal accepts "12", "0.15", "3.000001": digits with at most one dot.
func isDecimal(s string) bool {
	dot := false
	for i, c := range s {
		switch {
		case c >= '0' && c <= '9':
		case c == '.' && !dot && i > 0 && i < len(s)-1:
			dot = true
		default:
			return false
		}
	}
	return s != ""
}
