// Package catalog holds xroute's built-in knowledge of providers and
// models: the provider presets (wire format, default base URL, the
// environment variable that enables each, API quirks as data) and the
// model catalog (public names, per-provider model ids, prices, limits,
// capabilities), embedded from models.yaml.
//
// Prices are integers: Price is micro-USD per million tokens (pico-USD per
// token) and Cost returns nano-USD, so no float ever touches money.
//
// The package only describes; it performs no I/O and keeps no mutable
// package state. Wiring (config, router, billing) happens in cmd.
package catalog

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"
)

//go:embed models.yaml
var embeddedModels []byte

// Model is one deployment of a public model name on one provider.
type Model struct {
	// Name is the public name callers use ("llama-3.3-70b"). Several
	// providers may serve the same name.
	Name string
	// Provider is a preset name ("groq"); ID is the model id that
	// provider's API expects ("llama-3.3-70b-versatile").
	Provider string
	ID       string
	// Input, CachedInput, CacheWriteInput and Output are prices per
	// million tokens. CachedInput applies to prompt tokens served from the
	// provider's prompt cache, CacheWriteInput to prompt tokens written to
	// it (Anthropic's cache_creation_input_tokens, 1.25x input for the
	// 5-minute cache). A file entry without cached_input or
	// cache_write_input gets Input.
	Input           Price
	CachedInput     Price
	CacheWriteInput Price
	// CacheWrite1hInput prices one-hour cache writes (Anthropic: 2x
	// input); 0 means: 2x input where cache writes cost more than input,
	// else Input (see CacheWrite1h).
	CacheWrite1hInput Price
	Output            Price
	// WebSearch is the price of 1000 server-side web searches (Anthropic:
	// 10 USD), in the same units as the token prices.
	WebSearch Price
	// Context is the context window in tokens (prompt + completion);
	// MaxOutput the largest completion (0 for embedding models).
	Context   int
	MaxOutput int
	Caps      Capabilities
	// Dimensions is the output vector size of an embedding model.
	Dimensions int
	// MinCacheTokens is the shortest prefix the provider caches at a
	// breakpoint (Anthropic: 1024 tokens for Sonnet and Opus, 2048 for
	// Haiku); 0 where the provider caches without breakpoints or not at
	// all. xroute adds breakpoints only to a prefix at least this long.
	MinCacheTokens int
	// Verified is false when a price or limit could not be confirmed from
	// the provider's own pages (see the comments in models.yaml).
	Verified bool
	// Quirks specific to this model, applied on top of the provider's
	// preset quirks (see (Model).RequestQuirks).
	Quirks Quirks
}

// DefaultWebSearch is the list price of 1000 server-side web searches on a
// provider (or wire format) that runs them: Anthropic's 10 USD. Nothing a
// provider bills is free by default.
func DefaultWebSearch(provider string) Price {
	if provider == "anthropic" {
		return 10 * priceScale
	}
	return 0
}

// CacheWrite1h is the price of a one-hour cache write: CacheWrite1hInput,
// else twice Input where cache writes cost more than input (Anthropic's
// rule), else Input.
func (m Model) CacheWrite1h() Price {
	switch {
	case m.CacheWrite1hInput > 0:
		return m.CacheWrite1hInput
	case m.CacheWriteInput > m.Input:
		return 2 * m.Input
	}
	return m.Input
}

// DefaultMinCacheTokens is the minimum cacheable prefix of a Claude model by
// its id, per Anthropic's prompt-caching docs (Haiku 2048, others 1024);
// 0 for other models.
func DefaultMinCacheTokens(id string) int {
	id = strings.ToLower(id)
	switch {
	case !strings.Contains(id, "claude"):
		return 0
	case strings.Contains(id, "haiku"):
		return 2048
	}
	return 1024
}

// Capabilities are what a deployment can do.
type Capabilities struct {
	Tools          bool // function / tool calling
	Vision         bool // image inputs
	JSONSchema     bool // response_format json_schema (structured outputs)
	StreamingUsage bool // token usage reported on streams
	Embeddings     bool // an embedding model
}

var capNames = []string{"tools", "vision", "json_schema", "streaming_usage", "embeddings"}

func (c *Capabilities) flags() []*bool {
	return []*bool{&c.Tools, &c.Vision, &c.JSONSchema, &c.StreamingUsage, &c.Embeddings}
}

// UnmarshalYAML reads a list such as [tools, vision]; unknown names fail.
func (c *Capabilities) UnmarshalYAML(n *yaml.Node) error {
	var names []string
	if err := n.Decode(&names); err != nil {
		return fmt.Errorf("line %d: caps must be a list like [tools, vision]", n.Line)
	}
	*c = Capabilities{}
	flags := c.flags()
	for _, name := range names {
		i := slices.Index(capNames, name)
		if i < 0 {
			return fmt.Errorf("line %d: unknown capability %q (known: %s)", n.Line, name, strings.Join(capNames, ", "))
		}
		*flags[i] = true
	}
	return nil
}

// MarshalYAML writes the list form.
func (c Capabilities) MarshalYAML() (any, error) { return c.Names(), nil }

// Names lists the capabilities that are set, in a fixed order.
func (c Capabilities) Names() []string {
	out := []string{}
	for i, f := range c.flags() {
		if *f {
			out = append(out, capNames[i])
		}
	}
	return out
}

// Cost is the price of one request in nano-USD (1e-9 USD).
//
// promptTokens counts every prompt token, cachedTokens included (OpenAI's
// usage.prompt_tokens and prompt_tokens_details.cached_tokens); cached
// tokens are billed at CachedInput, the rest at Input, completion tokens
// (reasoning included) at Output. Negative counts are treated as 0 and
// cachedTokens is capped at promptTokens.
//
// The sum is computed exactly in pico-USD, then rounded once, up, to the
// next whole nano-USD: a request is never billed below its exact price and
// never more than 1 nano-USD above it.
func (m Model) Cost(promptTokens, cachedTokens, completionTokens int) int64 {
	p, c, o := uint64(max(promptTokens, 0)), uint64(max(cachedTokens, 0)), uint64(max(completionTokens, 0))
	c = min(c, p)
	return nanoCost(
		[2]uint64{p - c, uint64(max(m.Input, 0))},
		[2]uint64{c, uint64(max(m.CachedInput, 0))},
		[2]uint64{o, uint64(max(m.Output, 0))},
	)
}

// Needs is what a request requires of a deployment.
type Needs struct {
	Tools, Vision, JSONSchema bool
	// ContextTokens is the prompt size plus the completion budget.
	ContextTokens int
}

// ErrNotSupported is matched (errors.Is) by every *MissingError.
var ErrNotSupported = errors.New("model does not support the request")

// MissingError lists what a deployment lacks for a request.
type MissingError struct {
	Provider, ID, Name string
	// Missing holds capability names ("tools", "vision", "json_schema").
	Missing []string
	// ContextNeeded and Context are set when the window is too small.
	ContextNeeded, Context int
}

func (e *MissingError) Error() string {
	var parts []string
	if len(e.Missing) > 0 {
		parts = append(parts, "no "+strings.Join(e.Missing, ", no "))
	}
	if e.ContextNeeded > 0 {
		parts = append(parts, fmt.Sprintf("needs %d context tokens but the window is %d", e.ContextNeeded, e.Context))
	}
	return fmt.Sprintf("model %s on %s (%s): %s", e.Name, e.Provider, e.ID, strings.Join(parts, "; "))
}

// Is makes errors.Is(err, ErrNotSupported) true.
func (e *MissingError) Is(target error) bool { return target == ErrNotSupported }

// Supports returns nil when m can serve a request with those needs, else a
// *MissingError naming everything that is missing.
func (m Model) Supports(need Needs) error {
	e := &MissingError{Provider: m.Provider, ID: m.ID, Name: m.Name}
	if need.Tools && !m.Caps.Tools {
		e.Missing = append(e.Missing, "tools")
	}
	if need.Vision && !m.Caps.Vision {
		e.Missing = append(e.Missing, "vision")
	}
	if need.JSONSchema && !m.Caps.JSONSchema {
		e.Missing = append(e.Missing, "json_schema")
	}
	if need.ContextTokens > m.Context {
		e.ContextNeeded, e.Context = need.ContextTokens, m.Context
	}
	if len(e.Missing) == 0 && e.ContextNeeded == 0 {
		return nil
	}
	return e
}

// RequestQuirks are the provider preset's quirks merged with the model's
// own: what (Quirks).Apply needs before sending to this deployment.
func (m Model) RequestQuirks() Quirks {
	p, _ := PresetByName(m.Provider)
	return p.Quirks.Merge(m.Quirks)
}

func (m Model) clone() Model {
	m.Quirks = m.Quirks.clone()
	return m
}

// key identifies a deployment.
func (m Model) key() string { return m.Provider + "/" + m.ID }

// Catalog is an indexed, validated set of deployments. It is immutable
// except through Merge, which must not run concurrently with readers (call
// it at start-up, before sharing the catalog).
type Catalog struct {
	models []Model
	byName map[string][]int
	byKey  map[string]int
}

// Load parses the embedded models.yaml.
func Load() (*Catalog, error) { return Parse(embeddedModels) }

// Parse reads a catalog file in the models.yaml format (unknown keys are
// errors) and validates every entry.
func Parse(data []byte) (*Catalog, error) {
	var f struct {
		Models []fileModel `yaml:"models"`
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("catalog: %w", err)
	}
	models := make([]Model, len(f.Models))
	for i, fm := range f.Models {
		models[i] = fm.model()
	}
	c := &Catalog{}
	if err := c.set(models); err != nil {
		return nil, fmt.Errorf("catalog: %w", err)
	}
	return c, nil
}

// fileModel is one entry of models.yaml; pointers tell "absent" from zero.
type fileModel struct {
	Name        string       `yaml:"name"`
	Provider    string       `yaml:"provider"`
	ID          string       `yaml:"id"`
	Input       Price        `yaml:"input"`
	CachedInput *Price       `yaml:"cached_input"`
	CacheWrite  *Price       `yaml:"cache_write_input"`
	CacheWrite1 *Price       `yaml:"cache_write_1h_input"`
	WebSearch   *Price       `yaml:"web_search_per_1k"`
	Output      Price        `yaml:"output"`
	Context     int          `yaml:"context"`
	MaxOutput   int          `yaml:"max_output"`
	Caps        Capabilities `yaml:"caps"`
	Dimensions  int          `yaml:"dimensions"`
	Verified    *bool        `yaml:"verified"`
	Quirks      Quirks       `yaml:"quirks"`
	MinCache    *int         `yaml:"min_cache_tokens"`
}

func (f fileModel) model() Model {
	m := Model{
		Name: f.Name, Provider: f.Provider, ID: f.ID,
		Input: f.Input, CachedInput: f.Input, CacheWriteInput: f.Input, Output: f.Output,
		Context: f.Context, MaxOutput: f.MaxOutput, Caps: f.Caps,
		Dimensions: f.Dimensions, Verified: true, Quirks: f.Quirks,
	}
	if f.CachedInput != nil {
		m.CachedInput = *f.CachedInput
	}
	if f.CacheWrite != nil {
		m.CacheWriteInput = *f.CacheWrite
	}
	if f.CacheWrite1 != nil {
		m.CacheWrite1hInput = *f.CacheWrite1
	}
	m.WebSearch = DefaultWebSearch(f.Provider)
	if f.WebSearch != nil {
		m.WebSearch = *f.WebSearch
	}
	if f.Verified != nil {
		m.Verified = *f.Verified
	}
	m.MinCacheTokens = DefaultMinCacheTokens(f.ID)
	if f.MinCache != nil {
		m.MinCacheTokens = *f.MinCache
	}
	return m
}

// validate checks one entry; the error names the entry and the field.
func validate(m Model) error {
	var errs []string
	bad := func(format string, args ...any) { errs = append(errs, fmt.Sprintf(format, args...)) }
	if m.Name == "" {
		bad("name must not be empty")
	}
	if m.ID == "" {
		bad("id must not be empty")
	}
	if _, ok := PresetByName(m.Provider); !ok {
		bad("provider %q is not a known preset", m.Provider)
	}
	if m.Input < 0 || m.Output < 0 || m.CachedInput < 0 || m.CacheWriteInput < 0 {
		bad("prices must not be negative")
	}
	if m.Context <= 0 {
		bad("context must be positive")
	}
	if m.MaxOutput < 0 || m.MaxOutput > m.Context {
		bad("max_output must be between 0 and context (%d), got %d", m.Context, m.MaxOutput)
	}
	if m.Caps.Embeddings {
		if m.Dimensions <= 0 {
			bad("an embedding model needs dimensions")
		}
	} else {
		if m.MaxOutput == 0 {
			bad("max_output must be positive")
		}
		if m.Dimensions != 0 {
			bad("dimensions is only for embedding models")
		}
	}
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("%s/%s (%s): %s", m.Provider, m.ID, m.Name, strings.Join(errs, "; "))
}

// set validates models and replaces the indexes; c is unchanged on error.
func (c *Catalog) set(models []Model) error {
	var errs []error
	byName := map[string][]int{}
	byKey := map[string]int{}
	for i, m := range models {
		if err := validate(m); err != nil {
			errs = append(errs, fmt.Errorf("models[%d] %w", i, err))
			continue
		}
		if j, dup := byKey[m.key()]; dup {
			errs = append(errs, fmt.Errorf("models[%d] %s: duplicate of models[%d]", i, m.key(), j))
			continue
		}
		for _, j := range byName[m.Name] {
			if models[j].Provider == m.Provider {
				errs = append(errs, fmt.Errorf("models[%d] %s: name %q is already served by %s", i, m.key(), m.Name, models[j].key()))
			}
		}
		byKey[m.key()] = i
		byName[m.Name] = append(byName[m.Name], i)
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	c.models, c.byName, c.byKey = models, byName, byKey
	return nil
}

// Merge applies overrides (from config): an override replaces the entry
// with the same (Provider, ID) or is added as a new deployment. When it
// replaces an entry, zero Name, Context, MaxOutput, Dimensions and empty
// Caps are inherited from the replaced entry; prices are always the
// override's (0 is a valid price), so state CachedInput = Input when there
// is no cache discount. All overrides are validated first; on error the
// catalog is unchanged.
func (c *Catalog) Merge(overrides []Model) error {
	models := slices.Clone(c.models)
	for _, o := range overrides {
		if i, ok := c.byKey[o.key()]; ok {
			old := c.models[i]
			if o.Name == "" {
				o.Name = old.Name
			}
			if o.Context == 0 {
				o.Context = old.Context
			}
			if o.MaxOutput == 0 {
				o.MaxOutput = old.MaxOutput
			}
			if o.Dimensions == 0 {
				o.Dimensions = old.Dimensions
			}
			if o.Caps == (Capabilities{}) {
				o.Caps = old.Caps
			}
			models[i] = o.clone()
			continue
		}
		models = append(models, o.clone())
	}
	if err := c.set(models); err != nil {
		return fmt.Errorf("catalog: merge: %w", err)
	}
	return nil
}

// Models returns every deployment in file order.
func (c *Catalog) Models() []Model {
	out := make([]Model, len(c.models))
	for i, m := range c.models {
		out[i] = m.clone()
	}
	return out
}

// Lookup returns the first deployment listed for a public name.
func (c *Catalog) Lookup(name string) (Model, bool) {
	idx := c.byName[name]
	if len(idx) == 0 {
		return Model{}, false
	}
	return c.models[idx[0]].clone(), true
}

// Deployments returns every deployment of a public name, in file order.
func (c *Catalog) Deployments(name string) []Model {
	idx := c.byName[name]
	out := make([]Model, 0, len(idx))
	for _, i := range idx {
		out = append(out, c.models[i].clone())
	}
	return out
}

// Find returns the deployment with that provider and provider model id.
func (c *Catalog) Find(provider, id string) (Model, bool) {
	i, ok := c.byKey[provider+"/"+id]
	if !ok {
		return Model{}, false
	}
	return c.models[i].clone(), true
}

// ByProvider returns every deployment of one provider, in file order.
func (c *Catalog) ByProvider(provider string) []Model {
	var out []Model
	for _, m := range c.models {
		if m.Provider == provider {
			out = append(out, m.clone())
		}
	}
	return out
}

// Names returns the public model names, sorted.
func (c *Catalog) Names() []string {
	out := make([]string, 0, len(c.byName))
	for n := range c.byName {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Providers returns the providers that have at least one deployment, sorted.
func (c *Catalog) Providers() []string {
	var out []string
	for _, m := range c.models {
		if !slices.Contains(out, m.Provider) {
			out = append(out, m.Provider)
		}
	}
	sort.Strings(out)
	return out
}
