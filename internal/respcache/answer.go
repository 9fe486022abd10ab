package respcache

import (
	"strings"

	"github.com/tidwall/gjson"

	"github.com/xroute/xroute/providers"
)

// Collector rebuilds a streamed answer's Completion from its events, so
// that a stream that completed cleanly can be cached like a body.
type Collector struct {
	text, refusal, reasoning strings.Builder
	hasText, hasRefusal      bool
	calls                    []providers.ToolCall
	finish                   string
	open                     map[int]bool // DecodeChatChunk's open tool calls
	scratch                  []providers.Event
	// Broken is set when a chunk could not be read in neutral form (a
	// native event other than the Responses API's, a chunk that is not
	// JSON): the answer is not cached.
	Broken bool
	// native is a native Responses stream's answer, read from its
	// response.completed event; msgs folds a native Messages stream.
	native *providers.Completion
	msgs   *messagesFold
}

// Chunk feeds one stream chunk: its Events, or those decoded from its
// chat data when the adapter forwarded bytes.
func (c *Collector) Chunk(ch providers.Chunk) {
	if c.Broken {
		return
	}
	if ch.Native {
		// A native Responses stream: its final event holds the whole
		// answer (ResponsesCompletion); the deltas before it need not be
		// read. Any other native event cannot be read back.
		switch {
		case ch.Name == "response.completed" || ch.Name == "response.incomplete":
			cp, ok := ResponsesCompletion(gjson.GetBytes(ch.Data, "response"))
			if !ok {
				c.Broken = true
				return
			}
			c.native = &cp
		case strings.HasPrefix(ch.Name, "response."):
		default: // a native Messages stream
			if c.msgs == nil {
				c.msgs = &messagesFold{}
			}
			if !c.msgs.event(ch.Name, ch.Data) {
				c.Broken = true
				return
			}
			if ch.Name == "message_stop" {
				cp, ok := c.msgs.completion(c.msgs.stop)
				if !ok {
					c.Broken = true
					return
				}
				c.native = &cp
			}
		}
		return
	}
	evs := ch.Events
	if evs == nil {
		if len(ch.Data) == 0 {
			return
		}
		if c.open == nil {
			c.open = map[int]bool{}
		}
		var err error
		c.scratch, err = providers.DecodeChatChunk(ch.Data, c.scratch[:0], c.open)
		if err != nil {
			c.Broken = true
			return
		}
		evs = c.scratch
	}
	for _, ev := range evs {
		c.Event(ev)
	}
}

// Event feeds one neutral event.
func (c *Collector) Event(ev providers.Event) {
	switch ev.Kind {
	case providers.EventText:
		c.text.WriteString(ev.Text)
		c.hasText = true
	case providers.EventRefusal:
		c.refusal.WriteString(ev.Text)
		c.hasRefusal = true
	case providers.EventReasoning:
		c.reasoning.WriteString(ev.Text)
	case providers.EventToolStart:
		for len(c.calls) <= ev.Index {
			c.calls = append(c.calls, providers.ToolCall{Type: "function"})
		}
		c.calls[ev.Index].ID, c.calls[ev.Index].Function.Name = ev.ID, ev.Name
	case providers.EventToolArgs:
		if ev.Index < len(c.calls) {
			c.calls[ev.Index].Function.Arguments += ev.Text
		}
	case providers.EventFinish:
		c.finish = ev.Finish
	}
}

// Completion is the answer fed so far; ok is false when it cannot be
// cached (broken, or it never finished).
func (c *Collector) Completion() (providers.Completion, bool) {
	if c.native != nil && !c.Broken {
		return *c.native, true
	}
	if c.Broken || c.finish == "" {
		return providers.Completion{}, false
	}
	out := providers.Completion{FinishReason: c.finish, Reasoning: c.reasoning.String(), ToolCalls: c.calls}
	if c.hasText || len(c.calls) == 0 {
		s := c.text.String()
		out.Content = &s
	}
	if c.hasRefusal {
		s := c.refusal.String()
		out.Refusal = &s
	}
	return out, true
}

// Replay is the stream of a cached answer: the chunks a translating
// adapter would have sent (chat data and neutral events both), the usage
// chunk last. Chunk boundaries are not the original's.
func Replay(e *Entry, id, model string, created int64) []providers.Chunk {
	b := providers.ChunkBuilder{ID: id, Model: model, Created: created}
	out := make([]providers.Chunk, 0, 6+2*len(e.Completion.ToolCalls))
	out = append(out, b.Role())
	cp := e.Completion
	if cp.Reasoning != "" {
		out = append(out, b.Reasoning(cp.Reasoning))
	}
	if cp.Content != nil && *cp.Content != "" {
		out = append(out, b.Text(*cp.Content))
	}
	if cp.Refusal != nil && *cp.Refusal != "" {
		out = append(out, b.Refusal(*cp.Refusal))
	}
	for i, tc := range cp.ToolCalls {
		out = append(out, b.ToolCallStart(i, tc.ID, tc.Function.Name))
		if tc.Function.Arguments != "" {
			out = append(out, b.ToolCallArgs(i, tc.Function.Arguments))
		}
	}
	out = append(out, b.Finish(cp.FinishReason))
	return append(out, b.Usage(providers.Usage{PromptTokens: e.Prompt, CompletionTokens: e.Output, TotalTokens: e.Prompt + e.Output}))
}
