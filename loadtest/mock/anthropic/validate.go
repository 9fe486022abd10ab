package anthropic

import (
	"bytes"
	"encoding/json"
	"maps"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode"

	"github.com/xroute/xroute/loadtest/mock"
)

var (
	toolName = regexp.MustCompile(`^[a-zA-Z0-9_-]{1,128}$`)
	// serverToolType matches the versioned types of server tools
	// (web_search_20250305, bash_20250124, code_execution_20250825, ...).
	serverToolType = regexp.MustCompile(`^[a-z][a-z0-9_]*_[0-9]{8}$`)
	// legacyModel matches the models released before Claude Opus 4.8,
	// which refuse mid-conversation system messages.
	legacyModel = regexp.MustCompile(`^claude-([0-9]|instant|(opus|sonnet|haiku)-4(-[0-7])?(-[0-9]{8})?$)`)
)

// analysis is a validated request: its prompt in cache order and what the
// answer depends on.
type analysis struct {
	model       string
	prompt      *mock.Prefix
	tools       map[string]*tool // client tools by name
	thinking    thinkingPlan
	format      *outputFormat // structured output, nil for text
	userText    string        // the last user text: seed and directives
	lastResult  string        // text of the last tool_result
	resultError bool          // the last tool_result has is_error
	afterResult bool          // the request ends with a user turn of tool results
	lastRole    string
}

// Block types by the role that may send them.
var (
	assistantOnly = map[string]bool{"tool_use": true, "thinking": true, "redacted_thinking": true,
		"server_tool_use": true, "web_search_tool_result": true, "web_fetch_tool_result": true,
		"advisor_tool_result": true, "code_execution_tool_result": true, "bash_code_execution_tool_result": true,
		"text_editor_code_execution_tool_result": true, "tool_search_tool_result": true, "mcp_tool_use": true,
		"mcp_tool_result": true, "compaction": true, "mcp_tool_listing": true, "fallback": true}
	userOnly = map[string]bool{"image": true, "tool_result": true, "search_result": true}
	anyRole  = map[string]bool{"text": true, "document": true, "container_upload": true,
		"tool_addition": true, "tool_removal": true} // the last two: mid-conversation tool changes
)

// analyze validates req as the API does and walks its prompt. maxTokens is
// checked for a Messages request (count is false).
func (s *Server) analyze(st *state, req *request, version, betas string, count, hashing bool) (*analysis, *apiError) {
	if req.Model == nil || *req.Model == "" {
		return nil, invalid("model: Field required")
	}
	var maxTokens *int
	if !count {
		if req.MaxTokens == nil {
			return nil, invalid("max_tokens: Field required")
		}
		if *req.MaxTokens < 0 {
			return nil, invalid("max_tokens: Input should be greater than or equal to 0")
		}
		maxTokens = req.MaxTokens
	}
	if req.Messages == nil {
		return nil, invalid("messages: Field required")
	}
	if len(req.Messages) == 0 {
		return nil, invalid("messages: at least one message is required")
	}
	if t := req.Temperature; t != nil && (*t < 0 || *t > 1) {
		return nil, invalid("temperature: range: 0..1")
	}
	if t := req.TopP; t != nil && (*t < 0 || *t > 1) {
		return nil, invalid("top_p: range: 0..1")
	}
	if t := req.TopK; t != nil && *t < 0 {
		return nil, invalid("top_k: Input should be greater than or equal to 0")
	}
	if e := checkMetadata(req.Metadata); e != nil {
		return nil, e
	}
	if t := req.ServiceTier; t != nil && *t != "auto" && *t != "standard_only" {
		return nil, invalid("service_tier: Input should be 'auto' or 'standard_only'")
	}
	if sp := req.Speed; sp != nil && *sp != "standard" && *sp != "fast" {
		return nil, invalid("speed: Input should be 'standard' or 'fast'")
	}
	if cm := bytes.TrimSpace(req.ContextManagement); len(cm) > 0 && cm[0] != '{' && cm[0] != 'n' {
		return nil, invalid("context_management: Input should be a valid dictionary")
	}
	a := &analysis{model: *req.Model, tools: map[string]*tool{}}
	var e *apiError
	if a.format, e = structuredFormat(req); e != nil {
		return nil, e
	}
	if a.thinking, e = resolveThinking(req, maxTokens, betas); e != nil {
		return nil, e
	}
	if !st.models.Has(a.model) {
		return nil, &apiError{status: http.StatusNotFound, message: "model: " + a.model}
	}

	p := mock.NewPrefix(a.model, hashing)
	a.prompt = p
	p.Hidden(func() []byte { return []byte("framing") }, 3)
	if e := a.walkTools(req); e != nil {
		return nil, e
	}
	if e := walkSystem(p, req.System); e != nil {
		return nil, e
	}
	if e := a.walkMessages(req, version); e != nil {
		return nil, e
	}
	if cc := req.CacheControl; cc != nil {
		if e := cc.check(""); e != nil {
			return nil, invalid(strings.TrimPrefix(e.message, "."))
		}
		p.MarkLast(cc.duration())
	}
	if e := checkBreakpoints(p); e != nil {
		return nil, e
	}
	return a, nil
}

// checkMetadata accepts {"user_id": string (at most 256 characters)}.
func checkMetadata(raw json.RawMessage) *apiError {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || raw[0] == 'n' {
		return nil
	}
	var m map[string]json.RawMessage
	if json.Unmarshal(raw, &m) != nil {
		return invalid("metadata: Input should be a valid dictionary")
	}
	for k, v := range m {
		if k != "user_id" {
			return invalid("metadata." + k + ": Extra inputs are not permitted")
		}
		var id *string
		if json.Unmarshal(v, &id) != nil {
			return invalid("metadata.user_id: Input should be a valid string")
		}
		if id != nil && len(*id) > 256 {
			return invalid("metadata.user_id: String should have at most 256 characters")
		}
	}
	return nil
}

// structuredFormat validates output_config.format (or the beta
// output_format): a json_schema with an object schema.
func structuredFormat(req *request) (*outputFormat, *apiError) {
	f, at := req.OutputFormat, "output_format"
	if req.OutputConfig != nil && req.OutputConfig.Format != nil {
		f, at = req.OutputConfig.Format, "output_config.format"
	}
	if f == nil {
		return nil, nil
	}
	if f.Type != "json_schema" {
		return nil, invalid(at + ".type: Input tag '" + f.Type + "' found using 'type' does not match any of the expected tags: 'json_schema'")
	}
	if s := bytes.TrimSpace(f.Schema); len(s) == 0 || s[0] != '{' {
		return nil, invalid(at + ".schema: Field required")
	}
	return f, nil
}

// walkTools validates the tools (custom tools and server tools) and adds
// them to the prompt.
func (a *analysis) walkTools(req *request) *apiError {
	names := map[string]bool{}
	for i := range req.Tools {
		t := &req.Tools[i]
		at := "tools." + strconv.Itoa(i)
		if e := t.CacheControl.check(at); e != nil {
			return e
		}
		tokens := 0
		switch {
		case t.Type == "" || t.Type == "custom":
			if !toolName.MatchString(t.Name) {
				return invalid(at + ".custom.name: String should match pattern '^[a-zA-Z0-9_-]{1,128}$'")
			}
			var schema struct {
				Type string `json:"type"`
			}
			if len(t.InputSchema) == 0 || json.Unmarshal(t.InputSchema, &schema) != nil {
				return invalid(at + ".custom.input_schema: Field required")
			}
			if schema.Type != "object" {
				return invalid(at + ".custom.input_schema.type: Input should be 'object'")
			}
			a.tools[t.Name] = t
			if !t.DeferLoading {
				tokens = 1 + mock.CountWords(t.Name) + mock.CountWords(t.Description) + len(t.InputSchema)/8
			}
		case serverToolType.MatchString(t.Type) || t.Type == "mcp_toolset":
			tokens = 1 + mock.CountWords(t.Name) // server tools: accepted, never called
		default:
			return invalid(at + ".type: Input tag '" + t.Type + "' found using 'type' does not match any of the expected tags: 'custom' or a server tool type")
		}
		if t.Name != "" {
			if names[t.Name] {
				return invalid("tools: Tool names must be unique.")
			}
			names[t.Name] = true
		}
		raw := t.raw
		a.prompt.Add(func() []byte { return canonJSON(raw) }, tokens, t.CacheControl.bp())
	}
	if tc := req.ToolChoice; tc != nil {
		if len(req.Tools) == 0 {
			return invalid("tool_choice: tool_choice may only be specified while providing tools.")
		}
		switch tc.Type {
		case "auto", "any", "none":
		case "tool":
			if _, ok := a.tools[tc.Name]; !ok {
				return invalid("tool_choice: Tool '" + tc.Name + "' not found in provided tools")
			}
		default:
			return invalid("tool_choice.type: Input should be 'auto', 'any', 'tool' or 'none'")
		}
	}
	return nil
}

// walkSystem validates the system prompt (a string or text blocks) and adds
// it to the prompt: 3 tokens plus its words.
func walkSystem(p *mock.Prefix, raw json.RawMessage) *apiError {
	if len(raw) == 0 || string(raw) == "null" {
		return nil
	}
	sys, err := blocks(raw)
	if err != nil {
		return invalid("system: " + err.Error())
	}
	p.Hidden(func() []byte { return []byte("system") }, 3)
	for i, b := range sys {
		at := "system." + strconv.Itoa(i)
		if b.Type != "text" || b.Text == nil {
			return invalid("system: Input should be a valid string or a list of text blocks")
		}
		if *b.Text == "" && len(sys) > 1 {
			return invalid(at + ".text: text content blocks must be non-empty")
		}
		if e := b.CacheControl.check(at); e != nil {
			return e
		}
		text := *b.Text
		p.Add(func() []byte { return []byte("text\x00" + text) }, mock.CountWords(text), b.CacheControl.bp())
	}
	return nil
}

// inMessage is a decoded message of the request.
type inMessage struct {
	role   string
	blocks []block
}

// walkMessages validates the messages and adds them to the prompt.
// Consecutive user (or assistant) messages make one turn; system messages
// sit between a user message and what follows without ending its turn.
func (a *analysis) walkMessages(req *request, version string) *apiError {
	msgs := make([]inMessage, len(req.Messages))
	for i, m := range req.Messages {
		at := "messages." + strconv.Itoa(i)
		switch m.Role {
		case "user", "assistant":
		case "system":
			if legacyModel.MatchString(a.model) {
				return invalid(at + ".role: role 'system' is not supported on this model")
			}
			if i == 0 || req.Messages[i-1].Role != "user" {
				return invalid(at + ": a system message must immediately follow a user message")
			}
		default:
			return invalid(at + ".role: Input should be 'user', 'assistant' or 'system'")
		}
		var bs []block
		if c := bytes.TrimSpace(m.Content); m.Role != "system" || len(m.OutputConfig) == 0 || (len(c) > 0 && c[0] != 'n') {
			var err error
			if bs, err = blocks(m.Content); err != nil {
				return invalid(at + ".content: " + err.Error())
			}
		}
		if len(bs) == 0 && !(m.Role == "assistant" && i == len(req.Messages)-1) && !(m.Role == "system" && len(m.OutputConfig) > 0) {
			return invalid(at + ": all messages must have non-empty content except for the optional final assistant message")
		}
		msgs[i] = inMessage{role: m.Role, blocks: bs}
	}

	// The current assistant turn follows the last user message that is not
	// only tool results: its thinking blocks count and must be intact.
	turnStart := -1
	for i := len(msgs) - 1; i >= 0 && turnStart < 0; i-- {
		if msgs[i].role != "user" {
			continue
		}
		for _, b := range msgs[i].blocks {
			if b.Type != "tool_result" {
				turnStart = i
				break
			}
		}
	}
	lastAssistant := -1
	for i := range msgs {
		if msgs[i].role == "assistant" {
			lastAssistant = i
		}
	}

	cur := ""                    // role of the current turn
	turnUses := map[string]int{} // tool_use ids of the current assistant turn -> message
	var answering map[string]int // ids the current user turn must answer
	seenOther := false           // the current user turn has content other than tool results
	unanswered := func() *apiError {
		if len(answering) == 0 {
			return nil
		}
		ids := slices.Sorted(maps.Keys(answering))
		return invalid("messages." + strconv.Itoa(answering[ids[0]]) + ": `tool_use` ids were found without `tool_result` blocks immediately after: " + strings.Join(ids, ", ") + ". Each `tool_use` block must have a corresponding `tool_result` block in the next message.")
	}
	p := a.prompt
	for i := range msgs {
		m := &msgs[i]
		at := "messages." + strconv.Itoa(i)
		if m.role != "system" && m.role != cur {
			if cur == "user" {
				if e := unanswered(); e != nil {
					return e
				}
			}
			switch m.role {
			case "user":
				answering, turnUses, seenOther = turnUses, map[string]int{}, false
			case "assistant":
				answering, turnUses = nil, map[string]int{}
			}
			cur = m.role
		}
		role := m.role
		p.Hidden(func() []byte { return []byte("role:" + role) }, 3)
		var text []string
		for j := range m.blocks {
			b := &m.blocks[j]
			bat := at + ".content." + strconv.Itoa(j)
			if e := b.CacheControl.check(bat); e != nil {
				return e
			}
			tokens, e := a.walkBlock(b, m.role, bat, version, i > turnStart)
			if e != nil {
				return e
			}
			switch b.Type {
			case "text":
				text = append(text, *b.Text)
				seenOther = true
			case "tool_use":
				turnUses[b.ID] = i
			case "tool_result":
				if seenOther {
					return invalid(bat + ": tool_result blocks must come before any other content in a user message")
				}
				if _, ok := answering[b.ToolUseID]; !ok {
					return invalid(bat + ": unexpected `tool_use_id` found in `tool_result` blocks: " + b.ToolUseID + ". Each `tool_result` block must have a corresponding `tool_use` block in the previous message.")
				}
				delete(answering, b.ToolUseID)
			default:
				seenOther = true
			}
			cc := b.CacheControl
			if b.Type == "thinking" || b.Type == "redacted_thinking" {
				cc = nil // thinking blocks cannot be breakpoints
			}
			raw := b.raw
			if b.Type == "text" {
				t := *b.Text
				p.Add(func() []byte { return []byte("text\x00" + t) }, tokens, cc.bp())
			} else {
				p.Add(func() []byte { return canonJSON(raw) }, tokens, cc.bp())
			}
		}
		if m.role == "user" && len(text) > 0 {
			a.userText = strings.Join(text, "\n")
		}
	}
	if cur == "user" {
		if e := unanswered(); e != nil {
			return e
		}
	}

	// The turn the answer follows: system messages aside.
	last := &msgs[len(msgs)-1]
	for i := len(msgs) - 1; i > 0 && last.role == "system"; i-- {
		last = &msgs[i-1]
	}
	a.lastRole = last.role
	if last.role == "user" && len(last.blocks) > 0 && last.blocks[len(last.blocks)-1].Type == "tool_result" {
		a.afterResult = true
	}
	if last := &msgs[len(msgs)-1]; last.role == "assistant" && len(last.blocks) > 0 {
		if b := last.blocks[len(last.blocks)-1]; b.Type == "text" && strings.TrimRightFunc(*b.Text, unicode.IsSpace) != *b.Text {
			return invalid("messages: final assistant content cannot end with trailing whitespace")
		}
	}
	// Manual thinking: the assistant message that continues the current
	// turn must start with its thinking.
	if a.thinking.manual && lastAssistant > turnStart && len(msgs[lastAssistant].blocks) > 0 {
		if t := msgs[lastAssistant].blocks[0].Type; t != "thinking" && t != "redacted_thinking" {
			return invalid("messages." + strconv.Itoa(lastAssistant) + ".content.0.type: Expected `thinking` or `redacted_thinking`, but found `" + t + "`. When `thinking` is enabled, a final `assistant` message must start with a thinking block (preceeding the lastmost set of `tool_use` and `tool_result` blocks). We recommend you include thinking blocks from previous turns. To avoid this requirement, disable `thinking`. Please consult our documentation at https://docs.claude.com/en/docs/build-with-claude/extended-thinking")
		}
	}
	return nil
}

// walkBlock validates block b of a message of role at field at and returns
// its prompt tokens; current tells a block of the current assistant turn.
func (a *analysis) walkBlock(b *block, role, at, version string, current bool) (int, *apiError) {
	switch {
	case role == "system" && b.Type != "text" && b.Type != "tool_addition" && b.Type != "tool_removal":
		return 0, invalid(at + ".type: system messages accept text, tool_addition and tool_removal blocks only")
	case assistantOnly[b.Type] && role != "assistant":
		return 0, invalid(at + ": " + b.Type + " blocks are only allowed in assistant messages")
	case userOnly[b.Type] && role != "user":
		return 0, invalid(at + ": " + b.Type + " blocks are only allowed in user messages")
	case !assistantOnly[b.Type] && !userOnly[b.Type] && !anyRole[b.Type]:
		return 0, invalid(at + ".type: Input tag '" + b.Type + "' found using 'type' does not match any of the expected tags")
	}
	switch b.Type {
	case "text":
		if b.Text == nil || *b.Text == "" {
			return 0, invalid("messages: text content blocks must be non-empty")
		}
		if role == "user" && version == version2026 && hasItems(b.Citations) {
			return 0, invalid(at + ".citations: text blocks in user messages cannot carry citations in API version " + version2026)
		}
		return mock.CountWords(*b.Text), nil
	case "image":
		return 0, checkImage(at, b.source())
	case "document":
		if role == "assistant" && version == version2026 {
			return 0, invalid(at + ": document blocks are not accepted in assistant messages in API version " + version2026 + "; send documents in user messages")
		}
		return checkDocument(at, b)
	case "search_result":
		var sr struct {
			Source  *string `json:"source"`
			Title   *string `json:"title"`
			Content []block `json:"content"`
		}
		if json.Unmarshal(b.raw, &sr) != nil || sr.Source == nil || sr.Title == nil || len(sr.Content) == 0 {
			return 0, invalid(at + ".search_result: source, title and content are required")
		}
		n := mock.CountWords(*sr.Title)
		for _, c := range sr.Content {
			if c.Type != "text" || c.Text == nil {
				return 0, invalid(at + ".search_result.content: Input should be a list of text blocks")
			}
			n += mock.CountWords(*c.Text)
		}
		return n, nil
	case "tool_use":
		if b.ID == "" || b.Name == "" {
			return 0, invalid(at + ".tool_use: id and name are required")
		}
		in := bytes.TrimSpace(b.Input)
		if len(in) == 0 || in[0] != '{' {
			return 0, invalid(at + ".tool_use.input: Input should be a valid dictionary")
		}
		return 1 + mock.CountWords(string(in)), nil
	case "tool_result":
		if b.ToolUseID == "" {
			return 0, invalid(at + ".tool_result.tool_use_id: Field required")
		}
		rt, e := resultText(at, b.Content)
		if e != nil {
			return 0, e
		}
		a.lastResult, a.resultError = rt, b.IsError
		return mock.CountWords(rt), nil
	case "thinking":
		if b.Thinking == nil {
			return 0, invalid(at + ".thinking.thinking: Field required")
		}
		if b.Signature == nil || *b.Signature == "" {
			return 0, invalid(at + ".thinking.signature: Field required")
		}
		if !current {
			return 0, nil // thinking of earlier turns is stripped from the prompt
		}
		if !validSignature(*b.Signature, "") {
			return 0, invalid(at + ": Invalid `signature` in `thinking` block")
		}
		if !validSignature(*b.Signature, *b.Thinking) {
			return 0, invalid(at + ": `thinking` or `redacted_thinking` blocks in the latest assistant message cannot be modified. These blocks must remain as they were in the original response.")
		}
		return mock.CountWords(*b.Thinking), nil
	case "redacted_thinking":
		if b.Data == nil || *b.Data == "" {
			return 0, invalid(at + ": Invalid `data` in `redacted_thinking` block")
		}
		return 0, nil
	}
	// Server tool blocks, containers, compaction...: accepted as they are.
	return 1 + len(b.raw)/8, nil
}
