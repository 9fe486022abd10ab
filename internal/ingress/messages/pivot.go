package messages

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"

	"github.com/tidwall/gjson"
	"github.com/tidwall/sjson"

	"github.com/xroute/xroute/providers"
)

// Translation is a request made ready for routing.
type Translation struct {
	// Pivot is the Chat Completions request; PivotBody its JSON.
	Pivot     *providers.OpenAIRequest
	PivotBody []byte
	// Native is the body an upstream speaking the Messages API gets: the
	// caller's, with role "system" turns folded into system, routing
	// extensions removed, and thinking blocks xroute made for a translated
	// turn left out (no Anthropic deployment could verify them).
	Native []byte
	// NativeOnly says why only a native deployment can serve the request
	// (a server tool Anthropic runs); "" when any can.
	NativeOnly string
	// HasImages is true when the input holds an image.
	HasImages bool
}

// XrouteSignature signs the thinking blocks xroute makes from another
// provider's reasoning: a client sends them back, and a native upstream
// must not see them (its signatures are its own).
const XrouteSignature = "xroute-translated"

// Translate builds the pivot and the native body.
func (r *Request) Translate() (*Translation, error) {
	tr := &Translation{}
	out := &providers.OpenAIRequest{Model: r.Model, Stream: r.Streamed()}
	sys := r.system
	if sys == nil {
		sys, _ = blocksOrString("system", r.System)
	}
	var system []string
	if t := text(sys); t != "" {
		system = append(system, t)
	}
	var msgs []providers.Message
	for i := range r.Messages {
		m := &r.Messages[i]
		at := "messages." + strconv.Itoa(i)
		bs, err := m.blocks(at + ".content")
		if err != nil {
			return nil, err
		}
		switch m.Role {
		case "system":
			if t := text(bs); t != "" {
				system = append(system, t)
			}
		case "user":
			um, img, why, err := userMessages(at, bs)
			if err != nil {
				return nil, err
			}
			if why != "" && tr.NativeOnly == "" {
				tr.NativeOnly = why + " needs"
			}
			tr.HasImages = tr.HasImages || img
			msgs = append(msgs, um...)
		case "assistant":
			am, err := assistantMessage(at, bs)
			if err != nil {
				return nil, err
			}
			if am.Content.Text != "" || len(am.ToolCalls) > 0 {
				msgs = append(msgs, am)
			}
		}
	}
	if len(system) > 0 {
		out.Messages = append(out.Messages, providers.Message{Role: "system", Content: providers.Content{Text: strings.Join(system, "\n\n")}})
	}
	out.Messages = append(out.Messages, msgs...)
	if len(msgs) == 0 {
		return nil, reqErr("messages", "messages: at least one user or assistant message with content is required")
	}
	var servers []string
	for _, t := range r.Tools {
		if t.Server() {
			servers = append(servers, t.Type+" ("+t.Name+")")
			continue
		}
		schema := t.InputSchema
		if len(bytes.TrimSpace(schema)) == 0 || string(schema) == "null" {
			schema = json.RawMessage(`{"type":"object","properties":{}}`)
		}
		out.Tools = append(out.Tools, providers.Tool{Type: "function", Function: providers.Function{Name: t.Name, Description: t.Description, Parameters: schema}})
	}
	if len(servers) > 0 && tr.NativeOnly == "" {
		tr.NativeOnly = "the server tools " + strings.Join(servers, ", ") + " need"
	}
	if tc := r.ToolChoice; tc != nil && len(out.Tools) > 0 {
		switch tc.Type {
		case "auto":
			out.ToolChoice = json.RawMessage(`"auto"`)
		case "any":
			out.ToolChoice = json.RawMessage(`"required"`)
		case "none":
			out.ToolChoice = json.RawMessage(`"none"`)
		case "tool":
			found := false
			for _, t := range out.Tools {
				found = found || t.Function.Name == tc.Name
			}
			if !found {
				return nil, reqErr("tool_choice.name", "tool_choice: tool %q is not in tools", tc.Name)
			}
			out.ToolChoice, _ = json.Marshal(map[string]any{"type": "function", "function": map[string]string{"name": tc.Name}})
		}
		if tc.DisableParallelToolUse {
			f := false
			out.ParallelToolCalls = &f
		}
	}
	out.MaxTokens = r.MaxTokens
	out.Temperature, out.TopP = r.Temperature, r.TopP
	out.Stop = r.StopSequences
	if r.Metadata != nil {
		out.User = r.Metadata.UserID
	}
	out.ReasoningEffort = r.effort()
	body, err := providers.MarshalRequest(out)
	if err != nil {
		return nil, err
	}
	if body, err = r.CopyRouting(body); err != nil {
		return nil, err
	}
	tr.Pivot, tr.PivotBody = out, body
	if tr.Native, err = r.nativeBody(); err != nil {
		return nil, err
	}
	return tr, nil
}

// effort maps extended thinking to the pivot's reasoning effort: the
// budget's size, or adaptive thinking's output_config.effort.
func (r *Request) effort() string {
	th := r.Thinking
	switch {
	case th == nil:
		return ""
	case th.Type == "disabled":
		return ""
	case th.Type != "enabled" && r.OutputConfig != nil && r.OutputConfig.Effort != "":
		switch e := r.OutputConfig.Effort; e {
		case "low", "medium", "high":
			return e
		case "minimal":
			return "low"
		}
		return "high" // xhigh, max: the most every reasoning model takes
	case th.Type != "enabled":
		return "medium" // adaptive and the like: the model decides
	case th.BudgetTokens < 4096:
		return "low"
	case th.BudgetTokens < 16384:
		return "medium"
	}
	return "high"
}

// userMessages maps a user turn: tool results first (each a tool message;
// images they hold follow the run as a user message), then the turn's
// text, images and documents as one user message.
func userMessages(at string, bs []Block) (out []providers.Message, images bool, nativeOnly string, err error) {
	var parts, toolImages []providers.ContentPart
	for j, b := range bs {
		bat := at + ".content." + strconv.Itoa(j)
		switch b.Type {
		case "text":
			if b.Text != "" {
				parts = append(parts, providers.ContentPart{Type: "text", Text: string(b.Text)})
			}
		case "image":
			cp, why, err := imagePart(bat, b.Source)
			if err != nil {
				return nil, false, "", err
			}
			if why != "" {
				nativeOnly = why
				continue
			}
			images = true
			parts = append(parts, cp)
		case "document":
			cp, why, err := documentPart(bat, b)
			if err != nil {
				return nil, false, "", err
			}
			if why != "" {
				nativeOnly = why
				continue
			}
			parts = append(parts, cp)
		case "tool_result":
			if b.ToolUseID == "" {
				return nil, false, "", reqErr(bat+".tool_use_id", "%s.tool_use_id: Field required", bat)
			}
			rbs, err := blocksOrString(bat+".content", b.Content)
			if err != nil {
				return nil, false, "", err
			}
			t := text(rbs)
			n := len(toolImages)
			for k, rb := range rbs {
				rat := bat + ".content." + strconv.Itoa(k)
				var cp providers.ContentPart
				var why string
				switch rb.Type {
				case "image":
					cp, why, err = imagePart(rat, rb.Source)
				case "document":
					// What Claude Code's Read returns for a PDF.
					cp, why, err = documentPart(rat, rb)
				default:
					continue
				}
				if err != nil {
					return nil, false, "", err
				}
				if why != "" {
					nativeOnly = why
					continue
				}
				toolImages = append(toolImages, cp)
			}
			if b.IsError {
				t = "Error: " + t
			}
			if t == "" && len(toolImages) > n {
				t = "(the tool returned content shown after the tool results)"
			}
			// Chat wants a string even when the tool printed nothing.
			out = append(out, providers.Message{Role: "tool", ToolCallID: b.ToolUseID, Content: providers.Content{Text: t, Explicit: true}})
		case "thinking", "redacted_thinking":
			// Reasoning blocks belong to assistant turns; nothing to carry.
		default:
			nativeOnly = "a content block of type '" + b.Type + "' (" + bat + ")"
		}
	}
	if len(toolImages) > 0 {
		for _, p := range toolImages {
			images = images || p.Type == "image_url"
		}
		out = append(out, providers.Message{Role: "user", Content: providers.Content{Parts: toolImages, IsParts: true}})
	}
	if len(parts) > 0 {
		out = append(out, providers.Message{Role: "user", Content: providers.Content{Parts: parts, IsParts: true}})
	}
	return out, images, nativeOnly, nil
}

func imagePart(at string, s *Source) (providers.ContentPart, string, error) {
	if s == nil {
		return providers.ContentPart{}, "", reqErr(at+".source", "%s.source: Field required", at)
	}
	switch s.Type {
	case "base64":
		if s.MediaType == "" || s.Data == "" {
			return providers.ContentPart{}, "", reqErr(at+".source", "%s.source: media_type and data are required", at)
		}
		return providers.ContentPart{Type: "image_url", ImageURL: &providers.ImageURL{URL: "data:" + s.MediaType + ";base64," + s.Data}}, "", nil
	case "url":
		if s.URL == "" {
			return providers.ContentPart{}, "", reqErr(at+".source.url", "%s.source.url: Field required", at)
		}
		return providers.ContentPart{Type: "image_url", ImageURL: &providers.ImageURL{URL: s.URL}}, "", nil
	case "file":
		return providers.ContentPart{}, "an image by file id (" + at + ")", nil
	}
	return providers.ContentPart{}, "", reqErr(at+".source.type", "%s.source.type: Input should be 'base64', 'url' or 'file'", at)
}

// documentPart maps a document block: a base64 PDF becomes a file part,
// plain text a text part (titled).
func documentPart(at string, b Block) (providers.ContentPart, string, error) {
	s := b.Source
	if s == nil {
		return providers.ContentPart{}, "", reqErr(at+".source", "%s.source: Field required", at)
	}
	switch s.Type {
	case "base64":
		name := b.Title
		if name == "" {
			name = "document.pdf"
		}
		return providers.ContentPart{Type: "file", File: &providers.FilePart{FileData: "data:" + s.MediaType + ";base64," + s.Data, Filename: name}}, "", nil
	case "text":
		t := s.Data
		if b.Title != "" {
			t = b.Title + "\n\n" + t
		}
		return providers.ContentPart{Type: "text", Text: t}, "", nil
	case "content":
		cbs, err := blocksOrString(at+".source.content", s.Content)
		if err != nil {
			return providers.ContentPart{}, "", err
		}
		return providers.ContentPart{Type: "text", Text: text(cbs)}, "", nil
	}
	return providers.ContentPart{}, "a document by " + s.Type + " (" + at + ")", nil
}

// assistantMessage maps an assistant turn: its text, and its tool_use
// blocks as tool calls. Thinking is the provider's own and is dropped.
func assistantMessage(at string, bs []Block) (providers.Message, error) {
	m := providers.Message{Role: "assistant"}
	for j, b := range bs {
		bat := at + ".content." + strconv.Itoa(j)
		switch b.Type {
		case "text":
			if m.Content.Text != "" && b.Text != "" {
				m.Content.Text += "\n"
			}
			m.Content.Text += string(b.Text)
		case "tool_use":
			if b.ID == "" || b.Name == "" {
				return m, reqErr(bat, "%s: tool_use blocks need an id and a name", bat)
			}
			args := "{}"
			if in := bytes.TrimSpace(b.Input); len(in) > 0 && string(in) != "null" {
				args = string(in)
			}
			m.ToolCalls = append(m.ToolCalls, providers.ToolCall{ID: b.ID, Type: "function", Function: providers.FunctionCall{Name: b.Name, Arguments: args}})
		}
	}
	return m, nil
}

// nativeBody is the caller's body as an upstream speaking the Messages
// API gets it.
func (r *Request) nativeBody() ([]byte, error) {
	body, err := r.StripRouting(r.Body)
	if err != nil {
		return nil, err
	}
	mine := bytes.Contains(body, []byte(XrouteSignature))
	if !r.SystemFolded && !mine {
		return body, nil
	}
	// Rebuild messages: system turns folded into system, xroute's own
	// thinking blocks left out.
	var system []json.RawMessage
	switch s := gjson.GetBytes(body, "system"); {
	case s.Type == gjson.String && s.Str != "":
		b, _ := json.Marshal(map[string]string{"type": "text", "text": s.Str})
		system = append(system, b)
	case s.IsArray():
		s.ForEach(func(_, v gjson.Result) bool { system = append(system, json.RawMessage(v.Raw)); return true })
	}
	var msgs []json.RawMessage
	// lastAssistant is the last assistant turn: if it calls tools and
	// xroute's own thinking is left out of it, thinking goes off for this
	// request (Anthropic wants such a turn to start with its own thinking).
	lastAssistant := -1
	for i := range r.Messages {
		if r.Messages[i].Role == "assistant" {
			lastAssistant = i
		}
	}
	thinkingOff := false
	for i := range r.Messages {
		m := &r.Messages[i]
		bs, _ := m.blocks("")
		if m.Role == "system" {
			if t := text(bs); t != "" {
				b, _ := json.Marshal(map[string]string{"type": "text", "text": t})
				system = append(system, b)
			}
			continue
		}
		raw := marshalRaw(m)
		if mine && m.Role == "assistant" && bytes.HasPrefix(bytes.TrimSpace(m.Content), []byte("[")) {
			var kept []json.RawMessage
			dropped, calls := false, false
			gjson.GetBytes(m.Content, "@this").ForEach(func(_, v gjson.Result) bool {
				if v.Get("type").Str == "thinking" && v.Get("signature").Str == XrouteSignature {
					dropped = true
					return true
				}
				calls = calls || v.Get("type").Str == "tool_use"
				kept = append(kept, json.RawMessage(v.Raw))
				return true
			})
			thinkingOff = thinkingOff || (i == lastAssistant && dropped && calls)
			if len(kept) == 0 {
				continue
			}
			raw = marshalRaw(Message{Role: m.Role, Content: marshalRaw(kept)})
		}
		msgs = append(msgs, raw)
	}
	if body, err = sjson.SetRawBytes(body, "messages", marshalRaw(msgs)); err != nil {
		return nil, err
	}
	if len(system) > 0 {
		if body, err = sjson.SetRawBytes(body, "system", marshalRaw(system)); err != nil {
			return nil, err
		}
	}
	if thinkingOff && r.ThinkingEnabled() {
		if body, err = sjson.DeleteBytes(body, "thinking"); err != nil {
			return nil, err
		}
	}
	return body, nil
}

// marshalRaw encodes v keeping the caller's bytes as they were: no HTML
// escaping of the raw content it carries (<system-reminder> stays).
func marshalRaw(v any) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.Encode(v)
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}
