package providers

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	json "github.com/segmentio/encoding/json"
)

// This file holds the OpenAI Chat Completions wire types that translating
// adapters (Anthropic, Gemini, Bedrock, ...) decode the caller's request
// into. The OpenAI-compatible adapter never needs them: it forwards bytes.

// OpenAIRequest is the caller's chat request, fully decoded.
type OpenAIRequest struct {
	Model               string          `json:"model"`
	Messages            []Message       `json:"messages"`
	Tools               []Tool          `json:"tools,omitempty"`
	ToolChoice          json.RawMessage `json:"tool_choice,omitempty"`
	ParallelToolCalls   *bool           `json:"parallel_tool_calls,omitempty"`
	Temperature         *float64        `json:"temperature,omitempty"`
	TopP                *float64        `json:"top_p,omitempty"`
	MaxTokens           *int            `json:"max_tokens,omitempty"`
	MaxCompletionTokens *int            `json:"max_completion_tokens,omitempty"`
	Stop                StringList      `json:"stop,omitempty"`
	ResponseFormat      *ResponseFormat `json:"response_format,omitempty"`
	Stream              bool            `json:"stream,omitempty"`
	N                   *int            `json:"n,omitempty"`
	Seed                *int64          `json:"seed,omitempty"`
	PresencePenalty     *float64        `json:"presence_penalty,omitempty"`
	FrequencyPenalty    *float64        `json:"frequency_penalty,omitempty"`
	User                string          `json:"user,omitempty"`
	ReasoningEffort     string          `json:"reasoning_effort,omitempty"`
}

// Message is one chat message. Content is a string, an array of parts, or
// null (an assistant turn that only calls tools).
type Message struct {
	Role       string     `json:"role"`
	Content    Content    `json:"content"`
	Name       string     `json:"name,omitempty"`
	ToolCalls  []ToolCall `json:"tool_calls,omitempty"`
	ToolCallID string     `json:"tool_call_id,omitempty"`
}

// Content is a message's content: Text when it was a string, Parts when it
// was an array.
type Content struct {
	Text  string
	Parts []ContentPart
	// IsParts is true when the caller sent an array (even an empty one).
	IsParts bool
	// Explicit keeps an empty Text a string ("" rather than null): a tool
	// message's content is required even when the tool printed nothing.
	Explicit bool
}

// UnmarshalJSON accepts a string, an array of parts, or null.
func (c *Content) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	switch {
	case len(b) == 0 || bytes.Equal(b, []byte("null")):
		*c = Content{}
		return nil
	case b[0] == '"':
		c.IsParts, c.Explicit = false, true
		return json.Unmarshal(b, &c.Text)
	case b[0] == '[':
		c.IsParts = true
		return json.Unmarshal(b, &c.Parts)
	}
	return errors.New("content must be a string, an array of content parts, or null")
}

// MarshalJSON writes the form the content arrived in.
func (c Content) MarshalJSON() ([]byte, error) {
	if c.IsParts {
		return json.Marshal(c.Parts)
	}
	if c.Text == "" && !c.Explicit {
		return []byte("null"), nil
	}
	return json.Marshal(c.Text)
}

// String joins the text of the content (text parts only).
func (c Content) String() string {
	if !c.IsParts {
		return c.Text
	}
	var sb strings.Builder
	for _, p := range c.Parts {
		if p.Type == "text" {
			if sb.Len() > 0 {
				sb.WriteString("\n")
			}
			sb.WriteString(p.Text)
		}
	}
	return sb.String()
}

// ContentPart is one part of an array content: text, image_url, file, ...
type ContentPart struct {
	Type     string    `json:"type"`
	Text     string    `json:"text,omitempty"`
	ImageURL *ImageURL `json:"image_url,omitempty"`
	File     *FilePart `json:"file,omitempty"`
}

// FilePart is a file given inline (base64 data URL) or by an id of the
// provider's file store.
type FilePart struct {
	FileData string `json:"file_data,omitempty"`
	FileID   string `json:"file_id,omitempty"`
	Filename string `json:"filename,omitempty"`
}

// ImageURL is an image reference: an https URL or a data: URL.
type ImageURL struct {
	URL    string `json:"url"`
	Detail string `json:"detail,omitempty"`
}

// DataURL splits a base64 data URL ("data:image/png;base64,....") into its
// media type and base64 payload. ok is false for any other URL.
func DataURL(u string) (mediaType, b64 string, ok bool) {
	rest, found := strings.CutPrefix(u, "data:")
	if !found {
		return "", "", false
	}
	meta, payload, found := strings.Cut(rest, ",")
	if !found {
		return "", "", false
	}
	mediaType, isB64 := strings.CutSuffix(meta, ";base64")
	if !isB64 {
		return "", "", false
	}
	if _, err := base64.StdEncoding.DecodeString(payload); err != nil {
		return "", "", false
	}
	return mediaType, payload, true
}

// ToolCall is an assistant's call of a function.
type ToolCall struct {
	ID       string       `json:"id"`
	Type     string       `json:"type"`
	Function FunctionCall `json:"function"`
}

// FunctionCall names the function and carries its arguments as a JSON
// string.
type FunctionCall struct {
	Name      string `json:"name"`
	Arguments string `json:"arguments"`
}

// Tool is a function the model may call.
type Tool struct {
	Type     string   `json:"type"`
	Function Function `json:"function"`
}

// Function describes a callable function.
type Function struct {
	Name        string          `json:"name"`
	Description string          `json:"description,omitempty"`
	Parameters  json.RawMessage `json:"parameters,omitempty"`
	Strict      *bool           `json:"strict,omitempty"`
}

// ResponseFormat is JSON mode or structured outputs.
type ResponseFormat struct {
	Type       string      `json:"type"` // text, json_object, json_schema
	JSONSchema *JSONSchema `json:"json_schema,omitempty"`
}

// JSONSchema is the schema of a structured output.
type JSONSchema struct {
	Name   string          `json:"name"`
	Schema json.RawMessage `json:"schema,omitempty"`
	Strict *bool           `json:"strict,omitempty"`
}

// StringList accepts a string or an array of strings (OpenAI's `stop`).
type StringList []string

// UnmarshalJSON accepts "x", ["x","y"] or null.
func (s *StringList) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) == 0 || bytes.Equal(b, []byte("null")) {
		*s = nil
		return nil
	}
	if b[0] == '"' {
		var one string
		if err := json.Unmarshal(b, &one); err != nil {
			return err
		}
		*s = StringList{one}
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		return errors.New("must be a string or an array of strings")
	}
	*s = many
	return nil
}

// notJSON is OpenAI's answer to a body that is not JSON.
const notJSON = "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid JSON.)"

// DecodeBody decodes a caller's request body into v for an ingress. Every
// refusal is a *RequestError (a 400): a body that is not UTF-8 (Go's
// decoder would accept it, and nothing downstream could keep it), not a
// JSON object, with a field xroute reads given twice or misspelled (see
// CheckFields), or with a field of the wrong type, named.
func DecodeBody(body []byte, v any) error {
	if !utf8.Valid(body) {
		return &RequestError{Message: "The request body is not valid UTF-8."}
	}
	if err := CheckFields(body); err != nil {
		return err
	}
	if err := json.Unmarshal(body, v); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			if te.Field == "" {
				return &RequestError{Message: "The request body must be a JSON object."}
			}
			return &RequestError{Param: te.Field, Message: fmt.Sprintf("Invalid type for '%s': expected %s.", te.Field, jsonKind(te.Type.Kind().String()))}
		}
		return &RequestError{Message: notJSON}
	}
	return nil
}

func jsonKind(kind string) string {
	switch kind {
	case "string":
		return "a string"
	case "slice", "array":
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

// DecodeOpenAIRequest decodes the whole body for a translating adapter.
// Errors are *RequestError (a 400 for the caller).
func DecodeOpenAIRequest(body []byte) (*OpenAIRequest, error) {
	var r OpenAIRequest
	if err := json.Unmarshal(body, &r); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return nil, &RequestError{Param: te.Field, Message: fmt.Sprintf("Invalid type for '%s'.", te.Field)}
		}
		return nil, &RequestError{Message: "Invalid request: " + err.Error()}
	}
	return &r, nil
}

// MaxOutputTokens is max_completion_tokens, else max_tokens, else 0.
func (r *OpenAIRequest) MaxOutputTokens() int {
	switch {
	case r.MaxCompletionTokens != nil:
		return *r.MaxCompletionTokens
	case r.MaxTokens != nil:
		return *r.MaxTokens
	}
	return 0
}

// ToolChoiceMode reads tool_choice: mode is "" (unset), "auto", "none",
// "required" or "function" (then name is the function to call).
func (r *OpenAIRequest) ToolChoiceMode() (mode, name string, err error) {
	tc := bytes.TrimSpace(r.ToolChoice)
	if len(tc) == 0 || bytes.Equal(tc, []byte("null")) {
		return "", "", nil
	}
	if tc[0] == '"' {
		if err := json.Unmarshal(tc, &mode); err != nil {
			return "", "", err
		}
		switch mode {
		case "auto", "none", "required":
			return mode, "", nil
		}
		return "", "", &RequestError{Param: "tool_choice", Message: fmt.Sprintf("Invalid value for 'tool_choice': %q.", mode)}
	}
	var named struct {
		Type     string `json:"type"`
		Function struct {
			Name string `json:"name"`
		} `json:"function"`
	}
	if err := json.Unmarshal(tc, &named); err != nil || named.Function.Name == "" {
		return "", "", &RequestError{Param: "tool_choice", Message: "Invalid 'tool_choice': expected a string or {\"type\":\"function\",\"function\":{\"name\":...}}."}
	}
	return "function", named.Function.Name, nil
}
