package gemini

import (
	"bytes"
	"encoding/json"
	"fmt"
	"mime"
	"net/url"
	"path"
	"strings"

	"github.com/tidwall/sjson"

	"github.com/xroute/xroute/providers"
)

// translateRequest turns the caller's OpenAI chat request into a Gemini
// generateContent body. Every problem with the caller's request is a
// *providers.RequestError (a 400 for the caller). It is deterministic: the
// same body always gives the same bytes (golden tests rely on it).
func translateRequest(body []byte) ([]byte, error) {
	r, err := providers.DecodeOpenAIRequest(body)
	if err != nil {
		return nil, err
	}
	return translateDecoded(r)
}

// translateDecoded is translateRequest on a decoded request (parsed once
// per request, see ChatRequest.Decoded); r is not modified.
func translateDecoded(r *providers.OpenAIRequest) ([]byte, error) {
	g, err := buildRequest(r)
	if err != nil {
		return nil, err
	}
	return json.Marshal(g)
}

func buildRequest(r *providers.OpenAIRequest) (*generateRequest, error) {
	g := &generateRequest{}
	if err := buildContents(g, r.Messages); err != nil {
		return nil, err
	}
	if err := buildTools(g, r); err != nil {
		return nil, err
	}
	gc, err := buildGenerationConfig(r)
	if err != nil {
		return nil, err
	}
	g.GenerationConfig = gc
	return g, nil
}

func reqErr(param, format string, args ...any) *providers.RequestError {
	return &providers.RequestError{Param: param, Message: fmt.Sprintf(format, args...)}
}

// buildContents maps the messages: system/developer → systemInstruction,
// user → user, assistant → model (text + functionCall parts, thought
// signatures restored from the call ids), tool → a user turn of
// functionResponse parts. Consecutive turns of the same role are merged,
// as Gemini expects alternating user/model turns.
func buildContents(g *generateRequest, msgs []providers.Message) error {
	// callNames maps a tool call id to its function name, for the
	// functionResponse parts that must name the function they answer.
	callNames := map[string]string{}
	var system []part
	for i := range msgs {
		m := &msgs[i]
		param := fmt.Sprintf("messages[%d]", i)
		var role string
		var parts []part
		switch m.Role {
		case "system", "developer":
			text, err := textOnly(m.Content, param)
			if err != nil {
				return err
			}
			if text != "" {
				system = append(system, part{Text: text})
			}
			continue
		case "user":
			role = "user"
			var err error
			if parts, err = userParts(m.Content, param); err != nil {
				return err
			}
		case "assistant":
			role = "model"
			var err error
			if parts, err = assistantParts(m, param, callNames); err != nil {
				return err
			}
		case "tool", "function":
			role = "user"
			p, err := toolResultPart(m, param, callNames)
			if err != nil {
				return err
			}
			parts = []part{p}
		case "":
			return reqErr(param+".role", "Missing required parameter: '%s.role'.", param)
		default:
			return reqErr(param+".role", "Invalid value: '%s'. Supported values are: 'system', 'developer', 'user', 'assistant' and 'tool'.", m.Role)
		}
		if len(parts) == 0 {
			continue // Gemini rejects a turn without parts
		}
		if n := len(g.Contents); n > 0 && g.Contents[n-1].Role == role {
			g.Contents[n-1].Parts = append(g.Contents[n-1].Parts, parts...)
			continue
		}
		g.Contents = append(g.Contents, content{Role: role, Parts: parts})
	}
	if len(system) > 0 {
		g.SystemInstruction = &content{Parts: system}
	}
	if len(g.Contents) == 0 {
		return reqErr("messages", "Invalid 'messages': at least one user, assistant or tool message with content is required.")
	}
	return nil
}

// textOnly joins the text of a system or tool message; other part types
// are rejected.
func textOnly(c providers.Content, param string) (string, error) {
	if !c.IsParts {
		return c.Text, nil
	}
	var sb strings.Builder
	for j, p := range c.Parts {
		if p.Type != "text" {
			return "", reqErr(fmt.Sprintf("%s.content[%d].type", param, j), "Invalid value: '%s'. Supported values are: 'text'.", p.Type)
		}
		if sb.Len() > 0 && p.Text != "" {
			sb.WriteString("\n")
		}
		sb.WriteString(p.Text)
	}
	return sb.String(), nil
}

func userParts(c providers.Content, param string) ([]part, error) {
	if !c.IsParts {
		if c.Text == "" {
			return nil, nil
		}
		return []part{{Text: c.Text}}, nil
	}
	parts := make([]part, 0, len(c.Parts))
	for j, p := range c.Parts {
		pp := fmt.Sprintf("%s.content[%d]", param, j)
		switch p.Type {
		case "text":
			if p.Text != "" {
				parts = append(parts, part{Text: p.Text})
			}
		case "image_url":
			if p.ImageURL == nil || p.ImageURL.URL == "" {
				return nil, reqErr(pp+".image_url.url", "Missing required parameter: '%s.image_url.url'.", pp)
			}
			ip, err := imagePart(p.ImageURL.URL, pp+".image_url.url")
			if err != nil {
				return nil, err
			}
			parts = append(parts, ip)
		default:
			return nil, reqErr(pp+".type", "Invalid value: '%s'. This provider supports the content part types 'text' and 'image_url'.", p.Type)
		}
	}
	return parts, nil
}

// imagePart maps an image URL: a base64 data: URL becomes inlineData, an
// http(s) URL becomes fileData (Gemini fetches public and signed URLs
// itself) with the MIME type taken from the URL's extension.
func imagePart(raw, param string) (part, error) {
	if strings.HasPrefix(raw, "data:") {
		mt, data, ok := providers.DataURL(raw)
		if !ok || mt == "" {
			return part{}, reqErr(param, "Invalid image data URL: expected data:<media type>;base64,<data>.")
		}
		return part{InlineData: &blob{MimeType: mt, Data: data}}, nil
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return part{}, reqErr(param, "Invalid image URL: expected an http(s) URL or a base64 data: URL.")
	}
	return part{FileData: &fileData{FileURI: raw, MimeType: imageMIME(u.Path)}}, nil
}

// imageMIME guesses an image's MIME type from its path (Gemini requires
// one on fileData); image/jpeg when the extension says nothing.
func imageMIME(p string) string {
	switch ext := strings.ToLower(path.Ext(p)); ext {
	case ".png":
		return "image/png"
	case ".jpg", ".jpeg":
		return "image/jpeg"
	case ".webp":
		return "image/webp"
	case ".gif":
		return "image/gif"
	case ".heic":
		return "image/heic"
	case ".heif":
		return "image/heif"
	default:
		if t := mime.TypeByExtension(ext); strings.HasPrefix(t, "image/") {
			t, _, _ = strings.Cut(t, ";")
			return t
		}
	}
	return "image/jpeg"
}

// assistantParts maps an assistant turn: its text, then one functionCall
// part per tool call, each with the thought signature its id carries.
func assistantParts(m *providers.Message, param string, callNames map[string]string) ([]part, error) {
	var parts []part
	if m.Content.IsParts {
		for j, p := range m.Content.Parts {
			switch p.Type {
			case "text":
				if p.Text != "" {
					parts = append(parts, part{Text: p.Text})
				}
			case "refusal":
				// A refusal is not model output Gemini needs back.
			default:
				return nil, reqErr(fmt.Sprintf("%s.content[%d].type", param, j), "Invalid value: '%s'. Supported values are: 'text' and 'refusal'.", p.Type)
			}
		}
	} else if m.Content.Text != "" {
		parts = append(parts, part{Text: m.Content.Text})
	}
	first := len(parts)
	signed := false
	for k, tc := range m.ToolCalls {
		tp := fmt.Sprintf("%s.tool_calls[%d]", param, k)
		if tc.Type != "" && tc.Type != "function" {
			return nil, reqErr(tp+".type", "Invalid value: '%s'. Supported values are: 'function'.", tc.Type)
		}
		if tc.Function.Name == "" {
			return nil, reqErr(tp+".function.name", "Missing required parameter: '%s.function.name'.", tp)
		}
		if tc.ID != "" {
			callNames[tc.ID] = tc.Function.Name
		}
		sig := signatureFromID(tc.ID)
		signed = signed || sig != ""
		parts = append(parts, part{
			FunctionCall:     &functionCall{Name: tc.Function.Name, Args: callArgs(tc.Function.Arguments)},
			ThoughtSignature: sig,
		})
	}
	if len(m.ToolCalls) > 0 && !signed {
		// Calls that did not come from Gemini (another provider, or an
		// id the caller made up) carry no signature; Gemini 3 rejects the
		// first call of a step without one unless it is the documented
		// validator-skipping value.
		parts[first].ThoughtSignature = skipSignature
	}
	return parts, nil
}

// callArgs turns OpenAI's arguments string into Gemini's args object. The
// OpenAI API accepts any string here (a cut-off model answer may not be
// JSON), so anything but an object is kept under "arguments" rather than
// failing the whole conversation.
func callArgs(s string) json.RawMessage {
	t := bytes.TrimSpace([]byte(s))
	if len(t) == 0 {
		return json.RawMessage("{}")
	}
	if t[0] == '{' && json.Valid(t) {
		return json.RawMessage(t)
	}
	b, _ := json.Marshal(map[string]string{"arguments": s})
	return b
}

// toolResultPart maps a tool message to a functionResponse part named
// after the call it answers.
func toolResultPart(m *providers.Message, param string, callNames map[string]string) (part, error) {
	name := m.Name
	if m.Role == "tool" {
		if m.ToolCallID == "" {
			return part{}, reqErr(param+".tool_call_id", "Missing required parameter: '%s.tool_call_id'.", param)
		}
		n, ok := callNames[m.ToolCallID]
		if !ok {
			return part{}, reqErr(param+".tool_call_id", "Invalid parameter: '%s.tool_call_id' %q does not match a tool call of an earlier assistant message.", param, m.ToolCallID)
		}
		name = n
	}
	if name == "" {
		return part{}, reqErr(param+".name", "Missing required parameter: '%s.name'.", param)
	}
	text, err := textOnly(m.Content, param)
	if err != nil {
		return part{}, err
	}
	return part{FunctionResponse: &functionResponse{Name: name, Response: resultObject(text)}}, nil
}

// resultObject makes a tool's output the JSON object Gemini requires: a
// JSON object stays as it is, any other JSON value or plain text is
// wrapped as {"result": ...}.
func resultObject(s string) json.RawMessage {
	t := bytes.TrimSpace([]byte(s))
	if len(t) > 0 && json.Valid(t) {
		if t[0] == '{' {
			return json.RawMessage(t)
		}
		return append(append([]byte(`{"result":`), t...), '}')
	}
	b, _ := json.Marshal(map[string]string{"result": s})
	return b
}

func buildTools(g *generateRequest, r *providers.OpenAIRequest) error {
	var decls []functionDeclaration
	for i, t := range r.Tools {
		if t.Type != "" && t.Type != "function" {
			return reqErr(fmt.Sprintf("tools[%d].type", i), "Invalid value: '%s'. This provider supports only 'function' tools.", t.Type)
		}
		if t.Function.Name == "" {
			return reqErr(fmt.Sprintf("tools[%d].function.name", i), "Missing required parameter: 'tools[%d].function.name'.", i)
		}
		d := functionDeclaration{Name: t.Function.Name, Description: t.Function.Description}
		if p := bytes.TrimSpace(t.Function.Parameters); len(p) > 0 && !bytes.Equal(p, []byte("null")) {
			d.ParametersJSONSchema = json.RawMessage(stripDialect(p))
		}
		decls = append(decls, d)
	}
	if len(decls) > 0 {
		g.Tools = []tool{{FunctionDeclarations: decls}}
	}
	mode, name, err := r.ToolChoiceMode()
	if err != nil {
		return err
	}
	var fc functionCallingConfig
	switch mode {
	case "":
		return nil
	case "auto":
		fc.Mode = "AUTO"
	case "none":
		fc.Mode = "NONE"
	case "required":
		fc.Mode = "ANY"
	case "function":
		fc.Mode = "ANY"
		fc.AllowedFunctionNames = []string{name}
		found := false
		for _, d := range decls {
			found = found || d.Name == name
		}
		if !found {
			return reqErr("tool_choice", "Invalid value for 'tool_choice': tool '%s' not found in 'tools'.", name)
		}
	}
	if len(decls) == 0 {
		if mode == "required" || mode == "function" {
			return reqErr("tool_choice", "Invalid value for 'tool_choice': 'tool_choice' is only allowed when 'tools' are specified.")
		}
		return nil
	}
	g.ToolConfig = &toolConfig{FunctionCallingConfig: fc}
	return nil
}

// thinkingBudgets map OpenAI's reasoning_effort (what every ingress
// translates reasoning into) to Gemini thinking budgets.
var thinkingBudgets = map[string]int{"none": 0, "minimal": 128, "low": 1024, "medium": 8192, "high": 24576, "xhigh": 32768, "max": 32768}

func buildGenerationConfig(r *providers.OpenAIRequest) (*generationConfig, error) {
	gc := &generationConfig{
		Temperature:     r.Temperature,
		TopP:            r.TopP,
		MaxOutputTokens: r.MaxOutputTokens(),
		Seed:            r.Seed,
	}
	if gc.MaxOutputTokens < 0 {
		return nil, reqErr("max_tokens", "Invalid 'max_tokens': integer below minimum value. Expected a value >= 1, but got %d instead.", gc.MaxOutputTokens)
	}
	if r.N != nil && *r.N != 1 {
		return nil, reqErr("n", "Invalid 'n': this provider returns one choice per request; n must be 1.")
	}
	// Penalties are sent only when they change something: several Gemini
	// models reject the fields outright, and SDKs often send 0.
	if r.PresencePenalty != nil && *r.PresencePenalty != 0 {
		gc.PresencePenalty = r.PresencePenalty
	}
	if r.FrequencyPenalty != nil && *r.FrequencyPenalty != 0 {
		gc.FrequencyPenalty = r.FrequencyPenalty
	}
	for _, s := range r.Stop {
		if s != "" {
			gc.StopSequences = append(gc.StopSequences, s)
		}
	}
	if b, ok := thinkingBudgets[r.ReasoningEffort]; ok {
		// The caller asked for reasoning: Gemini's budget for that effort,
		// and its thought summaries back (reasoning events).
		gc.ThinkingConfig = &thinkingConfig{ThinkingBudget: &b, IncludeThoughts: b != 0}
	}
	if rf := r.ResponseFormat; rf != nil {
		switch rf.Type {
		case "", "text":
		case "json_object":
			gc.ResponseMimeType = "application/json"
		case "json_schema":
			gc.ResponseMimeType = "application/json"
			if rf.JSONSchema == nil {
				return nil, reqErr("response_format.json_schema", "Missing required parameter: 'response_format.json_schema'.")
			}
			if s := bytes.TrimSpace(rf.JSONSchema.Schema); len(s) > 0 && !bytes.Equal(s, []byte("null")) {
				gc.ResponseJSONSchema = json.RawMessage(stripDialect(s))
			}
		default:
			return nil, reqErr("response_format.type", "Invalid value: '%s'. Supported values are: 'text', 'json_object' and 'json_schema'.", rf.Type)
		}
	}
	if gc.empty() {
		return nil, nil
	}
	return gc, nil
}

func (gc *generationConfig) empty() bool {
	return len(gc.StopSequences) == 0 && gc.ResponseMimeType == "" && len(gc.ResponseJSONSchema) == 0 &&
		gc.MaxOutputTokens == 0 && gc.Temperature == nil && gc.TopP == nil &&
		gc.Seed == nil && gc.PresencePenalty == nil && gc.FrequencyPenalty == nil && gc.ThinkingConfig == nil
}

// stripDialect drops a schema's "$schema" dialect marker (zod-to-json-schema
// writes one; Claude Code's tools carry it), which Gemini's JSON Schema
// path does not take.
func stripDialect(schema []byte) []byte {
	if !bytes.Contains(schema, []byte(`"$schema"`)) {
		return schema
	}
	if out, err := sjson.DeleteBytes(schema, `\$schema`); err == nil {
		return out
	}
	return schema
}
