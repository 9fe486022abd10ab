package gemini

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
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
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil {
		return 0, ""
	}
	var mbe *http.MaxBytesError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &mbe):
		return http.StatusRequestEntityTooLarge, "Request payload size exceeds the limit: " + strconv.Itoa(maxBodyBytes) + " bytes."
	case errors.Is(err, io.EOF):
		return http.StatusBadRequest, "Invalid JSON payload received. Expected a value."
	case errors.As(err, &te):
		return http.StatusBadRequest, "Invalid value at '" + te.Field + "' (" + te.Value + "): wrong type."
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return http.StatusBadRequest, "Invalid JSON payload received. Unknown name " + strings.TrimPrefix(err.Error(), "json: unknown field ") + ": Cannot find field."
	}
	return http.StatusBadRequest, "Invalid JSON payload received. Unexpected token."
}

// Thought signatures the mock issues: "xrmock1" + 8 bytes bound to the
// function name + deterministic filler, 48 bytes (64 base64 characters,
// with '+' and '/' likely, like real signatures).
const sigPrefix = "xrmock1"

func signatureFor(name string) string {
	b := make([]byte, 48)
	copy(b, sigPrefix)
	h := mock.Mix(mock.Seed(name) ^ 0x5167a7e5)
	binary.BigEndian.PutUint64(b[7:], h)
	for i := 15; i < len(b); i += 8 {
		h = mock.Mix(h)
		var x [8]byte
		binary.BigEndian.PutUint64(x[:], h)
		copy(b[i:], x[:])
	}
	return base64.StdEncoding.EncodeToString(b)
}

// Dummy signatures Google documents for function calls Gemini did not
// produce; they skip validation.
func isDummySignature(s string) bool {
	return s == "skip_thought_signature_validator" || s == "context_engineering_is_the_way_to_go"
}

func validSignature(sig, name string) bool {
	if isDummySignature(sig) {
		return true
	}
	want, _ := base64.StdEncoding.DecodeString(signatureFor(name))
	s := strings.TrimRight(sig, "=")
	got, err := base64.RawStdEncoding.DecodeString(s)
	if err != nil {
		got, err = base64.RawURLEncoding.DecodeString(s)
	}
	return err == nil && bytes.Equal(got, want)
}

func isFunctionResponseTurn(c *content) bool {
	if c.Role != "user" && c.Role != "" {
		return false
	}
	for i := range c.Parts {
		if c.Parts[i].FunctionResponse != nil {
			return true
		}
	}
	return false
}

func countCalls(c *content) (calls []string) {
	for i := range c.Parts {
		if fc := c.Parts[i].FunctionCall; fc != nil {
			calls = append(calls, fc.Name)
		}
	}
	return calls
}

// validate checks a request as Gemini does; it returns Gemini's message.
func validate(req *generateRequest) string { return check(req, true) }

// check validates req, with the thought signatures of function calls when
// signatures is set (countTokens does not check them).
func check(req *generateRequest, signatures bool) string {
	if len(req.Contents) == 0 {
		return "* GenerateContentRequest.contents: contents is not specified\n"
	}
	for i := range req.Contents {
		c := &req.Contents[i]
		field := "GenerateContentRequest.contents[" + strconv.Itoa(i) + "]"
		if c.Role != "" && c.Role != "user" && c.Role != "model" {
			return "Please use a valid role: user, model."
		}
		if len(c.Parts) == 0 {
			return "* " + field + ".parts: contents.parts must not be empty.\n"
		}
		for j := range c.Parts {
			if msg := validatePart(&c.Parts[j], field+".parts["+strconv.Itoa(j)+"]"); msg != "" {
				return msg
			}
		}
		if calls := countCalls(c); len(calls) > 0 {
			if c.Role != "model" {
				return "Please ensure that function call turns come from the model role."
			}
			if i == 0 || (req.Contents[i-1].Role != "user" && req.Contents[i-1].Role != "") {
				return "Please ensure that function call turn comes immediately after a user turn or after a function response turn."
			}
		}
		if isFunctionResponseTurn(c) {
			var prev []string
			if i > 0 && req.Contents[i-1].Role == "model" {
				prev = countCalls(&req.Contents[i-1])
			}
			n := 0
			for j := range c.Parts {
				if fr := c.Parts[j].FunctionResponse; fr != nil {
					n++
					found := false
					for _, name := range prev {
						found = found || name == fr.Name
					}
					if !found {
						return "Please ensure that function response turn comes immediately after a function call turn, and that each function response names a function called in it."
					}
					if r := bytes.TrimSpace(fr.Response); len(r) == 0 || r[0] != '{' {
						return "Invalid value at '" + field + ".parts[" + strconv.Itoa(j) + "].function_response.response' (type.googleapis.com/google.protobuf.Struct), expected an object."
					}
				}
			}
			if n != len(prev) {
				return "Please ensure that the number of function response parts is equal to the number of function call parts of the function call turn."
			}
		}
	}
	if signatures {
		if msg := validateSignatures(req.Contents); msg != "" {
			return msg
		}
	}
	for i := range req.Tools {
		for j, d := range req.Tools[i].FunctionDeclarations {
			field := "GenerateContentRequest.tools[" + strconv.Itoa(i) + "].function_declarations[" + strconv.Itoa(j) + "]"
			if d.Name == "" {
				return "* " + field + ".name: [FIELD_INVALID] Invalid function name. Must start with a letter or an underscore. Must be a-z, A-Z, 0-9, or contain underscores, dots, colons and dashes, with a maximum length of 64.\n"
			}
			if len(d.Parameters) > 0 && len(d.ParametersJSONSchema) > 0 {
				return "* " + field + ": parameters and parameters_json_schema are mutually exclusive.\n"
			}
		}
	}
	if tc := req.ToolConfig; tc != nil && tc.FunctionCallingConfig != nil {
		fc := tc.FunctionCallingConfig
		switch fc.Mode {
		case "", "MODE_UNSPECIFIED", "AUTO", "ANY", "NONE", "VALIDATED":
		default:
			return "Invalid value at 'tool_config.function_calling_config.mode' (type.googleapis.com/google.ai.generativelanguage.v1beta.FunctionCallingConfig.Mode), \"" + fc.Mode + "\""
		}
		if len(fc.AllowedFunctionNames) > 0 && fc.Mode != "ANY" && fc.Mode != "VALIDATED" {
			return "* GenerateContentRequest.tool_config.function_calling_config.allowed_function_names: allowed_function_names may only be set when mode is ANY or VALIDATED.\n"
		}
		for _, name := range fc.AllowedFunctionNames {
			if findDecl(req.Tools, name) == nil {
				return "* GenerateContentRequest.tool_config.function_calling_config.allowed_function_names: function " + name + " is not declared.\n"
			}
		}
	}
	if gc := req.GenerationConfig; gc != nil {
		if gc.CandidateCount != nil && *gc.CandidateCount > 1 {
			return "Multiple candidates is not enabled for this model."
		}
		if gc.MaxOutputTokens != nil && *gc.MaxOutputTokens < 0 {
			return "* GenerateContentRequest.generation_config.max_output_tokens: max_output_tokens must be positive.\n"
		}
		if len(gc.ResponseSchema) > 0 && len(gc.ResponseJSONSchema) > 0 {
			return "* GenerateContentRequest.generation_config: response_schema and response_json_schema are mutually exclusive.\n"
		}
		if (len(gc.ResponseSchema) > 0 || len(gc.ResponseJSONSchema) > 0) && gc.ResponseMimeType != "application/json" && gc.ResponseMimeType != "text/x.enum" {
			return "* GenerateContentRequest.generation_config.response_mime_type: response_mime_type must be application/json when a response schema is set.\n"
		}
		switch gc.ResponseMimeType {
		case "", "text/plain", "application/json", "text/x.enum":
		default:
			return "* GenerateContentRequest.generation_config.response_mime_type: allowed mimetypes are `text/plain`, `application/json`, `application/xml`, `application/yaml` and `text/x.enum`.\n"
		}
		if tc := gc.ThinkingConfig; tc != nil {
			if tc.ThinkingBudget != nil && tc.ThinkingLevel != "" {
				return "You cannot use both thinking_level and the legacy thinking_budget parameter in the same request."
			}
			if tc.ThinkingBudget != nil && *tc.ThinkingBudget < -1 {
				return "* GenerateContentRequest.generation_config.thinking_config.thinking_budget: thinking_budget must be -1 (dynamic), 0 (off) or a positive number of tokens.\n"
			}
			if _, ok := thinkingLevels[strings.ToLower(tc.ThinkingLevel)]; tc.ThinkingLevel != "" && !ok {
				return "Invalid value at 'generation_config.thinking_config.thinking_level' (type.googleapis.com/google.ai.generativelanguage.v1beta.ThinkingConfig.ThinkingLevel), \"" + tc.ThinkingLevel + "\""
			}
		}
	}
	return ""
}

func validatePart(p *part, field string) string {
	n := 0
	for _, set := range []bool{p.Text != nil, p.InlineData != nil, p.FileData != nil, p.FunctionCall != nil,
		p.FunctionResponse != nil, len(p.ExecutableCode) > 0, len(p.CodeExecutionResult) > 0} {
		if set {
			n++
		}
	}
	if n != 1 {
		return "* " + field + ".data: required oneof field 'data' must have one initialized field\n"
	}
	switch {
	case p.InlineData != nil:
		if p.InlineData.MimeType == "" {
			return "* " + field + ".inline_data.mime_type: mime_type is required\n"
		}
		if _, err := base64.StdEncoding.DecodeString(p.InlineData.Data); err != nil {
			if _, err := base64.URLEncoding.DecodeString(p.InlineData.Data); err != nil {
				return "Invalid value at '" + field + ".inline_data.data' (TYPE_BYTES), Base64 decoding failed"
			}
		}
	case p.FileData != nil:
		if p.FileData.FileURI == "" {
			return "* " + field + ".file_data.file_uri: file_uri is required\n"
		}
		if p.FileData.MimeType == "" {
			return "* " + field + ".file_data.mime_type: mime_type is required\n"
		}
	case p.FunctionCall != nil:
		if p.FunctionCall.Name == "" {
			return "* " + field + ".function_call.name: name is required\n"
		}
		if a := bytes.TrimSpace(p.FunctionCall.Args); len(a) > 0 && a[0] != '{' && !bytes.Equal(a, []byte("null")) {
			return "Invalid value at '" + field + ".function_call.args' (type.googleapis.com/google.protobuf.Struct), expected an object."
		}
	case p.FunctionResponse != nil:
		if p.FunctionResponse.Name == "" {
			return "* " + field + ".function_response.name: name is required\n"
		}
	}
	return ""
}

// validateSignatures applies Gemini 3's rule: the current turn starts at
// the last user content with a part other than a function response; in it,
// the first functionCall part of every model step must carry its
// signature. Any signature present must be one the mock issued for that
// function (or a documented dummy).
func validateSignatures(contents []content) string {
	start := 0
	for i := len(contents) - 1; i >= 0; i-- {
		c := &contents[i]
		if c.Role == "model" {
			continue
		}
		text := false
		for j := range c.Parts {
			text = text || c.Parts[j].FunctionResponse == nil
		}
		if text {
			start = i + 1
			break
		}
	}
	for i := range contents {
		c := &contents[i]
		if c.Role != "model" {
			continue
		}
		first := true
		for j := range c.Parts {
			p := &c.Parts[j]
			if p.FunctionCall == nil {
				continue
			}
			if p.ThoughtSignature != "" && !validSignature(p.ThoughtSignature, p.FunctionCall.Name) {
				return "Corrupted thought signature."
			}
			if first && i >= start && p.ThoughtSignature == "" {
				return "Function call is missing a thought_signature in functionCall parts. This is required for tools to work correctly, and missing thought_signature may lead to degraded model performance. Additional data, function call `default_api:" +
					p.FunctionCall.Name + "` , position " + strconv.Itoa(j+1) + ". Please refer to https://ai.google.dev/gemini-api/docs/thought-signatures for more details."
			}
			first = false
		}
	}
	return ""
}

func findDecl(tools []tool, name string) *functionDeclaration {
	for i := range tools {
		for j := range tools[i].FunctionDeclarations {
			if tools[i].FunctionDeclarations[j].Name == name {
				return &tools[i].FunctionDeclarations[j]
			}
		}
	}
	return nil
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
