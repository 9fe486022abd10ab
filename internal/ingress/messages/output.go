package messages

import (
	"crypto/rand"
	"encoding/json"
	"strconv"
	"strings"

	"github.com/xroute/xroute/internal/jsontext"
	"github.com/xroute/xroute/providers"
	"github.com/xroute/xroute/providers/sse"
)

// Builder turns the neutral events of an answer into a Messages API
// message and, when streaming, into its events (message_start,
// content_block_start/delta/stop, message_delta, message_stop), built
// incrementally: the first delta leaves as soon as the upstream's first
// token arrived. A non-streamed answer goes through the same Builder.
type Builder struct {
	req    *Request
	id     string
	model  string
	stream bool

	blocks  []*block
	cur     *block         // the open text or thinking block
	calls   map[int]*block // tool_use blocks by event index
	finish  string
	usage   providers.Usage
	hasUse  bool
	started bool
	buf     []byte
	scratch []byte // the data of the event being written (emitTextDelta)
}

type block struct {
	kind  string // text, thinking, tool_use
	index int
	text  strings.Builder
	id    string
	name  string
	done  bool
}

// NewID returns a "msg_" id.
func NewID() string {
	const alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	var b [24]byte
	rand.Read(b[:])
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return "msg_01" + string(b[:])
}

// NewBuilder starts the answer to r as model; promptTokens is the prompt
// estimate message_start reports (the exact count comes in message_delta).
func NewBuilder(r *Request, id, model string, promptTokens int, stream bool) *Builder {
	b := &Builder{req: r, id: id, model: model, stream: stream, calls: map[int]*block{}}
	b.usage.PromptTokens = promptTokens
	return b
}

// SetPromptTokens sets the prompt estimate message_start reports; call it
// before Start.
func (b *Builder) SetPromptTokens(n int) { b.usage.PromptTokens = n }

// Started reports whether Start was called.
func (b *Builder) Started() bool { return b.started }

// Start returns message_start and a ping, as Anthropic's stream begins.
func (b *Builder) Start() []byte {
	b.started = true
	b.buf = b.buf[:0]
	msg := b.message(false)
	msg["stop_reason"], msg["stop_sequence"] = nil, nil
	b.emit("message_start", map[string]any{"message": msg})
	b.emit("ping", map[string]any{})
	return b.take()
}

// Feed adds one event and returns the stream events it produces (nil when
// not streaming). u is the chunk's usage, if it carried one.
func (b *Builder) Feed(ev providers.Event, u *providers.Usage) []byte {
	b.buf = b.buf[:0]
	if u != nil {
		b.usage, b.hasUse = *u, true
	}
	switch ev.Kind {
	case providers.EventText, providers.EventRefusal:
		if ev.Text == "" {
			break
		}
		if b.cur == nil || b.cur.kind != "text" {
			b.closeOpen()
			b.open(&block{kind: "text"}, map[string]any{"type": "text", "text": ""})
		}
		b.cur.text.WriteString(ev.Text)
		b.emitTextDelta(b.cur.index, ev.Text)
	case providers.EventReasoning:
		if ev.Text == "" || !b.req.ThinkingEnabled() {
			break // thinking is shown only to a caller that asked for it
		}
		if b.cur == nil || b.cur.kind != "thinking" {
			b.closeOpen()
			b.open(&block{kind: "thinking"}, map[string]any{"type": "thinking", "thinking": "", "signature": ""})
		}
		if b.req.Thinking.Display == "omitted" {
			break // a thinking block, its text withheld as asked
		}
		b.cur.text.WriteString(ev.Text)
		b.emit("content_block_delta", map[string]any{"index": b.cur.index, "delta": map[string]any{"type": "thinking_delta", "thinking": ev.Text}})
	case providers.EventToolStart:
		// Calls stream one after the other: a new block ends the last.
		b.closeOpen()
		id := ev.ID
		if id == "" {
			id = providers.ToolCallID(ev.Index)
		}
		blk := &block{kind: "tool_use", id: id, name: ev.Name}
		b.open(blk, map[string]any{"type": "tool_use", "id": id, "name": ev.Name, "input": map[string]any{}})
		b.cur = nil // arguments arrive by call index
		b.calls[ev.Index] = blk
	case providers.EventToolArgs:
		blk := b.calls[ev.Index]
		if blk == nil || blk.done || ev.Text == "" {
			break
		}
		blk.text.WriteString(ev.Text)
		b.emit("content_block_delta", map[string]any{"index": blk.index, "delta": map[string]any{"type": "input_json_delta", "partial_json": ev.Text}})
	case providers.EventFinish:
		b.finish = ev.Finish
	}
	return b.take()
}

// StopReason maps the finish reason. An answer that holds tool calls
// stops for tool use whatever the upstream said (some OpenAI-compatible
// servers say "stop"): agent loops run tools only on tool_use.
func (b *Builder) StopReason() string {
	switch b.finish {
	case "length":
		return "max_tokens"
	case "content_filter":
		return "refusal"
	}
	if b.finish == "tool_calls" || len(b.calls) > 0 {
		return "tool_use"
	}
	return "end_turn"
}

// Finish closes every block and returns the final message object, and for
// streams the closing events: content_block_stop, message_delta (stop
// reason and the whole usage), message_stop.
func (b *Builder) Finish(u providers.Usage) (events, object []byte) {
	b.buf = b.buf[:0]
	b.usage, b.hasUse = u, true
	b.closeOpen()
	b.emit("message_delta", map[string]any{"delta": map[string]any{"stop_reason": b.StopReason(), "stop_sequence": nil}, "usage": b.usageJSON()})
	b.emit("message_stop", map[string]any{})
	object, _ = json.Marshal(b.message(true))
	return b.take(), object
}

// Fail returns the error event of a stream that broke after it started.
func (b *Builder) Fail(typ, message string) []byte {
	b.buf = b.buf[:0]
	b.emit("error", map[string]any{"error": map[string]string{"type": typ, "message": message}})
	return b.take()
}

func (b *Builder) open(blk *block, start map[string]any) {
	blk.index = len(b.blocks)
	b.blocks = append(b.blocks, blk)
	b.cur = blk
	b.emit("content_block_start", map[string]any{"index": blk.index, "content_block": start})
}

// closeOpen closes every block still open, in order.
func (b *Builder) closeOpen() {
	for _, blk := range b.blocks {
		b.close(blk)
	}
	b.cur = nil
}

func (b *Builder) close(blk *block) {
	if blk.done {
		return
	}
	blk.done = true
	if blk.kind == "thinking" {
		// Another provider's reasoning, shown as thinking: signed as
		// xroute's, so that it never reaches an Anthropic upstream.
		b.emit("content_block_delta", map[string]any{"index": blk.index, "delta": map[string]any{"type": "signature_delta", "signature": XrouteSignature}})
	}
	b.emit("content_block_stop", map[string]any{"index": blk.index})
}

// input is a tool_use block's arguments as a JSON value ({} when none or
// not JSON).
func (blk *block) input() json.RawMessage {
	in := json.RawMessage(blk.text.String())
	if len(in) == 0 || !json.Valid(in) {
		return json.RawMessage(`{}`)
	}
	return in
}

func (b *Builder) usageJSON() map[string]int {
	u := b.usage
	in := max(u.PromptTokens-u.CachedTokens-u.CacheWriteTokens, 0)
	return map[string]int{"input_tokens": in, "cache_creation_input_tokens": u.CacheWriteTokens,
		"cache_read_input_tokens": u.CachedTokens, "output_tokens": u.CompletionTokens}
}

// message renders the message object; with content, its blocks.
func (b *Builder) message(content bool) map[string]any {
	blocks := []any{}
	if content {
		for _, blk := range b.blocks {
			switch blk.kind {
			case "text":
				blocks = append(blocks, map[string]any{"type": "text", "text": blk.text.String()})
			case "thinking":
				blocks = append(blocks, map[string]any{"type": "thinking", "thinking": blk.text.String(), "signature": XrouteSignature})
			case "tool_use":
				blocks = append(blocks, map[string]any{"type": "tool_use", "id": blk.id, "name": blk.name, "input": blk.input()})
			}
		}
	}
	m := map[string]any{"id": b.id, "type": "message", "role": "assistant", "model": b.model, "content": blocks,
		"stop_reason": b.StopReason(), "stop_sequence": nil, "usage": b.usageJSON()}
	if !content {
		u := b.usageJSON()
		u["output_tokens"] = 1 // as Anthropic's message_start reports it
		m["usage"] = u
	}
	return m
}

// emit appends one stream event: `event: type` and its data, type first.
func (b *Builder) emit(typ string, fields map[string]any) {
	if !b.stream {
		return
	}
	data, _ := json.Marshal(fields)
	b.buf = sse.AppendTypedEvent(b.buf, typ, -1, data)
}

// emitTextDelta emits a text_delta content_block_delta, the event of
// nearly every chunk, written directly: the same bytes as emit's map
// through encoding/json (keys sorted), without the maps, their sort and
// their boxing.
func (b *Builder) emitTextDelta(index int, text string) {
	if !b.stream {
		return
	}
	d := append(b.scratch[:0], `{"delta":{"text":`...)
	d = jsontext.AppendString(d, text)
	d = append(d, `,"type":"text_delta"},"index":`...)
	d = strconv.AppendInt(d, int64(index), 10)
	b.scratch = append(d, '}')
	b.buf = sse.AppendTypedEvent(b.buf, "content_block_delta", -1, b.scratch)
}

func (b *Builder) take() []byte {
	if len(b.buf) == 0 {
		return nil
	}
	return b.buf
}
