package anthropic

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"

	"github.com/xroute/xroute/loadtest/mock"
)

// request is the part of a Messages (or count_tokens) request the mock
// reads; decodeRequest checks the top-level field names first.
type request struct {
	Model             *string         `json:"model"`
	MaxTokens         *int            `json:"max_tokens"`
	Messages          []turn          `json:"messages"`
	System            json.RawMessage `json:"system"`
	Tools             []tool          `json:"tools"`
	ToolChoice        *toolChoice     `json:"tool_choice"`
	StopSequences     []string        `json:"stop_sequences"`
	Temperature       *float64        `json:"temperature"`
	TopP              *float64        `json:"top_p"`
	TopK              *int            `json:"top_k"`
	Stream            bool            `json:"stream"`
	Thinking          *thinkingConfig `json:"thinking"`
	OutputConfig      *outputConfig   `json:"output_config"`
	OutputFormat      *outputFormat   `json:"output_format"`
	Metadata          json.RawMessage `json:"metadata"`
	CacheControl      *cacheControl   `json:"cache_control"`
	ContextManagement json.RawMessage `json:"context_management"`
	ServiceTier       *string         `json:"service_tier"`
	Speed             *string         `json:"speed"`
	InferenceGeo      *string         `json:"inference_geo"`

	hasCacheControl bool // the body mentions cache_control somewhere
}

type turn struct {
	Role         string          `json:"role"`
	Content      json.RawMessage `json:"content"`
	OutputConfig json.RawMessage `json:"output_config"` // system messages (beta)
}

// block is a content block of any type; raw is its JSON (for the prompt
// cache's hashes).
type block struct {
	Type         string          `json:"type"`
	Text         *string         `json:"text"`
	Citations    json.RawMessage `json:"citations"`
	Source       json.RawMessage `json:"source"` // an object; a string in search_result
	ID           string          `json:"id"`
	Name         string          `json:"name"`
	Input        json.RawMessage `json:"input"`
	ToolUseID    string          `json:"tool_use_id"`
	Content      json.RawMessage `json:"content"`
	IsError      bool            `json:"is_error"`
	Thinking     *string         `json:"thinking"`
	Signature    *string         `json:"signature"`
	Data         *string         `json:"data"`
	Title        *string         `json:"title"`
	Context      *string         `json:"context"`
	CacheControl *cacheControl   `json:"cache_control"`
	raw          json.RawMessage
}

// source decodes the source of an image or document block (nil when
// absent or not an object).
func (b *block) source() *source {
	var src *source
	if raw := bytes.TrimSpace(b.Source); len(raw) == 0 || raw[0] != '{' || json.Unmarshal(raw, &src) != nil {
		return nil
	}
	return src
}

type source struct {
	Type      string          `json:"type"`
	MediaType string          `json:"media_type"`
	Data      *string         `json:"data"`
	URL       string          `json:"url"`
	FileID    string          `json:"file_id"`
	Content   json.RawMessage `json:"content"`
}

type cacheControl struct {
	Type string `json:"type"`
	TTL  string `json:"ttl"`
}

type tool struct {
	Type         string          `json:"type"`
	Name         string          `json:"name"`
	Description  string          `json:"description"`
	InputSchema  json.RawMessage `json:"input_schema"`
	CacheControl *cacheControl   `json:"cache_control"`
	DeferLoading bool            `json:"defer_loading"`
	raw          json.RawMessage
}

func (t *tool) UnmarshalJSON(b []byte) error {
	type plain tool
	if err := json.Unmarshal(b, (*plain)(t)); err != nil {
		return err
	}
	t.raw = b
	return nil
}

type toolChoice struct {
	Type                   string `json:"type"`
	Name                   string `json:"name"`
	DisableParallelToolUse bool   `json:"disable_parallel_tool_use"`
}

type thinkingConfig struct {
	Type         string `json:"type"`
	BudgetTokens *int   `json:"budget_tokens"`
	Display      string `json:"display"`
}

type outputConfig struct {
	Effort string        `json:"effort"`
	Format *outputFormat `json:"format"`
}

type outputFormat struct {
	Type   string          `json:"type"`
	Schema json.RawMessage `json:"schema"`
}

// apiError is a validation failure.
type apiError struct {
	status  int
	message string
}

func invalid(msg string) *apiError { return &apiError{status: http.StatusBadRequest, message: msg} }

// Top-level fields of a Messages request: the reference's and those of the
// SDK's MessageNewParams and BetaMessageNewParams. The sampling parameters
// exist in API version 2023-06-01 only.
var (
	messageFields = []string{"model", "max_tokens", "messages", "system", "metadata", "stop_sequences", "stream",
		"thinking", "tool_choice", "tools", "inference_geo", "container", "speed", "cache_control", "diagnostics",
		"output_config", "service_tier", "context_management", "mcp_servers", "output_format", "compaction",
		"thread", "fallbacks", "fallback_credit_token", "billing_policy"}
	samplingFields = []string{"temperature", "top_p", "top_k"}
	// count_tokens: MessageCountTokensParams and BetaMessageCountTokensParams.
	countFields = []string{"model", "messages", "system", "tools", "thinking", "tool_choice", "cache_control",
		"output_config", "speed", "context_management", "mcp_servers", "output_format", "compaction", "billing_policy"}
)

// decodeRequest reads the JSON body of r into req: a 413 past mock.MaxBodyBytes,
// a 400 for JSON that does not parse, for a top-level field the endpoint
// does not know ("Extra inputs are not permitted") and for a wrong type.
func decodeRequest(w http.ResponseWriter, r *http.Request, version string, count bool, req *request) *apiError {
	body, tooLarge, err := mock.ReadBody(w, r)
	if err != nil {
		if tooLarge {
			return &apiError{status: http.StatusRequestEntityTooLarge, message: "Request exceeds the maximum allowed number of bytes."}
		}
		return invalid("There was an issue reading the body of your request: " + err.Error())
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(body, &fields); err != nil || fields == nil {
		return invalid("There was an issue with the format or content of your request. The request body is not valid JSON.")
	}
	known := messageFields
	if count {
		known = countFields
	}
	var extra []string
	for k := range fields {
		if slices.Contains(known, k) || (!count && version != version2026 && slices.Contains(samplingFields, k)) {
			continue
		}
		extra = append(extra, k)
	}
	if len(extra) > 0 {
		slices.Sort(extra)
		return invalid(extra[0] + ": Extra inputs are not permitted")
	}
	req.hasCacheControl = bytes.Contains(body, []byte(`"cache_control"`))
	if err := json.Unmarshal(body, req); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			return invalid(te.Field + ": Input should be a valid " + jsonKind(te.Type.Kind().String()))
		}
		return invalid("There was an issue with the format or content of your request: " + err.Error())
	}
	return nil
}

// jsonKind names a Go kind as the API's validation messages name types.
func jsonKind(k string) string {
	switch {
	case strings.HasPrefix(k, "int"), strings.HasPrefix(k, "uint"):
		return "integer"
	case strings.HasPrefix(k, "float"):
		return "number"
	case k == "bool":
		return "boolean"
	case k == "slice", k == "array":
		return "list"
	case k == "struct", k == "map":
		return "dictionary"
	}
	return k
}

// blocks decodes a content (a string or an array of blocks); a string is one
// text block.
func blocks(raw json.RawMessage) ([]block, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || raw[0] == 'n' {
		return nil, errors.New("Field required")
	}
	if raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, err
		}
		return []block{{Type: "text", Text: &s, raw: raw}}, nil
	}
	var raws []json.RawMessage
	if err := json.Unmarshal(raw, &raws); err != nil {
		return nil, errors.New("Input should be a valid list")
	}
	bs := make([]block, len(raws))
	for i, r := range raws {
		if err := json.Unmarshal(r, &bs[i]); err != nil {
			return nil, errors.New("Input should be a valid dictionary")
		}
		bs[i].raw = r
	}
	return bs, nil
}
