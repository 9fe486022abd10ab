package app

import (
	"fmt"
	"net/url"
	"os"
	"path"
	"sort"
	"strings"

	"go.uber.org/zap"

	"github.com/xroute/xroute/config"
	"github.com/xroute/xroute/providers/catalog"
	"github.com/xroute/xroute/router"
)

// loadCatalog returns the embedded catalog with the config's overrides.
func loadCatalog(cfg config.Catalog) (*catalog.Catalog, error) {
	cat, err := catalog.Load()
	if err != nil {
		return nil, fmt.Errorf("catalog: %w", err)
	}
	if cfg.File != "" {
		data, err := os.ReadFile(cfg.File)
		if err != nil {
			return nil, fmt.Errorf("catalog.file: %w", err)
		}
		over, err := catalog.Parse(data)
		if err != nil {
			return nil, fmt.Errorf("catalog.file %s: %w", cfg.File, err)
		}
		if err := cat.Merge(over.Models()); err != nil {
			return nil, fmt.Errorf("catalog.file %s: %w", cfg.File, err)
		}
	}
	return cat, nil
}

// withCatalog adds the providers enabled by their env variables and, for
// every catalog model some configured provider serves, a public model with
// those deployments, cheapest first. What the config names itself wins.
// Keyless local servers (Ollama, vLLM...) get catalog models only when the
// config file names them: their model list is the operator's, not ours.
func withCatalog(cfg config.Config, cat *catalog.Catalog, getenv func(string) string) config.Config {
	configured := map[string]bool{}
	fromFile := map[string]bool{}
	for _, p := range cfg.Providers {
		configured[p.Name], fromFile[p.Name] = true, true
	}
	if cfg.Catalog.FromEnv {
		for _, p := range catalog.FromEnv(getenv) {
			if !configured[p.Name] {
				cfg.Providers = append(cfg.Providers, p)
				configured[p.Name] = true
			}
		}
	}
	named := map[string]bool{}
	for _, m := range cfg.Models {
		named[m.Name] = true
	}
	for _, name := range cat.Names() {
		if named[name] {
			continue
		}
		var deps []catalog.Model
		for _, d := range cat.Deployments(name) {
			if !configured[d.Provider] {
				continue
			}
			if preset, ok := catalog.PresetByName(d.Provider); ok && preset.Keyless && !fromFile[d.Provider] {
				continue
			}
			deps = append(deps, d)
		}
		if len(deps) == 0 {
			continue
		}
		sort.SliceStable(deps, func(i, j int) bool { return deps[i].Input+deps[i].Output < deps[j].Input+deps[j].Output })
		m := config.Model{Name: name, OwnedBy: deps[0].Provider}
		for _, d := range deps {
			m.Deployments = append(m.Deployments, config.Deployment{Provider: d.Provider, Model: d.ID})
		}
		cfg.Models = append(cfg.Models, m)
	}
	return cfg
}

// priced returns the config's own deployment prices, keyed by
// provider/model: they override the catalog, and give deployments it does
// not know (custom servers, mocks) a price. An unknown deployment is
// assumed capable of everything: only the operator knows what it serves.
// A deployment marked free (or served by a provider marked free) gets
// zero prices; one the catalog does not know must state both its input
// and its output price, so that no part of an answer is free by omission.
func priced(cfg config.Config, cat *catalog.Catalog) (map[string]catalog.Model, error) {
	free := freeProviders(cfg)
	v := newPriceBook(cfg, cat)
	out := map[string]catalog.Model{}
	for _, m := range cfg.Models {
		for _, d := range m.Deployments {
			switch {
			case d.Priced():
			case d.Free || free[d.Provider]:
				out[d.Provider+"/"+d.Model] = freeEntry(v, m.Name, d.Provider, d.Model)
				continue
			default:
				continue // the catalog's price, or none: refused when asked
			}
			e, ok := v.Find(d.Provider, d.Model)
			if !ok {
				if d.InputPrice == "" || d.OutputPrice == "" {
					return nil, fmt.Errorf("model %s deployment %s/%s: the catalog does not price it: set both input_price and output_price (or free: true)", m.Name, d.Provider, d.Model)
				}
				e = unknownEntry(m.Name, d.Provider, d.Model)
			}
			var err error
			for _, p := range []struct {
				raw string
				dst *catalog.Price
			}{{d.InputPrice, &e.Input}, {d.OutputPrice, &e.Output}, {d.CachedInputPrice, &e.CachedInput}, {d.CacheWriteInputPrice, &e.CacheWriteInput}} {
				if p.raw == "" {
					continue
				}
				if *p.dst, err = catalog.ParsePrice(p.raw); err != nil {
					return nil, fmt.Errorf("model %s deployment %s/%s: %w", m.Name, d.Provider, d.Model, err)
				}
			}
			if d.CachedInputPrice == "" && !ok {
				e.CachedInput = e.Input
			}
			if d.CacheWriteInputPrice == "" && !ok {
				e.CacheWriteInput = e.Input
			}
			if !ok {
				// Server-side searches are billed by the provider: at its
				// list price unless the catalog knows better.
				e.WebSearch = catalog.DefaultWebSearch(providerType(cfg, d.Provider))
			}
			out[d.Provider+"/"+d.Model] = e
		}
	}
	return out, nil
}

// unknownEntry is the catalog entry of a deployment the catalog does not
// know, before its prices are set.
func unknownEntry(name, provider, model string) catalog.Model {
	return catalog.Model{Name: name, Provider: provider, ID: model, Context: 1 << 30, MinCacheTokens: catalog.DefaultMinCacheTokens(model),
		Caps: catalog.Capabilities{Tools: true, Vision: true, JSONSchema: true, StreamingUsage: true, Embeddings: true}}
}

// freeEntry is the entry of a deployment the operator marked free: the
// catalog's limits and capabilities when it knows the model, every price
// zero.
func freeEntry(cat priceBook, name, provider, model string) catalog.Model {
	e, ok := cat.Find(provider, model)
	if !ok {
		e = unknownEntry(name, provider, model)
	}
	e.Input, e.CachedInput, e.CacheWriteInput, e.CacheWrite1hInput, e.Output, e.WebSearch = 0, 0, 0, 0, 0, 0
	return e
}

// freeProviders are the providers the config marks free.
func freeProviders(cfg config.Config) map[string]bool {
	free := map[string]bool{}
	for _, p := range cfg.Providers {
		if p.Free {
			free[p.Name] = true
		}
	}
	return free
}

// providerType is the wire format of a configured provider.
func providerType(cfg config.Config, name string) string {
	for _, p := range cfg.Providers {
		if p.Name == name {
			return p.Type
		}
	}
	return ""
}

// catalogLookup finds a deployment's entry: the config's own prices first,
// then the catalog by the provider's model id, then by the public name on
// that provider; on a provider marked free, that entry with zero prices
// (or an unknown model's, free). Not found: the deployment has no price,
// and requests to it are refused.
func catalogLookup(cat *catalog.Catalog, own map[string]catalog.Model, cfg config.Config) router.CatalogLookup {
	v, free := newPriceBook(cfg, cat), freeProviders(cfg)
	return func(provider, model string) (catalog.Model, bool) {
		if m, ok := own[provider+"/"+model]; ok {
			return m, true
		}
		id := model
		if _, ok := v.Find(provider, model); !ok {
			for _, m := range v.ByProvider(provider) {
				if m.Name == model {
					id = m.ID
					break
				}
			}
		}
		if free[provider] {
			return freeEntry(v, model, provider, id), true
		}
		return v.Find(provider, id)
	}
}

// priceBook is the catalog as the config's providers see it: a provider
// the catalog does not name, but whose type is a vendor's own API at that
// vendor's address (a second Anthropic account named "claude-team"), is
// priced as that vendor. An OpenAI-compatible API elsewhere is not: its
// models and prices are its own.
type priceBook struct {
	cat    *catalog.Catalog
	vendor map[string]string // provider name -> catalog provider
}

func newPriceBook(cfg config.Config, cat *catalog.Catalog) priceBook {
	b := priceBook{cat: cat, vendor: map[string]string{}}
	for _, p := range cfg.Providers {
		if _, named := catalog.PresetByName(p.Name); named {
			continue
		}
		preset, ok := catalog.PresetByName(p.Type)
		if ok && preset.Type == p.Type && preset.BaseURL != "" && sameVendorHost(p.BaseURL, preset.BaseURL) {
			b.vendor[p.Name] = preset.Name
		}
	}
	return b
}

// sameVendorHost reports whether a configured base URL (empty: the
// adapter's default, the vendor's) points at the preset's host; a
// "{region}" in the preset matches any region.
func sameVendorHost(configured, preset string) bool {
	if configured == "" {
		return true
	}
	c, err1 := url.Parse(configured)
	p, err2 := url.Parse(strings.ReplaceAll(preset, "{region}", "REGION"))
	if err1 != nil || err2 != nil || c.Host == "" {
		return false
	}
	pattern := strings.ReplaceAll(p.Host, "REGION", "*")
	ok, _ := path.Match(pattern, strings.ToLower(c.Host))
	return ok
}

// Find is catalog.Find, falling back to the provider's vendor.
func (b priceBook) Find(provider, model string) (catalog.Model, bool) {
	if m, ok := b.cat.Find(provider, model); ok {
		return m, true
	}
	if vendor, ok := b.vendor[provider]; ok {
		if m, ok := b.cat.Find(vendor, model); ok {
			m.Provider = provider
			return m, true
		}
	}
	return catalog.Model{}, false
}

// ByProvider is catalog.ByProvider, falling back to the provider's vendor.
func (b priceBook) ByProvider(provider string) []catalog.Model {
	if ms := b.cat.ByProvider(provider); len(ms) > 0 {
		return ms
	}
	if vendor, ok := b.vendor[provider]; ok {
		return b.cat.ByProvider(vendor)
	}
	return nil
}

// warnUnpriced logs, at start, every configured deployment without a price:
// requests to its model are refused until it gets one (or is marked free).
func warnUnpriced(rt *router.Router, log *zap.Logger) {
	for _, m := range rt.Models() {
		for _, d := range m.Deployments {
			if d.Info == nil {
				log.Warn("deployment has no price: requests to its model are refused (model_not_priced) until it gets input_price and output_price, or free: true",
					zap.String("model", m.Name), zap.String("deployment", d.Name()))
			}
		}
	}
}
