package gemini

import (
	"context"
	"net/http"
	"strings"

	"github.com/tidwall/gjson"
	"github.com/tidwall/sjson"

	"github.com/xroute/xroute/providers"
)

// CountTokens asks Gemini's countTokens for the exact input tokens of the
// request as generateContent would see it (system instruction and tools
// included, through generateContentRequest).
func (a *Adapter) CountTokens(ctx context.Context, call *providers.Call) (int, error) {
	in, err := call.Request.Decoded()
	if err != nil {
		return 0, err
	}
	gen, err := translateDecoded(in)
	if err != nil {
		return 0, err
	}
	// countTokens takes no generation settings.
	gen, _ = sjson.DeleteBytes(gen, "generationConfig")
	if gen, err = sjson.SetBytes(gen, "model", "models/"+strings.TrimPrefix(call.Model, "models/")); err != nil {
		return 0, err
	}
	body, err := sjson.SetRawBytes([]byte(`{}`), "generateContentRequest", gen)
	if err != nil {
		return 0, err
	}
	raw, err := providers.Send(ctx, a.client, a.name, a.timeout,
		func(ctx context.Context) (*http.Request, error) {
			return a.newRequest(ctx, a.modelURL(call.Model, ":countTokens"), body, false)
		},
		func(resp *http.Response, raw []byte) error { return upstreamError(a.name, resp, raw, a.key, a.now()) })
	if err != nil {
		return 0, err
	}
	n := gjson.GetBytes(raw, "totalTokens")
	if n.Type != gjson.Number || n.Int() < 0 {
		return 0, &providers.Error{Provider: a.name, Status: http.StatusBadGateway, Message: "upstream sent an invalid token count"}
	}
	return int(n.Int()), nil
}
