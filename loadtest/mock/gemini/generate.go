package gemini

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/xroute/xroute/loadtest/mock"
)

// decode reads a JSON body strictly; the error text is Gemini's.
func decode(w http.ResponseWriter, r *http.Request, v any) (status int, msg string) {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, mock.MaxBodyBytes))
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil {
		return 0, ""
	}
	var mbe *http.MaxBytesError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &mbe):
		return http.StatusRequestEntityTooLarge, "Request payload size exceeds the limit: " + strconv.Itoa(mock.MaxBodyBytes) + " bytes."
	case errors.Is(err, io.EOF):
		return http.StatusBadRequest, "Invalid JSON payload received. Expected a value."
	case errors.As(err, &te):
		return http.StatusBadRequest, "Invalid value at '" + te.Field + "' (" + te.Value + "): wrong type."
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return http.StatusBadRequest, "Invalid JSON payload received. Unknown name " + strings.TrimPrefix(err.Error(), "json: unknown field ") + ": Cannot find field."
	}
	return http.StatusBadRequest, "Invalid JSON payload received. Unexpected token."
}

// Thinking: the most thought tokens an answer spends, those of dynamic
// thinking (thinkingBudget -1, or includeThoughts alone) when
// Config.ThoughtsTokens is 0, and those of each thinkingLevel.
const (
	maxThoughts     = 64
	dynamicThoughts = 32
)

var thinkingLevels = map[string]int{"thinking_level_unspecified": dynamicThoughts, "minimal": 4, "low": 16, "medium": 32, "high": 64}

// thoughtTokens is how many tokens an answer thinks (thoughtsTokenCount):
// Config.ThoughtsTokens (the model's default) unless thinkingConfig says
// otherwise: thinkingBudget 0 turns thinking off, a positive budget thinks
// min(budget, 64) tokens, -1 (dynamic) the default or 32; a thinkingLevel
// thinks 4 (minimal), 16 (low), 32 (medium) or 64 (high) tokens; asking
// for thoughts (includeThoughts) with neither thinks the default or 32.
func thoughtTokens(cfg *Config, tc *thinkingConfig) int {
	dynamic := cfg.ThoughtsTokens
	if dynamic == 0 {
		dynamic = dynamicThoughts
	}
	switch {
	case tc == nil:
		return cfg.ThoughtsTokens
	case tc.ThinkingBudget != nil && *tc.ThinkingBudget == 0:
		return 0
	case tc.ThinkingBudget != nil && *tc.ThinkingBudget > 0:
		return min(*tc.ThinkingBudget, maxThoughts)
	case tc.ThinkingBudget != nil:
		return dynamic
	case tc.ThinkingLevel != "":
		return thinkingLevels[strings.ToLower(tc.ThinkingLevel)]
	case tc.IncludeThoughts:
		return dynamic
	}
	return cfg.ThoughtsTokens
}

// plan is the fully decided answer.
type plan struct {
	model    string
	prompt   int
	cached   int
	thoughts int
	thought  string   // thought summary part (includeThoughts), "" = none
	pieces   []string // answer text, one token each
	finish   string   // STOP or MAX_TOKENS
	calls    []plannedCall
}

type plannedCall struct {
	mock.ToolCall        // Gemini's calls have no id
	sig           string // thoughtSignature, "" = none
}

// completion is the number of candidate tokens of the whole answer.
func (p *plan) completion() int {
	if len(p.calls) > 0 {
		n := 0
		for _, c := range p.calls {
			n += c.Tokens()
		}
		return n
	}
	return len(p.pieces)
}

// textOf joins the text parts of a content.
func textOf(c *content) string {
	var sb strings.Builder
	for i := range c.Parts {
		if t := c.Parts[i].Text; t != nil && *t != "" && !c.Parts[i].Thought {
			if sb.Len() > 0 {
				sb.WriteByte('\n')
			}
			sb.WriteString(*t)
		}
	}
	return sb.String()
}

// countPrompt counts prompt tokens: words of text, arguments and
// responses, 258 per image, 3 per content and 3 for the framing.
func countPrompt(req *generateRequest) int {
	n := 3
	count := func(c *content) {
		n += 3
		for i := range c.Parts {
			p := &c.Parts[i]
			switch {
			case p.Text != nil:
				n += mock.CountWords(*p.Text)
			case p.InlineData != nil, p.FileData != nil:
				n += imageTokens
			case p.FunctionCall != nil:
				n += 1 + max(1, len(p.FunctionCall.Args)/4)
			case p.FunctionResponse != nil:
				n += max(1, len(p.FunctionResponse.Response)/4)
			}
		}
	}
	if req.SystemInstruction != nil {
		count(req.SystemInstruction)
	}
	for i := range req.Contents {
		count(&req.Contents[i])
	}
	for i := range req.Tools {
		for _, d := range req.Tools[i].FunctionDeclarations {
			n += 1 + mock.CountWords(d.Description) + (len(d.Parameters)+len(d.ParametersJSONSchema))/8
		}
	}
	return n
}

// lowerTypes rewrites an OpenAPI-style schema's upper-case "type" values
// (STRING, OBJECT, ...) as JSON Schema's lower-case ones.
func lowerTypes(raw json.RawMessage) json.RawMessage {
	var v any
	if json.Unmarshal(raw, &v) != nil {
		return raw
	}
	var walk func(any)
	walk = func(x any) {
		switch t := x.(type) {
		case map[string]any:
			for k, e := range t {
				if s, ok := e.(string); ok && k == "type" {
					t[k] = strings.ToLower(s)
				} else {
					walk(e)
				}
			}
		case []any:
			for _, e := range t {
				walk(e)
			}
		}
	}
	walk(v)
	b, err := json.Marshal(v)
	if err != nil {
		return raw
	}
	return b
}

func schemaOf(d *functionDeclaration) json.RawMessage {
	if len(d.ParametersJSONSchema) > 0 {
		return d.ParametersJSONSchema
	}
	if len(d.Parameters) > 0 {
		return lowerTypes(d.Parameters)
	}
	return nil
}

// makePlan decides the answer. lastUser is the text the seed and the
// directives come from.
func makePlan(cfg *Config, req *generateRequest, model string, d *mock.Directives, lastUser string) *plan {
	p := &plan{model: model, prompt: countPrompt(req), finish: "STOP"}
	if (cfg.ImplicitCacheMin > 0 && p.prompt >= cfg.ImplicitCacheMin) || req.CachedContent != "" {
		p.cached = p.prompt / 2
	}
	gc := req.GenerationConfig
	if gc == nil {
		gc = &generationConfig{}
	}
	p.thoughts = thoughtTokens(cfg, gc.ThinkingConfig)

	last := &req.Contents[len(req.Contents)-1]
	afterResponse := isFunctionResponseTurn(last)
	seed := mock.Seed(lastUser)
	if afterResponse {
		var resp []byte
		for i := range last.Parts {
			if fr := last.Parts[i].FunctionResponse; fr != nil {
				resp = append(resp, fr.Response...)
			}
		}
		seed = mock.Mix(seed ^ mock.Seed(string(resp)))
	}
	if p.thoughts > 0 && gc.ThinkingConfig != nil && gc.ThinkingConfig.IncludeThoughts {
		n := min(p.thoughts, 8)
		var sb strings.Builder
		for i := 0; i < n; i++ {
			sb.WriteString(mock.Token(mock.Mix(seed), i, n, true))
		}
		p.thought = "**Thinking** " + sb.String()
	}

	// Function calls.
	mode := "AUTO"
	var allowed []string
	if tc := req.ToolConfig; tc != nil && tc.FunctionCallingConfig != nil {
		if m := tc.FunctionCallingConfig.Mode; m != "" && m != "MODE_UNSPECIFIED" {
			mode = m
		}
		allowed = tc.FunctionCallingConfig.AllowedFunctionNames
	}
	var decls []*functionDeclaration
	for i := range req.Tools {
		for j := range req.Tools[i].FunctionDeclarations {
			decls = append(decls, &req.Tools[i].FunctionDeclarations[j])
		}
	}
	if len(allowed) > 0 {
		decls = decls[:0]
		decls = append(decls, findDecl(req.Tools, allowed[0]))
	}
	if i, ok := d.Called(len(decls), func(i int) string { return decls[i].Name }); ok {
		decls = decls[i : i+1]
	}
	if len(decls) > 0 && mode != "NONE" && !afterResponse {
		n := min(len(decls), 2)
		for i, dcl := range decls[:n] {
			c := plannedCall{ToolCall: mock.NewToolCall(seed, i, dcl.Name, schemaOf(dcl), "", 0)}
			d.SetArgs(&c.ToolCall)
			if i == 0 {
				c.sig = signatureFor(dcl.Name) // parallel calls: the first one only
			}
			p.calls = append(p.calls, c)
		}
		return p
	}

	// Text (or JSON) answer.
	want := cfg.CompletionTokens
	if d.Tokens > 0 {
		want = d.Tokens
	}
	maxTok := 0
	if gc.MaxOutputTokens != nil {
		maxTok = *gc.MaxOutputTokens
	}
	if gc.ResponseMimeType == "application/json" {
		var js string
		if s := gc.ResponseJSONSchema; len(s) > 0 {
			js = jsonOrEmpty(mock.JSONValue(s, seed))
		} else if s := gc.ResponseSchema; len(s) > 0 {
			js = jsonOrEmpty(mock.JSONValue(lowerTypes(s), seed))
		} else {
			var sb strings.Builder
			for i := 0; i < want; i++ {
				sb.WriteString(mock.Token(seed, i, want, true))
			}
			b, _ := json.Marshal(map[string]string{"text": sb.String()})
			js = string(b)
		}
		p.pieces = mock.Pieces(js)
		if maxTok > 0 && maxTok < len(p.pieces) {
			p.pieces, p.finish = p.pieces[:maxTok], "MAX_TOKENS"
		}
		return p
	}
	n, stop := want, true
	if maxTok > 0 && maxTok < want {
		n, stop, p.finish = maxTok, false, "MAX_TOKENS"
	}
	p.pieces = mock.Answer(seed, n, stop)
	applyStop(p, gc.StopSequences)
	return p
}

// jsonOrEmpty is js, or {} when the schema gave nothing.
func jsonOrEmpty(js string) string {
	if js == "" {
		return "{}"
	}
	return js
}

// applyStop ends the answer before the first stop sequence (which is not
// part of the output), as Gemini does; the finish reason is then STOP.
func applyStop(p *plan, stops []string) {
	full := strings.Join(p.pieces, "")
	at := -1
	for _, stop := range stops {
		if k := strings.Index(full, stop); stop != "" && k >= 0 && (at < 0 || k < at) {
			at = k
		}
	}
	if at < 0 {
		return
	}
	var out []string
	l := 0
	for _, piece := range p.pieces {
		if l+len(piece) <= at {
			out = append(out, piece)
			l += len(piece)
			continue
		}
		if at > l {
			out = append(out, piece[:at-l])
		}
		break
	}
	p.pieces, p.finish = out, "STOP"
}

func (s *Server) handleGenerate(w http.ResponseWriter, r *http.Request, model string, stream bool) {
	s.core.Chat.Add(1)
	st := s.st.Load()
	cfg := &st.cfg
	var req generateRequest
	if status, msg := decode(w, r, &req); status != 0 {
		s.writeError(w, status, statusName(status), msg, nil)
		return
	}
	if msg := validate(&req); msg != "" {
		s.badRequest(w, msg)
		return
	}
	method := "generateContent"
	if stream {
		method = "streamGenerateContent"
	}
	if !st.models.Has(model) {
		s.writeError(w, http.StatusNotFound, "NOT_FOUND", modelNotFound(model, method), nil)
		return
	}
	lastUser := ""
	for i := len(req.Contents) - 1; i >= 0; i-- {
		if c := &req.Contents[i]; c.Role != "model" {
			if t := textOf(c); t != "" {
				lastUser = t
				break
			}
		}
	}
	d, err := mock.ParseDirectives(r.Header.Get(mock.DirectiveHeader), lastUser)
	if err != nil {
		s.badRequest(w, "mock: bad #mock: directive in the last user message or the "+mock.DirectiveHeader+" header")
		return
	}
	p := makePlan(cfg, &req, model, &d, lastUser)

	status, reset := s.core.Roll(&cfg.Config, &d, stream)
	if !s.core.Delay(r, &cfg.Config, &d) {
		return
	}
	if status != 0 {
		s.writeFailure(w, cfg, status, &d, model)
		return
	}
	if stream {
		s.stream(w, r, cfg, p, reset, d.StreamError, r.URL.Query().Get("alt") == "sse")
		return
	}
	if reset {
		s.core.Cut(w)
		return
	}
	resp := generateResponse{
		Candidates:    []candidate{{Content: content{Role: "model", Parts: answerParts(p, 0, len(p.pieces), true)}, FinishReason: p.finish}},
		UsageMetadata: p.usage(p.completion(), true),
		ModelVersion:  model,
		ResponseID:    s.responseID(),
	}
	s.core.PromptTokens.Add(int64(p.prompt))
	s.core.CompletionTokens.Add(int64(p.completion()))
	s.writeJSON(w, http.StatusOK, &resp)
	s.core.Answered(r, nil)
}

// answerParts renders pieces [from, to) (or the calls) as parts; withThought
// prepends the thought summary.
func answerParts(p *plan, from, to int, withThought bool) []part {
	var parts []part
	if withThought && p.thought != "" {
		t := p.thought
		parts = append(parts, part{Text: &t, Thought: true})
	}
	if len(p.calls) > 0 {
		for _, c := range p.calls {
			parts = append(parts, part{FunctionCall: &functionCall{Name: c.Name, Args: json.RawMessage(c.Args)}, ThoughtSignature: c.sig})
		}
		return parts
	}
	t := strings.Join(p.pieces[from:to], "")
	return append(parts, part{Text: &t})
}

// usage renders usageMetadata after sent candidate tokens; final adds the
// candidate and thought counts.
func (p *plan) usage(sent int, final bool) *usageMetadata {
	u := &usageMetadata{
		PromptTokenCount:        p.prompt,
		TotalTokenCount:         p.prompt,
		CachedContentTokenCount: p.cached,
		PromptTokensDetails:     []modalityCount{{Modality: "TEXT", TokenCount: p.prompt}},
	}
	if p.cached > 0 {
		u.CacheTokensDetails = []modalityCount{{Modality: "TEXT", TokenCount: p.cached}}
	}
	if final {
		u.CandidatesTokenCount = sent
		u.ThoughtsTokenCount = p.thoughts
		u.TotalTokenCount = p.prompt + sent + p.thoughts
	}
	return u
}

// stream sends the answer as GenerateContentResponse fragments: SSE events
// ("data: {...}\r\n\r\n") with alt=sse, else one JSON array written
// element by element.
func (s *Server) stream(w http.ResponseWriter, r *http.Request, cfg *Config, p *plan, reset, streamErr, sse bool) {
	h := w.Header()
	if sse {
		h.Set("Content-Type", "text/event-stream")
	} else {
		h.Set("Content-Type", "application/json; charset=UTF-8")
	}
	h.Set("Vary", "Origin, X-Origin, Referer")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	_ = http.NewResponseController(w).Flush()
	sw := s.core.Stream(w, r, cfg.TokensPerSec, p.prompt)

	// The events: [thought], text chunks or the calls; the last one has
	// finishReason and the full usage.
	type event struct {
		parts  []part
		tokens int
	}
	var events []event
	if p.thought != "" {
		t := p.thought
		events = append(events, event{parts: []part{{Text: &t, Thought: true}}})
	}
	if len(p.calls) > 0 {
		events = append(events, event{parts: answerParts(p, 0, 0, false), tokens: p.completion()})
	} else {
		for i := 0; i < len(p.pieces) || i == 0; i += cfg.ChunkTokens {
			j := min(i+cfg.ChunkTokens, len(p.pieces))
			events = append(events, event{parts: answerParts(p, i, j, false), tokens: j - i})
		}
	}
	// Gemini has no end marker: the fault comes before the last event.
	sw.FaultAfter(min(2, len(events)-1), reset, streamErr)
	var errEvent []byte
	if streamErr {
		b, _ := json.Marshal(errorBody(500, "INTERNAL", msgInternal, nil))
		if sse {
			errEvent = append(append([]byte("data: "), b...), "\r\n\r\n"...)
		} else {
			errEvent = append(append([]byte("[\n"), b...), "\n]"...)
		}
	}
	defer sw.Finish(errEvent)

	id := s.responseID()
	for i, ev := range events {
		final := i == len(events)-1
		resp := generateResponse{
			Candidates:    []candidate{{Content: content{Role: "model", Parts: ev.parts}}},
			UsageMetadata: p.usage(sw.Sent()+ev.tokens, final),
			ModelVersion:  p.model,
			ResponseID:    id,
		}
		if final {
			resp.Candidates[0].FinishReason = p.finish
		}
		b, _ := json.Marshal(&resp)
		var out []byte
		switch {
		case sse:
			out = append(append([]byte("data: "), b...), "\r\n\r\n"...)
		case i == 0:
			out = append([]byte("["), b...)
		default:
			out = append([]byte(",\r\n"), b...)
		}
		if final && !sse {
			out = append(out, ']')
		}
		if !sw.Send(out, ev.tokens) {
			return
		}
	}
	if r.Context().Err() != nil {
		sw.Cancel()
	}
}
