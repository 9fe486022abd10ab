package gemini

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"github.com/xroute/xroute/providers"
)

// maxEmbedBatch is the most requests one batchEmbedContents call carries;
// longer input lists are sent in several calls, in order.
const maxEmbedBatch = 100

// Embed embeds inputs with model via batchEmbedContents, in order, one
// vector per input. dimensions > 0 asks for that outputDimensionality
// (models that support it truncate their vectors).
//
// The Gemini API reports no token count for embeddings; the returned usage
// is then estimated at one token per 4 bytes of input (Google's documented
// rule of thumb), at least 1 per input. When an answer carries
// usageMetadata.promptTokenCount, that count is used instead.
func (a *Adapter) Embed(ctx context.Context, model string, inputs []string, dimensions int) ([][]float32, providers.Usage, error) {
	if len(inputs) == 0 {
		return nil, providers.Usage{}, &providers.RequestError{Param: "input", Message: "Invalid 'input': expected at least one string."}
	}
	if dimensions < 0 {
		return nil, providers.Usage{}, &providers.RequestError{Param: "dimensions", Message: fmt.Sprintf("Invalid 'dimensions': expected a positive value, got %d.", dimensions)}
	}
	for i, in := range inputs {
		if in == "" {
			return nil, providers.Usage{}, &providers.RequestError{Param: fmt.Sprintf("input[%d]", i), Message: fmt.Sprintf("Invalid 'input[%d]': empty string.", i)}
		}
	}
	out := make([][]float32, 0, len(inputs))
	var usage providers.Usage
	for start := 0; start < len(inputs); start += maxEmbedBatch {
		batch := inputs[start:min(start+maxEmbedBatch, len(inputs))]
		vecs, tokens, err := a.embedBatch(ctx, model, batch, dimensions)
		if err != nil {
			return nil, providers.Usage{}, err
		}
		out = append(out, vecs...)
		usage.PromptTokens += tokens
	}
	usage.TotalTokens = usage.PromptTokens
	return out, usage, nil
}

func (a *Adapter) embedBatch(ctx context.Context, model string, inputs []string, dimensions int) ([][]float32, int, error) {
	name := "models/" + strings.TrimPrefix(model, "models/")
	req := embedRequest{Requests: make([]embedContentRequest, len(inputs))}
	for i, in := range inputs {
		req.Requests[i] = embedContentRequest{Model: name, Content: content{Parts: []part{{Text: in}}}, OutputDimensionality: dimensions}
	}
	body, err := json.Marshal(&req)
	if err != nil {
		return nil, 0, fmt.Errorf("%s: %w", a.name, err)
	}
	raw, err := providers.Send(ctx, a.client, a.name, a.timeout,
		func(ctx context.Context) (*http.Request, error) {
			return a.newRequest(ctx, a.modelURL(model, ":batchEmbedContents"), body, false)
		},
		func(resp *http.Response, raw []byte) error { return upstreamError(a.name, resp, raw, a.key, a.now()) })
	if err != nil {
		return nil, 0, err
	}
	var er embedResponse
	if err := json.Unmarshal(raw, &er); err != nil {
		return nil, 0, providers.Malformed(a.name, false, "upstream sent invalid JSON", err)
	}
	if len(er.Embeddings) != len(inputs) {
		return nil, 0, &providers.Error{Provider: a.name, Status: http.StatusBadGateway,
			Message: fmt.Sprintf("upstream returned %d embeddings for %d inputs", len(er.Embeddings), len(inputs))}
	}
	vecs := make([][]float32, len(inputs))
	for i := range er.Embeddings {
		vecs[i] = er.Embeddings[i].Values
	}
	if er.UsageMetadata != nil && er.UsageMetadata.PromptTokenCount > 0 {
		return vecs, er.UsageMetadata.PromptTokenCount, nil
	}
	tokens := 0
	for _, in := range inputs {
		tokens += max(1, (len(in)+3)/4)
	}
	return vecs, tokens, nil
}
