// Package responses is the OpenAI Responses API ingress (POST
// /v1/responses and its stored-response routes): it reads a create request
// once, checks it, translates it into the Chat Completions pivot every
// adapter reads (pivot.go), and renders the neutral answer events as a
// response object or its stream of events (output.go). The HTTP handler
// (internal/httpapi) runs it through the same admission, routing and
// metering as every other endpoint; a deployment that speaks the
// Responses API natively gets the caller's own body instead.
package responses

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	segjson "github.com/segmentio/encoding/json"
	"github.com/tidwall/gjson"

	"github.com/xroute/xroute/internal/jsontext"
	"github.com/xroute/xroute/providers"
)

// Request is a create request as xroute reads it. Fields xroute does not
// read stay in Body (forwarded natively) and are dropped when translating.
type Request struct {
	Model              string          `json:"model"`
	Input              json.RawMessage `json:"input"`
	Instructions       *string         `json:"instructions"`
	Tools              []Tool          `json:"tools"`
	ToolChoice         json.RawMessage `json:"tool_choice"`
	ParallelToolCalls  *bool           `json:"parallel_tool_calls"`
	MaxOutputTokens    *int            `json:"max_output_tokens"`
	Temperature        *float64        `json:"temperature"`
	TopP               *float64        `json:"top_p"`
	Text               *TextConfig     `json:"text"`
	Reasoning          *Reasoning      `json:"reasoning"`
	Metadata           json.RawMessage `json:"metadata"`
	User               *string         `json:"user"`
	SafetyIdentifier   *string         `json:"safety_identifier"`
	Store              *bool           `json:"store"`
	Stream             *bool           `json:"stream"`
	Include            []string        `json:"include"`
	Truncation         *string         `json:"truncation"`
	PreviousResponseID *string         `json:"previous_response_id"`
	Background         *bool           `json:"background"`
	Conversation       json.RawMessage `json:"conversation"`
	Prompt             json.RawMessage `json:"prompt"`
	PromptCacheKey     *string         `json:"prompt_cache_key"`
	providers.RoutingExtensions

	// Body is the caller's JSON, never modified.
	Body []byte `json:"-"`
	// Items is Input as items (a string input is one user message).
	Items []Item `json:"-"`
}

// Tool is one entry of tools: a function (flat, unlike chat's), a custom
// tool (free-form input), a namespace grouping those, or a built-in tool
// (web_search, file_search, ...) that only OpenAI runs.
type Tool struct {
	Type        string          `json:"type"`
	Name        string          `json:"name"`
	Description string          `json:"description"`
	Parameters  json.RawMessage `json:"parameters"`
	Strict      *bool           `json:"strict"`
	Format      json.RawMessage `json:"format"` // custom tools
	Tools       []Tool          `json:"tools"`  // namespaces
}

// TextConfig is text: the output format (text, json_object, json_schema).
type TextConfig struct {
	Format *TextFormat `json:"format"`
}

// TextFormat is text.format; for json_schema the schema's fields sit
// beside type (not nested as in chat's response_format).
type TextFormat struct {
	Type        string          `json:"type"`
	Name        string          `json:"name"`
	Description string          `json:"description"`
	Schema      json.RawMessage `json:"schema"`
	Strict      *bool           `json:"strict"`
}

// Reasoning is reasoning: effort and the summary wanted.
type Reasoning struct {
	Effort  *string `json:"effort"`
	Summary *string `json:"summary"`
}

// Item is one input (or stored output) item, decoded as far as xroute
// needs; Raw keeps it as sent.
type Item struct {
	Type             string          `json:"type"`
	ID               string          `json:"id"`
	Role             string          `json:"role"`
	Content          json.RawMessage `json:"content"`
	CallID           string          `json:"call_id"`
	Name             string          `json:"name"`
	Namespace        string          `json:"namespace"`
	Arguments        string          `json:"arguments"`
	Input            string          `json:"input"`
	Output           json.RawMessage `json:"output"`
	Summary          json.RawMessage `json:"summary"`
	EncryptedContent *string         `json:"encrypted_content"`

	Raw json.RawMessage `json:"-"`
}

// Part is one content part of a message or a tool output.
type Part struct {
	Type     string          `json:"type"`
	Text     jsontext.String `json:"text"`
	Refusal  string          `json:"refusal"`
	ImageURL string          `json:"image_url"`
	FileID   string          `json:"file_id"`
	Detail   string          `json:"detail"`
	FileData string          `json:"file_data"`
	FileURL  string          `json:"file_url"`
	Filename string          `json:"filename"`
	Extra    json.RawMessage `json:"-"`
}

// Error is a problem with the caller's request: a 400 in OpenAI's shape.
type Error = providers.RequestError

func reqErr(param, format string, args ...any) error {
	return &Error{Param: param, Message: fmt.Sprintf(format, args...)}
}

// maxItems bounds one request's input items (and a rebuilt conversation).
const maxItems = 10000

// Parse decodes and checks a create request. body is kept as given (the
// caller must not modify it afterwards). Errors are *Error.
func Parse(body []byte) (*Request, error) {
	var r Request
	if err := providers.DecodeBody(body, &r); err != nil {
		return nil, err
	}
	r.Body = body
	if r.Model == "" {
		return nil, reqErr("model", "Missing required parameter: 'model'.")
	}
	if len(r.Input) == 0 || string(r.Input) == "null" {
		return nil, reqErr("input", "Missing required parameter: 'input'.")
	}
	items, err := ParseInput(r.Input)
	if err != nil {
		return nil, err
	}
	r.Items = items
	if r.MaxOutputTokens != nil && *r.MaxOutputTokens < 16 {
		return nil, reqErr("max_output_tokens", "Invalid 'max_output_tokens': integer below minimum value. Expected a value >= 16, but got %d instead.", *r.MaxOutputTokens)
	}
	if t := r.Temperature; t != nil && (*t < 0 || *t > 2) {
		return nil, reqErr("temperature", "Invalid 'temperature': expected a value from 0 to 2, got %v.", *t)
	}
	if p := r.TopP; p != nil && (*p < 0 || *p > 1) {
		return nil, reqErr("top_p", "Invalid 'top_p': expected a value from 0 to 1, got %v.", *p)
	}
	if r.Background != nil && *r.Background {
		return nil, reqErr("background", "Background responses are not supported by this gateway: send the request without 'background' (stream it to see progress).")
	}
	if len(r.Conversation) > 0 && string(r.Conversation) != "null" {
		return nil, reqErr("conversation", "The Conversations API is not supported by this gateway: continue a conversation with 'previous_response_id'.")
	}
	if r.PreviousResponseID != nil && *r.PreviousResponseID == "" {
		return nil, reqErr("previous_response_id", "Invalid 'previous_response_id': empty string.")
	}
	if r.Truncation != nil {
		switch *r.Truncation {
		case "auto", "disabled":
		default:
			return nil, reqErr("truncation", "Invalid value for 'truncation': %q. Supported values are: 'auto' and 'disabled'.", *r.Truncation)
		}
	}
	if r.Text != nil && r.Text.Format != nil {
		switch f := r.Text.Format; f.Type {
		case "text", "json_object":
		case "json_schema":
			if f.Name == "" {
				return nil, reqErr("text.format.name", "Missing required parameter: 'text.format.name'.")
			}
			if s := bytes.TrimSpace(f.Schema); len(s) == 0 || s[0] != '{' {
				return nil, reqErr("text.format.schema", "Missing required parameter: 'text.format.schema' (a JSON schema object).")
			}
		default:
			return nil, reqErr("text.format.type", "Invalid value for 'text.format.type': %q. Supported values are: 'text', 'json_object' and 'json_schema'.", f.Type)
		}
	}
	if err := checkTools(r.Tools); err != nil {
		return nil, err
	}
	return &r, nil
}

// Streamed reports whether the caller asked for a stream.
func (r *Request) Streamed() bool { return r.Stream != nil && *r.Stream }

// Stored reports whether the response is to be kept (the default).
func (r *Request) Stored() bool { return r.Store == nil || *r.Store }

// SummaryWanted reports whether reasoning summaries are to be shown.
func (r *Request) SummaryWanted() bool {
	return r.Reasoning != nil && r.Reasoning.Summary != nil && *r.Reasoning.Summary != "" && *r.Reasoning.Summary != "none"
}

func jsonType(kind string) string {
	switch kind {
	case "string":
		return "a string"
	case "slice":
		return "an array"
	case "struct", "map", "ptr":
		return "an object"
	case "bool":
		return "a boolean"
	case "int", "int64", "float64":
		return "a number"
	}
	return kind
}

// checkTools checks the tool list's shape: names where needed, known
// nesting.
func checkTools(tools []Tool) error {
	for i, t := range tools {
		at := "tools[" + strconv.Itoa(i) + "]"
		switch t.Type {
		case "function", "custom":
			if t.Name == "" {
				return reqErr(at+".name", "Missing required parameter: '%s.name'.", at)
			}
		case "namespace":
			if t.Name == "" {
				return reqErr(at+".name", "Missing required parameter: '%s.name'.", at)
			}
			for j, nt := range t.Tools {
				nat := at + ".tools[" + strconv.Itoa(j) + "]"
				if nt.Type != "function" && nt.Type != "custom" {
					return reqErr(nat+".type", "Invalid value for '%s.type': %q. A namespace holds function and custom tools.", nat, nt.Type)
				}
				if nt.Name == "" {
					return reqErr(nat+".name", "Missing required parameter: '%s.name'.", nat)
				}
			}
		case "":
			return reqErr(at+".type", "Missing required parameter: '%s.type'.", at)
		}
	}
	return nil
}

// ParseInput reads input: a string (one user message) or an array of
// items. Each item keeps its raw JSON. Errors are *Error naming the item.
func ParseInput(raw json.RawMessage) ([]Item, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return nil, reqErr("input", "Missing required parameter: 'input'.")
	}
	switch raw[0] {
	case '"':
		var s string
		if err := segjson.Unmarshal(raw, &s); err != nil {
			return nil, reqErr("input", "Invalid 'input': %v.", err)
		}
		content, _ := json.Marshal(s)
		it := Item{Type: "message", Role: "user", Content: content}
		it.Raw, _ = json.Marshal(map[string]any{"type": "message", "role": "user", "content": s})
		return []Item{it}, nil
	case '[':
	default:
		return nil, reqErr("input", "Invalid type for 'input': expected a string or an array of input items.")
	}
	var raws []json.RawMessage
	if err := segjson.Unmarshal(raw, &raws); err != nil {
		return nil, reqErr("input", "Invalid 'input': expected an array of input items.")
	}
	if len(raws) > maxItems {
		return nil, reqErr("input", "Invalid 'input': at most %d items, got %d.", maxItems, len(raws))
	}
	items := make([]Item, 0, len(raws))
	for i, ir := range raws {
		at := "input[" + strconv.Itoa(i) + "]"
		it, err := parseItem(at, ir)
		if err != nil {
			return nil, err
		}
		items = append(items, it)
	}
	return items, nil
}

// parseItem decodes and checks one item.
func parseItem(at string, raw json.RawMessage) (Item, error) {
	var it Item
	if t := bytes.TrimSpace(raw); len(t) == 0 || t[0] != '{' {
		return it, reqErr(at, "Invalid type for '%s': expected an object.", at)
	}
	if err := segjson.Unmarshal(raw, &it); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			return it, reqErr(at+"."+te.Field, "Invalid type for '%s.%s': expected %s.", at, te.Field, jsonType(te.Type.Kind().String()))
		}
		return it, reqErr(at, "Invalid '%s': %v.", at, err)
	}
	it.Raw = raw
	if it.Type == "" && it.Role != "" {
		it.Type = "message" // EasyInputMessage: the type is optional
	}
	switch it.Type {
	case "message":
		switch it.Role {
		case "user", "system", "developer", "assistant":
		case "":
			return it, reqErr(at+".role", "Missing required parameter: '%s.role'.", at)
		default:
			return it, reqErr(at+".role", "Invalid value for '%s.role': %q. Supported values are: 'user', 'assistant', 'system' and 'developer'.", at, it.Role)
		}
		if c := bytes.TrimSpace(it.Content); len(c) == 0 || (c[0] != '"' && c[0] != '[') {
			return it, reqErr(at+".content", "Invalid type for '%s.content': expected a string or an array of content parts.", at)
		}
		if _, err := parts(at+".content", it.Content); err != nil {
			return it, err
		}
	case "function_call", "custom_tool_call":
		if it.CallID == "" {
			return it, reqErr(at+".call_id", "Missing required parameter: '%s.call_id'.", at)
		}
		if it.Name == "" {
			return it, reqErr(at+".name", "Missing required parameter: '%s.name'.", at)
		}
	case "function_call_output", "custom_tool_call_output":
		if it.CallID == "" {
			return it, reqErr(at+".call_id", "Missing required parameter: '%s.call_id'.", at)
		}
		if o := bytes.TrimSpace(it.Output); len(o) == 0 || (o[0] != '"' && o[0] != '[') {
			return it, reqErr(at+".output", "Invalid type for '%s.output': expected a string or an array of content parts.", at)
		}
		if _, err := parts(at+".output", it.Output); err != nil {
			return it, err
		}
	case "":
		return it, reqErr(at+".type", "Missing required parameter: '%s.type'.", at)
	}
	return it, nil
}

// parts reads a content value: a string becomes one input_text part.
func parts(at string, raw json.RawMessage) ([]Part, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) > 0 && raw[0] == '"' {
		var s jsontext.String
		if err := s.UnmarshalJSON(raw); err != nil {
			return nil, reqErr(at, "Invalid '%s': %v.", at, err)
		}
		return []Part{{Type: "input_text", Text: s}}, nil
	}
	var ps []Part
	if err := segjson.Unmarshal(raw, &ps); err != nil {
		return nil, reqErr(at, "Invalid '%s': expected a string or an array of content parts.", at)
	}
	for i, p := range ps {
		if p.Type == "" {
			pat := at + "[" + strconv.Itoa(i) + "]"
			return nil, reqErr(pat+".type", "Missing required parameter: '%s.type'.", pat)
		}
	}
	return ps, nil
}

// text joins the text of parts (input_text, output_text, text, refusal).
func text(ps []Part) string {
	var sb strings.Builder
	for _, p := range ps {
		t := string(p.Text)
		if p.Type == "refusal" {
			t = p.Refusal
		}
		if t == "" {
			continue
		}
		if sb.Len() > 0 {
			sb.WriteByte('\n')
		}
		sb.WriteString(t)
	}
	return sb.String()
}

// getRaw is the raw JSON of a top-level field, nil when absent.
func getRaw(body []byte, f string) json.RawMessage {
	r := gjson.GetBytes(body, f)
	if !r.Exists() {
		return nil
	}
	return json.RawMessage(r.Raw)
}
