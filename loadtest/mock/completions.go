package mock

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// The legacy Completions API: POST /v1/completions. Each prompt (a string,
// an array of strings, of token ids or of token-id arrays) gets n choices of
// the generated text, cut by max_tokens (16 when unset, as in the API
// reference) and before the first stop sequence; echo prepends the prompt
// and logprobs adds deterministic log probabilities.

const (
	defaultCompletionMaxTokens = 16
	maxCompletionChoices       = 128
	maxCompletionLogprobs      = 5
	maxStopSequences           = 4
)

type completionRequest struct {
	Model         *string         `json:"model"`
	Prompt        json.RawMessage `json:"prompt"`
	MaxTokens     *int            `json:"max_tokens"`
	Stream        bool            `json:"stream"`
	StreamOptions *struct {
		IncludeUsage bool `json:"include_usage"`
	} `json:"stream_options"`
	Suffix   *string         `json:"suffix"`
	Echo     bool            `json:"echo"`
	Logprobs *int            `json:"logprobs"`
	N        *int            `json:"n"`
	Stop     json.RawMessage `json:"stop"`
}

// complChoice is one choice of a completion.
type complChoice struct {
	prompt int    // index of its prompt
	seed   uint64 // of its logprobs
	pieces []string
	finish string // stop or length
}

// complPlan is the fully determined answer to a completion request.
type complPlan struct {
	model        string
	prompt       int        // prompt tokens
	echo         [][]string // per prompt, its pieces when echo is set (text prompts)
	echoSeed     []uint64   // per prompt, the seed of its logprobs
	choices      []complChoice
	logprobs     int // top logprobs per token; -1 = no logprobs
	includeUsage bool
}

func (p *complPlan) tokens() int {
	t := 0
	for i := range p.choices {
		t += len(p.choices[i].pieces)
	}
	return t
}

func (s *Server) handleCompletions(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	s.core.Chat.Add(1)
	st := s.st.Load()

	var req completionRequest
	d, ok := s.begin(w, r, start, &req)
	if !ok {
		return
	}
	p, e := planCompletion(st, &req, &d)
	if e != nil {
		s.writeError(w, start, e.status, e.message, e.typ, e.param, e.code)
		return
	}

	reset, ok := s.fate(w, r, start, st, &d, req.Stream, p.model)
	if !ok {
		return
	}
	if req.Stream {
		s.streamCompletion(w, r, start, st, p, reset, &d)
		return
	}
	if reset {
		s.core.Cut(w)
		return
	}
	bp := getBuf()
	b := p.appendCompletion(*bp, s.newID("cmpl-"), start.Unix())
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

// planCompletion validates req and decides the whole answer.
func planCompletion(st *state, req *completionRequest, d *Directives) (*complPlan, *reqError) {
	if req.Model == nil || *req.Model == "" {
		return nil, badRequest("Missing required parameter: 'model'.", "model", "missing_required_parameter")
	}
	prompts, e := parseInputs(req.Prompt, "prompt", true)
	if e != nil {
		return nil, e
	}
	maxTok := defaultCompletionMaxTokens
	if req.MaxTokens != nil {
		if *req.MaxTokens < 0 {
			return nil, badRequest("Invalid 'max_tokens': integer below minimum value. Expected a value >= 0, but got "+strconv.Itoa(*req.MaxTokens)+" instead.", "max_tokens", "integer_below_min_value")
		}
		maxTok = *req.MaxTokens
	}
	n := 1
	if req.N != nil {
		if *req.N < 1 || *req.N > maxCompletionChoices {
			return nil, badRequest("Invalid 'n': expected a value between 1 and "+strconv.Itoa(maxCompletionChoices)+", but got "+strconv.Itoa(*req.N)+" instead.", "n", "invalid_value")
		}
		n = *req.N
	}
	lp := -1
	if req.Logprobs != nil {
		switch {
		case *req.Logprobs < 0:
			return nil, badRequest("Invalid 'logprobs': integer below minimum value. Expected a value >= 0, but got "+strconv.Itoa(*req.Logprobs)+" instead.", "logprobs", "integer_below_min_value")
		case *req.Logprobs > maxCompletionLogprobs:
			return nil, badRequest("Invalid 'logprobs': integer above maximum value. Expected a value <= "+strconv.Itoa(maxCompletionLogprobs)+", but got "+strconv.Itoa(*req.Logprobs)+" instead.", "logprobs", "integer_above_max_value")
		}
		lp = *req.Logprobs
	}
	stops, e := parseStop(req.Stop)
	if e != nil {
		return nil, e
	}
	model := *req.Model
	if !st.models.Has(model) {
		return nil, &reqError{status: http.StatusNotFound, message: "The model `" + model + "` does not exist or you do not have access to it.", typ: "invalid_request_error", code: "model_not_found"}
	}
	for i := range prompts {
		if !prompts[i].isTok {
			if err := d.Scan(prompts[i].text); err != nil {
				return nil, badRequest("mock: bad #mock: directive in the prompt", "prompt", "")
			}
		}
	}

	want := st.cfg.CompletionTokens
	if d.Tokens > 0 {
		want = d.Tokens
	}
	p := &complPlan{model: model, logprobs: lp, choices: make([]complChoice, 0, len(prompts)*n)}
	if req.StreamOptions != nil {
		p.includeUsage = req.StreamOptions.IncludeUsage
	}
	if req.Suffix != nil {
		p.prompt += countWords(*req.Suffix)
	}
	if req.Echo {
		p.echo = make([][]string, len(prompts))
		p.echoSeed = make([]uint64, len(prompts))
	}
	for pi := range prompts {
		in := &prompts[pi]
		p.prompt += in.tokenCount()
		seed := in.seed()
		if req.Echo && !in.isTok {
			p.echo[pi], p.echoSeed[pi] = splitWords(in.text), mix(seed^0xec40)
		}
		for j := 0; j < n; j++ {
			cs := seed
			if j > 0 {
				cs = mix(seed + uint64(j))
			}
			c := complChoice{prompt: pi, seed: mix(cs ^ 0x109b), finish: "stop"}
			k, stop := want, true
			if maxTok < want {
				k, stop, c.finish = maxTok, false, "length"
			}
			c.pieces = Answer(cs, k, stop)
			if cut, ok := cutAtStop(c.pieces, stops); ok {
				c.pieces, c.finish = cut, "stop"
			}
			p.choices = append(p.choices, c)
		}
	}
	return p, nil
}

// parseStop accepts a string or up to 4 strings.
func parseStop(raw json.RawMessage) ([]string, *reqError) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || raw[0] == 'n' {
		return nil, nil
	}
	if raw[0] == '"' {
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return nil, badRequest("Invalid type for 'stop'.", "stop", "invalid_type")
		}
		return []string{s}, nil
	}
	var list []string
	if raw[0] != '[' || json.Unmarshal(raw, &list) != nil {
		return nil, badRequest("Invalid type for 'stop': expected one of a string or array of strings.", "stop", "invalid_type")
	}
	if len(list) > maxStopSequences {
		return nil, badRequest("Invalid 'stop': array too long. Expected an array with maximum length "+strconv.Itoa(maxStopSequences)+", but got an array with length "+strconv.Itoa(len(list))+" instead.", "stop", "array_above_max_length")
	}
	return list, nil
}

// cutAtStop ends pieces before the first occurrence of a stop sequence
// (which is not part of the output); ok reports a cut.
func cutAtStop(pieces, stops []string) (out []string, ok bool) {
	if len(stops) == 0 {
		return pieces, false
	}
	full := strings.Join(pieces, "")
	at := -1
	for _, stop := range stops {
		if k := strings.Index(full, stop); stop != "" && k >= 0 && (at < 0 || k < at) {
			at = k
		}
	}
	if at < 0 {
		return pieces, false
	}
	l := 0
	for _, piece := range pieces {
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
	return out, true
}

// splitWords splits s into tokens for echo: each word with the whitespace
// before it (the first also with the whitespace that leads s, the last with
// the whitespace that ends it), so that they join to s.
func splitWords(s string) []string {
	var out []string
	start, spaceStart := 0, 0
	inSpace, seenWord := false, false
	for i, r := range s {
		if unicode.IsSpace(r) {
			if !inSpace {
				inSpace, spaceStart = true, i
			}
			continue
		}
		if inSpace && seenWord {
			out = append(out, s[start:spaceStart])
			start = spaceStart
		}
		inSpace, seenWord = false, true
	}
	if start < len(s) {
		out = append(out, s[start:])
	}
	return out
}

// appendCompletion appends a text_completion object.
func (p *complPlan) appendCompletion(b []byte, id string, created int64) []byte {
	b = append(b, `{"id":`...)
	b = appendString(b, id)
	b = append(b, `,"object":"text_completion","created":`...)
	b = appendInt(b, created)
	b = append(b, `,"model":`...)
	b = appendString(b, p.model)
	b = append(b, `,"choices":[`...)
	for i := range p.choices {
		if i > 0 {
			b = append(b, ',')
		}
		c := &p.choices[i]
		var echo []string
		if p.echo != nil {
			echo = p.echo[c.prompt]
		}
		b = append(b, `{"text":"`...)
		for _, e := range echo {
			b = appendEscaped(b, e)
		}
		for _, piece := range c.pieces {
			b = appendEscaped(b, piece)
		}
		b = append(b, `","index":`...)
		b = appendInt(b, int64(i))
		b = append(b, `,"logprobs":`...)
		if p.logprobs < 0 {
			b = append(b, "null"...)
		} else {
			runs := [2]lpRun{{pieces: c.pieces, seed: c.seed}}
			k := 1
			if len(echo) > 0 {
				runs = [2]lpRun{{pieces: echo, seed: p.echoSeed[c.prompt], nullFirst: true}, runs[0]}
				k = 2
			}
			b = appendLogprobs(b, runs[:k], 0, p.logprobs)
		}
		b = append(b, `,"finish_reason":`...)
		b = appendString(b, c.finish)
		b = append(b, '}')
	}
	b = append(b, `],"usage":`...)
	return append(p.appendUsage(b), '}')
}

func (p *complPlan) appendUsage(b []byte) []byte {
	t := p.tokens()
	b = append(b, `{"prompt_tokens":`...)
	b = appendInt(b, int64(p.prompt))
	b = append(b, `,"completion_tokens":`...)
	b = appendInt(b, int64(t))
	b = append(b, `,"total_tokens":`...)
	b = appendInt(b, int64(p.prompt+t))
	return append(b, '}')
}

// lpRun is a run of tokens of a logprobs object: pieces[0] is token first
// of its text (which numbers the deterministic values); the first token of
// an echoed prompt has no logprob (nullFirst).
type lpRun struct {
	pieces    []string
	seed      uint64
	first     int
	nullFirst bool
}

// logprob is the deterministic log probability of token i of a text.
func logprob(seed uint64, i int) float64 {
	return -float64(mix(seed+uint64(i)*0x9e3779b97f4a7c15)%2000+1) / 1000
}

// appendLogprobs appends a legacy logprobs object for the tokens of runs,
// the first one at text offset offset, with top k alternatives per token
// (top_logprobs is null when k is 0).
func appendLogprobs(b []byte, runs []lpRun, offset, k int) []byte {
	isNull := func(r *lpRun, i int) bool { return r.nullFirst && r.first+i == 0 }
	b = append(b, `{"tokens":[`...)
	sep := false
	for ri := range runs {
		for _, t := range runs[ri].pieces {
			if sep {
				b = append(b, ',')
			}
			sep = true
			b = appendString(b, t)
		}
	}
	b = append(b, `],"token_logprobs":[`...)
	sep = false
	for ri := range runs {
		r := &runs[ri]
		for i := range r.pieces {
			if sep {
				b = append(b, ',')
			}
			sep = true
			if isNull(r, i) {
				b = append(b, "null"...)
			} else {
				b = strconv.AppendFloat(b, logprob(r.seed, r.first+i), 'f', -1, 64)
			}
		}
	}
	b = append(b, `],"top_logprobs":`...)
	if k == 0 {
		b = append(b, "null"...)
	} else {
		b = append(b, '[')
		sep = false
		for ri := range runs {
			r := &runs[ri]
			for i, t := range r.pieces {
				if sep {
					b = append(b, ',')
				}
				sep = true
				if isNull(r, i) {
					b = append(b, "null"...)
					continue
				}
				b = appendTopLogprobs(b, t, r.seed, r.first+i, k)
			}
		}
		b = append(b, ']')
	}
	b = append(b, `,"text_offset":[`...)
	sep = false
	for ri := range runs {
		for _, t := range runs[ri].pieces {
			if sep {
				b = append(b, ',')
			}
			sep = true
			b = appendInt(b, int64(offset))
			offset += len(t)
		}
	}
	return append(b, "]}"...)
}

// appendTopLogprobs appends the k most likely tokens at position i: the
// sampled token t, then k-1 words of the vocabulary, less likely.
func appendTopLogprobs(b []byte, t string, seed uint64, i, k int) []byte {
	lp := logprob(seed, i)
	b = append(b, '{')
	b = appendString(b, t)
	b = append(b, ':')
	b = strconv.AppendFloat(b, lp, 'f', -1, 64)
	w := mix(seed ^ uint64(i))
	var used [maxCompletionLogprobs]string
	for j, n := 1, 1; n < k && j < 4*len(vocabulary); j++ {
		alt := tokNext[(w+uint64(j))%uint64(len(vocabulary))]
		dup := alt == t
		for _, u := range used[:n-1] {
			dup = dup || u == alt
		}
		if dup {
			continue
		}
		used[n-1] = alt
		n++
		b = append(b, ',')
		b = appendString(b, alt)
		b = append(b, ':')
		b = strconv.AppendFloat(b, lp-float64(n-1)*0.75, 'f', -1, 64)
	}
	return append(b, '}')
}

func (s *Server) streamCompletion(w http.ResponseWriter, r *http.Request, start time.Time, st *state, p *complPlan, reset bool, d *Directives) {
	h := w.Header()
	h["Content-Type"] = hdrEventStream
	h["Cache-Control"] = hdrNoCache
	h["Connection"] = hdrKeepAlive
	s.writeHead(w, start, http.StatusOK, p.prompt+p.tokens(), 0)

	head := make([]byte, 0, 128+len(p.model))
	head = append(head, `data: {"id":`...)
	head = appendString(head, s.newID("cmpl-"))
	head = append(head, `,"object":"text_completion","created":`...)
	head = appendInt(head, start.Unix())
	head = append(head, `,"model":`...)
	head = appendString(head, p.model)
	head = append(head, `,"choices":[`...)

	cw := &chunkWriter{
		Stream: s.core.Stream(w, r, st.cfg.TokensPerSec, p.prompt),
		head:   head, usageNull: p.includeUsage, buf: getBuf(),
	}
	cw.Fault(eventsBeforeFault, reset, d)
	defer putBuf(cw.buf)

	if completionBody(cw, st, p) {
		b := append((*cw.buf)[:0], cw.head...)
		if p.includeUsage {
			b = append(b, `],"usage":`...)
			b = p.appendUsage(b)
			b = append(b, "}\n\n"...)
			b = append(b, "data: [DONE]\n\n"...)
		} else {
			b = append(b[:0], "data: [DONE]\n\n"...)
		}
		cw.emit(b, 0)
	}
	cw.Finish(midStreamError)
}

// completionBody sends the chunks of every choice in turn: the echoed
// prompt (when echo), the text in chunks of ChunkTokens, then an empty
// text with the finish reason.
func completionBody(cw *chunkWriter, st *state, p *complPlan) bool {
	chunk := st.cfg.ChunkTokens
	for ci := range p.choices {
		c := &p.choices[ci]
		var echo []string
		if p.echo != nil {
			echo = p.echo[c.prompt]
		}
		offset := 0
		if len(echo) > 0 {
			b := completionChunk(cw, ci, echo)
			if p.logprobs >= 0 {
				b = appendLogprobs(b, []lpRun{{pieces: echo, seed: p.echoSeed[c.prompt], nullFirst: true}}, 0, p.logprobs)
			} else {
				b = append(b, "null"...)
			}
			if !cw.emit(cw.endChoice(b, ""), 0) {
				return false
			}
			for _, e := range echo {
				offset += len(e)
			}
		}
		for i := 0; i < len(c.pieces); i += chunk {
			j := min(i+chunk, len(c.pieces))
			b := completionChunk(cw, ci, c.pieces[i:j])
			if p.logprobs >= 0 {
				b = appendLogprobs(b, []lpRun{{pieces: c.pieces[i:j], seed: c.seed, first: i}}, offset, p.logprobs)
			} else {
				b = append(b, "null"...)
			}
			for _, piece := range c.pieces[i:j] {
				offset += len(piece)
			}
			if !cw.emit(cw.endChoice(b, ""), j-i) {
				return false
			}
		}
		b := completionChunk(cw, ci, nil)
		b = append(b, "null"...)
		if !cw.emit(cw.endChoice(b, c.finish), 0) {
			return false
		}
	}
	return true
}

// completionChunk starts a chunk of choice i with text pieces, up to its
// logprobs value.
func completionChunk(cw *chunkWriter, i int, pieces []string) []byte {
	b := append((*cw.buf)[:0], cw.head...)
	b = append(b, `{"text":"`...)
	for _, piece := range pieces {
		b = appendEscaped(b, piece)
	}
	b = append(b, `","index":`...)
	b = appendInt(b, int64(i))
	return append(b, `,"logprobs":`...)
}
