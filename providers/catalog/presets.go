package catalog

import (
	"maps"
	"net"
	"net/url"
	"strings"

	"github.com/xroute/xroute/config"
)

// Preset is what xroute knows about one provider out of the box: its wire
// format, where it lives, which environment variable enables it, and how
// its API departs from OpenAI's (Quirks).
type Preset struct {
	// Name is the provider name used in config and in the catalog.
	Name string
	// Type is the wire format (config providers[].type): "openai" for
	// OpenAI-compatible APIs, or "anthropic", "gemini", "azure", "bedrock".
	Type string
	// BaseURL is the default prefix the adapter appends its resource path
	// to (".../v1" + "/chat/completions"). Empty when there is no usable
	// default (Azure: one endpoint per resource). "{region}" is replaced by
	// the region for regional APIs.
	BaseURL string
	// KeyEnv is the environment variable that holds the API key and, when
	// set, enables the preset in FromEnv. KeyEnvAliases are also accepted.
	KeyEnv        string
	KeyEnvAliases []string
	// BaseURLEnv (and aliases) override BaseURL. For Keyless presets it is
	// what enables them.
	BaseURLEnv        string
	BaseURLEnvAliases []string
	// APIVersion is the default api-version (Azure) or version header value
	// the adapter should send; APIVersionEnv overrides it.
	APIVersion    string
	APIVersionEnv string
	// RegionEnvs are read in order for regional APIs; DefaultRegion applies
	// when none is set.
	RegionEnvs    []string
	DefaultRegion string
	// Headers are extra, non-secret headers for every upstream request.
	Headers map[string]string
	// Quirks apply to every model of this provider (models may add more).
	Quirks Quirks
	// Keyless marks local servers that need no key; KeyEnv, if any, is
	// optional for them.
	Keyless bool
	// Docs is where the facts above come from.
	Docs string
}

// Presets returns the built-in presets in a fixed order. Each call returns
// fresh values: callers may modify the result.
func Presets() []Preset {
	return []Preset{
		{
			Name: "openai", Type: "openai",
			BaseURL: "https://api.openai.com/v1",
			KeyEnv:  "OPENAI_API_KEY",
			// Reasoning models (o-series, gpt-5*) reject sampling parameters
			// and max_tokens; those quirks are per model in models.yaml.
			Docs: "https://platform.openai.com/docs/api-reference/chat",
		},
		{
			Name: "anthropic", Type: "anthropic",
			BaseURL: "https://api.anthropic.com/v1",
			KeyEnv:  "ANTHROPIC_API_KEY",
			// The Messages API requires the anthropic-version header;
			// 2023-06-01 is the documented current value.
			APIVersion: "2023-06-01",
			// The Messages API returns a single completion (no n).
			Quirks: Quirks{MaxN: 1},
			Docs:   "https://docs.anthropic.com/en/api/messages",
		},
		{
			Name: "gemini", Type: "gemini",
			BaseURL: "https://generativelanguage.googleapis.com/v1beta",
			KeyEnv:  "GEMINI_API_KEY",
			// Google's genai SDKs also read GOOGLE_API_KEY.
			KeyEnvAliases: []string{"GOOGLE_API_KEY"},
			Docs:          "https://ai.google.dev/gemini-api/docs",
		},
		{
			Name: "azure", Type: "azure",
			// No default: each Azure OpenAI resource has its own endpoint
			// (https://<resource>.openai.azure.com); the model field is the
			// deployment name.
			KeyEnv:     "AZURE_OPENAI_API_KEY",
			BaseURLEnv: "AZURE_OPENAI_ENDPOINT",
			// The openai SDKs read OPENAI_API_VERSION for Azure. The default
			// below is the GA data-plane version we last saw documented;
			// uncertain whether a newer GA version exists.
			APIVersion:    "2024-10-21",
			APIVersionEnv: "OPENAI_API_VERSION",
			Docs:          "https://learn.microsoft.com/azure/ai-services/openai/reference",
		},
		{
			Name: "bedrock", Type: "bedrock",
			BaseURL: "https://bedrock-runtime.{region}.amazonaws.com",
			// Bedrock API keys (bearer tokens). SigV4 credentials are not
			// auto-detected: configure those providers explicitly.
			KeyEnv:        "AWS_BEARER_TOKEN_BEDROCK",
			RegionEnvs:    []string{"AWS_REGION", "AWS_DEFAULT_REGION"},
			DefaultRegion: "us-east-1",
			Docs:          "https://docs.aws.amazon.com/bedrock/latest/userguide/api-keys-use.html",
		},
		{
			Name: "groq", Type: "openai",
			BaseURL: "https://api.groq.com/openai/v1",
			KeyEnv:  "GROQ_API_KEY",
			// "The following fields are currently not supported and will
			// result in a 400 error: logprobs, logit_bias, top_logprobs,
			// messages[].name; if N is supplied, it must be equal to 1."
			// (Groq also turns temperature 0 into 1e-8; nothing to rewrite.)
			Quirks: Quirks{
				Drop: []string{"logprobs", "top_logprobs", "logit_bias", "messages.#.name"},
				MaxN: 1,
			},
			Docs: "https://console.groq.com/docs/openai",
		},
		{
			Name: "mistral", Type: "openai",
			BaseURL: "https://api.mistral.ai/v1",
			KeyEnv:  "MISTRAL_API_KEY",
			// Mistral rejects unknown fields ("Extra inputs are not
			// permitted", strict validation since 2024-01-11). Its chat
			// schema names the seed random_seed and the output cap
			// max_tokens; it has no logprobs, logit_bias, user,
			// stream_options, service_tier, store or metadata fields.
			// Uncertain: whether usage is still sent at the end of a stream
			// without stream_options (Mistral's own schema has no such
			// field, so we drop it rather than fail).
			Quirks: Quirks{
				Rename: map[string]string{"seed": "random_seed", "max_completion_tokens": "max_tokens"},
				Drop:   []string{"logprobs", "top_logprobs", "logit_bias", "user", "stream_options", "service_tier", "store", "metadata"},
			},
			Docs: "https://docs.mistral.ai/api/",
		},
		{
			Name: "deepseek", Type: "openai",
			BaseURL: "https://api.deepseek.com",
			KeyEnv:  "DEEPSEEK_API_KEY",
			// The API reference documents max_tokens only; whether
			// max_completion_tokens is also accepted is unverified, so we
			// rename it. deepseek-reasoner's own limits are in models.yaml.
			Quirks: Quirks{Rename: map[string]string{"max_completion_tokens": "max_tokens"}},
			Docs:   "https://api-docs.deepseek.com/api/create-chat-completion",
		},
		{
			Name: "together", Type: "openai",
			// api.together.ai is the host in current docs; the older
			// api.together.xyz also served the same API.
			BaseURL: "https://api.together.ai/v1",
			KeyEnv:  "TOGETHER_API_KEY",
			// Together documents some OpenAI-compatibility limits we could
			// not read in full; none is encoded here.
			Docs: "https://docs.together.ai/docs/openai-api-compatibility",
		},
		{
			Name: "fireworks", Type: "openai",
			BaseURL: "https://api.fireworks.ai/inference/v1",
			KeyEnv:  "FIREWORKS_API_KEY",
			Docs:    "https://docs.fireworks.ai/tools-sdks/openai-compatibility",
		},
		{
			Name: "openrouter", Type: "openai",
			BaseURL: "https://openrouter.ai/api/v1",
			KeyEnv:  "OPENROUTER_API_KEY",
			// Optional app attribution headers; HTTP-Referer (the app's URL)
			// is left to the operator.
			Headers: map[string]string{"X-Title": "xroute"},
			Docs:    "https://openrouter.ai/docs/api-reference/overview",
		},
		{
			Name: "xai", Type: "openai",
			BaseURL: "https://api.x.ai/v1",
			KeyEnv:  "XAI_API_KEY",
			// grok-4 rejects reasoning_effort (HTTP 400 "Model does not
			// support parameter reasoningEffort"); per model in models.yaml.
			Docs: "https://docs.x.ai/docs/api-reference",
		},
		{
			Name: "perplexity", Type: "openai",
			// No /v1: the API lives at https://api.perplexity.ai/chat/completions.
			BaseURL:       "https://api.perplexity.ai",
			KeyEnv:        "PERPLEXITY_API_KEY",
			KeyEnvAliases: []string{"PPLX_API_KEY"},
			// Sonar models do not do function calling: a request with tools
			// cannot be served here. tool_choice without tools is dropped.
			// Also known, not rewritten: stricter role alternation than
			// OpenAI, and a per-request search fee that Cost does not model.
			Quirks: Quirks{
				Reject: []string{"tools", "functions"},
				Drop:   []string{"tool_choice", "parallel_tool_calls"},
			},
			Docs: "https://docs.perplexity.ai/guides/chat-completions-guide",
		},
		{
			Name: "cerebras", Type: "openai",
			BaseURL: "https://api.cerebras.ai/v1",
			KeyEnv:  "CEREBRAS_API_KEY",
			// "These fields will result in a 400 error: frequency_penalty,
			// logit_bias, presence_penalty, parallel_tool_calls,
			// service_tier"; tool_choice only accepts "auto" or "none".
			// (Quoted from Cerebras' compatibility page via client docs; the
			// current page may have relaxed some of these.)
			Quirks: Quirks{
				Drop:   []string{"frequency_penalty", "presence_penalty", "logit_bias", "parallel_tool_calls", "service_tier"},
				Reject: []string{"tool_choice=required", "tool_choice.type=function"},
			},
			Docs: "https://inference-docs.cerebras.ai/resources/openai",
		},
		{
			Name: "deepinfra", Type: "openai",
			BaseURL: "https://api.deepinfra.com/v1/openai",
			KeyEnv:  "DEEPINFRA_API_KEY",
			Docs:    "https://deepinfra.com/docs/openai_api",
		},
		{
			Name: "nebius", Type: "openai",
			// Nebius AI Studio is now "Token Factory"; the older host was
			// https://api.studio.nebius.com/v1.
			BaseURL: "https://api.tokenfactory.nebius.com/v1",
			KeyEnv:  "NEBIUS_API_KEY",
			Docs:    "https://docs.tokenfactory.nebius.com/",
		},
		{
			Name: "sambanova", Type: "openai",
			BaseURL: "https://api.sambanova.ai/v1",
			KeyEnv:  "SAMBANOVA_API_KEY",
			Docs:    "https://docs.sambanova.ai/",
		},
		{
			Name: "moonshot", Type: "openai",
			// International endpoint; mainland China uses api.moonshot.cn.
			BaseURL: "https://api.moonshot.ai/v1",
			KeyEnv:  "MOONSHOT_API_KEY",
			Docs:    "https://platform.moonshot.ai/docs/api/chat",
		},
		{
			Name: "alibaba", Type: "openai",
			// DashScope "compatible mode", international region; mainland
			// China uses https://dashscope.aliyuncs.com/compatible-mode/v1.
			BaseURL: "https://dashscope-intl.aliyuncs.com/compatible-mode/v1",
			KeyEnv:  "DASHSCOPE_API_KEY",
			Docs:    "https://www.alibabacloud.com/help/en/model-studio/compatibility-of-openai-with-dashscope",
		},
		{
			Name: "ollama", Type: "openai", Keyless: true,
			BaseURL: "http://localhost:11434/v1",
			// OLLAMA_HOST is Ollama's own variable (host[:port], default
			// port 11434); OLLAMA_BASE_URL is the common client convention.
			BaseURLEnv:        "OLLAMA_BASE_URL",
			BaseURLEnvAliases: []string{"OLLAMA_HOST"},
			// Ollama's documented request fields include max_tokens but not
			// max_completion_tokens, n or logit_bias.
			Quirks: Quirks{
				Rename: map[string]string{"max_completion_tokens": "max_tokens"},
				Drop:   []string{"logit_bias"},
				MaxN:   1,
			},
			Docs: "https://docs.ollama.com/api/openai-compatibility",
		},
		{
			Name: "vllm", Type: "openai", Keyless: true,
			BaseURL:    "http://localhost:8000/v1",
			BaseURLEnv: "VLLM_BASE_URL",
			// vLLM's server reads VLLM_API_KEY when started with a key; we
			// send it when it is set.
			KeyEnv: "VLLM_API_KEY",
			Docs:   "https://docs.vllm.ai/en/latest/serving/openai_compatible_server.html",
		},
		{
			Name: "lmstudio", Type: "openai", Keyless: true,
			BaseURL:    "http://localhost:1234/v1",
			BaseURLEnv: "LMSTUDIO_BASE_URL",
			Docs:       "https://lmstudio.ai/docs/developer/openai-compat",
		},
		{
			Name: "llamacpp", Type: "openai", Keyless: true,
			BaseURL:    "http://localhost:8080/v1",
			BaseURLEnv: "LLAMACPP_BASE_URL",
			Docs:       "https://github.com/ggml-org/llama.cpp/tree/master/tools/server",
		},
	}
}

// PresetByName returns the preset with that name.
func PresetByName(name string) (Preset, bool) {
	for _, p := range Presets() {
		if p.Name == name {
			return p, true
		}
	}
	return Preset{}, false
}

// FromEnv returns a provider entry for every preset whose key variable is
// set (and, for keyless local servers, whose base-URL variable is set), in
// preset order. The key itself is never copied: APIKeyEnv names the
// variable that holds it. A preset without a usable base URL (Azure with no
// AZURE_OPENAI_ENDPOINT) is skipped.
func FromEnv(getenv func(string) string) []config.Provider {
	var out []config.Provider
	for _, p := range Presets() {
		if cp, ok := p.fromEnv(getenv); ok {
			out = append(out, cp)
		}
	}
	return out
}

func (p Preset) fromEnv(getenv func(string) string) (config.Provider, bool) {
	keyVar, _ := firstSet(getenv, p.KeyEnv, p.KeyEnvAliases)
	baseVar, baseVal := firstSet(getenv, p.BaseURLEnv, p.BaseURLEnvAliases)
	if (p.Keyless && baseVar == "") || (!p.Keyless && keyVar == "") {
		return config.Provider{}, false
	}
	base := p.BaseURL
	if baseVal != "" {
		base = normalizeBaseURL(baseVal, p.BaseURL)
	}
	var region string
	if len(p.RegionEnvs) > 0 {
		if _, region = firstSet(getenv, "", p.RegionEnvs); region == "" {
			region = p.DefaultRegion
		}
		base = strings.ReplaceAll(base, "{region}", region)
	}
	if base == "" {
		return config.Provider{}, false
	}
	version := p.APIVersion
	if p.APIVersionEnv != "" {
		if v := strings.TrimSpace(getenv(p.APIVersionEnv)); v != "" {
			version = v
		}
	}
	var headers map[string]string
	if len(p.Headers) > 0 {
		headers = maps.Clone(p.Headers)
	}
	return config.Provider{
		Name:       p.Name,
		Type:       p.Type,
		BaseURL:    base,
		APIKeyEnv:  keyVar,
		APIVersion: version,
		Region:     region,
		Headers:    headers,
	}, true
}

// firstSet returns the first of name, aliases... whose value is not blank,
// with that value.
func firstSet(getenv func(string) string, name string, aliases []string) (string, string) {
	for _, n := range append([]string{name}, aliases...) {
		if n == "" {
			continue
		}
		if v := strings.TrimSpace(getenv(n)); v != "" {
			return n, v
		}
	}
	return "", ""
}

// normalizeBaseURL turns an environment value into a base URL:
// "host:port" (OLLAMA_HOST style, no scheme) gets http:// and, without a
// port, the default URL's port; a URL with no path gets the default URL's
// path ("/v1"); a trailing slash is removed. Anything unparsable is
// returned as given so that config validation reports it.
func normalizeBaseURL(v, def string) string {
	v = strings.TrimSpace(v)
	d, _ := url.Parse(def)
	noScheme := !strings.Contains(v, "://")
	if noScheme {
		v = "http://" + v
	}
	u, err := url.Parse(v)
	if err != nil || u.Host == "" {
		return strings.TrimRight(v, "/")
	}
	if noScheme && u.Port() == "" && d != nil && d.Port() != "" {
		u.Host = net.JoinHostPort(u.Hostname(), d.Port())
	}
	if (u.Path == "" || u.Path == "/") && d != nil {
		u.Path = d.Path
	}
	u.Path = strings.TrimRight(u.Path, "/")
	return u.String()
}
