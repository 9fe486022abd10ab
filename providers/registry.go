package providers

import (
	"fmt"
	"net/http"
	"sort"

	"github.com/xroute/xroute/config"
)

// Deps are what an adapter may need from its host.
type Deps struct {
	// Client is the shared upstream HTTP client (tuned transport).
	Client *http.Client
	// Getenv resolves api_key_env.
	Getenv func(string) string
}

// WithDefaults fills what a caller left out (a test, a tool building one
// adapter): an environment with nothing set, and http.DefaultClient.
func (d Deps) WithDefaults() Deps {
	if d.Getenv == nil {
		d.Getenv = func(string) string { return "" }
	}
	if d.Client == nil {
		d.Client = http.DefaultClient
	}
	return d
}

// Factory builds an adapter from its config entry.
type Factory func(cfg config.Provider, deps Deps) (Provider, error)

// Registry maps a wire-format name (config's providers[].type) to its
// adapter. Each adapter registers itself with one line in providers/builtin.
type Registry struct {
	factories map[string]Factory
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry { return &Registry{factories: map[string]Factory{}} }

// Register adds an adapter; registering a name twice is a programming error.
func (r *Registry) Register(typ string, f Factory) {
	if _, dup := r.factories[typ]; dup {
		panic("providers: adapter registered twice: " + typ)
	}
	r.factories[typ] = f
}

// Types lists the registered wire formats, sorted.
func (r *Registry) Types() []string {
	out := make([]string, 0, len(r.factories))
	for t := range r.factories {
		out = append(out, t)
	}
	sort.Strings(out)
	return out
}

// New builds the adapter for one configured provider.
func (r *Registry) New(cfg config.Provider, deps Deps) (Provider, error) {
	f, ok := r.factories[cfg.Type]
	if !ok {
		return nil, fmt.Errorf("provider %q: unknown type %q (known: %v)", cfg.Name, cfg.Type, r.Types())
	}
	p, err := f(cfg, deps)
	if err != nil {
		return nil, fmt.Errorf("provider %q: %w", cfg.Name, err)
	}
	return p, nil
}
