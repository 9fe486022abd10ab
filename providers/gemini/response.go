package gemini

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"

	"github.com/xroute/xroute/providers"
	"github.com/xroute/xroute/providers/sse"
)

// finishReason maps Gemini's finishReason. Function calls end with STOP;
// the caller of finishReason turns that into tool_calls.
func finishReason(r string) string {
	switch r {
	case "MAX_TOKENS":
		return "length"
	case "SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII",
		"IMAGE_SAFETY", "IMAGE_PROHIBITED_CONTENT", "IMAGE_RECITATION":
		return "content_filter"
	default: // STOP, LANGUAGE, OTHER, MALFORMED_FUNCTION_CALL, ...
		return "stop"
	}
}

// usage maps usageMetadata: thinking tokens are billed as output, tool-use
// prompt tokens (grounding results) as input.
func (u *usageMetadata) usage() providers.Usage {
	out := providers.Usage{
		PromptTokens:     u.PromptTokenCount + u.ToolUsePromptTokenCount,
		CompletionTokens: u.CandidatesTokenCount + u.ThoughtsTokenCount,
		CachedTokens:     u.CachedContentTokenCount,
		ReasoningTokens:  u.ThoughtsTokenCount,
	}
	out.TotalTokens = out.PromptTokens + out.CompletionTokens
	return out
}

// arguments renders a functionCall's args as OpenAI's arguments string.
func (fc *functionCall) arguments() string {
	a := bytes.TrimSpace(fc.Args)
	if len(a) == 0 || bytes.Equal(a, []byte("null")) {
		return "{}"
	}
	var buf bytes.Buffer
	if json.Compact(&buf, a) != nil {
		return "{}"
	}
	return buf.String()
}

// completion translates a whole generateContent answer.
func completion(g *generateResponse, c *providers.Completion, newID func(int, string) string) error {
	if g.UsageMetadata != nil {
		c.Usage = g.UsageMetadata.usage()
	}
	if len(g.Candidates) == 0 {
		if g.PromptFeedback != nil && g.PromptFeedback.BlockReason != "" {
			empty := ""
			c.Content, c.FinishReason = &empty, "content_filter"
			return nil
		}
		return errors.New("response has no candidates")
	}
	cand := &g.Candidates[0]
	var text []byte
	hasText := false
	if cand.Content != nil {
		for i := range cand.Content.Parts {
			p := &cand.Content.Parts[i]
			switch {
			case p.Thought:
				// A thought summary is not part of a chat answer; other
				// ingresses show it.
				c.Reasoning += p.Text
			case p.FunctionCall != nil:
				c.ToolCalls = append(c.ToolCalls, providers.ToolCall{
					ID:       newID(len(c.ToolCalls), p.ThoughtSignature),
					Type:     "function",
					Function: providers.FunctionCall{Name: p.FunctionCall.Name, Arguments: p.FunctionCall.arguments()},
				})
			case p.Text != "":
				text = append(text, p.Text...)
				hasText = true
			}
		}
	}
	if hasText || len(c.ToolCalls) == 0 {
		s := string(text)
		c.Content = &s
	}
	c.FinishReason = finishReason(cand.FinishReason)
	if len(c.ToolCalls) > 0 && c.FinishReason == "stop" {
		c.FinishReason = "tool_calls"
	}
	return nil
}

// translator turns a streamGenerateContent?alt=sse body into OpenAI
// chunks. Each SSE event is a whole GenerateContentResponse fragment: text
// parts become content deltas, a functionCall part (always whole) becomes
// a tool call start plus one arguments fragment, the event with
// finishReason becomes the finish chunk, and the usage of the last event
// that had one becomes the usage chunk once the stream ends. There is no
// [DONE]: a stream that ends before any finishReason was cut.
type translator struct {
	name  string
	key   string // scrubbed from upstream error messages
	r     *sse.Reader
	b     providers.ChunkBuilder
	newID func(n int, sig string) string

	started  bool
	calls    int
	finished bool
	usage    *providers.Usage
	done     bool
	ev       generateResponse // reused between events
}

func newTranslator(name string, body io.Reader, b providers.ChunkBuilder) *translator {
	return &translator{name: name, r: sse.NewReader(body), b: b, newID: toolCallID}
}

func (t *translator) broken(msg string, err error) *providers.Error {
	return &providers.Error{Provider: t.name, MidStream: true, Message: msg, Err: err}
}

// next implements providers.TranslatedStream.Next.
func (t *translator) next() ([]providers.Chunk, error) {
	if t.done {
		return nil, io.EOF
	}
	for {
		ev, err := t.r.Next()
		if err != nil {
			if errors.Is(err, io.EOF) && t.finished {
				t.done = true
				if t.usage != nil {
					return []providers.Chunk{t.b.Usage(*t.usage)}, io.EOF
				}
				return nil, io.EOF
			}
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF // ended before any finishReason
			}
			return nil, t.broken("upstream stream broke", err)
		}
		data := bytes.TrimSpace(ev.Data)
		if len(data) == 0 {
			continue
		}
		t.ev = generateResponse{}
		if err := json.Unmarshal(data, &t.ev); err != nil {
			return nil, providers.Malformed(t.name, true, "upstream sent an invalid stream event", err)
		}
		if e := t.ev.Error; e != nil {
			pe := translateError(t.name, 0, e, t.key)
			pe.MidStream = true
			return nil, pe
		}
		if chunks := t.translate(&t.ev); len(chunks) > 0 {
			return chunks, nil
		}
	}
}

// translate turns one event into chunks.
func (t *translator) translate(g *generateResponse) []providers.Chunk {
	if g.UsageMetadata != nil {
		u := g.UsageMetadata.usage()
		t.usage = &u
	}
	if t.finished {
		return nil // only usage may follow the finish
	}
	var out []providers.Chunk
	if !t.started {
		t.started = true
		out = append(out, t.b.Role())
	}
	reason := ""
	if len(g.Candidates) > 0 {
		cand := &g.Candidates[0]
		if cand.Content != nil {
			for i := range cand.Content.Parts {
				p := &cand.Content.Parts[i]
				switch {
				case p.Thought:
					if p.Text != "" { // a thought summary (includeThoughts)
						out = append(out, t.b.Reasoning(p.Text))
					}
				case p.FunctionCall != nil:
					n := t.calls
					t.calls++
					out = append(out,
						t.b.ToolCallStart(n, t.newID(n, p.ThoughtSignature), p.FunctionCall.Name),
						t.b.ToolCallArgs(n, p.FunctionCall.arguments()))
				case p.Text != "":
					out = append(out, t.b.Text(p.Text))
				}
			}
		}
		if cand.FinishReason != "" {
			reason = finishReason(cand.FinishReason)
			if t.calls > 0 && reason == "stop" {
				reason = "tool_calls"
			}
		}
	} else if g.PromptFeedback != nil && g.PromptFeedback.BlockReason != "" {
		reason = "content_filter"
	}
	if reason != "" {
		t.finished = true
		out = append(out, t.b.Finish(reason))
	}
	return out
}
