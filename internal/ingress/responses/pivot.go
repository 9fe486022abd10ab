package responses

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"

	"github.com/tidwall/sjson"

	"github.com/xroute/xroute/providers"
)

// Translation is a create request made ready for routing: the chat pivot
// every adapter reads, the body a native upstream gets, and what the
// answer's rendering must know to map names back.
type Translation struct {
	// Pivot is the Chat Completions request; PivotBody its JSON.
	Pivot     *providers.OpenAIRequest
	PivotBody []byte
	// Native is the caller's body for an upstream that speaks the
	// Responses API: routing extensions removed and, with
	// previous_response_id, the stored conversation inlined (the upstream
	// may never have seen it: it may be another provider's).
	Native []byte
	// NativeOnly says why only a native deployment can serve the request
	// (a built-in tool it requires); "" when any can.
	NativeOnly string
	// Dropped lists built-in tools left out of the pivot: optional to the
	// request (tool_choice does not require them), they only exist on a
	// native deployment.
	Dropped []string
	// Tools maps pivot function names back to what the caller declared.
	Tools ToolMap
	// HasImages is true when the input holds an image.
	HasImages bool
	// History counts the items taken from the stored conversation.
	History int
}

// ToolMap maps a pivot function name to the caller's tool: a namespaced
// function ("ns__fn" in the pivot) or a custom tool (a function of one
// string argument, "input", in the pivot).
type ToolMap map[string]ToolRef

// ToolRef is the caller's view of a pivot function.
type ToolRef struct {
	Name, Namespace string
	Custom          bool
}

// namespaceSep joins a namespace and a function name in the pivot; tool
// names of every provider allow [a-zA-Z0-9_-].
const namespaceSep = "__"

// Translate builds the pivot and the native body. history holds the stored
// conversation's items (oldest first) when previous_response_id is set.
func (r *Request) Translate(history []Item) (*Translation, error) {
	tr := &Translation{Tools: ToolMap{}, History: len(history)}
	out := &providers.OpenAIRequest{Model: r.Model, Stream: r.Streamed()}
	if r.Instructions != nil && *r.Instructions != "" {
		out.Messages = append(out.Messages, providers.Message{Role: "system", Content: providers.Content{Text: *r.Instructions}})
	}
	all := r.Items
	if len(history) > 0 {
		all = make([]Item, 0, len(history)+len(r.Items))
		all = append(append(all, history...), r.Items...)
	}
	if len(all) > maxItems {
		return nil, reqErr("previous_response_id", "The conversation holds more than %d items.", maxItems)
	}
	msgs, images, nativeOnly, err := toMessages(all, len(history))
	if err != nil {
		return nil, err
	}
	out.Messages = append(out.Messages, msgs...)
	tr.HasImages = images
	if err := tr.tools(r, out); err != nil {
		return nil, err
	}
	if nativeOnly != "" && tr.NativeOnly == "" {
		tr.NativeOnly = nativeOnly
		tr.Dropped = nil
	}
	if r.Text != nil && r.Text.Format != nil {
		switch f := r.Text.Format; f.Type {
		case "json_object":
			out.ResponseFormat = &providers.ResponseFormat{Type: "json_object"}
		case "json_schema":
			out.ResponseFormat = &providers.ResponseFormat{Type: "json_schema", JSONSchema: &providers.JSONSchema{Name: f.Name, Schema: f.Schema, Strict: f.Strict}}
		}
	}
	if r.MaxOutputTokens != nil {
		out.MaxCompletionTokens = r.MaxOutputTokens
	}
	out.Temperature, out.TopP = r.Temperature, r.TopP
	if r.Reasoning != nil && r.Reasoning.Effort != nil {
		out.ReasoningEffort = *r.Reasoning.Effort
	}
	switch {
	case r.SafetyIdentifier != nil:
		out.User = *r.SafetyIdentifier
	case r.User != nil:
		out.User = *r.User
	}
	body, err := providers.MarshalRequest(out)
	if err != nil {
		return nil, err
	}
	// The router reads OpenRouter's routing extensions from the pivot.
	if body, err = r.CopyRouting(body); err != nil {
		return nil, err
	}
	tr.Pivot, tr.PivotBody = out, body
	if tr.Native, err = r.nativeBody(history); err != nil {
		return nil, err
	}
	return tr, nil
}

// tools maps tools and tool_choice into the pivot.
func (tr *Translation) tools(r *Request, out *providers.OpenAIRequest) error {
	var builtins []string
	add := func(t Tool, ns string) error {
		name := t.Name
		if ns != "" {
			name = ns + namespaceSep + t.Name
		}
		if _, dup := tr.Tools[name]; dup {
			return reqErr("tools", "Duplicate tool name %q (namespaced tools are named namespace%sname for providers without namespaces).", name, namespaceSep)
		}
		ref := ToolRef{Name: t.Name, Namespace: ns, Custom: t.Type == "custom"}
		tr.Tools[name] = ref
		fn := providers.Function{Name: name, Description: t.Description, Parameters: t.Parameters, Strict: t.Strict}
		if ref.Custom {
			fn.Parameters = customParams(t)
			fn.Strict = nil
		}
		if len(bytes.TrimSpace(fn.Parameters)) == 0 || string(fn.Parameters) == "null" {
			fn.Parameters = json.RawMessage(`{"type":"object","properties":{}}`)
		}
		out.Tools = append(out.Tools, providers.Tool{Type: "function", Function: fn})
		return nil
	}
	for _, t := range r.Tools {
		switch t.Type {
		case "function", "custom":
			if err := add(t, ""); err != nil {
				return err
			}
		case "namespace":
			for _, nt := range t.Tools {
				if err := add(nt, t.Name); err != nil {
					return err
				}
			}
		default:
			builtins = append(builtins, t.Type)
		}
	}
	if len(out.Tools) > 0 {
		out.ParallelToolCalls = r.ParallelToolCalls
	}
	mode, name, err := r.toolChoice()
	if err != nil {
		return err
	}
	switch mode {
	case "", "auto":
		if mode == "auto" && len(out.Tools) > 0 {
			out.ToolChoice = json.RawMessage(`"auto"`)
		}
	case "none":
		if len(out.Tools) > 0 {
			out.ToolChoice = json.RawMessage(`"none"`)
		}
	case "required":
		if len(out.Tools) == 0 && len(builtins) > 0 {
			tr.NativeOnly = "'tool_choice': 'required' with only built-in tools (" + strings.Join(builtins, ", ") + ") needs"
		}
		out.ToolChoice = json.RawMessage(`"required"`)
	case "function":
		if _, ok := tr.Tools[name]; !ok {
			return reqErr("tool_choice", "Invalid 'tool_choice': tool %q is not in 'tools'.", name)
		}
		b, _ := json.Marshal(map[string]any{"type": "function", "function": map[string]string{"name": name}})
		out.ToolChoice = b
	case "builtin":
		tr.NativeOnly = "the built-in tool '" + name + "' that 'tool_choice' requires needs"
	}
	if tr.NativeOnly == "" {
		tr.Dropped = builtins
	}
	if len(out.Tools) == 0 {
		out.ToolChoice = nil
	}
	return nil
}

// customParams is the pivot schema of a custom tool: its free-form input
// as one string argument, its grammar (if any) described to the model.
func customParams(t Tool) json.RawMessage {
	desc := "The tool's input, as free-form text."
	if f := bytes.TrimSpace(t.Format); len(f) > 0 && f[0] == '{' {
		var fm struct {
			Type       string `json:"type"`
			Syntax     string `json:"syntax"`
			Definition string `json:"definition"`
		}
		if json.Unmarshal(f, &fm) == nil && fm.Type == "grammar" && fm.Definition != "" {
			desc = "The tool's input, as text that follows this " + fm.Syntax + " grammar:\n" + fm.Definition
		}
	}
	b, _ := json.Marshal(map[string]any{
		"type":                 "object",
		"properties":           map[string]any{"input": map[string]string{"type": "string", "description": desc}},
		"required":             []string{"input"},
		"additionalProperties": false,
	})
	return b
}

// toolChoice reads tool_choice: mode is "", auto, none, required,
// function (name is the pivot name) or builtin (name is the tool type).
func (r *Request) toolChoice() (mode, name string, err error) {
	tc := bytes.TrimSpace(r.ToolChoice)
	if len(tc) == 0 || string(tc) == "null" {
		return "", "", nil
	}
	if tc[0] == '"' {
		var s string
		json.Unmarshal(tc, &s)
		switch s {
		case "auto", "none", "required":
			return s, "", nil
		}
		return "", "", reqErr("tool_choice", "Invalid value for 'tool_choice': %q. Supported values are: 'none', 'auto' and 'required'.", s)
	}
	var c struct {
		Type      string `json:"type"`
		Name      string `json:"name"`
		Namespace string `json:"namespace"`
		Mode      string `json:"mode"`
		Tools     []struct {
			Type string `json:"type"`
			Name string `json:"name"`
		} `json:"tools"`
	}
	if err := json.Unmarshal(tc, &c); err != nil {
		return "", "", reqErr("tool_choice", "Invalid 'tool_choice': expected a string or an object.")
	}
	switch c.Type {
	case "function", "custom":
		if c.Name == "" {
			return "", "", reqErr("tool_choice.name", "Missing required parameter: 'tool_choice.name'.")
		}
		if c.Namespace != "" {
			return "function", c.Namespace + namespaceSep + c.Name, nil
		}
		return "function", c.Name, nil
	case "allowed_tools":
		// The pivot has no allowed subset: the mode is kept, the model sees
		// every tool.
		switch c.Mode {
		case "auto", "required":
			return c.Mode, "", nil
		}
		return "", "", reqErr("tool_choice.mode", "Invalid value for 'tool_choice.mode': %q. Supported values are: 'auto' and 'required'.", c.Mode)
	case "":
		return "", "", reqErr("tool_choice.type", "Missing required parameter: 'tool_choice.type'.")
	}
	return "builtin", c.Type, nil
}

// toMessages maps items to chat messages. The first fromHistory items come
// from the stored conversation. Reasoning is dropped (it only helps a
// native upstream, which gets it through Native), and so are the records
// of built-in tool calls (web_search_call, ...: only OpenAI ran them; the
// answer that used them follows as text). What the pivot cannot say at
// all (an item reference, a file by URL) makes the request native-only:
// nativeOnly says why, and translating deployments are skipped.
func toMessages(items []Item, fromHistory int) (out []providers.Message, images bool, nativeOnly string, err error) {
	// lastAssistant is the index in out of the assistant message that
	// function calls attach to; -1 when a user or tool turn came since.
	lastAssistant := -1
	// Images returned by a run of tool outputs follow the whole run: chat
	// wants every tool message right after the call it answers.
	var toolImages []providers.ContentPart
	flushImages := func() {
		if len(toolImages) > 0 {
			out = append(out, providers.Message{Role: "user", Content: providers.Content{Parts: toolImages, IsParts: true}})
			toolImages, images = nil, true
		}
	}
	needsNative := func(why string) {
		if nativeOnly == "" {
			nativeOnly = why + " needs"
		}
	}
	for i := range items {
		it := &items[i]
		at := "input[" + strconv.Itoa(i-fromHistory) + "]"
		if i < fromHistory {
			at = "previous_response_id"
		}
		if it.Type != "function_call_output" && it.Type != "custom_tool_call_output" {
			flushImages()
		}
		switch it.Type {
		case "message":
			ps, err := parts(at+".content", it.Content)
			if err != nil {
				return nil, false, "", err
			}
			switch it.Role {
			case "system", "developer":
				// Every provider has a system role; not all have developer.
				out = append(out, providers.Message{Role: "system", Content: providers.Content{Text: text(ps)}})
				lastAssistant = -1
			case "assistant":
				t := text(ps)
				if lastAssistant >= 0 && len(out[lastAssistant].ToolCalls) == 0 {
					m := &out[lastAssistant]
					if m.Content.Text != "" && t != "" {
						m.Content.Text += "\n"
					}
					m.Content.Text += t
					continue
				}
				out = append(out, providers.Message{Role: "assistant", Content: providers.Content{Text: t}})
				lastAssistant = len(out) - 1
			default: // user
				cps, img, why, err := chatParts(at+".content", ps)
				if err != nil {
					return nil, false, "", err
				}
				if why != "" {
					needsNative(why)
				}
				images = images || img
				out = append(out, providers.Message{Role: "user", Content: providers.Content{Parts: cps, IsParts: true}})
				lastAssistant = -1
			}
		case "function_call", "custom_tool_call":
			name := it.Name
			if it.Namespace != "" {
				name = it.Namespace + namespaceSep + it.Name
			}
			args := it.Arguments
			if it.Type == "custom_tool_call" {
				b, _ := json.Marshal(map[string]string{"input": it.Input})
				args = string(b)
			}
			if lastAssistant < 0 {
				out = append(out, providers.Message{Role: "assistant"})
				lastAssistant = len(out) - 1
			}
			m := &out[lastAssistant]
			m.ToolCalls = append(m.ToolCalls, providers.ToolCall{ID: it.CallID, Type: "function", Function: providers.FunctionCall{Name: name, Arguments: args}})
		case "function_call_output", "custom_tool_call_output":
			ps, err := parts(at+".output", it.Output)
			if err != nil {
				return nil, false, "", err
			}
			// Chat tool messages hold text: images a tool returned (Codex's
			// view_image) follow the run of tool messages as a user message.
			var texts []Part
			n := len(toolImages)
			for j, p := range ps {
				switch p.Type {
				case "input_image":
					cp, why, err := imagePart(at+".output["+strconv.Itoa(j)+"]", p)
					if err != nil {
						return nil, false, "", err
					}
					if why != "" {
						needsNative(why)
						continue
					}
					toolImages = append(toolImages, cp)
				default:
					texts = append(texts, p)
				}
			}
			t := text(texts)
			if t == "" && len(toolImages) > n {
				t = "(the tool returned an image, shown after the tool results)"
			}
			out = append(out, providers.Message{Role: "tool", ToolCallID: it.CallID, Content: providers.Content{Text: t, Explicit: true}})
			lastAssistant = -1
		case "reasoning":
			// Reasoning of an earlier turn: only the provider that wrote it
			// can read it (encrypted, or signed); a translated request goes
			// without it.
		case "item_reference":
			needsNative("an item reference (" + at + ")")
		default:
			if strings.HasSuffix(it.Type, "_call") || strings.HasSuffix(it.Type, "_call_output") {
				// A built-in tool's record (web_search_call, ...): only an
				// OpenAI deployment ran it, and its outcome is in the answer
				// that followed.
				continue
			}
			needsNative("an input item of type '" + it.Type + "' (" + at + ")")
		}
	}
	flushImages()
	if len(out) == 0 {
		if nativeOnly != "" {
			// Nothing the pivot can say: a native deployment reads Native.
			out = append(out, providers.Message{Role: "user", Content: providers.Content{Text: "(native input)"}})
			return out, images, nativeOnly, nil
		}
		return nil, false, "", reqErr("input", "The input holds no message.")
	}
	return out, images, nativeOnly, nil
}

// chatParts maps a user message's parts to chat content parts. nativeOnly
// names a part the pivot cannot carry (a file by URL, an image by file id:
// only OpenAI resolves those).
func chatParts(at string, ps []Part) (out []providers.ContentPart, images bool, nativeOnly string, err error) {
	out = make([]providers.ContentPart, 0, len(ps))
	for j, p := range ps {
		pat := at + "[" + strconv.Itoa(j) + "]"
		switch p.Type {
		case "input_text", "output_text", "text":
			out = append(out, providers.ContentPart{Type: "text", Text: string(p.Text)})
		case "input_image":
			cp, why, err := imagePart(pat, p)
			if err != nil {
				return nil, false, "", err
			}
			if why != "" {
				nativeOnly = why
				continue
			}
			images = true
			out = append(out, cp)
		case "input_file":
			if p.FileData == "" && p.FileID == "" && p.FileURL == "" {
				return nil, false, "", reqErr(pat, "Missing 'file_data', 'file_id' or 'file_url' in '%s'.", pat)
			}
			if p.FileURL != "" {
				nativeOnly = "a file by URL (" + pat + ".file_url)"
				continue
			}
			out = append(out, providers.ContentPart{Type: "file", File: &providers.FilePart{FileData: p.FileData, FileID: p.FileID, Filename: p.Filename}})
		default:
			nativeOnly = "a content part of type '" + p.Type + "' (" + pat + ")"
		}
	}
	return out, images, nativeOnly, nil
}

func imagePart(at string, p Part) (cp providers.ContentPart, nativeOnly string, err error) {
	if p.ImageURL == "" {
		if p.FileID != "" {
			return cp, "an image by file id (" + at + ".file_id)", nil
		}
		return cp, "", reqErr(at+".image_url", "Missing required parameter: '%s.image_url'.", at)
	}
	return providers.ContentPart{Type: "image_url", ImageURL: &providers.ImageURL{URL: p.ImageURL, Detail: p.Detail}}, "", nil
}

// nativeBody is the caller's body as a native upstream gets it: routing
// extensions removed and, when continuing a stored conversation, the
// conversation inlined in place of previous_response_id.
func (r *Request) nativeBody(history []Item) ([]byte, error) {
	body, err := r.StripRouting(r.Body)
	if err != nil {
		return nil, err
	}
	drop := func(it *Item) bool {
		// With store: false the upstream keeps nothing, so a reasoning
		// item by id alone resolves nowhere; clients in that mode (Codex)
		// send the encrypted content, which is kept.
		return isXrouteReasoning(it) || (!r.Stored() && it.Type == "reasoning" && it.EncryptedContent == nil)
	}
	unresolvable := false
	for i := range r.Items {
		unresolvable = unresolvable || drop(&r.Items[i])
	}
	if r.PreviousResponseID == nil && !unresolvable {
		return body, nil
	}
	if r.PreviousResponseID != nil {
		if body, err = sjson.DeleteBytes(body, "previous_response_id"); err != nil {
			return nil, err
		}
	}
	all := make([]Item, 0, len(history)+len(r.Items))
	all = append(append(all, history...), r.Items...)
	b, err := json.Marshal(nativeItems(all, drop))
	if err != nil {
		return nil, err
	}
	return sjson.SetRawBytes(body, "input", b)
}

// XrouteReasoningPrefix starts the ids of reasoning items xroute made (for
// translated answers): no upstream stored them, so none can resolve them
// (OpenAI's own ids are hex, never "xr").
const XrouteReasoningPrefix = "rs_xr"

func isXrouteReasoning(it *Item) bool {
	return it.Type == "reasoning" && it.EncryptedContent == nil && strings.HasPrefix(it.ID, XrouteReasoningPrefix)
}

// nativeItems is items as a native upstream can read them: reasoning items
// it cannot resolve (drop: those xroute made on a translated turn, id-only
// ones with store: false) are left out, since the upstream would answer
// "item not found", and the items of the assistant turn that followed one
// lose their ids (an upstream refuses a stored call id "provided without
// its required reasoning item"). The upstream's own reasoning items stay:
// it stored them, or their encrypted content carries them.
func nativeItems(items []Item, drop func(*Item) bool) []json.RawMessage {
	out := make([]json.RawMessage, 0, len(items))
	strip := false
	for i := range items {
		it := &items[i]
		switch {
		case drop(it):
			strip = true
			continue
		case it.Type == "message" && it.Role != "assistant", strings.HasSuffix(it.Type, "_output"), it.Type == "reasoning":
			strip = false
		}
		raw := it.Raw
		if strip && it.ID != "" {
			if b, err := sjson.DeleteBytes(raw, "id"); err == nil {
				raw = b
			}
		}
		out = append(out, raw)
	}
	return out
}

// RestorePrevious puts previous_response_id back into a native answer's
// response object (at prefix + "previous_response_id"): xroute inlined
// the conversation instead of sending the id, so the upstream echoed
// none. The answer is returned as it is without one.
func (r *Request) RestorePrevious(object []byte, prefix string) []byte {
	if r.PreviousResponseID == nil {
		return object
	}
	out, err := sjson.SetBytes(object, prefix+"previous_response_id", *r.PreviousResponseID)
	if err != nil {
		return object
	}
	return out
}
