package mock

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strconv"
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
