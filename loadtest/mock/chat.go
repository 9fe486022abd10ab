package mock

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

type chatRequest struct {
	Model         *string       `json:"model"`
	Messages      []chatMessage `json:"messages"`
	Stream        bool          `json:"stream"`
	StreamOptions *struct {
		IncludeUsage bool `json:"include_usage"`
	} `json:"stream_options"`
	MaxTokens            *int            `json:"max_tokens"`
	MaxCompletionTokens  *int            `json:"max_completion_tokens"`
	Tools                []chatTool      `json:"tools"`
	ToolChoice           json.RawMessage `json:"tool_choice"`
	ParallelToolCalls    *bool           `json:"parallel_tool_calls"`
	PromptCacheKey       *string         `json:"prompt_cache_key"`
	PromptCacheRetention *string         `json:"prompt_cache_retention"`
	ResponseFormat       *struct {
		Type       string          `json:"type"`
		JSONSchema json.RawMessage `json:"json_schema"`
	} `json:"response_format"`
}

type chatMessage struct {
	Role      string      `json:"role"`
	Content   textContent `json:"content"`
	ToolCalls []struct {
		Function struct {
			Name      string `json:"name"`
			Arguments string `json:"arguments"`
		} `json:"function"`
	} `json:"tool_calls"`
}

type chatTool struct {
	Type     string `json:"type"`
	Function struct {
		Name       string          `json:"name"`
		Parameters json.RawMessage `json:"parameters"`
	} `json:"function"`
}

// textContent is a message content: a string, an array of parts (the text
// parts are joined with "\n") or null.
type textContent struct{ text string }

func (c *textContent) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		return nil
	}
	switch b[0] {
	case '"':
		return json.Unmarshal(b, &c.text)
	case 'n':
		c.text = ""
		return nil
	case '[':
		var parts []struct {
			Type string `json:"type"`
			Text string `json:"text"`
		}
		if err := json.Unmarshal(b, &parts); err != nil {
			return err
		}
		var sb strings.Builder
		for _, p := range parts {
			if p.Text == "" {
				continue
			}
			if sb.Len() > 0 {
				sb.WriteByte('\n')
			}
			sb.WriteString(p.Text)
		}
		c.text = sb.String()
		return nil
	}
	return &json.UnmarshalTypeError{Value: "content", Type: reflect.TypeFor[string]()}
}

// reqError is a 400-class validation failure.
type reqError struct {
	status                    int
	message, typ, param, code string
}

func badRequest(message, param, code string) *reqError {
	return &reqError{status: http.StatusBadRequest, message: message, typ: "invalid_request_error", param: param, code: code}
}

// decodeBody decodes the JSON body of r into v, mapping errors to OpenAI's.
func decodeBody(r *http.Request, w http.ResponseWriter, v any) *reqError {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	err := dec.Decode(v)
	if err == nil {
		return nil
	}
	var te *json.UnmarshalTypeError
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &te):
		field := te.Field
		if field == "" {
			return badRequest("We could not parse the JSON body of your request. The OpenAI API expects a JSON object.", "", "")
		}
		return badRequest("Invalid type for '"+field+"'.", field, "invalid_type")
	case errors.As(err, &mbe):
		return &reqError{status: http.StatusRequestEntityTooLarge, message: "Request body too large.", typ: "invalid_request_error"}
	case errors.Is(err, io.EOF):
		return badRequest("We could not parse the JSON body of your request. (HINT: This likely means you aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was empty.)", "", "")
	}
	return badRequest("We could not parse the JSON body of your request. (HINT: This likely means you aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid JSON. If you have trouble figuring out how to fix this, please contact us through our help center at help.openai.com.)", "", "")
}

// chatPlan is the fully determined answer to a chat request.
type chatPlan struct {
	model        string
	prompt       int    // prompt tokens
	seed         uint64 // text generator seed
	text         answer // the content (when no tool calls)
	finish       string // stop, length or tool_calls
	calls        []ToolCall
	includeUsage bool
	usage        string      // the usage= directive
	auto         *AutoHasher // the prompt's prefixes when it is cacheable
	cached       int         // prompt tokens read from the prompt cache
}

// tokens returns the completion tokens of the full answer.
func (p *chatPlan) tokens() int {
	if len(p.calls) == 0 {
		return p.text.n
	}
	t := 0
	for _, c := range p.calls {
		t += c.Tokens()
	}
	return t
}

// begin reads the directives of the X-Mock-Directive header, then decodes
// the JSON body of r into v; it reports false after writing a 400.
func (s *Server) begin(w http.ResponseWriter, r *http.Request, start time.Time, v any) (Directives, bool) {
	var d Directives
	if h := r.Header.Get(DirectiveHeader); h != "" {
		if err := d.Parse(h); err != nil {
			s.writeError(w, start, http.StatusBadRequest, "mock: bad "+DirectiveHeader+" header: "+h, "invalid_request_error", "", "")
			return d, false
		}
	}
	if e := decodeBody(r, w, v); e != nil {
		s.writeError(w, start, e.status, e.message, e.typ, e.param, e.code)
		return d, false
	}
	return d, true
}

func (s *Server) handleChat(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	s.core.Chat.Add(1)
	st := s.st.Load()

	var req chatRequest
	d, ok := s.begin(w, r, start, &req)
	if !ok {
		return
	}
	p, e := s.planChat(st, &req, &d)
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
		s.streamChat(w, r, start, st, p, reset, &d)
		return
	}
	if reset {
		s.core.Cut(w)
		return
	}
	bp := getBuf()
	b := appendCompletion(*bp, s.newID("chatcmpl-"), start.Unix(), p)
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

// planChat validates req and decides the whole answer.
func (s *Server) planChat(st *state, req *chatRequest, d *Directives) (*chatPlan, *reqError) {
	if req.Model == nil || *req.Model == "" {
		return nil, badRequest("Missing required parameter: 'model'.", "model", "missing_required_parameter")
	}
	if req.Messages == nil {
		return nil, badRequest("Missing required parameter: 'messages'.", "messages", "missing_required_parameter")
	}
	if len(req.Messages) == 0 {
		return nil, badRequest("Invalid 'messages': empty array. Expected an array with minimum length 1, but got an empty array instead.", "messages", "empty_array")
	}
	for i := range req.Messages {
		if req.Messages[i].Role == "" {
			param := "messages[" + strconv.Itoa(i) + "].role"
			return nil, badRequest("Missing required parameter: '"+param+"'.", param, "missing_required_parameter")
		}
	}
	maxTok := 0
	if req.MaxCompletionTokens != nil {
		if *req.MaxCompletionTokens < 1 {
			return nil, badRequest("Invalid 'max_completion_tokens': integer below minimum value. Expected a value >= 1, but got "+strconv.Itoa(*req.MaxCompletionTokens)+" instead.", "max_completion_tokens", "integer_below_min_value")
		}
		maxTok = *req.MaxCompletionTokens
	} else if req.MaxTokens != nil {
		if *req.MaxTokens < 1 {
			return nil, badRequest("Invalid 'max_tokens': integer below minimum value. Expected a value >= 1, but got "+strconv.Itoa(*req.MaxTokens)+" instead.", "max_tokens", "integer_below_min_value")
		}
		maxTok = *req.MaxTokens
	}
	model := *req.Model
	if !st.models.Has(model) {
		return nil, &reqError{status: http.StatusNotFound, message: "The model `" + model + "` does not exist or you do not have access to it.", typ: "invalid_request_error", code: "model_not_found"}
	}
	format, e := chatFormat(req)
	if e != nil {
		return nil, e
	}

	// Prompt tokens: words of every content (and tool-call arguments), 3 per
	// message and 3 for the reply's framing.
	prompt := 3
	lastUser := -1
	for i := range req.Messages {
		m := &req.Messages[i]
		prompt += 3 + countWords(m.Content.text)
		for _, tc := range m.ToolCalls {
			prompt += 1 + countWords(tc.Function.Arguments)
		}
		if m.Role == "user" {
			lastUser = i
		}
	}
	last := &req.Messages[len(req.Messages)-1]
	userText := last.Content.text
	if lastUser >= 0 {
		userText = req.Messages[lastUser].Content.text
		if err := d.Scan(userText); err != nil {
			return nil, badRequest("mock: bad #mock: directive in the last user message", "messages", "")
		}
	}
	seed := hashString(userText)
	if last.Role == "tool" {
		seed = mix(seed ^ hashString(last.Content.text))
	}

	p := &chatPlan{model: model, prompt: prompt, seed: seed, usage: d.Usage}
	if prompt >= AutoCacheMin {
		p.auto = hashChat(req)
	}
	if req.StreamOptions != nil {
		p.includeUsage = req.StreamOptions.IncludeUsage
	}

	calls, e := chooseTools(req)
	if e != nil {
		return nil, e
	}
	if i, ok := d.Called(len(req.Tools), func(i int) string { return req.Tools[i].Function.Name }); ok {
		calls = []*chatTool{&req.Tools[i]}
	}
	if len(calls) > 0 && last.Role != "tool" {
		p.finish = "tool_calls"
		p.calls = make([]ToolCall, len(calls))
		for i, t := range calls {
			p.calls[i] = NewToolCall(seed, i, t.Function.Name, t.Function.Parameters, "call_", 24)
			d.SetArgs(&p.calls[i])
		}
		return p, nil
	}

	want := st.cfg.CompletionTokens
	if d.Tokens > 0 {
		want = d.Tokens
	}
	var cut bool
	if format.kind != "" {
		p.text, cut = docAnswer(format.doc(seed, want), maxTok)
	} else {
		p.text, cut = wordAnswer(seed, want, maxTok)
	}
	p.finish = "stop"
	if cut {
		p.finish = "length"
	}
	return p, nil
}

// chatFormat validates response_format: text, json_object (some message
// must say "json", as OpenAI requires) or json_schema.
func chatFormat(req *chatRequest) (jsonFormat, *reqError) {
	rf := req.ResponseFormat
	if rf == nil {
		return jsonFormat{}, nil
	}
	switch rf.Type {
	case "text":
		return jsonFormat{}, nil
	case "json_object":
		for i := range req.Messages {
			if containsJSONWord(req.Messages[i].Content.text) {
				return jsonFormat{kind: rf.Type}, nil
			}
		}
		return jsonFormat{}, badRequest("'messages' must contain the word 'json' in some form, to use 'response_format' of type 'json_object'.", "messages", "")
	case "json_schema":
		js := bytes.TrimSpace(rf.JSONSchema)
		if len(js) == 0 || js[0] == 'n' {
			return jsonFormat{}, badRequest("Missing required parameter: 'response_format.json_schema'.", "response_format.json_schema", "missing_required_parameter")
		}
		var spec struct {
			Name   *string         `json:"name"`
			Schema json.RawMessage `json:"schema"`
		}
		if json.Unmarshal(js, &spec) != nil {
			return jsonFormat{}, badRequest("Invalid type for 'response_format.json_schema': expected an object.", "response_format.json_schema", "invalid_type")
		}
		if spec.Name == nil || *spec.Name == "" {
			return jsonFormat{}, badRequest("Missing required parameter: 'response_format.json_schema.name'.", "response_format.json_schema.name", "missing_required_parameter")
		}
		return jsonFormat{kind: rf.Type, schema: spec.Schema}, nil
	case "":
		return jsonFormat{}, badRequest("Missing required parameter: 'response_format.type'.", "response_format.type", "missing_required_parameter")
	}
	return jsonFormat{}, badRequest("Invalid value: '"+rf.Type+"'. Supported values are: 'json_object', 'json_schema', and 'text'.", "response_format.type", "invalid_value")
}

// chooseTools returns the tools to call: none when there are no function
// tools or tool_choice is "none"; the named one for a named tool_choice;
// else the first two when parallel calls are allowed, or the first one.
func chooseTools(req *chatRequest) ([]*chatTool, *reqError) {
	var fns []*chatTool
	for i := range req.Tools {
		t := &req.Tools[i]
		if (t.Type == "function" || t.Type == "") && t.Function.Name != "" {
			fns = append(fns, t)
		}
	}
	if len(fns) == 0 {
		return nil, nil
	}
	choice := bytes.TrimSpace(req.ToolChoice)
	if len(choice) > 0 && choice[0] == '"' {
		var c string
		if err := json.Unmarshal(choice, &c); err != nil {
			return nil, badRequest("Invalid value for 'tool_choice'.", "tool_choice", "invalid_value")
		}
		switch c {
		case "none":
			return nil, nil
		case "auto", "required":
		default:
			return nil, badRequest("Invalid value: '"+c+"'. Supported values are: 'none', 'auto', and 'required'.", "tool_choice", "invalid_value")
		}
	} else if len(choice) > 0 && choice[0] == '{' {
		var c struct {
			Type     string `json:"type"`
			Function struct {
				Name string `json:"name"`
			} `json:"function"`
		}
		if err := json.Unmarshal(choice, &c); err != nil {
			return nil, badRequest("Invalid value for 'tool_choice'.", "tool_choice", "invalid_value")
		}
		if c.Type == "function" && c.Function.Name != "" {
			for _, t := range fns {
				if t.Function.Name == c.Function.Name {
					return []*chatTool{t}, nil
				}
			}
			return nil, badRequest("Invalid value for 'tool_choice': tool '"+c.Function.Name+"' not found in 'tools'.", "tool_choice", "invalid_value")
		}
	}
	if len(fns) >= 2 && (req.ParallelToolCalls == nil || *req.ParallelToolCalls) {
		return fns[:2], nil
	}
	return fns[:1], nil
}

// appendCompletion appends a chat.completion object.
func appendCompletion(b []byte, id string, created int64, p *chatPlan) []byte {
	b = append(b, `{"id":`...)
	b = appendString(b, id)
	b = append(b, `,"object":"chat.completion","created":`...)
	b = appendInt(b, created)
	b = append(b, `,"model":`...)
	b = appendString(b, p.model)
	b = append(b, `,"choices":[{"index":0,"message":{"role":"assistant","content":`...)
	if len(p.calls) > 0 {
		b = append(b, `null,"refusal":null,"annotations":[],"tool_calls":[`...)
		for i := range p.calls {
			if i > 0 {
				b = append(b, ',')
			}
			c := &p.calls[i]
			b = append(b, `{"id":`...)
			b = appendString(b, c.ID)
			b = append(b, `,"type":"function","function":{"name":`...)
			b = appendString(b, c.Name)
			b = append(b, `,"arguments":`...)
			b = appendString(b, c.Args)
			b = append(b, "}}"...)
		}
		b = append(b, ']')
	} else {
		b = p.text.appendText(b)
		b = append(b, `,"refusal":null,"annotations":[]`...)
	}
	b = append(b, `},"logprobs":null,"finish_reason":`...)
	b = appendString(b, p.finish)
	b = append(b, `}]`...)
	if p.usage != "omit" {
		b = append(b, `,"usage":`...)
		b = appendUsageAs(b, p.usage, p.prompt, p.cached, p.tokens())
	}
	b = append(b, `,"service_tier":"default","system_fingerprint":"fp_mock"}`...)
	return b
}

// hashChat hashes the prompt of req in the order and units planChat
// counts it: per message 3 tokens of framing, the words of its content, 1
// token and the argument words per tool call; then the reply's 3.
func hashChat(req *chatRequest) *AutoHasher {
	h := &AutoHasher{}
	if len(req.Tools) > 0 {
		b, _ := json.Marshal(req.Tools)
		h.Tools(b)
	}
	for i := range req.Messages {
		m := &req.Messages[i]
		h.Token("\x00" + m.Role)
		h.Token("\x01")
		h.Token("\x02")
		h.Words(m.Content.text)
		for _, tc := range m.ToolCalls {
			h.Token("\x03" + tc.Function.Name)
			h.Words(tc.Function.Arguments)
		}
	}
	h.Token("\x04")
	h.Token("\x05")
	h.Token("\x06")
	return h
}

// countWords counts whitespace-separated words.
func countWords(s string) int {
	n, in := 0, false
	for i := 0; i < len(s); {
		c := s[i]
		var space bool
		if c < utf8.RuneSelf {
			space = c == ' ' || c == '\n' || c == '\t' || c == '\r' || c == '\v' || c == '\f'
			i++
		} else {
			r, size := utf8.DecodeRuneInString(s[i:])
			space = unicode.IsSpace(r)
			i += size
		}
		if space {
			in = false
		} else if !in {
			in = true
			n++
		}
	}
	return n
}

// hashString is FNV-1a 64.
func hashString(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return h
}
