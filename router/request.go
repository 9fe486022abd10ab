package router

import (
	"bytes"
	"context"
	"net/http"
	"strings"

	"github.com/tidwall/gjson"
	"github.com/tidwall/sjson"

	"github.com/xroute/xroute/providers"
)

// Caller is what the HTTP layer knows of the caller that matters to
// routing. Attach it to the request's context with WithCaller.
type Caller struct {
	// Strategy is the caller key's default strategy ("": none). A
	// request's provider.sort wins over it; it wins over the model's.
	Strategy string
	// AllowModel reports whether the caller may use a public model. The
	// fallback models a request lists ("models": [...]) are tried only
	// when AllowModel is set and allows them.
	AllowModel func(model string) bool
	// KeyID and RequestID name the caller's key and the request: a pool
	// key the upstream refuses leaves the pool only after refusals in
	// distinct requests of distinct callers ("" counts as one anonymous
	// caller, each request with no id as its own request).
	KeyID, RequestID string
	// Account scopes session affinity: two accounts never share an
	// affinity entry, even with the same session id or prompt.
	Account string
	// Session is the caller's explicit session id (the x-session-id
	// header); AgentSession a coding agent's own session header
	// (x-claude-code-session-id from Claude Code, session-id from Codex
	// CLI). A request's prompt_cache_key ranks between them; without any,
	// a session is named by a hash of its stable prefix (see sessionOf).
	Session, AgentSession string
}

type callerKey struct{}

// WithCaller returns ctx carrying c for the router.
func WithCaller(ctx context.Context, c Caller) context.Context {
	return context.WithValue(ctx, callerKey{}, c)
}

func callerFrom(ctx context.Context) Caller {
	c, _ := ctx.Value(callerKey{}).(Caller)
	return c
}

// Preferences are a request's own routing wishes, in OpenRouter's shape:
//
//	"provider": {"order": [...], "only": [...], "ignore": [...],
//	             "sort": "price"|"latency"|"throughput"|<strategy>,
//	             "allow_fallbacks": true},
//	"models": ["fallback-1", "fallback-2"]
//
// Entries of order, only and ignore match a deployment's provider name,
// its "provider/model" name or one of its tags, ignoring case.
type Preferences struct {
	Order, Only, Ignore []string
	// Strategy is provider.sort as a strategy name.
	Strategy string
	// NoFallbacks is allow_fallbacks: false: only the deployments that
	// order (or only) names are tried.
	NoFallbacks bool
	// Models are further public models to try, in order, when every
	// deployment of the requested one failed.
	Models []string
}

// extensionFields are the body fields of OpenRouter's routing extensions.
// xroute reads provider and models and removes all of them before the
// upstream sees the body: an OpenAI-compatible upstream rejects them.
var extensionFields = [...]string{"provider", "models", "route", "transforms", "plugins"}

// sortAliases maps OpenRouter's provider.sort values to strategies.
var sortAliases = map[string]string{"price": "cost", "throughput": "latency"}

// maxFallbackModels bounds the models list.
const maxFallbackModels = 8

// hasExtensions is the cheap test run on every body: does some string
// in it equal an extension field's name? (Anywhere: an over-approximation
// of a top-level key, which gjson then checks.)
func hasExtensions(body []byte) bool {
	for i := 0; ; {
		j := bytes.IndexByte(body[i:], '"')
		if j < 0 {
			return false
		}
		i += j + 1
		if i >= len(body) {
			return false
		}
		switch body[i] {
		case 'p', 'm', 'r', 't':
			rest := body[i:]
			for _, f := range extensionFields {
				if len(rest) > len(f) && rest[len(f)] == '"' && string(rest[:len(f)]) == f {
					return true
				}
			}
		}
	}
}

// parsePreferences reads the routing extensions of a chat body and
// returns the body without them (body itself is never modified). p is nil
// when the body has none.
func parsePreferences(body []byte) (p *Preferences, stripped []byte, err error) {
	if !hasExtensions(body) {
		return nil, body, nil
	}
	stripped = body
	for _, f := range extensionFields {
		v := gjson.GetBytes(body, f)
		if !v.Exists() {
			continue
		}
		if p == nil {
			p = &Preferences{}
		}
		switch f {
		case "provider":
			if err := p.readProvider(v); err != nil {
				return nil, nil, err
			}
		case "models":
			if p.Models, err = stringList("models", v); err != nil {
				return nil, nil, err
			}
			if len(p.Models) > maxFallbackModels {
				return nil, nil, badRequest("models", "'models' may list at most 8 models.")
			}
		}
		if stripped, err = sjson.DeleteBytes(stripped, f); err != nil {
			return nil, nil, badRequest(f, "Could not read '"+f+"'.")
		}
	}
	return p, stripped, nil
}

func (p *Preferences) readProvider(v gjson.Result) error {
	if !v.IsObject() {
		return badRequest("provider", "Invalid type for 'provider': expected an object.")
	}
	var err error
	if p.Order, err = stringList("provider.order", v.Get("order")); err != nil {
		return err
	}
	if p.Only, err = stringList("provider.only", v.Get("only")); err != nil {
		return err
	}
	if p.Ignore, err = stringList("provider.ignore", v.Get("ignore")); err != nil {
		return err
	}
	if s := v.Get("sort"); s.Exists() && s.Type != gjson.Null {
		if s.Type != gjson.String {
			return badRequest("provider.sort", "Invalid type for 'provider.sort': expected a string.")
		}
		p.Strategy = strings.ToLower(s.Str)
		if alias, ok := sortAliases[p.Strategy]; ok {
			p.Strategy = alias
		}
	}
	if af := v.Get("allow_fallbacks"); af.Exists() && af.Type != gjson.Null {
		if af.Type != gjson.True && af.Type != gjson.False {
			return badRequest("provider.allow_fallbacks", "Invalid type for 'provider.allow_fallbacks': expected a boolean.")
		}
		p.NoFallbacks = !af.Bool()
	}
	return nil
}

func stringList(param string, v gjson.Result) ([]string, error) {
	if !v.Exists() || v.Type == gjson.Null {
		return nil, nil
	}
	if !v.IsArray() {
		return nil, badRequest(param, "Invalid type for '"+param+"': expected an array of strings.")
	}
	var out []string
	var err error
	v.ForEach(func(_, e gjson.Result) bool {
		if e.Type != gjson.String || e.Str == "" {
			err = badRequest(param, "Invalid '"+param+"': expected an array of non-empty strings.")
			return false
		}
		out = append(out, e.Str)
		return true
	})
	return out, err
}

// badRequest is a problem with the routing extensions of a request. It is
// a *providers.Error with status 400 so that the HTTP layer returns it to
// the caller as it returns an upstream's 400.
func badRequest(param, msg string) *providers.Error {
	return &providers.Error{Provider: "xroute", Status: http.StatusBadRequest, Type: "invalid_request_error", Param: param, Message: msg}
}

// matches reports whether entry names d: its provider, its
// "provider/model" name or one of its tags.
func (d *Deployment) matches(entry string) bool {
	if strings.EqualFold(entry, d.Provider) || strings.EqualFold(entry, d.name) {
		return true
	}
	for _, t := range d.tags {
		if strings.EqualFold(entry, t) {
			return true
		}
	}
	return false
}

func matchAny(d *Deployment, entries []string) bool {
	for _, e := range entries {
		if d.matches(e) {
			return true
		}
	}
	return false
}

// orderIndex is the position of the first entry of order naming d, or
// len(order).
func orderIndex(d *Deployment, order []string) int {
	for i, e := range order {
		if d.matches(e) {
			return i
		}
	}
	return len(order)
}

// apply filters ds (already ordered by the strategy) by the preferences
// and moves the deployments named by order to the front, in that order.
func (p *Preferences) apply(ds []*Deployment) []*Deployment {
	out := ds[:0]
	for _, d := range ds {
		switch {
		case len(p.Only) > 0 && !matchAny(d, p.Only):
		case matchAny(d, p.Ignore):
		case p.NoFallbacks && len(p.Order) > 0 && len(p.Only) == 0 && orderIndex(d, p.Order) == len(p.Order):
		default:
			out = append(out, d)
		}
	}
	if len(p.Order) == 0 {
		return out
	}
	// Stable insertion sort by position in order.
	for i := 1; i < len(out); i++ {
		x, xi := out[i], orderIndex(out[i], p.Order)
		j := i
		for ; j > 0 && xi < orderIndex(out[j-1], p.Order); j-- {
			out[j] = out[j-1]
		}
		out[j] = x
	}
	return out
}
