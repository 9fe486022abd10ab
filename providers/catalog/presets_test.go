package catalog

import (
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/xroute/xroute/config"
)

func fakeEnv(kv ...string) func(string) string {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return func(k string) string { return m[k] }
}

func TestPresetsWellFormed(t *testing.T) {
	want := []string{"openai", "anthropic", "gemini", "azure", "bedrock", "groq", "mistral", "deepseek",
		"together", "fireworks", "openrouter", "xai", "perplexity", "cerebras", "deepinfra", "nebius",
		"sambanova", "moonshot", "alibaba", "ollama", "vllm", "lmstudio", "llamacpp"}
	var names []string
	for _, p := range Presets() {
		names = append(names, p.Name)
		t.Run(p.Name, func(t *testing.T) {
			switch p.Type {
			case "openai", "anthropic", "gemini", "azure", "bedrock":
			default:
				t.Errorf("type %q", p.Type)
			}
			if p.BaseURL == "" && p.BaseURLEnv == "" {
				t.Error("no base URL and no way to set one")
			}
			if p.BaseURL != "" && !strings.HasPrefix(p.BaseURL, "https://") && !(p.Keyless && strings.HasPrefix(p.BaseURL, "http://")) {
				t.Errorf("base URL %q: hosted APIs must use https", p.BaseURL)
			}
			if p.Keyless != (p.KeyEnv == "" || p.Name == "vllm") {
				t.Errorf("keyless=%v with key env %q", p.Keyless, p.KeyEnv)
			}
			if p.Keyless && p.BaseURLEnv == "" {
				t.Error("a keyless preset needs a base-URL variable to enable it")
			}
			if p.Docs == "" {
				t.Error("no docs reference")
			}
			if _, err := p.Quirks.Apply([]byte(`{"model":"m","messages":[]}`)); err != nil {
				t.Errorf("quirks fail on a plain request: %v", err)
			}
		})
	}
	if !reflect.DeepEqual(names, want) {
		t.Fatalf("presets = %v\nwant      %v", names, want)
	}
	if _, ok := PresetByName("nope"); ok {
		t.Error("PresetByName(nope) succeeded")
	}
	// Presets returns fresh values.
	Presets()[5].Quirks.Drop[0] = "mutated"
	if preset(t, "groq").Quirks.Drop[0] == "mutated" {
		t.Error("Presets shares state between calls")
	}
}

func TestFromEnv(t *testing.T) {
	const secret = "sk-very-secret-value"
	tests := []struct {
		name string
		env  []string
		want []config.Provider
	}{
		{name: "nothing set", env: nil, want: nil},
		{
			name: "openai key",
			env:  []string{"OPENAI_API_KEY", secret},
			want: []config.Provider{{Name: "openai", Type: "openai", BaseURL: "https://api.openai.com/v1", APIKeyEnv: "OPENAI_API_KEY"}},
		},
		{
			name: "blank values do not count",
			env:  []string{"OPENAI_API_KEY", "  ", "OLLAMA_HOST", ""},
			want: nil,
		},
		{
			name: "perplexity alias",
			env:  []string{"PPLX_API_KEY", secret},
			want: []config.Provider{{Name: "perplexity", Type: "openai", BaseURL: "https://api.perplexity.ai", APIKeyEnv: "PPLX_API_KEY"}},
		},
		{
			name: "primary name wins over alias",
			env:  []string{"PPLX_API_KEY", secret, "PERPLEXITY_API_KEY", secret},
			want: []config.Provider{{Name: "perplexity", Type: "openai", BaseURL: "https://api.perplexity.ai", APIKeyEnv: "PERPLEXITY_API_KEY"}},
		},
		{
			name: "anthropic carries its version; openrouter its headers",
			env:  []string{"OPENROUTER_API_KEY", secret, "ANTHROPIC_API_KEY", secret},
			want: []config.Provider{
				{Name: "anthropic", Type: "anthropic", BaseURL: "https://api.anthropic.com/v1", APIKeyEnv: "ANTHROPIC_API_KEY", APIVersion: "2023-06-01"},
				{Name: "openrouter", Type: "openai", BaseURL: "https://openrouter.ai/api/v1", APIKeyEnv: "OPENROUTER_API_KEY", Headers: map[string]string{"X-Title": "xroute"}},
			},
		},
		{
			name: "azure needs its endpoint",
			env:  []string{"AZURE_OPENAI_API_KEY", secret},
			want: nil,
		},
		{
			name: "azure with endpoint and version",
			env:  []string{"AZURE_OPENAI_API_KEY", secret, "AZURE_OPENAI_ENDPOINT", "https://res.openai.azure.com/", "OPENAI_API_VERSION", "2025-01-01-preview"},
			want: []config.Provider{{Name: "azure", Type: "azure", BaseURL: "https://res.openai.azure.com", APIKeyEnv: "AZURE_OPENAI_API_KEY", APIVersion: "2025-01-01-preview"}},
		},
		{
			name: "bedrock default region",
			env:  []string{"AWS_BEARER_TOKEN_BEDROCK", secret},
			want: []config.Provider{{Name: "bedrock", Type: "bedrock", BaseURL: "https://bedrock-runtime.us-east-1.amazonaws.com", APIKeyEnv: "AWS_BEARER_TOKEN_BEDROCK", Region: "us-east-1"}},
		},
		{
			name: "bedrock region from AWS_DEFAULT_REGION",
			env:  []string{"AWS_BEARER_TOKEN_BEDROCK", secret, "AWS_DEFAULT_REGION", "eu-west-3"},
			want: []config.Provider{{Name: "bedrock", Type: "bedrock", BaseURL: "https://bedrock-runtime.eu-west-3.amazonaws.com", APIKeyEnv: "AWS_BEARER_TOKEN_BEDROCK", Region: "eu-west-3"}},
		},
		{
			name: "gemini via GOOGLE_API_KEY",
			env:  []string{"GOOGLE_API_KEY", secret},
			want: []config.Provider{{Name: "gemini", Type: "gemini", BaseURL: "https://generativelanguage.googleapis.com/v1beta", APIKeyEnv: "GOOGLE_API_KEY"}},
		},
		{
			name: "ollama host:port",
			env:  []string{"OLLAMA_HOST", "0.0.0.0:11434"},
			want: []config.Provider{{Name: "ollama", Type: "openai", BaseURL: "http://0.0.0.0:11434/v1"}},
		},
		{
			name: "ollama bare host gets the default port",
			env:  []string{"OLLAMA_HOST", "gpu-box"},
			want: []config.Provider{{Name: "ollama", Type: "openai", BaseURL: "http://gpu-box:11434/v1"}},
		},
		{
			name: "ollama base URL without path gets /v1; it wins over OLLAMA_HOST",
			env:  []string{"OLLAMA_BASE_URL", "https://ollama.internal", "OLLAMA_HOST", "other:1"},
			want: []config.Provider{{Name: "ollama", Type: "openai", BaseURL: "https://ollama.internal/v1"}},
		},
		{
			name: "local servers with explicit paths, vLLM key",
			env:  []string{"VLLM_BASE_URL", "http://10.0.0.5:8000/v1/", "VLLM_API_KEY", secret, "LMSTUDIO_BASE_URL", "http://127.0.0.1:1234", "LLAMACPP_BASE_URL", "http://[::1]:8081/v1"},
			want: []config.Provider{
				{Name: "vllm", Type: "openai", BaseURL: "http://10.0.0.5:8000/v1", APIKeyEnv: "VLLM_API_KEY"},
				{Name: "lmstudio", Type: "openai", BaseURL: "http://127.0.0.1:1234/v1"},
				{Name: "llamacpp", Type: "openai", BaseURL: "http://[::1]:8081/v1"},
			},
		},
		{
			name: "a key alone does not enable a keyless server",
			env:  []string{"VLLM_API_KEY", secret},
			want: nil,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := FromEnv(fakeEnv(tt.env...))
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("FromEnv =\n%+v\nwant\n%+v", got, tt.want)
			}
			if strings.Contains(fmt.Sprintf("%+v", got), secret) {
				t.Fatal("a secret value was copied into the providers")
			}
		})
	}
}

func TestFromEnvEverythingValidates(t *testing.T) {
	env := map[string]string{"AZURE_OPENAI_ENDPOINT": "https://r.openai.azure.com", "OLLAMA_HOST": "127.0.0.1",
		"VLLM_BASE_URL": "http://localhost:8000", "LMSTUDIO_BASE_URL": "http://localhost:1234/v1", "LLAMACPP_BASE_URL": "localhost:8080"}
	for _, p := range Presets() {
		if p.KeyEnv != "" {
			env[p.KeyEnv] = "k"
		}
	}
	providers := FromEnv(func(k string) string { return env[k] })
	if len(providers) != len(Presets()) {
		t.Fatalf("%d providers from a full environment, want %d", len(providers), len(Presets()))
	}
	cfg := config.Default()
	cfg.Auth.Pepper = strings.Repeat("p", 32)
	cfg.Providers = providers
	if err := cfg.Validate(); err != nil {
		t.Fatalf("FromEnv output fails config validation: %v", err)
	}
	for _, p := range providers {
		if p.APIKey != "" {
			t.Errorf("%s: APIKey set", p.Name)
		}
	}
}

func TestNormalizeBaseURL(t *testing.T) {
	tests := []struct{ in, def, want string }{
		{"localhost:11434", "http://localhost:11434/v1", "http://localhost:11434/v1"},
		{"example.com", "http://localhost:11434/v1", "http://example.com:11434/v1"},
		{"http://example.com", "http://localhost:11434/v1", "http://example.com/v1"},
		{"https://x.test/custom/", "http://localhost:8000/v1", "https://x.test/custom"},
		{"https://res.openai.azure.com/", "", "https://res.openai.azure.com"},
		{"::not a url", "http://localhost:8000/v1", "http://::not a url"},
	}
	for _, tt := range tests {
		if got := normalizeBaseURL(tt.in, tt.def); got != tt.want {
			t.Errorf("normalizeBaseURL(%q, %q) = %q, want %q", tt.in, tt.def, got, tt.want)
		}
	}
}
