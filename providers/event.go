package providers

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/tidwall/gjson"
)

// This file is the answer side of the seam between ingress formats (what
// callers speak) and provider formats (what upstreams speak).
//
// A request travels as a ChatRequest: the Chat Completions body is the
// pivot every adapter reads. An answer travels as OpenAI chat chunks
// (Chunk.Data) for the chat ingress, and as neutral Events for every other
// ingress (Responses, legacy completions, next Anthropic Messages): each
// ingress encodes Events into its own wire format, each adapter produces
// them from its provider's, so N ingresses and M providers cost N + M
// translators. Translating adapters always set both (ChunkBuilder does);
// the OpenAI-compatible adapter forwards bytes and decodes Events only
// when the request did not come in as chat (DecodeChatChunk).

// Format is an API shape: how a caller's request and its answer are
// written.
type Format uint8

// The formats xroute serves.
const (
	FormatChat        Format = iota // OpenAI Chat Completions (the pivot)
	FormatResponses                 // OpenAI Responses API
	FormatCompletions               // OpenAI legacy completions
	FormatMessages                  // Anthropic Messages API
)

var formatNames = [...]string{FormatChat: "chat", FormatResponses: "responses", FormatCompletions: "completions", FormatMessages: "messages"}

func (f Format) String() string {
	if int(f) < len(formatNames) {
		return formatNames[f]
	}
	return fmt.Sprintf("format(%d)", f)
}

// ParseFormat reads a format name ("chat", "responses", "completions").
func ParseFormat(s string) (Format, bool) {
	for i, n := range formatNames {
		if n == s {
			return Format(i), true
		}
	}
	return 0, false
}

// NativeSpeaker is implemented by adapters that can serve some non-chat
// formats as they are: the request's Native body goes upstream with only
// its model rewritten, and the answer comes back in that format
// (ChatResponse.Native, Chunk.Native). The router does not care; the
// ingress relays native answers instead of encoding Events.
type NativeSpeaker interface {
	// Speaks reports whether the upstream serves format f natively for
	// the upstream model (OpenAI's legacy completions endpoint, say,
	// serves only its instruct and base models).
	Speaks(f Format, model string) bool
}

// Speaks reports whether p serves format f natively for model. Every
// adapter speaks chat.
func Speaks(p Provider, f Format, model string) bool {
	if f == FormatChat {
		return true
	}
	n, ok := p.(NativeSpeaker)
	return ok && n.Speaks(f, model)
}

// EventKind says what an Event carries.
type EventKind uint8

// The neutral vocabulary of an answer.
const (
	// EventRole opens the answer (role assistant).
	EventRole EventKind = iota + 1
	// EventText is a fragment of the answer's text.
	EventText
	// EventRefusal is a fragment of a refusal.
	EventRefusal
	// EventReasoning is a fragment of the model's reasoning (a reasoning
	// summary, or thinking text) that the provider chose to show.
	EventReasoning
	// EventToolStart opens tool call Index (0, 1, ... in answer order)
	// with its ID and Name.
	EventToolStart
	// EventToolArgs is a fragment of tool call Index's JSON arguments.
	EventToolArgs
	// EventFinish ends the answer; Finish is stop, length, tool_calls or
	// content_filter (chat's vocabulary).
	EventFinish
	// EventUsage carries the final token count (Chunk.Usage).
	EventUsage
)

// Event is one step of an answer.
type Event struct {
	Kind     EventKind
	Index    int    // tool call index (EventToolStart, EventToolArgs)
	ID, Name string // tool call id and function name (EventToolStart)
	Text     string // the fragment (text, refusal, reasoning, arguments)
	Finish   string // EventFinish
}

// DecodeChatChunk reads the Events of one chat.completion.chunk (as an
// OpenAI-compatible upstream sends it) after dst: role, content, refusal,
// reasoning (DeepSeek's and vLLM's reasoning_content, OpenRouter's
// reasoning), tool call fragments and the finish reason of choice 0.
// Usage is read by the adapter (Chunk.Usage). An upstream that sends a
// name or id again on a later fragment of the same call does not open a
// second call: open tells which call indexes were opened already and is
// updated.
func DecodeChatChunk(data []byte, dst []Event, open map[int]bool) ([]Event, error) {
	if !gjson.ValidBytes(data) {
		return dst, errors.New("chunk is not JSON")
	}
	ch := gjson.GetBytes(data, "choices.0")
	if !ch.Exists() {
		return dst, nil
	}
	d := ch.Get("delta")
	if r := d.Get("role"); r.Type == gjson.String && r.Str != "" {
		dst = append(dst, Event{Kind: EventRole})
	}
	for _, k := range [...]string{"reasoning_content", "reasoning"} {
		if v := d.Get(k); v.Type == gjson.String && v.Str != "" {
			dst = append(dst, Event{Kind: EventReasoning, Text: v.Str})
			break
		}
	}
	if v := d.Get("content"); v.Type == gjson.String && v.Str != "" {
		dst = append(dst, Event{Kind: EventText, Text: v.Str})
	}
	if v := d.Get("refusal"); v.Type == gjson.String && v.Str != "" {
		dst = append(dst, Event{Kind: EventRefusal, Text: v.Str})
	}
	var err error
	d.Get("tool_calls").ForEach(func(_, tc gjson.Result) bool {
		idx := int(tc.Get("index").Int())
		if idx < 0 || idx > 1<<16 {
			err = fmt.Errorf("tool call index %d out of range", idx)
			return false
		}
		fn := tc.Get("function")
		if !open[idx] {
			open[idx] = true
			id := tc.Get("id").Str
			if id == "" {
				id = ToolCallID(idx)
			}
			dst = append(dst, Event{Kind: EventToolStart, Index: idx, ID: id, Name: fn.Get("name").Str})
		}
		if a := fn.Get("arguments"); a.Type == gjson.String && a.Str != "" {
			dst = append(dst, Event{Kind: EventToolArgs, Index: idx, Text: a.Str})
		}
		return true
	})
	if f := ch.Get("finish_reason"); f.Type == gjson.String && f.Str != "" {
		dst = append(dst, Event{Kind: EventFinish, Finish: f.Str})
	}
	return dst, err
}

// DecodeChatCompletion reads a chat.completion body (choice 0) into a
// Completion, for ingresses other than chat. Usage is left to the adapter.
func DecodeChatCompletion(body []byte) (*Completion, error) {
	var r struct {
		ID      string `json:"id"`
		Model   string `json:"model"`
		Created int64  `json:"created"`
		Choices []struct {
			Message struct {
				Content          *string    `json:"content"`
				Refusal          *string    `json:"refusal"`
				ReasoningContent string     `json:"reasoning_content"`
				Reasoning        string     `json:"reasoning"`
				ToolCalls        []ToolCall `json:"tool_calls"`
			} `json:"message"`
			FinishReason string `json:"finish_reason"`
		} `json:"choices"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, fmt.Errorf("decode chat completion: %w", err)
	}
	if len(r.Choices) == 0 {
		return nil, errors.New("decode chat completion: no choices")
	}
	ch := r.Choices[0]
	c := &Completion{ID: r.ID, Model: r.Model, Created: r.Created, Content: ch.Message.Content, Refusal: ch.Message.Refusal,
		ToolCalls: ch.Message.ToolCalls, FinishReason: ch.FinishReason, Reasoning: ch.Message.ReasoningContent}
	if c.Reasoning == "" {
		c.Reasoning = ch.Message.Reasoning
	}
	for i := range c.ToolCalls {
		if c.ToolCalls[i].ID == "" {
			c.ToolCalls[i].ID = ToolCallID(i)
		}
		if len(bytes.TrimSpace([]byte(c.ToolCalls[i].Function.Arguments))) == 0 {
			c.ToolCalls[i].Function.Arguments = "{}"
		}
	}
	return c, nil
}

// Events renders c as the event sequence a stream of it would have: for
// ingresses that build their answer one way, streamed or not.
func (c *Completion) Events() []Event {
	out := make([]Event, 0, 4+2*len(c.ToolCalls))
	out = append(out, Event{Kind: EventRole})
	if c.Reasoning != "" {
		out = append(out, Event{Kind: EventReasoning, Text: c.Reasoning})
	}
	if c.Content != nil && *c.Content != "" {
		out = append(out, Event{Kind: EventText, Text: *c.Content})
	}
	if c.Refusal != nil && *c.Refusal != "" {
		out = append(out, Event{Kind: EventRefusal, Text: *c.Refusal})
	}
	for i, tc := range c.ToolCalls {
		out = append(out, Event{Kind: EventToolStart, Index: i, ID: tc.ID, Name: tc.Function.Name})
		if tc.Function.Arguments != "" {
			out = append(out, Event{Kind: EventToolArgs, Index: i, Text: tc.Function.Arguments})
		}
	}
	return append(out, Event{Kind: EventFinish, Finish: c.FinishReason}, Event{Kind: EventUsage})
}
