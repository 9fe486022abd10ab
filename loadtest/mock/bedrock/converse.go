package bedrock

import (
	"bytes"
	"encoding/json"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/xroute/xroute/loadtest/mock"
)

// The request shapes of Converse / ConverseStream. Members the mock does not
// act on are accepted as raw JSON; anything else is an unknown field, which
// the service rejects too.
type converseRequest struct {
	Messages                          []message        `json:"messages"`
	System                            []systemBlock    `json:"system"`
	InferenceConfig                   *inferenceConfig `json:"inferenceConfig"`
	ToolConfig                        *toolConfig      `json:"toolConfig"`
	OutputConfig                      *outputConfig    `json:"outputConfig"`
	GuardrailConfig                   json.RawMessage  `json:"guardrailConfig"`
	AdditionalModelRequestFields      json.RawMessage  `json:"additionalModelRequestFields"`
	AdditionalModelResponseFieldPaths json.RawMessage  `json:"additionalModelResponseFieldPaths"`
	PromptVariables                   json.RawMessage  `json:"promptVariables"`
	RequestMetadata                   json.RawMessage  `json:"requestMetadata"`
	PerformanceConfig                 json.RawMessage  `json:"performanceConfig"`
	ServiceTier                       json.RawMessage  `json:"serviceTier"`
}

type message struct {
	Role    string         `json:"role"`
	Content []contentBlock `json:"content"`
}

type contentBlock struct {
	Text             *string         `json:"text"`
	Image            *imageBlock     `json:"image"`
	ToolUse          *toolUseBlock   `json:"toolUse"`
	ToolResult       *toolResult     `json:"toolResult"`
	Document         json.RawMessage `json:"document"`
	Video            json.RawMessage `json:"video"`
	Audio            json.RawMessage `json:"audio"`
	GuardContent     json.RawMessage `json:"guardContent"`
	CachePoint       json.RawMessage `json:"cachePoint"`
	ReasoningContent json.RawMessage `json:"reasoningContent"`
	CitationsContent json.RawMessage `json:"citationsContent"`
	SearchResult     json.RawMessage `json:"searchResult"`
}

func (b *contentBlock) members() int {
	n := 0
	for _, set := range []bool{b.Text != nil, b.Image != nil, b.ToolUse != nil, b.ToolResult != nil,
		b.Document != nil, b.Video != nil, b.Audio != nil, b.GuardContent != nil, b.CachePoint != nil,
		b.ReasoningContent != nil, b.CitationsContent != nil, b.SearchResult != nil} {
		if set {
			n++
		}
	}
	return n
}

type imageBlock struct {
	Format string `json:"format"`
	Source struct {
		Bytes      *string         `json:"bytes"`
		S3Location json.RawMessage `json:"s3Location"`
	} `json:"source"`
}

type toolUseBlock struct {
	ToolUseID string          `json:"toolUseId"`
	Name      string          `json:"name"`
	Input     json.RawMessage `json:"input"`
	Type      string          `json:"type"`
}

type toolResult struct {
	ToolUseID string `json:"toolUseId"`
	Content   []struct {
		JSON         json.RawMessage `json:"json"`
		Text         *string         `json:"text"`
		Image        json.RawMessage `json:"image"`
		Document     json.RawMessage `json:"document"`
		Video        json.RawMessage `json:"video"`
		SearchResult json.RawMessage `json:"searchResult"`
	} `json:"content"`
	Status string `json:"status"`
	Type   string `json:"type"`
}

type systemBlock struct {
	Text         *string         `json:"text"`
	GuardContent json.RawMessage `json:"guardContent"`
	CachePoint   json.RawMessage `json:"cachePoint"`
}

type inferenceConfig struct {
	MaxTokens     *int     `json:"maxTokens"`
	Temperature   *float64 `json:"temperature"`
	TopP          *float64 `json:"topP"`
	StopSequences []string `json:"stopSequences"`
}

type toolConfig struct {
	Tools []struct {
		ToolSpec   *toolSpec       `json:"toolSpec"`
		SystemTool json.RawMessage `json:"systemTool"`
		CachePoint json.RawMessage `json:"cachePoint"`
	} `json:"tools"`
	ToolChoice *struct {
		Auto *struct{} `json:"auto"`
		Any  *struct{} `json:"any"`
		Tool *struct {
			Name string `json:"name"`
		} `json:"tool"`
	} `json:"toolChoice"`
}

type toolSpec struct {
	Name        string  `json:"name"`
	Description *string `json:"description"`
	InputSchema struct {
		JSON json.RawMessage `json:"json"`
	} `json:"inputSchema"`
	Strict *bool `json:"strict"`
}

type outputConfig struct {
	TextFormat *struct {
		Type      string `json:"type"`
		Structure struct {
			JSONSchema *struct {
				Schema      string `json:"schema"`
				Name        string `json:"name"`
				Description string `json:"description"`
			} `json:"jsonSchema"`
		} `json:"structure"`
	} `json:"textFormat"`
	Effort *string `json:"effort"`
}

var (
	toolNameRE  = regexp.MustCompile(`^[a-zA-Z0-9_-]{1,64}$`)
	toolUseIDRE = regexp.MustCompile(`^[a-zA-Z0-9_-]{1,64}$`)
)

// plan is the fully determined answer to a request.
type plan struct {
	model      string
	input      int // uncached prompt tokens
	cacheRead  int
	cacheWrite int
	prefix     *mock.Prefix // the prompt in cache order, when it has cache points
	text       []string     // text pieces, one per token
	preamble   bool         // text precedes toolUse blocks
	stopReason string
	calls      []mock.ToolCall
}

func (p *plan) outputTokens() int {
	n := len(p.text)
	for _, c := range p.calls {
		n += c.Tokens()
	}
	return n
}

// textBlocks joins the text blocks of m with "\n" (as the OpenAI mock joins
// text parts).
func textBlocks(m *message) (string, bool) {
	var sb strings.Builder
	found := false
	for _, b := range m.Content {
		if b.Text != nil {
			if found {
				sb.WriteByte('\n')
			}
			sb.WriteString(*b.Text)
			found = true
		}
	}
	return sb.String(), found
}

func resultText(t *toolResult) string {
	var sb strings.Builder
	for _, c := range t.Content {
		switch {
		case c.Text != nil:
			sb.WriteString(*c.Text)
		case c.JSON != nil:
			sb.Write(c.JSON)
		}
	}
	return sb.String()
}

// makePlan decides the answer; d holds the directives found.
func makePlan(st *state, model string, req *converseRequest, header string) (*plan, *mock.Directives, error) {
	// Prompt tokens as the OpenAI mock counts them: words, 3 per message
	// (system blocks included) and 3 for the reply's framing.
	prompt := 3
	for _, sb := range req.System {
		if sb.Text != nil {
			prompt += 3 + mock.CountWords(*sb.Text)
		}
	}
	userText := ""
	for i := range req.Messages {
		m := &req.Messages[i]
		prompt += 3
		for _, b := range m.Content {
			switch {
			case b.Text != nil:
				prompt += mock.CountWords(*b.Text)
			case b.ToolUse != nil:
				prompt += 1 + mock.CountWords(string(b.ToolUse.Input))
			case b.ToolResult != nil:
				prompt += mock.CountWords(resultText(b.ToolResult))
			}
		}
		if t, ok := textBlocks(m); ok && m.Role == "user" {
			userText = t
		}
	}
	d, err := mock.ParseDirectives(header, userText)
	if err != nil {
		return nil, nil, err
	}
	last := &req.Messages[len(req.Messages)-1]
	seed := mock.Seed(userText)
	answersTools := false
	for _, b := range last.Content {
		if b.ToolResult != nil {
			answersTools = true
			seed = mock.Mix(seed ^ mock.Seed(resultText(b.ToolResult)))
		}
	}

	p := &plan{model: model}
	p.cacheRead = min(st.cfg.CacheReadTokens, prompt)
	p.input = prompt - p.cacheRead
	if st.cfg.CacheReadTokens == 0 && hasCachePoint(req) {
		p.prefix = cachePrefix(model, req)
	}
	maxTok := 1 << 30
	var stops []string
	if ic := req.InferenceConfig; ic != nil {
		if ic.MaxTokens != nil {
			maxTok = *ic.MaxTokens
		}
		stops = ic.StopSequences
	}

	if tools := chooseTools(req.ToolConfig); len(tools) > 0 && !answersTools {
		p.stopReason = "tool_use"
		if ch := req.ToolConfig.ToolChoice; ch == nil || ch.Auto != nil {
			p.preamble = true
			p.text = mock.Answer(seed^0x5bd1e995, 3, true)
		}
		p.calls = make([]mock.ToolCall, len(tools))
		for i, t := range tools {
			p.calls[i] = mock.NewToolCall(seed, i, t.Name, t.InputSchema.JSON, "tooluse_", 22)
		}
		if p.outputTokens() > maxTok { // cut inside the answer
			p.calls, p.preamble, p.stopReason = nil, false, "max_tokens"
			p.text = mock.Answer(seed, maxTok, false)
		}
		return p, &d, nil
	}

	if oc := req.OutputConfig; oc != nil && oc.TextFormat != nil {
		doc := mock.ToolArguments(json.RawMessage(oc.TextFormat.Structure.JSONSchema.Schema), seed)
		p.text, p.stopReason = mock.Pieces(doc), "end_turn"
	} else {
		want := st.cfg.CompletionTokens
		if d.Tokens > 0 {
			want = d.Tokens
		}
		p.text, p.stopReason = mock.Answer(seed, want, true), "end_turn"
	}
	if len(p.text) > maxTok {
		p.text, p.stopReason = p.text[:maxTok], "max_tokens"
		if req.OutputConfig == nil { // regenerate: the last token has no period
			p.text = mock.Answer(seed, maxTok, false)
		}
	}
	applyStops(p, stops)
	return p, &d, nil
}

// chooseTools returns the tools to call: the named one for toolChoice
// tool, else the first two (or the only one).
func chooseTools(tc *toolConfig) []*toolSpec {
	if tc == nil {
		return nil
	}
	var specs []*toolSpec
	for _, t := range tc.Tools {
		if t.ToolSpec != nil {
			specs = append(specs, t.ToolSpec)
		}
	}
	if ch := tc.ToolChoice; ch != nil && ch.Tool != nil {
		for _, s := range specs {
			if s.Name == ch.Tool.Name {
				return []*toolSpec{s}
			}
		}
	}
	return specs[:min(len(specs), 2)]
}

// applyStops cuts the text before the first stop sequence it contains.
func applyStops(p *plan, stops []string) {
	if len(stops) == 0 || len(p.calls) > 0 {
		return
	}
	full := strings.Join(p.text, "")
	cut := -1
	for _, s := range stops {
		if k := strings.Index(full, s); k >= 0 && (cut < 0 || k < cut) {
			cut = k
		}
	}
	if cut < 0 {
		return
	}
	out, n := p.text[:0:0], 0
	for _, piece := range p.text {
		if n+len(piece) <= cut {
			out, n = append(out, piece), n+len(piece)
			continue
		}
		if rest := piece[:cut-n]; rest != "" {
			out = append(out, rest)
		}
		break
	}
	p.text, p.stopReason = out, "stop_sequence"
}

type usageJSON struct {
	InputTokens           int `json:"inputTokens"`
	OutputTokens          int `json:"outputTokens"`
	TotalTokens           int `json:"totalTokens"`
	CacheReadInputTokens  int `json:"cacheReadInputTokens,omitempty"`
	CacheWriteInputTokens int `json:"cacheWriteInputTokens,omitempty"`
}

func (p *plan) usage(output int) usageJSON {
	return usageJSON{InputTokens: p.input, OutputTokens: output, TotalTokens: p.input + p.cacheRead + p.cacheWrite + output,
		CacheReadInputTokens: p.cacheRead, CacheWriteInputTokens: p.cacheWrite}
}

type outBlock struct {
	Text    *string     `json:"text,omitempty"`
	ToolUse *outToolUse `json:"toolUse,omitempty"`
}

type outToolUse struct {
	ToolUseID string          `json:"toolUseId"`
	Name      string          `json:"name"`
	Input     json.RawMessage `json:"input"`
}

// response renders the Converse answer.
func (p *plan) response(latency time.Duration) []byte {
	content := []outBlock{}
	if len(p.calls) == 0 || p.preamble {
		t := strings.Join(p.text, "")
		content = append(content, outBlock{Text: &t})
	}
	for _, c := range p.calls {
		content = append(content, outBlock{ToolUse: &outToolUse{ToolUseID: c.ID, Name: c.Name, Input: json.RawMessage(c.Args)}})
	}
	type msg struct {
		Role    string     `json:"role"`
		Content []outBlock `json:"content"`
	}
	body, _ := json.Marshal(struct {
		Output struct {
			Message msg `json:"message"`
		} `json:"output"`
		StopReason string    `json:"stopReason"`
		Usage      usageJSON `json:"usage"`
		Metrics    struct {
			LatencyMs int64 `json:"latencyMs"`
		} `json:"metrics"`
	}{
		Output: struct {
			Message msg `json:"message"`
		}{msg{"assistant", content}},
		StopReason: p.stopReason,
		Usage:      p.usage(p.outputTokens()),
		Metrics: struct {
			LatencyMs int64 `json:"latencyMs"`
		}{latency.Milliseconds()},
	})
	return body
}

func (s *Server) handleConverse(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	s.core.Chat.Add(1)
	st := s.st.Load()
	stream := strings.HasSuffix(r.URL.Path, "/converse-stream")

	body, tooLarge, err := mock.ReadBody(w, r)
	if err != nil {
		if tooLarge {
			s.writeError(w, http.StatusRequestEntityTooLarge, "ValidationException", "Request body too large.")
			return
		}
		s.core.Canceled.Add(1)
		return
	}
	if !s.authorize(w, r, &st.cfg, body) {
		return
	}
	model := r.PathValue("modelId")
	if !st.models.Has(model) {
		s.writeError(w, http.StatusBadRequest, "ValidationException", "The provided model identifier is invalid.")
		return
	}
	var req converseRequest
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		s.writeError(w, http.StatusBadRequest, "ValidationException", "Malformed input request: "+err.Error()+", please reformat your input and try again.")
		return
	}
	if v := validate(&req); v != nil {
		s.writeError(w, http.StatusBadRequest, "ValidationException", string(*v))
		return
	}
	p, d, err := makePlan(st, model, &req, r.Header.Get(mock.DirectiveHeader))
	if err != nil {
		s.writeError(w, http.StatusBadRequest, "ValidationException", "mock: bad directive")
		return
	}

	status, reset := s.core.Roll(&st.cfg.Config, d, stream)
	if !s.core.Delay(r, &st.cfg.Config, d) {
		return
	}
	if status != 0 || d.Quota {
		s.failure(w, status, d.Quota)
		return
	}
	if p.prefix != nil {
		u := s.cache.Apply(p.prefix, mock.CacheScope(callerKey(r)), mock.ClaudeCacheMin(st.cfg.CacheMinTokens, model), cacheLookback, st.cfg.Now())
		p.input, p.cacheRead, p.cacheWrite = u.Input, u.Read, u.Write
	}
	if stream {
		s.streamConverse(w, r, start, st, p, reset, d.StreamError)
		return
	}
	if reset {
		s.core.Cut(w)
		return
	}
	out := p.response(time.Since(start))
	s.core.PromptTokens.Add(int64(p.input + p.cacheRead + p.cacheWrite))
	s.core.CompletionTokens.Add(int64(p.outputTokens()))
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(out)))
	h.Set("X-Amzn-Requestid", s.requestID())
	w.WriteHeader(http.StatusOK)
	_, err = w.Write(out)
	s.core.Answered(r, err)
}
