package openai

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"github.com/xroute/xroute/providers"
)

// Embed implements providers.Embedder against POST {base}/embeddings. It
// always asks for floats; the gateway encodes base64 for callers who want it,
// so every provider answers the same way.
func (a *Adapter) Embed(ctx context.Context, model string, inputs []string, dimensions int) ([][]float32, providers.Usage, error) {
	url := strings.TrimSuffix(a.url, "/chat/completions") + "/embeddings"
	if a.opts.EmbeddingsURL != nil {
		url = a.opts.EmbeddingsURL(model)
	}
	body, err := json.Marshal(struct {
		Model          string   `json:"model"`
		Input          []string `json:"input"`
		EncodingFormat string   `json:"encoding_format"`
		Dimensions     int      `json:"dimensions,omitempty"`
	}{model, inputs, "float", dimensions})
	if err != nil {
		return nil, providers.Usage{}, err
	}
	raw, err := providers.Send(ctx, a.client, a.name, a.timeout,
		func(ctx context.Context) (*http.Request, error) {
			req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
			if err != nil {
				return nil, err
			}
			a.setHeaders(req.Header, providers.ContentJSON, providers.ContentJSON)
			return req, nil
		},
		func(resp *http.Response, raw []byte) error { return a.upstreamError(resp, raw) })
	if err != nil {
		return nil, providers.Usage{}, err
	}
	var out struct {
		Data []struct {
			Index     int       `json:"index"`
			Embedding []float32 `json:"embedding"`
		} `json:"data"`
		Usage struct {
			PromptTokens int `json:"prompt_tokens"`
			TotalTokens  int `json:"total_tokens"`
		} `json:"usage"`
	}
	if err := json.Unmarshal(raw, &out); err != nil {
		return nil, providers.Usage{}, providers.Malformed(a.name, false, "upstream sent invalid embeddings JSON", nil)
	}
	if len(out.Data) != len(inputs) {
		return nil, providers.Usage{}, &providers.Error{Provider: a.name, Status: http.StatusBadGateway, Message: fmt.Sprintf("upstream returned %d embeddings for %d inputs", len(out.Data), len(inputs))}
	}
	vecs := make([][]float32, len(inputs))
	for _, d := range out.Data {
		if d.Index < 0 || d.Index >= len(vecs) {
			return nil, providers.Usage{}, &providers.Error{Provider: a.name, Status: http.StatusBadGateway, Message: "upstream embedding index out of range"}
		}
		vecs[d.Index] = d.Embedding
	}
	return vecs, providers.Usage{PromptTokens: out.Usage.PromptTokens, TotalTokens: out.Usage.PromptTokens}, nil
}
