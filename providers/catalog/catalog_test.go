package catalog

import (
	"errors"
	"math"
	"strings"
	"testing"
)

func load(t *testing.T) *Catalog {
	t.Helper()
	c, err := Load()
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return c
}

func find(t *testing.T, c *Catalog, provider, id string) Model {
	t.Helper()
	m, ok := c.Find(provider, id)
	if !ok {
		t.Fatalf("%s/%s not in catalog", provider, id)
	}
	return m
}

func TestEmbeddedCatalog(t *testing.T) {
	c := load(t)
	models := c.Models()
	if len(models) < 60 {
		t.Errorf("%d models, want at least 60", len(models))
	}
	if n := len(c.Providers()); n < 20 {
		t.Errorf("%d providers, want at least 20", n)
	}
	seen := map[string]bool{}
	for _, m := range models {
		t.Run(m.key(), func(t *testing.T) {
			if _, ok := PresetByName(m.Provider); !ok {
				t.Errorf("unknown provider %q", m.Provider)
			}
			if m.Input < 0 || m.Output < 0 || m.CachedInput < 0 {
				t.Errorf("negative price %v/%v/%v", m.Input, m.CachedInput, m.Output)
			}
			if m.CachedInput > m.Input {
				t.Errorf("cached input %v costs more than input %v", m.CachedInput, m.Input)
			}
			if m.Context <= 0 || m.MaxOutput > m.Context {
				t.Errorf("context %d, max_output %d", m.Context, m.MaxOutput)
			}
			if m.Caps.Embeddings != (m.Dimensions > 0) {
				t.Errorf("embeddings=%v but dimensions=%d", m.Caps.Embeddings, m.Dimensions)
			}
			if seen[m.key()] {
				t.Errorf("duplicate (provider, id)")
			}
			seen[m.key()] = true
			// Model quirks must be well-formed against a minimal body.
			if _, err := m.RequestQuirks().Apply([]byte(`{"model":"x","messages":[{"role":"user","content":"hi"}]}`)); err != nil {
				t.Errorf("quirks on a plain request: %v", err)
			}
		})
	}
}

func TestDeployments(t *testing.T) {
	c := load(t)
	got := map[string]bool{}
	for _, m := range c.Deployments("llama-3.3-70b") {
		if m.Name != "llama-3.3-70b" {
			t.Errorf("deployment %s has name %q", m.key(), m.Name)
		}
		got[m.Provider] = true
	}
	for _, p := range []string{"groq", "together", "fireworks", "deepinfra", "cerebras", "sambanova"} {
		if !got[p] {
			t.Errorf("llama-3.3-70b not served by %s (have %v)", p, got)
		}
	}
	first, ok := c.Lookup("llama-3.3-70b")
	if !ok || first.key() != c.Deployments("llama-3.3-70b")[0].key() {
		t.Errorf("Lookup = %v, %v; want the first deployment", first.key(), ok)
	}
	if _, ok := c.Lookup("no-such-model"); ok {
		t.Error("Lookup of an unknown name succeeded")
	}
	if d := c.Deployments("no-such-model"); len(d) != 0 {
		t.Errorf("Deployments of an unknown name = %v", d)
	}
	for _, m := range c.ByProvider("groq") {
		if m.Provider != "groq" {
			t.Errorf("ByProvider(groq) returned %s", m.key())
		}
	}
	if len(c.ByProvider("groq")) < 3 {
		t.Errorf("groq has %d models", len(c.ByProvider("groq")))
	}
	if !containsString(c.Names(), "gpt-4o-mini") {
		t.Error("Names lacks gpt-4o-mini")
	}
}

func TestAccessorsReturnCopies(t *testing.T) {
	c := load(t)
	m := find(t, c, "openai", "gpt-5")
	m.Quirks.Drop[0] = "mutated"
	m.Quirks.Rename["x"] = "y"
	again := find(t, c, "openai", "gpt-5")
	if again.Quirks.Drop[0] == "mutated" || again.Quirks.Rename["x"] != "" {
		t.Fatal("catalog data changed through a returned Model")
	}
}

func TestCost(t *testing.T) {
	c := load(t)
	tests := []struct {
		name                       string
		model                      Model
		prompt, cached, completion int
		wantNano                   int64
	}{
		// 1000*0.15$/M + 500*0.60$/M = 0.00015 + 0.0003 = $0.00045
		{"gpt-4o-mini plain", find(t, c, "openai", "gpt-4o-mini"), 1000, 0, 500, 450_000},
		// 6000*0.15 + 4000*0.075 + 1000*0.60 (per M) = 0.0009 + 0.0003 + 0.0006
		{"gpt-4o-mini cached", find(t, c, "openai", "gpt-4o-mini"), 10_000, 4_000, 1_000, 1_800_000},
		// 1M in at $3 + 1M out at $15 = $18
		{"claude-sonnet-4 1M/1M", find(t, c, "anthropic", "claude-sonnet-4-20250514"), 1_000_000, 0, 1_000_000, 18_000_000_000},
		// 900k fresh at $3 + 100k cached at $0.30 = 2.70 + 0.03
		{"claude-sonnet-4 cached", find(t, c, "anthropic", "claude-sonnet-4-20250514"), 1_000_000, 100_000, 0, 2_730_000_000},
		// one cached token at $0.0375/M = 37.5 nano -> rounded up to 38
		{"round up half", find(t, c, "groq", "openai/gpt-oss-20b"), 1, 1, 0, 38},
		// 3 * 37.5 = 112.5 -> 113
		{"round up three", find(t, c, "groq", "openai/gpt-oss-20b"), 3, 3, 0, 113},
		// 2 * 37.5 = 75 exactly, no rounding
		{"exact even", find(t, c, "groq", "openai/gpt-oss-20b"), 2, 2, 0, 75},
		// no cached price: cached tokens billed at input, 100 * $0.59/M
		{"no cache discount", find(t, c, "groq", "llama-3.3-70b-versatile"), 100, 100, 0, 59_000},
		// cached capped at prompt: 5 cached at $0.075/M, completion 0
		{"cached > prompt", find(t, c, "openai", "gpt-4o-mini"), 5, 10, 0, 375},
		{"negative counts", find(t, c, "openai", "gpt-4o-mini"), -5, -1, -7, 0},
		{"local is free", find(t, c, "ollama", "llama3.3:70b"), 123_456, 0, 7_890, 0},
		{"embeddings", find(t, c, "openai", "text-embedding-3-small"), 1_000_000, 0, 0, 20_000_000},
		{"saturates", Model{Input: Price(math.MaxInt64)}, math.MaxInt, 0, 0, math.MaxInt64},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.model.Cost(tt.prompt, tt.cached, tt.completion); got != tt.wantNano {
				t.Fatalf("Cost(%d, %d, %d) = %d nano-USD, want %d", tt.prompt, tt.cached, tt.completion, got, tt.wantNano)
			}
		})
	}
}

func TestSupports(t *testing.T) {
	c := load(t)
	llama := find(t, c, "groq", "llama-3.3-70b-versatile")
	tests := []struct {
		name        string
		model       Model
		need        Needs
		wantMissing []string
		wantCtx     bool
	}{
		{"nothing needed", llama, Needs{}, nil, false},
		{"tools ok", llama, Needs{Tools: true, ContextTokens: 131072}, nil, false},
		{"vision and schema missing", llama, Needs{Tools: true, Vision: true, JSONSchema: true}, []string{"vision", "json_schema"}, false},
		{"context too small", llama, Needs{ContextTokens: 200_000}, nil, true},
		{"everything", find(t, c, "perplexity", "sonar"), Needs{Tools: true, Vision: true, JSONSchema: true, ContextTokens: 1 << 20}, []string{"tools", "vision", "json_schema"}, true},
		{"gpt-4o all", find(t, c, "openai", "gpt-4o"), Needs{Tools: true, Vision: true, JSONSchema: true, ContextTokens: 100_000}, nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.model.Supports(tt.need)
			if tt.wantMissing == nil && !tt.wantCtx {
				if err != nil {
					t.Fatalf("Supports = %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, ErrNotSupported) {
				t.Fatalf("Supports = %v, want ErrNotSupported", err)
			}
			var me *MissingError
			if !errors.As(err, &me) {
				t.Fatalf("not a *MissingError: %T", err)
			}
			if strings.Join(me.Missing, ",") != strings.Join(tt.wantMissing, ",") {
				t.Errorf("Missing = %v, want %v", me.Missing, tt.wantMissing)
			}
			msg := err.Error()
			for _, w := range tt.wantMissing {
				if !strings.Contains(msg, w) {
					t.Errorf("message %q does not name %q", msg, w)
				}
			}
			if !strings.Contains(msg, tt.model.ID) || !strings.Contains(msg, tt.model.Provider) {
				t.Errorf("message %q does not name the deployment", msg)
			}
			if tt.wantCtx != (me.ContextNeeded > 0) {
				t.Errorf("ContextNeeded = %d, want set=%v", me.ContextNeeded, tt.wantCtx)
			}
			if tt.wantCtx && !strings.Contains(msg, "window is") {
				t.Errorf("message %q does not explain the context", msg)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	entry := func(extra string) string {
		return "models:\n  - name: m\n    provider: groq\n    id: x\n    input: \"1\"\n    output: \"1\"\n    context: 100\n    max_output: 10\n" + extra
	}
	tests := []struct {
		name, yaml, want string
	}{
		{"unknown key", entry("    colour: blue\n"), "colour"},
		{"bad price", strings.Replace(entry(""), `input: "1"`, `input: "-1"`, 1), "price"},
		{"unknown provider", strings.Replace(entry(""), "provider: groq", "provider: nope", 1), `provider "nope"`},
		{"no context", strings.Replace(entry(""), "context: 100", "context: 0", 1), "context must be positive"},
		{"max_output above context", strings.Replace(entry(""), "max_output: 10", "max_output: 1000", 1), "max_output"},
		{"unknown cap", entry("    caps: [telepathy]\n"), "telepathy"},
		{"embedding without dimensions", strings.Replace(entry("    caps: [embeddings]\n"), "max_output: 10", "max_output: 0", 1), "dimensions"},
		{"dimensions on chat model", entry("    dimensions: 5\n"), "only for embedding"},
		{"duplicate", entry("") + strings.TrimPrefix(entry(""), "models:\n"), "duplicate"},
		{"same name twice on a provider", entry("") + strings.Replace(strings.TrimPrefix(entry(""), "models:\n"), "id: x", "id: y", 1), "already served"},
		{"empty id", strings.Replace(entry(""), "id: x", "id: \"\"", 1), "id must not be empty"},
		{"unknown quirk key", entry("    quirks: {remove: [x]}\n"), "remove"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.yaml))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Parse error = %v, want one containing %q", err, tt.want)
			}
		})
	}
	if c, err := Parse([]byte(entry(""))); err != nil || len(c.Models()) != 1 {
		t.Fatalf("valid entry: %v", err)
	}
	c, err := Parse([]byte(entry("")))
	if err != nil {
		t.Fatal(err)
	}
	if m := c.Models()[0]; !m.Verified || m.CachedInput != m.Input {
		t.Errorf("defaults: verified=%v cached=%v input=%v", m.Verified, m.CachedInput, m.Input)
	}
	if c, err := Parse(nil); err != nil || len(c.Models()) != 0 {
		t.Errorf("empty file: %v", err)
	}
}

func TestMerge(t *testing.T) {
	c := load(t)
	before := len(c.Models())

	// Replace a price; unspecified limits and caps are inherited.
	err := c.Merge([]Model{
		{Provider: "groq", ID: "llama-3.3-70b-versatile", Input: 500_000, CachedInput: 500_000, Output: 700_000},
		{Name: "my-llama", Provider: "vllm", ID: "my/llama", Context: 8192, MaxOutput: 1024, Caps: Capabilities{Tools: true}},
	})
	if err != nil {
		t.Fatal(err)
	}
	m := find(t, c, "groq", "llama-3.3-70b-versatile")
	if m.Input != 500_000 || m.Output != 700_000 || m.Name != "llama-3.3-70b" || m.Context != 131072 || !m.Caps.Tools {
		t.Errorf("merged entry = %+v", m)
	}
	if got := len(c.Models()); got != before+1 {
		t.Errorf("%d models after adding one to %d", got, before)
	}
	if d, ok := c.Lookup("my-llama"); !ok || d.Provider != "vllm" {
		t.Errorf("added deployment: %+v, %v", d, ok)
	}

	// An invalid override leaves the catalog unchanged.
	err = c.Merge([]Model{
		{Provider: "groq", ID: "llama-3.3-70b-versatile", Input: 1},
		{Name: "bad", Provider: "nowhere", ID: "x", Context: 10, MaxOutput: 1},
	})
	if err == nil || !strings.Contains(err.Error(), "nowhere") {
		t.Fatalf("Merge error = %v", err)
	}
	if m := find(t, c, "groq", "llama-3.3-70b-versatile"); m.Input != 500_000 {
		t.Errorf("failed merge changed the catalog: input %v", m.Input)
	}
}

func containsString(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func TestMinCacheTokens(t *testing.T) {
	c, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		provider, id string
		want         int
	}{
		{"anthropic", "claude-sonnet-4-5-20250929", 1024},
		{"anthropic", "claude-opus-4-1-20250805", 1024},
		{"anthropic", "claude-haiku-4-5-20251001", 2048},
		{"bedrock", "us.anthropic.claude-sonnet-4-5-20250929-v1:0", 1024},
		{"openai", "gpt-4o-mini", 0},
	} {
		m, ok := c.Find(tc.provider, tc.id)
		if !ok {
			t.Fatalf("%s/%s not in the catalog", tc.provider, tc.id)
		}
		if m.MinCacheTokens != tc.want {
			t.Errorf("%s/%s: min cache %d, want %d", tc.provider, tc.id, m.MinCacheTokens, tc.want)
		}
	}
	over, err := Parse([]byte("models:\n  - {name: x, provider: anthropic, id: claude-x, input: \"1\", output: \"1\", context: 1000, max_output: 10, min_cache_tokens: 4096}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if m, _ := over.Find("anthropic", "claude-x"); m.MinCacheTokens != 4096 {
		t.Fatalf("min_cache_tokens from the file: %d", m.MinCacheTokens)
	}
}
