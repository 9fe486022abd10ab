package anthropic

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"regexp"
	"strconv"
	"strings"

	"github.com/xroute/xroute/loadtest/mock"
)

const maxBodyBytes = 32 << 20

// request is the part of a Messages request the mock reads.
type request struct {
	Model         *string         `json:"model"`
	MaxTokens     *int            `json:"max_tokens"`
	Messages      []turn          `json:"messages"`
	System        json.RawMessage `json:"system"`
	Tools         []tool          `json:"tools"`
	ToolChoice    *toolChoice     `json:"tool_choice"`
	StopSequences []string        `json:"stop_sequences"`
	Temperature   *float64        `json:"temperature"`
	TopP          *float64        `json:"top_p"`
	Stream        bool            `json:"stream"`
}

type turn struct {
	Role    string          `json:"role"`
	Content json.RawMessage `json:"content"`
}

type block struct {
	Type      string          `json:"type"`
	Text      *string         `json:"text"`
	Source    *imageSource    `json:"source"`
	ID        string          `json:"id"`
	Name      string          `json:"name"`
	Input     json.RawMessage `json:"input"`
	ToolUseID string          `json:"tool_use_id"`
	Content   json.RawMessage `json:"content"`
}

type imageSource struct {
	Type      string `json:"type"`
	MediaType string `json:"media_type"`
	Data      string `json:"data"`
	URL       string `json:"url"`
}

type tool struct {
	Type        string          `json:"type"`
	Name        string          `json:"name"`
	Description string          `json:"description"`
	InputSchema json.RawMessage `json:"input_schema"`
}

type toolChoice struct {
	Type                   string `json:"type"`
	Name                   string `json:"name"`
	DisableParallelToolUse bool   `json:"disable_parallel_tool_use"`
}

// apiError is a validation failure.
type apiError struct {
	status  int
	message string
}

func invalid(msg string) *apiError { return &apiError{status: http.StatusBadRequest, message: msg} }

var toolName = regexp.MustCompile(`^[a-zA-Z0-9_-]{1,128}$`)

// blocks decodes a content (a string or an array of blocks); a string is one
// text block.
func blocks(raw json.RawMessage) ([]block, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || raw[0] == 'n' {
		return nil, errors.New("Field required")
	}
	if raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, err
		}
		return []block{{Type: "text", Text: &s}}, nil
	}
	var bs []block
	if err := json.Unmarshal(raw, &bs); err != nil {
		return nil, errors.New("Input should be a valid list")
	}
	return bs, nil
}

// plan is the fully decided answer.
type plan struct {
	model                 string
	input                 int // uncached prompt tokens
	cacheRead, cacheWrite int
	text                  []string // text pieces (one per token)
	preamble              bool     // text precedes tool_use blocks
	stopReason            string
	stopSequence          string
	calls                 []mock.ToolCall
}

func (p *plan) prompt() int { return p.input + p.cacheRead + p.cacheWrite }

func (p *plan) outputTokens() int {
	n := len(p.text)
	for _, c := range p.calls {
		n += c.Tokens()
	}
	return n
}

// decide validates req and plans the answer; directives come from the
// header and the last user text.
func (s *Server) decide(st *state, req *request, header string) (*plan, *mock.Directives, *apiError) {
	if req.Model == nil || *req.Model == "" {
		return nil, nil, invalid("model: Field required")
	}
	if req.MaxTokens == nil {
		return nil, nil, invalid("max_tokens: Field required")
	}
	if *req.MaxTokens < 1 {
		return nil, nil, invalid("max_tokens: Input should be greater than or equal to 1")
	}
	if req.Messages == nil {
		return nil, nil, invalid("messages: Field required")
	}
	if len(req.Messages) == 0 {
		return nil, nil, invalid("messages: at least one message is required")
	}
	if t := req.Temperature; t != nil && (*t < 0 || *t > 1) {
		return nil, nil, invalid("temperature: range: 0..1")
	}
	if t := req.TopP; t != nil && (*t < 0 || *t > 1) {
		return nil, nil, invalid("top_p: range: 0..1")
	}
	if !st.models.Has(*req.Model) {
		return nil, nil, &apiError{status: http.StatusNotFound, message: "model: " + *req.Model}
	}

	prompt := 3
	if len(req.System) > 0 && string(req.System) != "null" {
		sys, err := blocks(req.System)
		if err != nil {
			return nil, nil, invalid("system: " + err.Error())
		}
		for _, b := range sys {
			if b.Type != "text" || b.Text == nil {
				return nil, nil, invalid("system: Input should be a valid string or a list of text blocks")
			}
			prompt += mock.CountWords(*b.Text)
		}
		prompt += 3
	}

	tools := map[string]*tool{}
	for i := range req.Tools {
		t := &req.Tools[i]
		at := "tools." + strconv.Itoa(i)
		if t.Type != "" && t.Type != "custom" {
			continue // server tools (web_search_...) are not simulated
		}
		if !toolName.MatchString(t.Name) {
			return nil, nil, invalid(at + ".name: String should match pattern '^[a-zA-Z0-9_-]{1,128}$'")
		}
		var schema struct {
			Type string `json:"type"`
		}
		if len(t.InputSchema) == 0 || json.Unmarshal(t.InputSchema, &schema) != nil {
			return nil, nil, invalid(at + ".custom.input_schema: Field required")
		}
		if schema.Type != "object" {
			return nil, nil, invalid(at + ".custom.input_schema.type: Input should be 'object'")
		}
		if _, dup := tools[t.Name]; dup {
			return nil, nil, invalid("tools: Tool names must be unique.")
		}
		tools[t.Name] = t
	}
	if tc := req.ToolChoice; tc != nil {
		if len(req.Tools) == 0 {
			return nil, nil, invalid("tool_choice: tool_choice may only be specified while providing tools.")
		}
		switch tc.Type {
		case "auto", "any", "none":
		case "tool":
			if _, ok := tools[tc.Name]; !ok {
				return nil, nil, invalid("tool_choice: Tool '" + tc.Name + "' not found in provided tools")
			}
		default:
			return nil, nil, invalid("tool_choice.type: Input should be 'auto', 'any', 'tool' or 'none'")
		}
	}

	// Turns: roles alternate, contents are non-empty, tool results answer
	// the previous turn's tool uses and come first.
	var pendingUses map[string]bool
	var userText, lastResult string
	lastBlockIsResult := false
	for i, m := range req.Messages {
		at := "messages." + strconv.Itoa(i)
		if m.Role != "user" && m.Role != "assistant" {
			return nil, nil, invalid(at + ".role: Input should be 'user' or 'assistant'")
		}
		if i > 0 && req.Messages[i-1].Role == m.Role {
			return nil, nil, invalid(`messages: roles must alternate between "user" and "assistant", but found multiple "` + m.Role + `" roles in a row`)
		}
		bs, err := blocks(m.Content)
		if err != nil {
			return nil, nil, invalid(at + ".content: " + err.Error())
		}
		if len(bs) == 0 && !(m.Role == "assistant" && i == len(req.Messages)-1) {
			return nil, nil, invalid(at + ": all messages must have non-empty content except for the optional final assistant message")
		}
		prompt += 3
		uses := map[string]bool{}
		var text []string
		seenOther := false
		lastBlockIsResult = false
		for j, b := range bs {
			bat := at + ".content." + strconv.Itoa(j)
			switch b.Type {
			case "text":
				if b.Text == nil || *b.Text == "" {
					return nil, nil, invalid("messages: text content blocks must be non-empty")
				}
				prompt += mock.CountWords(*b.Text)
				text = append(text, *b.Text)
				seenOther, lastBlockIsResult = true, false
			case "image":
				if m.Role != "user" {
					return nil, nil, invalid(bat + ": image blocks are only allowed in user messages")
				}
				if e := checkImage(bat, b.Source); e != nil {
					return nil, nil, e
				}
				seenOther, lastBlockIsResult = true, false
			case "tool_use":
				if m.Role != "assistant" {
					return nil, nil, invalid(bat + ": tool_use blocks are only allowed in assistant messages")
				}
				if b.ID == "" || b.Name == "" {
					return nil, nil, invalid(bat + ".tool_use: id and name are required")
				}
				in := bytes.TrimSpace(b.Input)
				if len(in) == 0 || in[0] != '{' {
					return nil, nil, invalid(bat + ".tool_use.input: Input should be a valid dictionary")
				}
				prompt += 1 + mock.CountWords(string(in))
				uses[b.ID] = true
				seenOther = true
			case "tool_result":
				if m.Role != "user" {
					return nil, nil, invalid(bat + ": tool_result blocks are only allowed in user messages")
				}
				if seenOther {
					return nil, nil, invalid(bat + ": tool_result blocks must come before any other content in a user message")
				}
				if !pendingUses[b.ToolUseID] {
					return nil, nil, invalid(bat + ": unexpected `tool_use_id` found in `tool_result` blocks: " + b.ToolUseID + ". Each `tool_result` block must have a corresponding `tool_use` block in the previous message.")
				}
				delete(pendingUses, b.ToolUseID)
				rt, e := resultText(bat, b.Content)
				if e != nil {
					return nil, nil, e
				}
				prompt += mock.CountWords(rt)
				lastResult, lastBlockIsResult = rt, true
			default:
				return nil, nil, invalid(bat + ".type: unsupported content block type '" + b.Type + "'")
			}
		}
		if len(pendingUses) > 0 {
			return nil, nil, invalid("messages." + strconv.Itoa(i-1) + ": `tool_use` ids were found without `tool_result` blocks immediately after: " + firstKey(pendingUses) + ". Each `tool_use` block must have a corresponding `tool_result` block in the next message.")
		}
		pendingUses = uses
		if m.Role == "user" && len(text) > 0 {
			userText = strings.Join(text, "\n")
		}
	}
	last := req.Messages[len(req.Messages)-1]

	d, err := mock.ParseDirectives(header, userText)
	if err != nil {
		return nil, nil, invalid("mock: bad directive in " + mock.DirectiveHeader + " or the last user message")
	}

	p := &plan{model: *req.Model}
	p.cacheRead = min(st.cfg.CacheReadTokens, prompt)
	p.cacheWrite = min(st.cfg.CacheCreationTokens, prompt-p.cacheRead)
	p.input = prompt - p.cacheRead - p.cacheWrite

	seed := mock.Seed(userText)
	if last.Role == "user" && lastBlockIsResult {
		seed = mock.Mix(seed ^ mock.Seed(lastResult))
	}
	maxTok := *req.MaxTokens

	calls := chooseTools(req, tools)
	if i, ok := d.Called(len(req.Tools), func(i int) string { return req.Tools[i].Name }); ok && tools[req.Tools[i].Name] == &req.Tools[i] {
		calls = []*tool{&req.Tools[i]}
	}
	if len(calls) > 0 && last.Role == "user" && !lastBlockIsResult {
		p.stopReason = "tool_use"
		auto := req.ToolChoice == nil || req.ToolChoice.Type == "auto"
		if auto {
			p.preamble = true
			p.text = mock.Answer(seed^0x5bd1e995, 3, true)
		}
		p.calls = make([]mock.ToolCall, len(calls))
		for i, t := range calls {
			p.calls[i] = mock.NewToolCall(seed, i, t.Name, t.InputSchema, "toolu_01", 22)
			d.SetArgs(&p.calls[i])
		}
		if p.outputTokens() > maxTok { // cut inside the answer
			p.calls, p.preamble, p.stopReason = nil, false, "max_tokens"
			p.text = mock.Answer(seed, maxTok, false)
		}
		return p, &d, nil
	}

	want := st.cfg.CompletionTokens
	if d.Tokens > 0 {
		want = d.Tokens
	}
	n, finished := want, true
	p.stopReason = "end_turn"
	if maxTok < want {
		n, finished, p.stopReason = maxTok, false, "max_tokens"
	}
	p.text = mock.Answer(seed, n, finished)
	if seq, at, ok := findStop(p.text, req.StopSequences); ok {
		p.text, p.stopReason, p.stopSequence = at, "stop_sequence", seq
	}
	return p, &d, nil
}

// findStop cuts the text before the first stop sequence it contains; the
// token that holds the start of the sequence is kept in part (and still
// counts as a token).
func findStop(text []string, seqs []string) (seq string, cut []string, ok bool) {
	var sb strings.Builder
	for i, tok := range text {
		before := sb.Len()
		sb.WriteString(tok)
		all := sb.String()
		best := -1
		for _, s := range seqs {
			if s == "" {
				continue
			}
			if k := strings.Index(all, s); k >= 0 && (best < 0 || k < best) {
				best, seq = k, s
			}
		}
		if best >= 0 {
			cut = append(text[:i:i], all[before:max(best, before)])
			if cut[i] == "" {
				cut = cut[:i]
			}
			return seq, cut, true
		}
	}
	return "", nil, false
}

func firstKey(m map[string]bool) string {
	for k := range m {
		return k
	}
	return ""
}

var mediaTypes = map[string]bool{"image/jpeg": true, "image/png": true, "image/gif": true, "image/webp": true}

func checkImage(at string, src *imageSource) *apiError {
	if src == nil {
		return invalid(at + ".image.source: Field required")
	}
	switch src.Type {
	case "base64":
		if !mediaTypes[src.MediaType] {
			return invalid(at + ".image.source.base64.media_type: Input should be 'image/jpeg', 'image/png', 'image/gif' or 'image/webp'")
		}
		if _, err := base64.StdEncoding.DecodeString(src.Data); err != nil || src.Data == "" {
			return invalid(at + ".image.source.base64.data: invalid base64 data")
		}
	case "url":
		if !strings.HasPrefix(src.URL, "https://") && !strings.HasPrefix(src.URL, "http://") {
			return invalid(at + ".image.source.url.url: invalid URL")
		}
	default:
		return invalid(at + ".image.source.type: Input should be 'base64' or 'url'")
	}
	return nil
}

// resultText is the text of a tool_result content (a string or text/image
// blocks).
func resultText(at string, raw json.RawMessage) (string, *apiError) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || raw[0] == 'n' {
		return "", nil
	}
	bs, err := blocks(raw)
	if err != nil {
		return "", invalid(at + ".content: " + err.Error())
	}
	var parts []string
	for k, b := range bs {
		switch b.Type {
		case "text":
			if b.Text == nil || *b.Text == "" {
				return "", invalid("messages: text content blocks must be non-empty")
			}
			parts = append(parts, *b.Text)
		case "image":
			if e := checkImage(at+".content."+strconv.Itoa(k), b.Source); e != nil {
				return "", e
			}
		default:
			return "", invalid(at + ".content." + strconv.Itoa(k) + ".type: unsupported tool_result content type '" + b.Type + "'")
		}
	}
	return strings.Join(parts, "\n"), nil
}

// chooseTools picks the tools the answer calls: none for tool_choice none;
// the named one; else the first two, or one when parallel use is disabled.
func chooseTools(req *request, tools map[string]*tool) []*tool {
	var fns []*tool
	for i := range req.Tools {
		if t := &req.Tools[i]; tools[t.Name] == t {
			fns = append(fns, t)
		}
	}
	if len(fns) == 0 {
		return nil
	}
	tc := req.ToolChoice
	if tc != nil {
		switch tc.Type {
		case "none":
			return nil
		case "tool":
			return []*tool{tools[tc.Name]}
		}
	}
	if len(fns) >= 2 && (tc == nil || !tc.DisableParallelToolUse) {
		return fns[:2]
	}
	return fns[:1]
}

// ---- response bodies ----

type usage struct {
	InputTokens              int    `json:"input_tokens"`
	CacheCreationInputTokens int    `json:"cache_creation_input_tokens"`
	CacheReadInputTokens     int    `json:"cache_read_input_tokens"`
	OutputTokens             int    `json:"output_tokens"`
	ServiceTier              string `json:"service_tier,omitempty"`
}

type outBlock struct {
	Type  string          `json:"type"`
	Text  *string         `json:"text,omitempty"`
	ID    string          `json:"id,omitempty"`
	Name  string          `json:"name,omitempty"`
	Input json.RawMessage `json:"input,omitempty"`
}

type message struct {
	ID           string     `json:"id"`
	Type         string     `json:"type"`
	Role         string     `json:"role"`
	Model        string     `json:"model"`
	Content      []outBlock `json:"content"`
	StopReason   *string    `json:"stop_reason"`
	StopSequence *string    `json:"stop_sequence"`
	Usage        usage      `json:"usage"`
}

func (p *plan) usage(output int) usage {
	return usage{InputTokens: p.input, CacheCreationInputTokens: p.cacheWrite, CacheReadInputTokens: p.cacheRead, OutputTokens: output, ServiceTier: "standard"}
}

func nullable(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func (p *plan) message(id string) message {
	m := message{ID: id, Type: "message", Role: "assistant", Model: p.model, Content: []outBlock{},
		StopReason: nullable(p.stopReason), StopSequence: nullable(p.stopSequence), Usage: p.usage(p.outputTokens())}
	if len(p.calls) == 0 || p.preamble {
		t := strings.Join(p.text, "")
		m.Content = append(m.Content, outBlock{Type: "text", Text: &t})
	}
	for _, c := range p.calls {
		m.Content = append(m.Content, outBlock{Type: "tool_use", ID: c.ID, Name: c.Name, Input: json.RawMessage(c.Args)})
	}
	return m
}

// ---- handler ----

func (s *Server) handleMessages(w http.ResponseWriter, r *http.Request) {
	s.core.Chat.Add(1)
	st := s.st.Load()
	if r.Header.Get("anthropic-version") == "" {
		s.writeError(w, http.StatusBadRequest, "invalid_request_error", "anthropic-version: header is required")
		return
	}
	var req request
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	if err := dec.Decode(&req); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			s.writeError(w, http.StatusRequestEntityTooLarge, "request_too_large", "Request exceeds the maximum allowed number of bytes.")
			return
		}
		s.writeError(w, http.StatusBadRequest, "invalid_request_error", "There was an issue with the format or content of your request: "+err.Error())
		return
	}
	p, d, e := s.decide(st, &req, r.Header.Get(mock.DirectiveHeader))
	if e != nil {
		s.writeError(w, e.status, errorType(e.status), e.message)
		return
	}

	status, reset := s.core.Roll(&st.cfg.Config, d, req.Stream)
	if status == http.StatusServiceUnavailable && d.Status == 0 {
		status = 529 // FailRate503: Anthropic's overloaded_error
	}
	if d.Quota {
		status = http.StatusPaymentRequired
	}
	if !s.core.Delay(r, &st.cfg.Config, d) {
		return
	}
	if status != 0 {
		s.writeFailure(w, st, status, d)
		return
	}
	if req.Stream {
		s.stream(w, r, st, p, reset, d.StreamError)
		return
	}
	if reset {
		s.core.Cut(w)
		return
	}
	body, _ := json.Marshal(p.message(s.newID("msg_01", 22)))
	s.core.PromptTokens.Add(int64(p.prompt()))
	s.core.CompletionTokens.Add(int64(p.outputTokens()))
	s.writeJSON(w, http.StatusOK, body)
	s.core.Answered(r, nil)
}
