package mock

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// The Responses API: POST /v1/responses. The answer is planned as for chat
// (directives and seed from the last user message, tool calls from the
// function tools unless the input ends with a function_call_output, the
// tokens directive, max_output_tokens), plus an optional reasoning item. The
// mock keeps no state: previous_response_id is answered 400.

// minOutputTokens is the smallest max_output_tokens the API accepts.
const minOutputTokens = 16

type responsesRequest struct {
	Model             *string         `json:"model"`
	Input             json.RawMessage `json:"input"`
	Instructions      *string         `json:"instructions"`
	Tools             json.RawMessage `json:"tools"`
	ToolChoice        json.RawMessage `json:"tool_choice"`
	ParallelToolCalls *bool           `json:"parallel_tool_calls"`
	MaxOutputTokens   *int            `json:"max_output_tokens"`
	Temperature       *float64        `json:"temperature"`
	TopP              *float64        `json:"top_p"`
	Text              *struct {
		Format    json.RawMessage `json:"format"`
		Verbosity *string         `json:"verbosity"`
	} `json:"text"`
	Reasoning *struct {
		Effort          *string `json:"effort"`
		Summary         *string `json:"summary"`
		GenerateSummary *string `json:"generate_summary"`
	} `json:"reasoning"`
	Include              []string        `json:"include"`
	Store                *bool           `json:"store"`
	Stream               bool            `json:"stream"`
	Background           *bool           `json:"background"`
	Metadata             json.RawMessage `json:"metadata"`
	User                 *string         `json:"user"`
	PreviousResponseID   *string         `json:"previous_response_id"`
	Truncation           *string         `json:"truncation"`
	PromptCacheKey       *string         `json:"prompt_cache_key"`
	PromptCacheRetention *string         `json:"prompt_cache_retention"`
	Prompt               json.RawMessage `json:"prompt"`
}

// respItem is an item of the input: a message (with or without "type"), a
// function_call, a function_call_output or a reasoning item. Items of other
// types only count their overhead.
type respItem struct {
	Type      string    `json:"type"`
	Role      string    `json:"role"`
	Content   looseText `json:"content"`
	Name      string    `json:"name"`
	Arguments looseText `json:"arguments"`
	CallID    string    `json:"call_id"`
	Output    looseText `json:"output"`
	Summary   looseText `json:"summary"`
}

// looseText is the text of a field that may hold a string, an array of
// parts with "text" or null (see textContent); anything else sets bad
// instead of failing the whole body.
type looseText struct {
	text string
	bad  bool
}

func (t *looseText) UnmarshalJSON(b []byte) error {
	var c textContent
	if c.UnmarshalJSON(b) != nil {
		t.bad = true
		return nil
	}
	t.text = c.text
	return nil
}

// respTool is a tool of the request. Function tools are flat:
// {"type":"function","name","description","parameters","strict"}.
type respTool struct {
	Type       string          `json:"type"`
	Name       string          `json:"name"`
	Parameters json.RawMessage `json:"parameters"`
}

// respPlan is the fully determined answer to a Responses request, with what
// the response object echoes of the request.
type respPlan struct {
	id, model string
	created   int64
	prompt    int         // input tokens
	auto      *AutoHasher // the prompt's prefixes when it is cacheable
	cached    int         // input tokens read from the prompt cache

	// Output: an optional reasoning item, then tool calls or a message
	// (neither when reasoning used up max_output_tokens).
	reasoning  bool
	rsID       string
	rsTokens   int    // reasoning tokens
	summary    answer // the summary text, when summaryOn
	summaryOn  bool
	encrypted  string // encrypted_content, when included
	calls      []ToolCall
	callIDs    []string // item ids (fc_...)
	msgID      string
	text       answer
	noAnswer   bool   // the reasoning used up max_output_tokens
	incomplete bool   // cut by max_output_tokens
	usage      string // the usage= directive

	// Echoed request fields, as JSON.
	instructions, maxOutput, toolChoice, tools, textFormat, verbosity []byte
	effort, summaryMode, metadata, user, promptCacheKey, truncation   []byte
	temperature, topP                                                 []byte
	parallel, store, background                                       bool
}

// tokens returns the output tokens of the full answer (reasoning included).
func (p *respPlan) tokens() int {
	t := p.rsTokens
	switch {
	case len(p.calls) > 0:
		for i := range p.calls {
			t += p.calls[i].Tokens()
		}
	case !p.noAnswer:
		t += p.text.n
	}
	return t
}

func (s *Server) handleResponses(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	s.core.Chat.Add(1)
	st := s.st.Load()

	var req responsesRequest
	d, ok := s.begin(w, r, start, &req)
	if !ok {
		return
	}
	p, e := s.planResponses(st, &req, &d, start)
	if e != nil {
		s.writeError(w, start, e.status, e.message, e.typ, e.param, e.code)
		return
	}

	reset, ok := s.fate(w, r, start, st, &d, req.Stream, p.model)
	if !ok {
		return
	}
	p.cached = s.cachedTokens(p.auto, autoScope(r, p.model, req.PromptCacheKey), autoRetention(req.PromptCacheRetention), st)
	if req.Stream {
		s.streamResponses(w, r, start, st, p, reset, &d)
		return
	}
	if reset {
		s.core.Cut(w)
		return
	}
	bp := getBuf()
	b := p.appendResponse(*bp, p.finalStatus(), true)
	s.core.PromptTokens.Add(int64(p.prompt))
	s.core.CompletionTokens.Add(int64(p.tokens()))
	w.Header()["Content-Type"] = hdrJSON
	w.Header()["Content-Length"] = []string{strconv.Itoa(len(b))}
	s.writeHead(w, start, http.StatusOK, p.prompt+p.tokens(), 0)
	_, err := w.Write(b)
	s.core.Answered(r, err)
	*bp = b
	putBuf(bp)
}

// hashResponses hashes the input of req in the order and units
// planResponses counts it: the instructions as a leading message, 3 tokens
// of framing per item, then its words; the reply's 3 last.
func hashResponses(req *responsesRequest, items []respItem) *AutoHasher {
	h := &AutoHasher{}
	h.Tools(bytes.TrimSpace(req.Tools))
	if req.Instructions != nil && *req.Instructions != "" {
		h.Token("\x00instructions")
		h.Token("\x01")
		h.Token("\x02")
		h.Words(*req.Instructions)
	}
	for i := range items {
		it := &items[i]
		h.Token("\x00" + it.Type + ":" + it.Role)
		h.Token("\x01")
		h.Token("\x02")
		switch it.Type {
		case "", "message":
			h.Words(it.Content.text)
		case "function_call":
			h.Token("\x03" + it.Name)
			h.Words(it.Arguments.text)
		case "function_call_output":
			h.Words(it.Output.text)
		case "reasoning":
			h.Words(it.Summary.text)
		}
	}
	h.Token("\x04")
	h.Token("\x05")
	h.Token("\x06")
	return h
}

// planResponses validates req and decides the whole answer.
func (s *Server) planResponses(st *state, req *responsesRequest, d *Directives, start time.Time) (*respPlan, *reqError) {
	if req.Model == nil || *req.Model == "" {
		return nil, badRequest("Missing required parameter: 'model'.", "model", "missing_required_parameter")
	}
	items, e := parseRespInput(req.Input, len(req.Prompt) > 0)
	if e != nil {
		return nil, e
	}
	tools, e := parseRespTools(req.Tools)
	if e != nil {
		return nil, e
	}
	maxOut := 0
	if req.MaxOutputTokens != nil {
		if *req.MaxOutputTokens < minOutputTokens {
			return nil, badRequest("Invalid 'max_output_tokens': integer below minimum value. Expected a value >= "+strconv.Itoa(minOutputTokens)+", but got "+strconv.Itoa(*req.MaxOutputTokens)+" instead.", "max_output_tokens", "integer_below_min_value")
		}
		maxOut = *req.MaxOutputTokens
	}
	if e := checkRange("temperature", req.Temperature, 2); e != nil {
		return nil, e
	}
	if e := checkRange("top_p", req.TopP, 1); e != nil {
		return nil, e
	}
	if t := req.Truncation; t != nil && *t != "auto" && *t != "disabled" {
		return nil, badRequest("Invalid value: '"+*t+"'. Supported values are: 'auto' and 'disabled'.", "truncation", "invalid_value")
	}
	if m := bytes.TrimSpace(req.Metadata); len(m) > 0 && m[0] != '{' && m[0] != 'n' {
		return nil, badRequest("Invalid type for 'metadata': expected an object, but got a "+jsonKind(m)+" instead.", "metadata", "invalid_type")
	}
	format, formatEcho, e := respFormat(req, items)
	if e != nil {
		return nil, e
	}
	effort, summaryMode, e := respReasoning(req)
	if e != nil {
		return nil, e
	}
	model := *req.Model
	if !st.models.Has(model) {
		return nil, &reqError{status: http.StatusNotFound, message: "The model `" + model + "` does not exist or you do not have access to it.", typ: "invalid_request_error", code: "model_not_found"}
	}
	if id := req.PreviousResponseID; id != nil && *id != "" {
		return nil, badRequest("Previous response with id '"+*id+"' not found.", "previous_response_id", "previous_response_not_found")
	}
	fns, choice, e := respToolChoice(req.ToolChoice, tools)
	if e != nil {
		return nil, e
	}

	// Input tokens: as chat, instructions count as a leading message.
	prompt := 3
	if req.Instructions != nil && *req.Instructions != "" {
		prompt += 3 + countWords(*req.Instructions)
	}
	lastUser := -1
	for i := range items {
		it := &items[i]
		prompt += 3
		switch it.Type {
		case "", "message":
			prompt += countWords(it.Content.text)
			if it.Role == "user" {
				lastUser = i
			}
		case "function_call":
			prompt += 1 + countWords(it.Arguments.text)
		case "function_call_output":
			prompt += countWords(it.Output.text)
		case "reasoning":
			prompt += countWords(it.Summary.text)
		}
	}
	var userText string
	afterOutput := false
	if len(items) > 0 {
		last := &items[len(items)-1]
		userText = last.Content.text
		afterOutput = last.Type == "function_call_output" || last.Type == "custom_tool_call_output"
		if lastUser >= 0 {
			userText = items[lastUser].Content.text
			if err := d.Scan(userText); err != nil {
				return nil, badRequest("mock: bad #mock: directive in the last user message", "input", "")
			}
		}
	}
	seed := hashString(userText)
	if afterOutput {
		seed = mix(seed ^ hashString(items[len(items)-1].Output.text))
	}

	p := &respPlan{
		id: s.newID("resp_"), model: model, created: start.Unix(), prompt: prompt,
		parallel:   req.ParallelToolCalls == nil || *req.ParallelToolCalls,
		store:      req.Store == nil || *req.Store,
		background: req.Background != nil && *req.Background,
		usage:      d.Usage,
	}
	if prompt >= AutoCacheMin {
		p.auto = hashResponses(req, items)
	}
	p.echo(req, choice, formatEcho, effort, summaryMode)

	// Reasoning comes first and counts against max_output_tokens.
	if effort != "none" && (effort != "" || isReasoningModel(model)) {
		p.reasoning, p.rsID = true, s.newID("rs_")
		p.rsTokens = effortTokens(effort)
		if maxOut > 0 && p.rsTokens >= maxOut {
			p.rsTokens, p.noAnswer, p.incomplete = maxOut, true, true
		}
		if summaryMode != "" {
			p.summaryOn = true
			p.summary = answer{seed: mix(seed ^ 0x5eed5eed), n: p.rsTokens, stop: !p.noAnswer}
		}
		for _, inc := range req.Include {
			if inc == "reasoning.encrypted_content" {
				p.encrypted = encryptedContent(seed)
			}
		}
	}
	if p.noAnswer {
		return p, nil
	}

	if len(fns) > 0 && !afterOutput {
		calls := fns[:1]
		if len(fns) >= 2 && p.parallel {
			calls = fns[:2]
		}
		if i, ok := d.Called(len(fns), func(i int) string { return fns[i].Name }); ok {
			calls = fns[i : i+1]
		}
		p.calls = make([]ToolCall, len(calls))
		p.callIDs = make([]string, len(calls))
		for i, t := range calls {
			p.calls[i] = NewToolCall(seed, i, t.Name, t.Parameters, "call_", 24)
			d.SetArgs(&p.calls[i])
			p.callIDs[i] = s.newID("fc_")
		}
		return p, nil
	}

	want := st.cfg.CompletionTokens
	if d.Tokens > 0 {
		want = d.Tokens
	}
	limit := 0
	if maxOut > 0 {
		limit = maxOut - p.rsTokens
	}
	var cut bool
	if format.kind != "" {
		p.text, cut = docAnswer(format.doc(seed, want), limit)
	} else {
		p.text, cut = wordAnswer(seed, want, limit)
	}
	p.incomplete = cut
	p.msgID = s.newID("msg_")
	return p, nil
}

// parseRespInput decodes input: a string (one user message) or an array of
// items. It may be absent when the request uses a stored prompt.
func parseRespInput(raw json.RawMessage, hasPrompt bool) ([]respItem, *reqError) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || raw[0] == 'n' {
		if hasPrompt {
			return nil, nil
		}
		return nil, badRequest("Missing required parameter: 'input'.", "input", "missing_required_parameter")
	}
	switch raw[0] {
	case '"':
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, badRequest("Invalid type for 'input'.", "input", "invalid_type")
		}
		return []respItem{{Type: "message", Role: "user", Content: looseText{text: s}}}, nil
	case '[':
	default:
		return nil, badRequest("Invalid type for 'input': expected one of a string or array of input items, but got "+jsonKind(raw)+" instead.", "input", "invalid_type")
	}
	var items []respItem
	if err := json.Unmarshal(raw, &items); err != nil {
		return nil, badRequest("Invalid type for 'input': expected an array of input items.", "input", "invalid_type")
	}
	if len(items) == 0 {
		return nil, badRequest("Invalid 'input': empty array. Expected an array with minimum length 1, but got an empty array instead.", "input", "empty_array")
	}
	for i := range items {
		it := &items[i]
		at := "input[" + strconv.Itoa(i) + "]"
		missing := func(field string) *reqError {
			return badRequest("Missing required parameter: '"+at+"."+field+"'.", at+"."+field, "missing_required_parameter")
		}
		invalid := func(field string) *reqError {
			return badRequest("Invalid type for '"+at+"."+field+"'.", at+"."+field, "invalid_type")
		}
		switch it.Type {
		case "", "message":
			switch it.Role {
			case "user", "system", "developer", "assistant":
			case "":
				return nil, missing("role")
			default:
				return nil, badRequest("Invalid value: '"+it.Role+"'. Supported values are: 'assistant', 'system', 'developer', and 'user'.", at+".role", "invalid_value")
			}
			if it.Content.bad {
				return nil, invalid("content")
			}
		case "function_call":
			switch {
			case it.CallID == "":
				return nil, missing("call_id")
			case it.Name == "":
				return nil, missing("name")
			case it.Arguments.bad:
				return nil, invalid("arguments")
			}
		case "function_call_output":
			if it.CallID == "" {
				return nil, missing("call_id")
			}
			if it.Output.bad {
				return nil, invalid("output")
			}
		}
	}
	return items, nil
}

func parseRespTools(raw json.RawMessage) ([]respTool, *reqError) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || raw[0] == 'n' {
		return nil, nil
	}
	var tools []respTool
	if raw[0] != '[' || json.Unmarshal(raw, &tools) != nil {
		return nil, badRequest("Invalid type for 'tools': expected an array of tools.", "tools", "invalid_type")
	}
	for i := range tools {
		at := "tools[" + strconv.Itoa(i) + "]"
		switch {
		case tools[i].Type == "":
			return nil, badRequest("Missing required parameter: '"+at+".type'.", at+".type", "missing_required_parameter")
		case tools[i].Type == "function" && tools[i].Name == "":
			// Also what a chat-style {"type":"function","function":{...}} gets.
			return nil, badRequest("Missing required parameter: '"+at+".name'.", at+".name", "missing_required_parameter")
		}
	}
	return tools, nil
}

// respToolChoice returns the function tools the answer may call (in order)
// and tool_choice as echoed: none for "none" or a hosted tool, the named
// one for {"type":"function","name"}, the listed ones for allowed_tools,
// else every function tool.
func respToolChoice(raw json.RawMessage, tools []respTool) ([]*respTool, []byte, *reqError) {
	var fns []*respTool
	for i := range tools {
		if tools[i].Type == "function" {
			fns = append(fns, &tools[i])
		}
	}
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || raw[0] == 'n' {
		return fns, []byte(`"auto"`), nil
	}
	echo := compactJSON(raw, `"auto"`)
	invalid := badRequest("Invalid value for 'tool_choice'.", "tool_choice", "invalid_value")
	if raw[0] == '"' {
		var c string
		if json.Unmarshal(raw, &c) != nil {
			return nil, nil, invalid
		}
		switch c {
		case "none":
			return nil, echo, nil
		case "auto", "required":
			return fns, echo, nil
		}
		return nil, nil, badRequest("Invalid value: '"+c+"'. Supported values are: 'none', 'auto', and 'required'.", "tool_choice", "invalid_value")
	}
	var c struct {
		Type  string `json:"type"`
		Name  string `json:"name"`
		Mode  string `json:"mode"`
		Tools []struct {
			Type string `json:"type"`
			Name string `json:"name"`
		} `json:"tools"`
	}
	if raw[0] != '{' || json.Unmarshal(raw, &c) != nil {
		return nil, nil, invalid
	}
	find := func(name string) *respTool {
		for _, t := range fns {
			if t.Name == name {
				return t
			}
		}
		return nil
	}
	switch c.Type {
	case "function":
		if c.Name == "" {
			return nil, nil, badRequest("Missing required parameter: 'tool_choice.name'.", "tool_choice.name", "missing_required_parameter")
		}
		t := find(c.Name)
		if t == nil {
			return nil, nil, badRequest("Invalid value for 'tool_choice': tool '"+c.Name+"' not found in 'tools'.", "tool_choice", "invalid_value")
		}
		return []*respTool{t}, echo, nil
	case "allowed_tools":
		if c.Mode != "auto" && c.Mode != "required" {
			return nil, nil, badRequest("Invalid value: '"+c.Mode+"'. Supported values are: 'auto' and 'required'.", "tool_choice.mode", "invalid_value")
		}
		var allowed []*respTool
		for _, a := range c.Tools {
			if t := find(a.Name); a.Type == "function" && t != nil {
				allowed = append(allowed, t)
			}
		}
		return allowed, echo, nil
	case "":
		return nil, nil, badRequest("Missing required parameter: 'tool_choice.type'.", "tool_choice.type", "missing_required_parameter")
	}
	return nil, echo, nil // a hosted or custom tool: the mock runs none
}

// respFormat validates text.format and returns the JSON mode and the format
// as echoed.
func respFormat(req *responsesRequest, items []respItem) (jsonFormat, []byte, *reqError) {
	if req.Text == nil {
		return jsonFormat{}, []byte(`{"type":"text"}`), nil
	}
	raw := bytes.TrimSpace(req.Text.Format)
	if len(raw) == 0 || raw[0] == 'n' {
		return jsonFormat{}, []byte(`{"type":"text"}`), nil
	}
	var f struct {
		Type   string          `json:"type"`
		Name   *string         `json:"name"`
		Schema json.RawMessage `json:"schema"`
	}
	if raw[0] != '{' || json.Unmarshal(raw, &f) != nil {
		return jsonFormat{}, nil, badRequest("Invalid type for 'text.format': expected an object.", "text.format", "invalid_type")
	}
	echo := compactJSON(raw, `{"type":"text"}`)
	switch f.Type {
	case "text":
		return jsonFormat{}, echo, nil
	case "json_object":
		ok := req.Instructions != nil && containsJSONWord(*req.Instructions)
		for i := range items {
			ok = ok || containsJSONWord(items[i].Content.text)
		}
		if !ok {
			return jsonFormat{}, nil, badRequest("Response input messages must contain the word 'json' in some form to use 'text.format' of type 'json_object'.", "input", "")
		}
		return jsonFormat{kind: f.Type}, echo, nil
	case "json_schema":
		if f.Name == nil || *f.Name == "" {
			return jsonFormat{}, nil, badRequest("Missing required parameter: 'text.format.name'.", "text.format.name", "missing_required_parameter")
		}
		if s := bytes.TrimSpace(f.Schema); len(s) == 0 || s[0] != '{' {
			return jsonFormat{}, nil, badRequest("Missing required parameter: 'text.format.schema'.", "text.format.schema", "missing_required_parameter")
		}
		return jsonFormat{kind: f.Type, schema: f.Schema}, echo, nil
	case "":
		return jsonFormat{}, nil, badRequest("Missing required parameter: 'text.format.type'.", "text.format.type", "missing_required_parameter")
	}
	return jsonFormat{}, nil, badRequest("Invalid value: '"+f.Type+"'. Supported values are: 'text', 'json_object', and 'json_schema'.", "text.format.type", "invalid_value")
}

// respReasoning validates reasoning: effort ("" when unset) and summary (""
// when off; generate_summary is its deprecated spelling).
func respReasoning(req *responsesRequest) (effort, summary string, e *reqError) {
	rs := req.Reasoning
	if rs == nil {
		return "", "", nil
	}
	if rs.Effort != nil {
		effort = *rs.Effort
		switch effort {
		case "none", "minimal", "low", "medium", "high", "xhigh", "max":
		default:
			return "", "", badRequest("Invalid value: '"+effort+"'. Supported values are: 'none', 'minimal', 'low', 'medium', 'high', 'xhigh', and 'max'.", "reasoning.effort", "invalid_value")
		}
	}
	for _, v := range []*string{rs.Summary, rs.GenerateSummary} {
		if v == nil {
			continue
		}
		switch *v {
		case "auto", "concise", "detailed":
			summary = *v
		default:
			return "", "", badRequest("Invalid value: '"+*v+"'. Supported values are: 'auto', 'concise', and 'detailed'.", "reasoning.summary", "invalid_value")
		}
	}
	return effort, summary, nil
}

// isReasoningModel reports whether model reasons without being asked.
func isReasoningModel(model string) bool {
	for _, p := range []string{"o1", "o3", "o4", "gpt-5"} {
		if strings.HasPrefix(model, p) {
			return true
		}
	}
	return false
}

// effortTokens is the number of reasoning tokens of an effort ("" is the
// default, medium).
func effortTokens(effort string) int {
	switch effort {
	case "minimal":
		return 4
	case "low":
		return 8
	case "high":
		return 32
	case "xhigh":
		return 64
	case "max":
		return 128
	}
	return 16
}

// encryptedContent is an opaque, deterministic stand-in for the encrypted
// reasoning of an answer (base64, shaped like a Fernet token).
func encryptedContent(seed uint64) string {
	var raw [72]byte
	raw[0] = 0x80
	for i := 1; i < len(raw); i += 8 {
		x := mix(seed + uint64(i))
		for j := 0; j < 8 && i+j < len(raw); j++ {
			raw[i+j] = byte(x >> (8 * j))
		}
	}
	return base64.URLEncoding.EncodeToString(raw[:])
}

func checkRange(param string, v *float64, hi float64) *reqError {
	switch {
	case v == nil:
		return nil
	case *v < 0:
		return badRequest("Invalid '"+param+"': decimal below minimum value. Expected a value >= 0, but got "+strconv.FormatFloat(*v, 'f', -1, 64)+" instead.", param, "decimal_below_min_value")
	case *v > hi:
		return badRequest("Invalid '"+param+"': decimal above maximum value. Expected a value <= "+strconv.FormatFloat(hi, 'f', -1, 64)+", but got "+strconv.FormatFloat(*v, 'f', -1, 64)+" instead.", param, "decimal_above_max_value")
	}
	return nil
}

// jsonKind names the JSON type of raw for error messages.
func jsonKind(raw []byte) string {
	switch raw[0] {
	case '"':
		return "a string"
	case '{':
		return "an object"
	case '[':
		return "an array"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	}
	return "a number"
}

// compactJSON returns raw without insignificant whitespace (an SSE data
// line must not span lines), or def when raw is empty, null or invalid.
func compactJSON(raw json.RawMessage, def string) []byte {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return []byte(def)
	}
	var buf bytes.Buffer
	if json.Compact(&buf, raw) != nil {
		return []byte(def)
	}
	return buf.Bytes()
}

// echo records the request fields the response object repeats.
func (p *respPlan) echo(req *responsesRequest, toolChoice, format []byte, effort, summary string) {
	str := func(v *string) []byte {
		if v == nil {
			return []byte("null")
		}
		return appendString(nil, *v)
	}
	p.instructions = str(req.Instructions)
	p.maxOutput = []byte("null")
	if req.MaxOutputTokens != nil {
		p.maxOutput = appendInt(nil, int64(*req.MaxOutputTokens))
	}
	p.toolChoice = toolChoice
	p.tools = compactJSON(req.Tools, "[]")
	p.textFormat = format
	p.verbosity = []byte(`"medium"`)
	if req.Text != nil && req.Text.Verbosity != nil {
		p.verbosity = appendString(nil, *req.Text.Verbosity)
	}
	switch {
	case effort != "":
		p.effort = appendString(nil, effort)
	case isReasoningModel(req.modelName()):
		p.effort = []byte(`"medium"`)
	default:
		p.effort = []byte("null")
	}
	p.summaryMode = []byte("null")
	if summary != "" {
		p.summaryMode = appendString(nil, summary)
	}
	p.metadata = compactJSON(req.Metadata, "{}")
	p.user = str(req.User)
	p.promptCacheKey = str(req.PromptCacheKey)
	p.truncation = []byte(`"disabled"`)
	if req.Truncation != nil {
		p.truncation = appendString(nil, *req.Truncation)
	}
	num := func(v *float64) []byte {
		if v == nil {
			return []byte("1")
		}
		return strconv.AppendFloat(nil, *v, 'f', -1, 64)
	}
	p.temperature, p.topP = num(req.Temperature), num(req.TopP)
}

func (req *responsesRequest) modelName() string {
	if req.Model == nil {
		return ""
	}
	return *req.Model
}

// finalStatus is the status of the finished response.
func (p *respPlan) finalStatus() string {
	if p.incomplete {
		return "incomplete"
	}
	return "completed"
}

// appendResponse appends the response object with status: in_progress
// (no output, no usage), completed or incomplete (full output and usage),
// or failed (no output, a server_error).
func (p *respPlan) appendResponse(b []byte, status string, output bool) []byte {
	b = append(b, `{"id":`...)
	b = appendString(b, p.id)
	b = append(b, `,"object":"response","access_programs":{"cyber":"standard"},"created_at":`...)
	b = appendInt(b, p.created)
	b = append(b, `,"status":`...)
	b = appendString(b, status)
	b = append(b, `,"background":`...)
	b = strconv.AppendBool(b, p.background)
	b = append(b, `,"completed_at":`...)
	if status == "completed" {
		b = appendInt(b, time.Now().Unix())
	} else {
		b = append(b, "null"...)
	}
	b = append(b, `,"error":`...)
	if status == "failed" {
		b = append(b, `{"code":"server_error","message":`...)
		b = appendString(b, msgResponsesFailed)
		b = append(b, '}')
	} else {
		b = append(b, "null"...)
	}
	b = append(b, `,"incomplete_details":`...)
	if status == "incomplete" {
		b = append(b, `{"reason":"max_output_tokens"}`...)
	} else {
		b = append(b, "null"...)
	}
	b = append(b, `,"instructions":`...)
	b = append(b, p.instructions...)
	b = append(b, `,"max_output_tokens":`...)
	b = append(b, p.maxOutput...)
	b = append(b, `,"max_tool_calls":null,"model":`...)
	b = appendString(b, p.model)
	b = append(b, `,"output":[`...)
	if output {
		b = p.appendOutput(b)
	}
	b = append(b, `],"parallel_tool_calls":`...)
	b = strconv.AppendBool(b, p.parallel)
	b = append(b, `,"previous_response_id":null,"prompt_cache_key":`...)
	b = append(b, p.promptCacheKey...)
	b = append(b, `,"reasoning":{"effort":`...)
	b = append(b, p.effort...)
	b = append(b, `,"summary":`...)
	b = append(b, p.summaryMode...)
	b = append(b, `},"safety_identifier":null,"service_tier":"default","store":`...)
	b = strconv.AppendBool(b, p.store)
	b = append(b, `,"temperature":`...)
	b = append(b, p.temperature...)
	b = append(b, `,"text":{"format":`...)
	b = append(b, p.textFormat...)
	b = append(b, `,"verbosity":`...)
	b = append(b, p.verbosity...)
	b = append(b, `},"tool_choice":`...)
	b = append(b, p.toolChoice...)
	b = append(b, `,"tools":`...)
	b = append(b, p.tools...)
	b = append(b, `,"top_logprobs":0,"top_p":`...)
	b = append(b, p.topP...)
	b = append(b, `,"truncation":`...)
	b = append(b, p.truncation...)
	b = append(b, `,"usage":`...)
	if status == "completed" || status == "incomplete" {
		b = p.appendUsage(b)
	} else {
		b = append(b, "null"...)
	}
	b = append(b, `,"user":`...)
	b = append(b, p.user...)
	b = append(b, `,"metadata":`...)
	b = append(b, p.metadata...)
	return append(b, '}')
}

func (p *respPlan) appendUsage(b []byte) []byte {
	out, in := p.tokens(), int64(p.prompt)
	switch p.usage {
	case "omit":
		return append(b, "null"...)
	case "text":
		return append(b, `{"input_tokens":"lots","output_tokens":"many","total_tokens":"all"}`...)
	case "negative":
		in = negativeTokens
	case "huge":
		in = hugeTokens
	}
	b = append(b, `{"input_tokens":`...)
	b = appendInt(b, in)
	b = append(b, `,"input_tokens_details":{"cached_tokens":`...)
	b = appendInt(b, int64(p.cached))
	b = append(b, `,"cache_write_tokens":0},"output_tokens":`...)
	b = appendInt(b, int64(out))
	b = append(b, `,"output_tokens_details":{"reasoning_tokens":`...)
	b = appendInt(b, int64(p.rsTokens))
	b = append(b, `},"total_tokens":`...)
	b = appendInt(b, in+int64(out))
	return append(b, '}')
}

// appendOutput appends the finished output items, comma-separated.
func (p *respPlan) appendOutput(b []byte) []byte {
	n := 0
	if p.reasoning {
		b = p.appendReasoningItem(b, true)
		n++
	}
	for i := range p.calls {
		if n > 0 {
			b = append(b, ',')
		}
		b = p.appendCallItem(b, i, true)
		n++
	}
	if p.msgID != "" {
		if n > 0 {
			b = append(b, ',')
		}
		b = p.appendMessageItem(b, true)
	}
	return b
}

// appendReasoningItem appends the reasoning item, as added (no summary) or
// done.
func (p *respPlan) appendReasoningItem(b []byte, done bool) []byte {
	b = append(b, `{"id":`...)
	b = appendString(b, p.rsID)
	b = append(b, `,"type":"reasoning","summary":[`...)
	if done && p.summaryOn {
		b = append(b, `{"type":"summary_text","text":`...)
		b = p.summary.appendText(b)
		b = append(b, '}')
	}
	b = append(b, ']')
	if done && p.encrypted != "" {
		b = append(b, `,"encrypted_content":`...)
		b = appendString(b, p.encrypted)
	}
	return append(b, '}')
}

// appendCallItem appends function call i, as added (no arguments) or done.
func (p *respPlan) appendCallItem(b []byte, i int, done bool) []byte {
	c := &p.calls[i]
	b = append(b, `{"id":`...)
	b = appendString(b, p.callIDs[i])
	b = append(b, `,"type":"function_call","status":`...)
	if done {
		b = append(b, `"completed","arguments":`...)
		b = appendString(b, c.Args)
	} else {
		b = append(b, `"in_progress","arguments":""`...)
	}
	b = append(b, `,"call_id":`...)
	b = appendString(b, c.ID)
	b = append(b, `,"name":`...)
	b = appendString(b, c.Name)
	return append(b, '}')
}

// appendMessageItem appends the message, as added (no content) or done.
func (p *respPlan) appendMessageItem(b []byte, done bool) []byte {
	b = append(b, `{"id":`...)
	b = appendString(b, p.msgID)
	b = append(b, `,"type":"message","status":`...)
	switch {
	case !done:
		b = append(b, `"in_progress","content":[]`...)
	default:
		if p.incomplete {
			b = append(b, `"incomplete","content":[`...)
		} else {
			b = append(b, `"completed","content":[`...)
		}
		b = p.appendTextPart(b, true)
		b = append(b, ']')
	}
	return append(b, `,"role":"assistant"}`...)
}

// appendTextPart appends the output_text part, empty or with the full text.
func (p *respPlan) appendTextPart(b []byte, full bool) []byte {
	b = append(b, `{"type":"output_text","annotations":[],"logprobs":[],"text":`...)
	if full {
		b = p.text.appendText(b)
	} else {
		b = append(b, `""`...)
	}
	return append(b, '}')
}
