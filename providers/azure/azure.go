// Package azure is the adapter for Azure OpenAI. The wire format is
// OpenAI's Chat Completions, so the adapter forwards the caller's bytes,
// rewriting only what must change, and reads usage back out. What differs
// from OpenAI is the address and the key:
//
//   - the dated API (default): POST {base_url}/openai/deployments/{deployment}/chat/completions?api-version={api_version},
//     where the deployment is the upstream model id (the body's model is
//     ignored by Azure and left as the caller sent it);
//   - the v1 API (api_version: v1): POST {base_url}/openai/v1/chat/completions
//     with the deployment name as the body's model;
//
// both with the key in the api-key header. Azure's extras are handled: the
// first stream chunk carrying only prompt_filter_results is dropped,
// content-filter errors (400, code content_filter) keep their code, and
// API-management errors ({"statusCode","message"}) are read too.
package azure

import (
	"bytes"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/tidwall/gjson"

	"github.com/xroute/xroute/config"
	"github.com/xroute/xroute/providers"
	"github.com/xroute/xroute/providers/openai"
)

// DefaultAPIVersion is the latest GA api-version of the dated data-plane
// inference API.
const DefaultAPIVersion = "2024-10-21"

// APIVersionV1 selects the v1 API (/openai/v1/..., no api-version).
const APIVersionV1 = "v1"

// New builds an adapter from its config entry; it is the registry Factory.
// base_url is the resource endpoint (https://{resource}.openai.azure.com; a
// trailing /openai or /openai/v1 is accepted), api_key or api_key_env the
// resource key, api_version the dated version (DefaultAPIVersion) or "v1".
// The wire format is OpenAI's, so the OpenAI adapter does the work with
// Azure's addresses, key header and error vocabulary.
func New(cfg config.Provider, deps providers.Deps) (providers.Provider, error) {
	deps = deps.WithDefaults()
	getenv := deps.Getenv
	base := strings.TrimRight(cfg.BaseURL, "/")
	if base == "" {
		return nil, errors.New("azure: base_url is required (https://<resource>.openai.azure.com)")
	}
	version := cfg.APIVersion
	if b, ok := strings.CutSuffix(base, "/openai/v1"); ok {
		base = b
		if version == "" {
			version = APIVersionV1
		}
	} else {
		base = strings.TrimSuffix(base, "/openai")
	}
	if version == "" {
		version = DefaultAPIVersion
	}
	key := cfg.ProviderKey(getenv)
	if key == "" {
		return nil, errors.New("azure: api_key or api_key_env is required")
	}
	v1 := version == APIVersionV1
	endpoint := func(op string) func(string) string {
		return func(deployment string) string {
			if v1 {
				return base + "/openai/v1/" + op
			}
			return base + "/openai/deployments/" + url.PathEscape(deployment) + "/" + op + "?api-version=" + url.QueryEscape(version)
		}
	}
	cfg.APIKey, cfg.APIKeyEnv = "", "" // the key goes in api-key, not Authorization
	modelsURL := base + "/openai/models?api-version=" + url.QueryEscape(version)
	if v1 {
		modelsURL = base + "/openai/v1/models"
	}
	// The Responses API lives at /openai/v1/responses (v1) or
	// /openai/responses?api-version= (previews from 2025-03-01), with the
	// deployment as the body's model; native_formats may turn it off.
	responsesURL := ""
	switch {
	case slices.Contains(cfg.NativeFormats, "none"):
	case v1:
		responsesURL = base + "/openai/v1/responses"
	case strings.HasSuffix(version, "-preview") && version >= "2025-03-01-preview":
		responsesURL = base + "/openai/responses?api-version=" + url.QueryEscape(version)
	}
	return openai.NewWith(cfg, deps, openai.Options{
		NativeURL: func(f providers.Format, _ string) string {
			if f == providers.FormatResponses {
				return responsesURL
			}
			return ""
		},
		URL:           endpoint("chat/completions"),
		EmbeddingsURL: endpoint("embeddings"),
		Auth:          func(h http.Header) { h.Set("api-key", key) },
		// The dated API takes the deployment from the URL and ignores the
		// body's model; the v1 API reads the deployment from the model.
		KeepModel:     !v1,
		SkipChunk:     promptFilterOnly,
		ErrorFromJSON: errorFromJSON,
		ModelsURL:     modelsURL,
	}), nil
}

var filterKey = []byte(`"prompt_filter_results"`)

// promptFilterOnly spots Azure's first stream chunk: prompt_filter_results,
// no choices, an empty id. It is not a chunk OpenAI clients expect.
func promptFilterOnly(data []byte) bool {
	return bytes.Contains(data, filterKey) && !gjson.GetBytes(data, "choices.0").Exists() && !gjson.GetBytes(data, "usage").IsObject()
}

func errorFromJSON(provider string, status int, e gjson.Result) *providers.Error {
	pe := &providers.Error{
		Provider: provider,
		Status:   status,
		Message:  e.Get("message").String(),
		Type:     e.Get("type").String(),
		Param:    e.Get("param").String(),
	}
	code := e.Get("code")
	switch code.Type {
	case gjson.String:
		pe.Code = code.String()
	case gjson.Number:
		pe.Code = strconv.FormatInt(code.Int(), 10)
	}
	if pe.Status == 0 {
		if s := e.Get("status").Int(); s >= 400 && s < 600 {
			pe.Status = int(s)
		} else if n, err := strconv.Atoi(pe.Code); err == nil && n >= 400 && n < 600 {
			pe.Status = n
		}
	}
	// Azure's codes are HTTP statuses or its own names: speak OpenAI's.
	switch {
	case pe.Code == "DeploymentNotFound":
		pe.Code = "model_not_found"
	case isDigits(pe.Code):
		pe.Code = defaultCode(pe.Status)
	}
	if pe.Code == "content_filter" && pe.Type == "" {
		pe.Type = "invalid_request_error"
	}
	if pe.Type == "" && pe.Status != 0 {
		pe.Type = defaultType(pe.Status)
	}
	return pe
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func defaultType(status int) string {
	switch {
	case status == http.StatusUnauthorized:
		return "authentication_error"
	case status == http.StatusForbidden:
		return "permission_error"
	case status == http.StatusTooManyRequests:
		return "rate_limit_error"
	case status >= 500 || status == 0:
		return "server_error"
	}
	return "invalid_request_error"
}

func defaultCode(status int) string {
	switch status {
	case http.StatusUnauthorized:
		return "invalid_api_key"
	case http.StatusNotFound:
		return "not_found"
	case http.StatusTooManyRequests:
		return "rate_limit_exceeded"
	}
	return ""
}
