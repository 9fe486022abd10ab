package anthropic

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"time"

	"github.com/xroute/xroute/loadtest/mock"
)

// outPart is a content block of the answer.
type outPart struct {
	typ    string // thinking, text or tool_use
	pieces []string
	tokens int    // output tokens
	sig    string // thinking: signature
	shown  bool   // thinking: its text is returned (display is not omitted)
	call   *mock.ToolCall
}

// text is the returned text of a text or thinking part.
func (o *outPart) text() string {
	if o.typ == "thinking" && !o.shown {
		return ""
	}
	return strings.Join(o.pieces, "")
}

// plan is the fully decided answer.
type plan struct {
	model        string
	prompt       int // input + cache tokens
	cache        mock.CacheUsage
	parts        []outPart
	stopReason   string
	stopSequence string
	thinking     int // thinking tokens among the output tokens
	ctxMgmt      bool
	geo, speed   string
}

func (p *plan) outputTokens() int {
	n := 0
	for i := range p.parts {
		n += p.parts[i].tokens
	}
	return n
}

// addThinking appends a thinking part of n tokens.
func (p *plan) addThinking(tp *thinkingPlan, seed uint64, part, n int) {
	pieces := thinkingText(seed, part, n)
	p.parts = append(p.parts, outPart{typ: "thinking", pieces: pieces, tokens: n,
		sig: thinkingSignature(strings.Join(pieces, "")), shown: !tp.omitted})
	p.thinking += n
}

// decide plans the answer to a validated request; directives come from the
// header and the last user text.
func (s *Server) decide(st *state, req *request, a *analysis, header string) (*plan, *mock.Directives, *apiError) {
	d, err := mock.ParseDirectives(header, a.userText)
	if err != nil {
		return nil, nil, invalid("mock: bad directive in " + mock.DirectiveHeader + " or the last user message")
	}
	p := &plan{model: a.model, prompt: a.prompt.Tokens, ctxMgmt: len(bytes.TrimSpace(req.ContextManagement)) > 0 && string(bytes.TrimSpace(req.ContextManagement)) != "null"}
	if req.InferenceGeo != nil {
		p.geo = *req.InferenceGeo
	}
	if req.Speed != nil {
		p.speed = *req.Speed
	}
	seed := mock.Seed(a.userText)
	if a.afterResult {
		seed = mock.Mix(seed ^ mock.Seed(a.lastResult))
		if a.resultError {
			seed = mock.Mix(seed ^ 0x6572726f72)
		}
	}
	budget := *req.MaxTokens
	if budget == 0 { // only warms the prompt cache
		p.stopReason = "max_tokens"
		return p, &d, nil
	}
	tp := &a.thinking
	if tp.tokens > 0 {
		n := min(tp.tokens, budget)
		p.addThinking(tp, seed, 0, n)
		budget -= n
	}

	calls := chooseTools(req, a.tools)
	if i, ok := d.Called(len(req.Tools), func(i int) string { return req.Tools[i].Name }); ok && a.tools[req.Tools[i].Name] == &req.Tools[i] {
		calls = []*tool{&req.Tools[i]}
	}
	if len(calls) > 0 && a.lastRole == "user" && !a.afterResult {
		var parts []outPart
		need := 0
		if req.ToolChoice == nil || req.ToolChoice.Type == "auto" {
			pre := mock.Answer(seed^0x5bd1e995, 3, true)
			parts = append(parts, outPart{typ: "text", pieces: pre, tokens: len(pre)})
			need += len(pre)
		}
		for i, t := range calls {
			if i > 0 && tp.interleaved && tp.tokens > 0 {
				pieces := thinkingText(seed, i, interleavedTokens)
				parts = append(parts, outPart{typ: "thinking", pieces: pieces, tokens: interleavedTokens,
					sig: thinkingSignature(strings.Join(pieces, "")), shown: !tp.omitted})
				need += interleavedTokens
			}
			c := mock.NewToolCall(seed, i, t.Name, t.InputSchema, "toolu_01", 22)
			d.SetArgs(&c)
			parts = append(parts, outPart{typ: "tool_use", tokens: c.Tokens(), call: &c})
			need += c.Tokens()
		}
		if need <= budget {
			for _, o := range parts {
				if o.typ == "thinking" {
					p.thinking += o.tokens
				}
			}
			p.parts = append(p.parts, parts...)
			p.stopReason = "tool_use"
			return p, &d, nil
		}
		// Cut inside the answer: the text only, to max_tokens.
		if budget > 0 {
			p.parts = append(p.parts, outPart{typ: "text", pieces: mock.Answer(seed, budget, false), tokens: budget})
		}
		p.stopReason = "max_tokens"
		return p, &d, nil
	}

	want := st.cfg.CompletionTokens
	if d.Tokens > 0 {
		want = d.Tokens
	}
	p.stopReason = "end_turn"
	var pieces []string
	if a.format != nil {
		doc := mock.JSONValue(a.format.Schema, seed)
		if doc == "" {
			doc = "{}"
		}
		pieces = mock.Pieces(doc)
		if len(pieces) > budget {
			pieces, p.stopReason = pieces[:budget], "max_tokens"
		}
	} else {
		n, finished := want, true
		if budget < want {
			n, finished, p.stopReason = budget, false, "max_tokens"
		}
		pieces = mock.Answer(seed, n, finished)
		if seq, cut, ok := findStop(pieces, req.StopSequences); ok {
			pieces, p.stopReason, p.stopSequence = cut, "stop_sequence", seq
		}
	}
	if len(pieces) > 0 || p.stopReason != "max_tokens" {
		p.parts = append(p.parts, outPart{typ: "text", pieces: pieces, tokens: len(pieces)})
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

// chooseTools picks the tools the answer calls: none for tool_choice none;
// the named one; else the first two client tools that are not deferred,
// or one when parallel use is disabled.
func chooseTools(req *request, tools map[string]*tool) []*tool {
	var fns []*tool
	for i := range req.Tools {
		if t := &req.Tools[i]; tools[t.Name] == t && !t.DeferLoading {
			fns = append(fns, t)
		}
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
	if len(fns) == 0 {
		return nil
	}
	if len(fns) >= 2 && (tc == nil || !tc.DisableParallelToolUse) {
		return fns[:2]
	}
	return fns[:1]
}

// setCache splits the prompt into input and cache tokens: the fixed knobs
// when set, else the simulated prompt cache.
func (s *Server) setCache(st *state, p *plan, a *analysis, key string) {
	cfg := &st.cfg
	if cfg.CacheReadTokens > 0 || cfg.CacheCreationTokens > 0 {
		read := min(cfg.CacheReadTokens, p.prompt)
		write := min(cfg.CacheCreationTokens, p.prompt-read)
		p.cache = mock.CacheUsage{Input: p.prompt - read - write, Read: read, Write: write, Write5m: write}
		return
	}
	p.cache = s.cache.Apply(a.prompt, mock.CacheScope(key), mock.ClaudeCacheMin(cfg.CacheMinTokens, a.model), cacheLookback, cfg.Now())
}

// ---- response bodies ----

type usage struct {
	InputTokens              int            `json:"input_tokens"`
	CacheCreationInputTokens int            `json:"cache_creation_input_tokens"`
	CacheReadInputTokens     int            `json:"cache_read_input_tokens"`
	CacheCreation            *cacheCreation `json:"cache_creation,omitempty"`
	OutputTokens             int            `json:"output_tokens"`
	OutputTokensDetails      *outputDetails `json:"output_tokens_details,omitempty"`
	ServiceTier              string         `json:"service_tier,omitempty"`
	InferenceGeo             string         `json:"inference_geo,omitempty"`
	Speed                    string         `json:"speed,omitempty"`
}

type cacheCreation struct {
	Ephemeral5m int `json:"ephemeral_5m_input_tokens"`
	Ephemeral1h int `json:"ephemeral_1h_input_tokens"`
}

type outputDetails struct {
	ThinkingTokens int `json:"thinking_tokens"`
}

type outBlock struct {
	Type      string          `json:"type"`
	Thinking  *string         `json:"thinking,omitempty"`
	Signature *string         `json:"signature,omitempty"`
	Text      *string         `json:"text,omitempty"`
	ID        string          `json:"id,omitempty"`
	Name      string          `json:"name,omitempty"`
	Input     json.RawMessage `json:"input,omitempty"`
}

type contextManagement struct {
	AppliedEdits []json.RawMessage `json:"applied_edits"`
}

type message struct {
	ID                string             `json:"id"`
	Type              string             `json:"type"`
	Role              string             `json:"role"`
	Model             string             `json:"model"`
	Content           []outBlock         `json:"content"`
	StopReason        *string            `json:"stop_reason"`
	StopSequence      *string            `json:"stop_sequence"`
	StopDetails       json.RawMessage    `json:"stop_details"`
	Container         json.RawMessage    `json:"container"`
	ContextManagement *contextManagement `json:"context_management,omitempty"`
	Usage             usage              `json:"usage"`
}

var jsonNull = json.RawMessage("null")

// usage is the usage of the message (and of message_start, with the output
// so far).
func (p *plan) usage(output int, thinking int) usage {
	return usage{InputTokens: p.cache.Input, CacheCreationInputTokens: p.cache.Write, CacheReadInputTokens: p.cache.Read,
		CacheCreation: &cacheCreation{Ephemeral5m: p.cache.Write5m, Ephemeral1h: p.cache.Write1h},
		OutputTokens:  output, OutputTokensDetails: &outputDetails{ThinkingTokens: thinking},
		ServiceTier: "standard", InferenceGeo: p.geo, Speed: p.speed}
}

// deltaUsage is the cumulative usage of message_delta: the counts, without
// the fields that only message_start and the message carry.
func (p *plan) deltaUsage(output, thinking int) usage {
	return usage{InputTokens: p.cache.Input, CacheCreationInputTokens: p.cache.Write, CacheReadInputTokens: p.cache.Read,
		OutputTokens: output, OutputTokensDetails: &outputDetails{ThinkingTokens: thinking}}
}

func nullable(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func (p *plan) contextManagement() *contextManagement {
	if !p.ctxMgmt {
		return nil
	}
	return &contextManagement{AppliedEdits: []json.RawMessage{}}
}

func (o *outPart) block() outBlock {
	switch o.typ {
	case "thinking":
		t, sig := o.text(), o.sig
		return outBlock{Type: "thinking", Thinking: &t, Signature: &sig}
	case "tool_use":
		return outBlock{Type: "tool_use", ID: o.call.ID, Name: o.call.Name, Input: json.RawMessage(o.call.Args)}
	}
	t := o.text()
	return outBlock{Type: "text", Text: &t}
}

func (p *plan) message(id string) message {
	m := message{ID: id, Type: "message", Role: "assistant", Model: p.model, Content: make([]outBlock, 0, len(p.parts)),
		StopReason: nullable(p.stopReason), StopSequence: nullable(p.stopSequence), StopDetails: jsonNull, Container: jsonNull,
		ContextManagement: p.contextManagement(), Usage: p.usage(p.outputTokens(), p.thinking)}
	for i := range p.parts {
		m.Content = append(m.Content, p.parts[i].block())
	}
	return m
}

// ---- handler ----

func (s *Server) handleMessages(w http.ResponseWriter, r *http.Request) {
	s.core.Chat.Add(1)
	st := s.st.Load()
	version, ok := s.apiVersion(w, r)
	if !ok {
		return
	}
	var req request
	if e := decodeRequest(w, r, version, false, &req); e != nil {
		s.writeError(w, e.status, errorType(e.status), e.message)
		return
	}
	a, e := s.analyze(st, &req, version, r.Header.Get("anthropic-beta"), false, req.hasCacheControl && st.cfg.CacheReadTokens == 0 && st.cfg.CacheCreationTokens == 0)
	if e != nil {
		s.writeError(w, e.status, errorType(e.status), e.message)
		return
	}
	p, d, e := s.decide(st, &req, a, r.Header.Get(mock.DirectiveHeader))
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
	s.setCache(st, p, a, callerKey(r))
	rateLimitHeaders(w.Header(), st.cfg.Now(), p.prompt, p.outputTokens(), false, time.Second)
	if req.Stream {
		s.stream(w, r, st, p, reset, d.StreamError)
		return
	}
	if reset {
		s.core.Cut(w)
		return
	}
	body, _ := json.Marshal(p.message(s.newID("msg_01", 22)))
	s.core.PromptTokens.Add(int64(p.prompt))
	s.core.CompletionTokens.Add(int64(p.outputTokens()))
	s.writeJSON(w, http.StatusOK, body)
	s.core.Answered(r, nil)
}
