// Package gemini is the adapter for the Google Gemini API
// (generativelanguage.googleapis.com) in its native format: it translates
// the caller's OpenAI chat request into generateContent /
// streamGenerateContent, and the answer back into OpenAI's chat.completion
// and chat.completion.chunk objects. It also embeds text with
// batchEmbedContents.
//
// Config: type "gemini"; base_url defaults to
// https://generativelanguage.googleapis.com; api_version picks the API
// version path (default v1beta); the key (api_key / api_key_env) goes in
// the x-goog-api-key header, never in the URL.
package gemini

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/xroute/xroute/config"
	"github.com/xroute/xroute/providers"
)

// Type is the adapter's name in config (providers[].type).
const Type = "gemini"

// DefaultBaseURL is the Gemini API's endpoint.
const DefaultBaseURL = "https://generativelanguage.googleapis.com"

const defaultAPIVersion = "v1beta"

// Adapter talks to one Gemini API account.
type Adapter struct {
	name    string
	base    string // e.g. https://generativelanguage.googleapis.com/v1beta
	key     string
	headers map[string]string
	timeout time.Duration
	client  *http.Client
	now     func() time.Time
}

// New builds an adapter from its config entry; it is the registry Factory.
func New(cfg config.Provider, deps providers.Deps) (providers.Provider, error) {
	return newAdapter(cfg, deps)
}

func newAdapter(cfg config.Provider, deps providers.Deps) (*Adapter, error) {
	base := strings.TrimRight(cfg.BaseURL, "/")
	if base == "" {
		base = DefaultBaseURL
	}
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("gemini: base_url must be an http(s) URL, got %q", cfg.BaseURL)
	}
	// base_url may already name the version (".../v1beta"); otherwise
	// api_version (default v1beta) is appended.
	last := base[strings.LastIndexByte(base, '/')+1:]
	if !strings.HasPrefix(last, "v1") {
		version := cfg.APIVersion
		if version == "" {
			version = defaultAPIVersion
		}
		base += "/" + strings.Trim(version, "/")
	}
	deps = deps.WithDefaults()
	getenv, client := deps.Getenv, deps.Client
	return &Adapter{
		name:    cfg.Name,
		base:    base,
		key:     cfg.ProviderKey(getenv),
		headers: cfg.Headers,
		timeout: cfg.Timeout,
		client:  client,
		now:     time.Now,
	}, nil
}

// modelURL is the URL of a model method, e.g. ":generateContent".
func (a *Adapter) modelURL(model, method string) string {
	model = strings.TrimPrefix(model, "models/")
	return a.base + "/models/" + url.PathEscape(model) + method
}

func (a *Adapter) newRequest(ctx context.Context, u string, body []byte, stream bool) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	providers.Headers{Extra: a.headers, Own: a.ownHeaders}.Set(req.Header, providers.ContentJSON, providers.Accept(stream))
	return req, nil
}

// ownHeaders carry the key in a header, never in the URL.
func (a *Adapter) ownHeaders(h http.Header) {
	if a.key != "" {
		h.Set("x-goog-api-key", a.key)
	}
}

// Chat implements providers.Provider.
func (a *Adapter) Chat(ctx context.Context, call *providers.Call) (*providers.ChatResponse, error) {
	in, err := call.Request.Decoded()
	if err != nil {
		return nil, err
	}
	body, err := translateDecoded(in)
	if err != nil {
		return nil, err
	}
	raw, err := providers.Send(ctx, a.client, a.name, a.timeout,
		func(ctx context.Context) (*http.Request, error) {
			return a.newRequest(ctx, a.modelURL(call.Model, ":generateContent"), body, false)
		},
		func(resp *http.Response, raw []byte) error { return upstreamError(a.name, resp, raw, a.key, a.now()) })
	if err != nil {
		return nil, err
	}
	var g generateResponse
	if err := json.Unmarshal(raw, &g); err != nil {
		return nil, providers.Malformed(a.name, false, "upstream sent invalid JSON", err)
	}
	c := providers.Completion{ID: providers.NewCompletionID(), Model: call.Request.Model, Created: a.now().Unix()}
	if err := completion(&g, &c, toolCallID); err != nil {
		return nil, providers.Malformed(a.name, false, "upstream answer unusable", err)
	}
	return c.Response()
}

// ChatStream implements providers.Provider.
func (a *Adapter) ChatStream(ctx context.Context, call *providers.Call) (providers.Stream, error) {
	in, err := call.Request.Decoded()
	if err != nil {
		return nil, err
	}
	body, err := translateDecoded(in)
	if err != nil {
		return nil, err
	}
	resp, cancel, err := providers.OpenStream(ctx, a.client, a.name, a.timeout,
		func(ctx context.Context) (*http.Request, error) {
			return a.newRequest(ctx, a.modelURL(call.Model, ":streamGenerateContent")+"?alt=sse", body, true)
		},
		func(resp *http.Response, raw []byte) error { return upstreamError(a.name, resp, raw, a.key, a.now()) })
	if err != nil {
		return nil, err
	}
	t := newTranslator(a.name, resp.Body, providers.ChunkBuilder{ID: providers.NewCompletionID(), Model: call.Request.Model, Created: a.now().Unix()})
	t.key = a.key
	return &providers.TranslatedStream{
		Next: t.next,
		CloseFn: func() error {
			cancel()
			return resp.Body.Close()
		},
	}, nil
}
