package bedrock

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/xroute/xroute/providers"
)

// jsonToolName is the tool a json_object request is forced to call: Converse
// has no schema-less JSON mode, so the answer comes back as that tool's
// input (always a JSON object) and is returned as the message content.
const jsonToolName = "json_response"

// jsonObjectInstruction is added to the system prompt when a json_object
// request also carries the caller's own tools (the forced tool cannot be
// used then).
const jsonObjectInstruction = "Respond only with a single valid JSON object."

// defaultInputSchema is used for a function declared without parameters:
// Converse requires inputSchema.json.
var defaultInputSchema = json.RawMessage(`{"type":"object","properties":{}}`)

// translation is a Converse request plus what reading the answer needs.
type translation struct {
	req converseRequest
	// jsonTool is the forced tool carrying a json_object answer, or "".
	jsonTool string
}

// translateRequest turns the caller's OpenAI chat request into a Converse
// request. Errors are *providers.RequestError.
func translateRequest(r *providers.OpenAIRequest) (*translation, error) {
	if r.N != nil && *r.N > 1 {
		return nil, &providers.RequestError{Param: "n", Message: "Bedrock Converse returns one choice: 'n' must be 1."}
	}
	t := &translation{}
	var mb messageBuilder
	usesTools := false
	for i := range r.Messages {
		m := &r.Messages[i]
		switch m.Role {
		case "system", "developer":
			if m.Content.IsParts {
				for _, p := range m.Content.Parts {
					if p.Type != "text" {
						return nil, &providers.RequestError{Param: fmt.Sprintf("messages[%d].content", i), Message: fmt.Sprintf("Invalid content part type %q in a %s message: only text is supported.", p.Type, m.Role)}
					}
				}
			}
			if text := m.Content.String(); strings.TrimSpace(text) != "" {
				t.req.System = append(t.req.System, systemBlock{Text: text})
			}
		case "user":
			blocks, err := userBlocks(i, &m.Content)
			if err != nil {
				return nil, err
			}
			if len(blocks) == 0 {
				return nil, &providers.RequestError{Param: fmt.Sprintf("messages[%d].content", i), Message: fmt.Sprintf("Invalid 'messages[%d].content': a user message must not be empty.", i)}
			}
			mb.add("user", blocks...)
		case "assistant":
			blocks, err := assistantBlocks(i, m)
			if err != nil {
				return nil, err
			}
			if len(m.ToolCalls) > 0 {
				usesTools = true
			}
			mb.add("assistant", blocks...) // an empty assistant turn is dropped
		case "tool":
			if m.ToolCallID == "" {
				return nil, &providers.RequestError{Param: fmt.Sprintf("messages[%d].tool_call_id", i), Message: fmt.Sprintf("Missing required parameter: 'messages[%d].tool_call_id'.", i)}
			}
			usesTools = true
			mb.add("user", contentBlock{ToolResult: &toolResult{ToolUseID: m.ToolCallID, Content: []toolResultContent{toolResultText(m.Content.String())}}})
		default:
			return nil, &providers.RequestError{Param: fmt.Sprintf("messages[%d].role", i), Message: fmt.Sprintf("Invalid value for 'messages[%d].role': %q is not supported by this provider.", i, m.Role)}
		}
	}
	if len(mb.msgs) == 0 {
		return nil, &providers.RequestError{Param: "messages", Message: "Invalid 'messages': at least one user message is required."}
	}
	t.req.Messages = mb.msgs

	var ic inferenceConfig
	if n := r.MaxOutputTokens(); n > 0 {
		ic.MaxTokens = &n
	}
	ic.Temperature, ic.TopP = r.Temperature, r.TopP
	for _, s := range r.Stop {
		if s != "" {
			ic.StopSequences = append(ic.StopSequences, s)
		}
	}
	if ic.MaxTokens != nil || ic.Temperature != nil || ic.TopP != nil || len(ic.StopSequences) > 0 {
		t.req.InferenceConfig = &ic
	}

	tc, err := toolsConfig(r, usesTools)
	if err != nil {
		return nil, err
	}
	t.req.ToolConfig = tc

	if rf := r.ResponseFormat; rf != nil {
		switch rf.Type {
		case "", "text":
		case "json_schema":
			if rf.JSONSchema == nil || len(bytes.TrimSpace(rf.JSONSchema.Schema)) == 0 {
				return nil, &providers.RequestError{Param: "response_format.json_schema.schema", Message: "Missing required parameter: 'response_format.json_schema.schema'."}
			}
			var compact bytes.Buffer
			if err := json.Compact(&compact, rf.JSONSchema.Schema); err != nil {
				return nil, &providers.RequestError{Param: "response_format.json_schema.schema", Message: "Invalid 'response_format.json_schema.schema': not valid JSON."}
			}
			t.req.OutputConfig = &outputConfig{TextFormat: &outputFormat{
				Type:      "json_schema",
				Structure: outputStructure{JSONSchema: jsonSchemaDefinition{Schema: compact.String(), Name: rf.JSONSchema.Name}},
			}}
		case "json_object":
			if t.req.ToolConfig == nil {
				t.jsonTool = jsonToolName
				t.req.ToolConfig = &toolConfig{
					Tools: []tool{{ToolSpec: &toolSpec{
						Name:        jsonToolName,
						Description: "Return the answer as a JSON object.",
						InputSchema: inputSchema{JSON: json.RawMessage(`{"type":"object"}`)},
					}}},
					ToolChoice: &toolChoice{Tool: &specificToolChoice{Name: jsonToolName}},
				}
			} else {
				t.req.System = append(t.req.System, systemBlock{Text: jsonObjectInstruction})
			}
		default:
			return nil, &providers.RequestError{Param: "response_format.type", Message: fmt.Sprintf("Invalid value for 'response_format.type': %q.", rf.Type)}
		}
	}
	return t, nil
}

// messageBuilder merges consecutive turns of one role: Converse requires
// user and assistant turns to alternate (tool results are user turns).
type messageBuilder struct{ msgs []message }

func (b *messageBuilder) add(role string, blocks ...contentBlock) {
	if len(blocks) == 0 {
		return
	}
	if n := len(b.msgs); n > 0 && b.msgs[n-1].Role == role {
		b.msgs[n-1].Content = append(b.msgs[n-1].Content, blocks...)
		return
	}
	b.msgs = append(b.msgs, message{Role: role, Content: blocks})
}

func textBlock(s string) contentBlock { return contentBlock{Text: &s} }

// userBlocks translates a user content; blank text is dropped (Converse
// rejects blank text blocks).
func userBlocks(i int, c *providers.Content) ([]contentBlock, error) {
	if !c.IsParts {
		if strings.TrimSpace(c.Text) == "" {
			return nil, nil
		}
		return []contentBlock{textBlock(c.Text)}, nil
	}
	out := make([]contentBlock, 0, len(c.Parts))
	for j, p := range c.Parts {
		param := fmt.Sprintf("messages[%d].content[%d]", i, j)
		switch p.Type {
		case "text":
			if strings.TrimSpace(p.Text) != "" {
				out = append(out, textBlock(p.Text))
			}
		case "image_url":
			if p.ImageURL == nil {
				return nil, &providers.RequestError{Param: param + ".image_url", Message: fmt.Sprintf("Missing required parameter: '%s.image_url'.", param)}
			}
			img, err := imageFromURL(param, p.ImageURL.URL)
			if err != nil {
				return nil, err
			}
			out = append(out, contentBlock{Image: img})
		default:
			return nil, &providers.RequestError{Param: param + ".type", Message: fmt.Sprintf("Invalid content part type %q: this provider accepts text and image_url parts.", p.Type)}
		}
	}
	return out, nil
}

// imageFromURL accepts base64 data URLs only: Converse takes image bytes
// (or S3 locations), never an http URL.
func imageFromURL(param, u string) (*imageBlock, error) {
	mediaType, b64, ok := providers.DataURL(u)
	if !ok {
		return nil, &providers.RequestError{Param: param + ".image_url.url", Message: "This provider needs images inline: send a base64 data URL (data:image/png;base64,...)."}
	}
	var format string
	switch strings.ToLower(mediaType) {
	case "image/png":
		format = "png"
	case "image/jpeg", "image/jpg":
		format = "jpeg"
	case "image/gif":
		format = "gif"
	case "image/webp":
		format = "webp"
	default:
		return nil, &providers.RequestError{Param: param + ".image_url.url", Message: fmt.Sprintf("Unsupported image type %q: use png, jpeg, gif or webp.", mediaType)}
	}
	return &imageBlock{Format: format, Source: imageSource{Bytes: b64}}, nil
}

func assistantBlocks(i int, m *providers.Message) ([]contentBlock, error) {
	var out []contentBlock
	if m.Content.IsParts {
		for j, p := range m.Content.Parts {
			switch p.Type {
			case "text":
				if strings.TrimSpace(p.Text) != "" {
					out = append(out, textBlock(p.Text))
				}
			case "refusal":
			default:
				return nil, &providers.RequestError{Param: fmt.Sprintf("messages[%d].content[%d].type", i, j), Message: fmt.Sprintf("Invalid content part type %q in an assistant message.", p.Type)}
			}
		}
	} else if strings.TrimSpace(m.Content.Text) != "" {
		out = append(out, textBlock(m.Content.Text))
	}
	for j, tc := range m.ToolCalls {
		param := fmt.Sprintf("messages[%d].tool_calls[%d]", i, j)
		if tc.ID == "" || tc.Function.Name == "" {
			return nil, &providers.RequestError{Param: param, Message: fmt.Sprintf("Invalid '%s': id and function.name are required.", param)}
		}
		args := bytes.TrimSpace([]byte(tc.Function.Arguments))
		if len(args) == 0 {
			args = []byte("{}")
		}
		if args[0] != '{' || !json.Valid(args) {
			return nil, &providers.RequestError{Param: param + ".function.arguments", Message: fmt.Sprintf("Invalid '%s.function.arguments': this provider needs a JSON object.", param)}
		}
		out = append(out, contentBlock{ToolUse: &toolUse{ToolUseID: tc.ID, Name: tc.Function.Name, Input: args}})
	}
	return out, nil
}

// toolResultText is a tool message's content as a tool result. A blank
// result becomes an empty JSON object: Converse rejects blank text.
func toolResultText(s string) toolResultContent {
	if strings.TrimSpace(s) == "" {
		return toolResultContent{JSON: json.RawMessage(`{}`)}
	}
	return toolResultContent{Text: &s}
}

// toolsConfig maps tools and tool_choice. Converse has no "none": the tools
// are dropped, unless the conversation already holds tool blocks (Converse
// then requires toolConfig), in which case the choice is left to the model.
func toolsConfig(r *providers.OpenAIRequest, historyUsesTools bool) (*toolConfig, error) {
	mode, name, err := r.ToolChoiceMode()
	if err != nil {
		return nil, err
	}
	if len(r.Tools) == 0 {
		if mode == "function" || mode == "required" {
			return nil, &providers.RequestError{Param: "tool_choice", Message: "Invalid 'tool_choice': no 'tools' were given."}
		}
		return nil, nil
	}
	tc := &toolConfig{Tools: make([]tool, 0, len(r.Tools))}
	found := false
	for i, t := range r.Tools {
		if t.Type != "function" {
			return nil, &providers.RequestError{Param: fmt.Sprintf("tools[%d].type", i), Message: fmt.Sprintf("Invalid value for 'tools[%d].type': %q is not supported by this provider.", i, t.Type)}
		}
		if t.Function.Name == "" {
			return nil, &providers.RequestError{Param: fmt.Sprintf("tools[%d].function.name", i), Message: fmt.Sprintf("Missing required parameter: 'tools[%d].function.name'.", i)}
		}
		params := bytes.TrimSpace(t.Function.Parameters)
		if len(params) == 0 || bytes.Equal(params, []byte("null")) {
			params = defaultInputSchema
		}
		spec := toolSpec{Name: t.Function.Name, Description: t.Function.Description, InputSchema: inputSchema{JSON: params}}
		if t.Function.Strict != nil && *t.Function.Strict {
			spec.Strict = t.Function.Strict
		}
		tc.Tools = append(tc.Tools, tool{ToolSpec: &spec})
		found = found || t.Function.Name == name
	}
	switch mode {
	case "", "auto":
		// auto is Converse's default; leaving it out keeps models that
		// accept no toolChoice at all working.
	case "required":
		tc.ToolChoice = &toolChoice{Any: &struct{}{}}
	case "function":
		if !found {
			return nil, &providers.RequestError{Param: "tool_choice", Message: fmt.Sprintf("Invalid value for 'tool_choice': tool '%s' not found in 'tools'.", name)}
		}
		tc.ToolChoice = &toolChoice{Tool: &specificToolChoice{Name: name}}
	case "none":
		if !historyUsesTools {
			return nil, nil
		}
	}
	return tc, nil
}
