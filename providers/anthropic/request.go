package anthropic

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/tidwall/gjson"

	"github.com/xroute/xroute/providers"
)

// DefaultMaxTokens is max_tokens when the caller set no limit: Anthropic
// requires one, OpenAI does not.
const DefaultMaxTokens = 4096

// jsonToolName is the tool JSON mode forces (see translateRequest).
const jsonToolName = "json_response"

// The Messages request, as far as xroute writes it.
type request struct {
	Model         string      `json:"model"`
	MaxTokens     int         `json:"max_tokens"`
	System        string      `json:"system,omitempty"`
	Messages      []turn      `json:"messages"`
	Tools         []tool      `json:"tools,omitempty"`
	ToolChoice    *toolChoice `json:"tool_choice,omitempty"`
	StopSequences []string    `json:"stop_sequences,omitempty"`
	Temperature   *float64    `json:"temperature,omitempty"`
	TopP          *float64    `json:"top_p,omitempty"`
	Metadata      *metadata   `json:"metadata,omitempty"`
	Stream        bool        `json:"stream,omitempty"`
}

type turn struct {
	Role    string  `json:"role"`
	Content []block `json:"content"`
}

// block is a request content block: text, image, tool_use or tool_result.
type block struct {
	Type      string          `json:"type"`
	Text      string          `json:"text,omitempty"`
	Source    *imageSource    `json:"source,omitempty"`
	ID        string          `json:"id,omitempty"`
	Name      string          `json:"name,omitempty"`
	Input     json.RawMessage `json:"input,omitempty"`
	ToolUseID string          `json:"tool_use_id,omitempty"`
	// Content of a tool_result: a string, or text blocks.
	Content any `json:"content,omitempty"`
}

type imageSource struct {
	Type      string `json:"type"` // base64 or url
	MediaType string `json:"media_type,omitempty"`
	Data      string `json:"data,omitempty"`
	URL       string `json:"url,omitempty"`
}

type tool struct {
	Name        string          `json:"name"`
	Description string          `json:"description,omitempty"`
	InputSchema json.RawMessage `json:"input_schema"`
}

type toolChoice struct {
	Type                   string `json:"type"` // auto, any, tool, none
	Name                   string `json:"name,omitempty"`
	DisableParallelToolUse bool   `json:"disable_parallel_tool_use,omitempty"`
}

type metadata struct {
	UserID string `json:"user_id,omitempty"`
}

var emptyObjectSchema = json.RawMessage(`{"type":"object","properties":{}}`)

// translated is an upstream request body plus what the answer's
// translation must know about it.
type translated struct {
	body []byte
	// jsonTool is true when JSON mode was turned into the forced
	// json_response tool: its input is the answer's content.
	jsonTool bool
}

func reqErr(param, format string, args ...any) error {
	return &providers.RequestError{Param: param, Message: fmt.Sprintf(format, args...)}
}

// translateRequest turns the caller's OpenAI chat request into a Messages
// request for model.
//
// JSON mode (response_format json_object or json_schema) has no Messages
// field that every Claude model accepts, so when the caller sent no tools it
// becomes Anthropic's documented "JSON via tool use" pattern: one tool,
// json_response, whose input_schema is the caller's schema (any object for
// json_object), forced with tool_choice; its input is returned as the
// message content with finish_reason "stop". With caller tools (which must
// stay callable) or a schema whose root is not an object, it becomes a
// system instruction instead.
func translateRequest(body []byte, model string, stream bool) (*translated, error) {
	in, err := providers.DecodeOpenAIRequest(body)
	if err != nil {
		return nil, err
	}
	return translate(in, model, stream)
}

// translate is translateRequest on a decoded request (the pivot is parsed
// once per request, see ChatRequest.Decoded); in is not modified.
func translate(in *providers.OpenAIRequest, model string, stream bool) (*translated, error) {
	if in.N != nil && *in.N > 1 {
		return nil, reqErr("n", "Anthropic models return one choice: 'n' must be 1, got %d.", *in.N)
	}
	out := &request{Model: model, MaxTokens: in.MaxOutputTokens(), Stream: stream}
	if out.MaxTokens <= 0 {
		out.MaxTokens = DefaultMaxTokens
	}
	var system []string
	for i := range in.Messages {
		m := &in.Messages[i]
		at := "messages[" + strconv.Itoa(i) + "]"
		switch m.Role {
		case "system", "developer":
			text, err := textOnly(at, m.Content)
			if err != nil {
				return nil, err
			}
			if text != "" {
				system = append(system, text)
			}
		case "user":
			bs, err := userBlocks(at, m.Content)
			if err != nil {
				return nil, err
			}
			out.add("user", bs)
		case "assistant":
			bs, err := assistantBlocks(at, m)
			if err != nil {
				return nil, err
			}
			out.add("assistant", bs)
		case "tool":
			b, err := toolResult(at, m)
			if err != nil {
				return nil, err
			}
			out.add("user", []block{b})
		default:
			return nil, reqErr(at+".role", "Unsupported role %q for Anthropic models.", m.Role)
		}
	}
	if len(out.Messages) == 0 {
		return nil, reqErr("messages", "Anthropic models need at least one user or assistant message with content.")
	}

	for i, t := range in.Tools {
		if t.Type != "function" && t.Type != "" {
			return nil, reqErr("tools["+strconv.Itoa(i)+"].type", "Unsupported tool type %q for Anthropic models.", t.Type)
		}
		schema := t.Function.Parameters
		if len(bytes.TrimSpace(schema)) == 0 || string(bytes.TrimSpace(schema)) == "null" {
			schema = emptyObjectSchema
		}
		out.Tools = append(out.Tools, tool{Name: t.Function.Name, Description: t.Function.Description, InputSchema: schema})
	}
	if err := out.setToolChoice(in); err != nil {
		return nil, err
	}

	jsonTool := false
	if rf := in.ResponseFormat; rf != nil && (rf.Type == "json_object" || rf.Type == "json_schema") {
		var schema json.RawMessage
		desc := "Respond with a JSON object."
		if rf.Type == "json_schema" && rf.JSONSchema != nil && len(rf.JSONSchema.Schema) > 0 {
			schema = rf.JSONSchema.Schema
			desc = "Respond with a JSON object that follows the input schema (" + rf.JSONSchema.Name + ")."
		}
		objectRoot := schema == nil || gjson.GetBytes(schema, "type").String() == "object"
		if len(out.Tools) == 0 && objectRoot {
			if schema == nil {
				schema = json.RawMessage(`{"type":"object","additionalProperties":true}`)
			}
			out.Tools = []tool{{Name: jsonToolName, Description: desc, InputSchema: schema}}
			out.ToolChoice = &toolChoice{Type: "tool", Name: jsonToolName}
			jsonTool = true
		} else {
			instr := "Respond only with a valid JSON value, without any other text or code fences."
			if schema != nil {
				instr = "Respond only with a valid JSON value that conforms to this JSON schema, without any other text or code fences: " + compact(schema)
			}
			system = append(system, instr)
		}
	}
	out.System = strings.Join(system, "\n\n")

	for _, s := range in.Stop {
		if s != "" {
			out.StopSequences = append(out.StopSequences, s)
		}
	}
	if t := in.Temperature; t != nil {
		v := min(max(*t, 0), 1) // OpenAI allows 0..2, Anthropic 0..1
		out.Temperature = &v
	}
	out.TopP = in.TopP
	if in.User != "" {
		out.Metadata = &metadata{UserID: in.User}
	}
	b, err := json.Marshal(out)
	if err != nil {
		return nil, fmt.Errorf("encode request: %w", err)
	}
	return &translated{body: b, jsonTool: jsonTool}, nil
}

// add appends blocks as a turn of role, merging with the previous turn of
// the same role (Anthropic requires alternating roles). In a user turn,
// tool_result blocks go first, as Anthropic requires.
func (r *request) add(role string, bs []block) {
	if len(bs) == 0 {
		return
	}
	n := len(r.Messages)
	if n == 0 || r.Messages[n-1].Role != role {
		r.Messages = append(r.Messages, turn{Role: role, Content: bs})
		return
	}
	t := &r.Messages[n-1]
	if role == "user" && bs[0].Type == "tool_result" {
		// Keep tool results ahead of the turn's text and images.
		k := 0
		for k < len(t.Content) && t.Content[k].Type == "tool_result" {
			k++
		}
		merged := make([]block, 0, len(t.Content)+len(bs))
		merged = append(merged, t.Content[:k]...)
		merged = append(merged, bs...)
		t.Content = append(merged, t.Content[k:]...)
		return
	}
	t.Content = append(t.Content, bs...)
}

func (r *request) setToolChoice(in *providers.OpenAIRequest) error {
	mode, name, err := in.ToolChoiceMode()
	if err != nil {
		return err
	}
	if len(r.Tools) == 0 {
		return nil // Anthropic rejects tool_choice without tools
	}
	noParallel := in.ParallelToolCalls != nil && !*in.ParallelToolCalls
	switch mode {
	case "":
		if noParallel {
			r.ToolChoice = &toolChoice{Type: "auto"}
		}
	case "auto":
		r.ToolChoice = &toolChoice{Type: "auto"}
	case "required":
		r.ToolChoice = &toolChoice{Type: "any"}
	case "none":
		r.ToolChoice = &toolChoice{Type: "none"}
		return nil
	case "function":
		found := false
		for _, t := range r.Tools {
			found = found || t.Name == name
		}
		if !found {
			return reqErr("tool_choice", "Invalid 'tool_choice': function %q is not in 'tools'.", name)
		}
		r.ToolChoice = &toolChoice{Type: "tool", Name: name}
	}
	if r.ToolChoice != nil && noParallel {
		r.ToolChoice.DisableParallelToolUse = true
	}
	return nil
}

// textOnly is the text of a content that may hold only text parts.
func textOnly(at string, c providers.Content) (string, error) {
	if !c.IsParts {
		return c.Text, nil
	}
	var parts []string
	for j, p := range c.Parts {
		if p.Type != "text" {
			return "", reqErr(at+".content["+strconv.Itoa(j)+"].type", "Content parts of type %q are not supported here.", p.Type)
		}
		if p.Text != "" {
			parts = append(parts, p.Text)
		}
	}
	return strings.Join(parts, "\n"), nil
}

func textBlock(s string) block { return block{Type: "text", Text: s} }

func userBlocks(at string, c providers.Content) ([]block, error) {
	if !c.IsParts {
		if c.Text == "" {
			return nil, nil
		}
		return []block{textBlock(c.Text)}, nil
	}
	bs := make([]block, 0, len(c.Parts))
	for j, p := range c.Parts {
		pat := at + ".content[" + strconv.Itoa(j) + "]"
		switch p.Type {
		case "text":
			if p.Text != "" { // Anthropic rejects empty text blocks
				bs = append(bs, textBlock(p.Text))
			}
		case "image_url":
			if p.ImageURL == nil || p.ImageURL.URL == "" {
				return nil, reqErr(pat+".image_url.url", "Missing required parameter: '%s.image_url.url'.", pat)
			}
			src, err := imageFrom(pat, p.ImageURL.URL)
			if err != nil {
				return nil, err
			}
			bs = append(bs, block{Type: "image", Source: src})
		default:
			return nil, reqErr(pat+".type", "Content parts of type %q are not supported by Anthropic models.", p.Type)
		}
	}
	return bs, nil
}

// imageFrom maps an image URL: a base64 data URL becomes a base64 source,
// an http(s) URL a url source.
func imageFrom(at, u string) (*imageSource, error) {
	if mt, data, ok := providers.DataURL(u); ok {
		return &imageSource{Type: "base64", MediaType: mt, Data: data}, nil
	}
	if strings.HasPrefix(u, "https://") || strings.HasPrefix(u, "http://") {
		return &imageSource{Type: "url", URL: u}, nil
	}
	return nil, reqErr(at+".image_url.url", "Invalid image URL: expected an http(s) URL or a base64 data URL.")
}

func assistantBlocks(at string, m *providers.Message) ([]block, error) {
	var bs []block
	if !m.Content.IsParts {
		if m.Content.Text != "" {
			bs = append(bs, textBlock(m.Content.Text))
		}
	} else {
		for j, p := range m.Content.Parts {
			switch p.Type {
			case "text", "refusal":
				if p.Text != "" {
					bs = append(bs, textBlock(p.Text))
				}
			default:
				return nil, reqErr(at+".content["+strconv.Itoa(j)+"].type", "Assistant content parts of type %q are not supported.", p.Type)
			}
		}
	}
	for k, tc := range m.ToolCalls {
		tat := at + ".tool_calls[" + strconv.Itoa(k) + "]"
		if tc.ID == "" || tc.Function.Name == "" {
			return nil, reqErr(tat, "Tool calls need an 'id' and a 'function.name'.")
		}
		input := json.RawMessage(`{}`)
		if args := bytes.TrimSpace([]byte(tc.Function.Arguments)); len(args) > 0 {
			if !json.Valid(args) || args[0] != '{' {
				return nil, reqErr(tat+".function.arguments", "Tool call arguments must be a JSON object.")
			}
			input = args
		}
		bs = append(bs, block{Type: "tool_use", ID: tc.ID, Name: tc.Function.Name, Input: input})
	}
	return bs, nil
}

func toolResult(at string, m *providers.Message) (block, error) {
	if m.ToolCallID == "" {
		return block{}, reqErr(at+".tool_call_id", "Missing required parameter: '%s.tool_call_id'.", at)
	}
	b := block{Type: "tool_result", ToolUseID: m.ToolCallID}
	if !m.Content.IsParts {
		if m.Content.Text != "" {
			b.Content = m.Content.Text
		}
		return b, nil
	}
	var parts []block
	for j, p := range m.Content.Parts {
		if p.Type != "text" {
			return block{}, reqErr(at+".content["+strconv.Itoa(j)+"].type", "Tool message parts of type %q are not supported.", p.Type)
		}
		if p.Text != "" {
			parts = append(parts, textBlock(p.Text))
		}
	}
	if len(parts) > 0 {
		b.Content = parts
	}
	return b, nil
}

func compact(raw json.RawMessage) string {
	var buf bytes.Buffer
	if json.Compact(&buf, raw) != nil {
		return string(raw)
	}
	return buf.String()
}
