package responses

import (
	"crypto/rand"
	"encoding/json"
	"strconv"
	"strings"

	"github.com/xroute/xroute/internal/jsontext"
	"github.com/xroute/xroute/providers"
	"github.com/xroute/xroute/providers/sse"
)

// Builder turns the neutral events of an answer (providers.Event) into
// Responses API output items, and, when streaming, into the events of the
// Responses stream, built incrementally: the first delta leaves as soon as
// the upstream's first token arrived. A non-streamed answer goes through
// the same Builder (Completion.Events), so both shapes agree.
type Builder struct {
	req     *Request
	tools   ToolMap
	id      string
	created int64
	model   string
	stream  bool

	items   []*outItem
	cur     *outItem         // the open message or reasoning item
	calls   map[int]*outItem // tool calls by event index
	finish  string
	usage   providers.Usage
	hasUse  bool
	seq     int
	started bool
	buf     []byte
	scratch []byte                     // the data of the event being written (emitTextDelta)
	newID   func(prefix string) string // NewID; golden tests count instead
}

type itemKind uint8

const (
	kindMessage itemKind = iota
	kindReasoning
	kindFunction
	kindCustom
)

// outItem is one output item being built.
type outItem struct {
	kind    itemKind
	id      string
	index   int // output_index
	text    strings.Builder
	refusal bool // a message whose part is a refusal
	callID  string
	name    string
	ns      string
	done    bool
	// incomplete: cut by max_output_tokens or a content filter, or by a
	// broken stream (its .done events were never sent then).
	incomplete bool
	summary    bool // reasoning whose summary the caller asked to see
}

// NewBuilder starts the answer to r. id is the response id ("resp_…"),
// model the public model name it answers as.
func NewBuilder(r *Request, tools ToolMap, id, model string, created int64, stream bool) *Builder {
	return &Builder{req: r, tools: tools, id: id, created: created, model: model, stream: stream, calls: map[int]*outItem{}, newID: NewID}
}

// NewID returns an id of the Responses API's shape: prefix, then 48 hex
// digits (resp_, msg_, fc_, rs_).
func NewID(prefix string) string {
	var b [24]byte
	rand.Read(b[:])
	const hex = "0123456789abcdef"
	out := make([]byte, len(prefix), len(prefix)+48)
	copy(out, prefix)
	for _, c := range b {
		out = append(out, hex[c>>4], hex[c&15])
	}
	return string(out)
}

// Started reports whether Start was called.
func (b *Builder) Started() bool { return b.started }

// ID is the response's id.
func (b *Builder) ID() string { return b.id }

// Start returns response.created and response.in_progress (streams only).
func (b *Builder) Start() []byte {
	b.started = true
	b.buf = b.buf[:0]
	snap := b.object("in_progress", nil, false)
	b.emit("response.created", map[string]any{"response": snap})
	b.emit("response.in_progress", map[string]any{"response": snap})
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
		refusal := ev.Kind == providers.EventRefusal
		if b.cur == nil || b.cur.kind != kindMessage || b.cur.refusal != refusal {
			b.closeCur()
			b.openMessage(refusal)
		}
		b.cur.text.WriteString(ev.Text)
		if refusal {
			b.emitItem("response.refusal.delta", b.cur, map[string]any{"content_index": 0, "delta": ev.Text})
		} else {
			b.emitTextDelta(b.cur, ev.Text)
		}
	case providers.EventReasoning:
		if ev.Text == "" {
			break
		}
		if b.cur == nil || b.cur.kind != kindReasoning {
			b.closeCur()
			b.openReasoning()
		}
		b.cur.text.WriteString(ev.Text)
		if b.req.SummaryWanted() {
			b.emitItem("response.reasoning_summary_text.delta", b.cur, map[string]any{"summary_index": 0, "delta": ev.Text})
		}
	case providers.EventToolStart:
		b.closeCur()
		it := &outItem{kind: kindFunction, callID: ev.ID, name: ev.Name}
		if ref, ok := b.tools[ev.Name]; ok {
			it.name, it.ns = ref.Name, ref.Namespace
			if ref.Custom {
				it.kind = kindCustom
			}
		}
		if it.callID == "" {
			it.callID = providers.ToolCallID(ev.Index)
		}
		if it.kind == kindCustom {
			it.id = b.newID("ctc_")
		} else {
			it.id = b.newID("fc_")
		}
		b.add(it)
		b.calls[ev.Index] = it
		b.emit("response.output_item.added", map[string]any{"output_index": it.index, "item": it.json("in_progress")})
	case providers.EventToolArgs:
		it := b.calls[ev.Index]
		if it == nil || it.done || ev.Text == "" {
			break
		}
		it.text.WriteString(ev.Text)
		if it.kind == kindFunction {
			b.emitItem("response.function_call_arguments.delta", it, map[string]any{"delta": ev.Text})
		}
	case providers.EventFinish:
		b.finish = ev.Finish
	}
	return b.take()
}

// Status is the response's status from the finish reason.
func (b *Builder) Status() (status string, incomplete any) {
	switch b.finish {
	case "length":
		return "incomplete", map[string]string{"reason": "max_output_tokens"}
	case "content_filter":
		return "incomplete", map[string]string{"reason": "content_filter"}
	}
	return "completed", nil
}

// Finish closes every item and returns the final response object, and
// for streams the events that close the items and response.completed (or
// response.incomplete). usage is the final count.
func (b *Builder) Finish(u providers.Usage) (events, object []byte) {
	b.buf = b.buf[:0]
	b.mergeUsage(u)
	status, incomplete := b.Status()
	if status == "incomplete" && b.cur != nil && b.cur.kind == kindMessage {
		b.cur.incomplete = true // the text was cut: the message is incomplete too
	}
	b.closeAll()
	obj := b.object(status, incomplete, true)
	object, _ = json.Marshal(obj)
	name := "response.completed"
	if status == "incomplete" {
		name = "response.incomplete"
	}
	b.emit(name, map[string]any{"response": json.RawMessage(object)})
	return b.take(), object
}

// Fail closes the items delivered so far and returns the final response
// object with status failed, and for streams an error event and
// response.failed. code and message say what went wrong in OpenAI's
// vocabulary.
func (b *Builder) Fail(code, message string, u providers.Usage) (events, object []byte) {
	b.buf = b.buf[:0]
	b.mergeUsage(u)
	for _, it := range b.items {
		if !it.done {
			it.done, it.incomplete = true, true // cut: no .done events for a broken answer
		}
	}
	b.cur = nil
	o := b.object("failed", nil, true)
	o.Error = map[string]string{"code": code, "message": message}
	object, _ = json.Marshal(o)
	// The reference's fields at the top level, and the nested object the
	// live API sends, on which the SDKs raise.
	b.emit("error", map[string]any{"code": code, "message": message, "param": nil,
		"error": map[string]any{"type": "server_error", "code": code, "message": message, "param": nil}})
	b.emit("response.failed", map[string]any{"response": json.RawMessage(object)})
	return b.take(), object
}

// Output returns the output items as a JSON array (after Finish or Fail).
func (b *Builder) Output() []byte {
	out := make([]any, 0, len(b.items))
	for _, it := range b.items {
		out = append(out, it.json(itemStatus(it)))
	}
	j, _ := json.Marshal(out)
	return j
}

func itemStatus(it *outItem) string {
	if it.done && !it.incomplete {
		return "completed"
	}
	return "incomplete"
}

// mergeUsage takes the final usage, keeping the reasoning count a chunk
// reported when the final count (the request's record) has none.
func (b *Builder) mergeUsage(u providers.Usage) {
	if u.ReasoningTokens == 0 && b.hasUse {
		u.ReasoningTokens = b.usage.ReasoningTokens
	}
	b.usage, b.hasUse = u, true
}

func (b *Builder) add(it *outItem) {
	it.index = len(b.items)
	b.items = append(b.items, it)
}

func (b *Builder) openMessage(refusal bool) {
	it := &outItem{kind: kindMessage, id: b.newID("msg_"), refusal: refusal}
	b.add(it)
	b.cur = it
	b.emit("response.output_item.added", map[string]any{"output_index": it.index, "item": it.json("in_progress")})
	b.emitItem("response.content_part.added", it, map[string]any{"content_index": 0, "part": it.part("")})
}

func (b *Builder) openReasoning() {
	it := &outItem{kind: kindReasoning, id: b.newID(XrouteReasoningPrefix), summary: b.req.SummaryWanted()}
	b.add(it)
	b.cur = it
	b.emit("response.output_item.added", map[string]any{"output_index": it.index, "item": it.json("in_progress")})
	if b.req.SummaryWanted() {
		b.emitItem("response.reasoning_summary_part.added", it, map[string]any{"summary_index": 0, "part": map[string]string{"type": "summary_text", "text": ""}})
	}
}

// closeCur closes the open message or reasoning item.
func (b *Builder) closeCur() {
	if b.cur != nil {
		b.close(b.cur)
		b.cur = nil
	}
}

func (b *Builder) closeAll() {
	b.closeCur()
	for _, it := range b.items {
		if !it.done {
			b.close(it)
		}
	}
}

// close emits the .done events of an item.
func (b *Builder) close(it *outItem) {
	if it.done {
		return
	}
	it.done = true
	t := it.text.String()
	switch it.kind {
	case kindMessage:
		if it.refusal {
			b.emitItem("response.refusal.done", it, map[string]any{"content_index": 0, "refusal": t})
		} else {
			b.emitItem("response.output_text.done", it, map[string]any{"content_index": 0, "text": t, "logprobs": []any{}})
		}
		b.emitItem("response.content_part.done", it, map[string]any{"content_index": 0, "part": it.part(t)})
	case kindReasoning:
		if b.req.SummaryWanted() {
			b.emitItem("response.reasoning_summary_text.done", it, map[string]any{"summary_index": 0, "text": t})
			b.emitItem("response.reasoning_summary_part.done", it, map[string]any{"summary_index": 0, "part": map[string]string{"type": "summary_text", "text": t}})
		}
	case kindFunction:
		b.emitItem("response.function_call_arguments.done", it, map[string]any{"arguments": it.arguments(), "name": it.name})
	case kindCustom:
		in := it.customInput()
		b.emitItem("response.custom_tool_call_input.delta", it, map[string]any{"delta": in})
		b.emitItem("response.custom_tool_call_input.done", it, map[string]any{"input": in})
	}
	b.emit("response.output_item.done", map[string]any{"output_index": it.index, "item": it.json(itemStatus(it))})
}

// arguments is the call's JSON arguments; a call without any gets "{}",
// as every client parses them.
func (it *outItem) arguments() string {
	if it.text.Len() == 0 {
		return "{}"
	}
	return it.text.String()
}

// customInput reads a custom tool's free-form input back out of the
// pivot's {"input": "..."} arguments; arguments of another shape are
// passed as they are.
func (it *outItem) customInput() string {
	var a struct {
		Input *string `json:"input"`
	}
	if json.Unmarshal([]byte(it.text.String()), &a) == nil && a.Input != nil {
		return *a.Input
	}
	return it.text.String()
}

func (it *outItem) part(t string) map[string]any {
	if it.refusal {
		return map[string]any{"type": "refusal", "refusal": t}
	}
	return map[string]any{"type": "output_text", "text": t, "annotations": []any{}, "logprobs": []any{}}
}

// json renders the item with status.
func (it *outItem) json(status string) map[string]any {
	switch it.kind {
	case kindReasoning:
		summary := []any{}
		if status != "in_progress" && it.summary && it.text.Len() > 0 {
			summary = append(summary, map[string]string{"type": "summary_text", "text": it.text.String()})
		}
		return map[string]any{"id": it.id, "type": "reasoning", "summary": summary}
	case kindFunction:
		args := ""
		if status != "in_progress" {
			args = it.arguments()
		}
		m := map[string]any{"id": it.id, "type": "function_call", "status": status, "arguments": args, "call_id": it.callID, "name": it.name}
		if it.ns != "" {
			m["namespace"] = it.ns
		}
		return m
	case kindCustom:
		in := ""
		if status != "in_progress" {
			in = it.customInput()
		}
		m := map[string]any{"id": it.id, "type": "custom_tool_call", "status": status, "call_id": it.callID, "name": it.name, "input": in}
		if it.ns != "" {
			m["namespace"] = it.ns
		}
		return m
	}
	content := []any{}
	if status != "in_progress" {
		content = append(content, it.part(it.text.String()))
	}
	return map[string]any{"id": it.id, "type": "message", "status": status, "role": "assistant", "content": content}
}

// responseObject is the response object in the reference's field order.
type responseObject struct {
	ID                 string          `json:"id"`
	Object             string          `json:"object"`
	CreatedAt          int64           `json:"created_at"`
	Status             string          `json:"status"`
	Background         bool            `json:"background"`
	Error              any             `json:"error"`
	IncompleteDetails  any             `json:"incomplete_details"`
	Instructions       *string         `json:"instructions"`
	MaxOutputTokens    *int            `json:"max_output_tokens"`
	MaxToolCalls       any             `json:"max_tool_calls"`
	Model              string          `json:"model"`
	Output             []any           `json:"output"`
	ParallelToolCalls  bool            `json:"parallel_tool_calls"`
	PreviousResponseID *string         `json:"previous_response_id"`
	PromptCacheKey     *string         `json:"prompt_cache_key"`
	Reasoning          any             `json:"reasoning"`
	SafetyIdentifier   *string         `json:"safety_identifier"`
	ServiceTier        string          `json:"service_tier"`
	Store              bool            `json:"store"`
	Temperature        float64         `json:"temperature"`
	Text               any             `json:"text"`
	ToolChoice         json.RawMessage `json:"tool_choice"`
	Tools              json.RawMessage `json:"tools"`
	TopLogprobs        int             `json:"top_logprobs"`
	TopP               float64         `json:"top_p"`
	Truncation         string          `json:"truncation"`
	Usage              any             `json:"usage"`
	User               *string         `json:"user"`
	Metadata           json.RawMessage `json:"metadata"`
}

type usageObject struct {
	InputTokens        int `json:"input_tokens"`
	InputTokensDetails struct {
		CachedTokens int `json:"cached_tokens"`
	} `json:"input_tokens_details"`
	OutputTokens        int `json:"output_tokens"`
	OutputTokensDetails struct {
		ReasoningTokens int `json:"reasoning_tokens"`
	} `json:"output_tokens_details"`
	TotalTokens int `json:"total_tokens"`
}

// object renders the response object; with output, the items as they
// stand.
func (b *Builder) object(status string, incomplete any, output bool) *responseObject {
	r := b.req
	o := &responseObject{
		ID: b.id, Object: "response", CreatedAt: b.created, Status: status,
		IncompleteDetails: incomplete, Instructions: r.Instructions, MaxOutputTokens: r.MaxOutputTokens,
		Model: b.model, Output: []any{}, ParallelToolCalls: r.ParallelToolCalls == nil || *r.ParallelToolCalls,
		PreviousResponseID: r.PreviousResponseID, PromptCacheKey: r.PromptCacheKey, SafetyIdentifier: r.SafetyIdentifier,
		ServiceTier: "default", Store: r.Stored(), Temperature: 1, TopP: 1, Truncation: "disabled", User: r.User,
		ToolChoice: json.RawMessage(`"auto"`), Tools: json.RawMessage(`[]`), Metadata: json.RawMessage(`{}`),
	}
	if r.Temperature != nil {
		o.Temperature = *r.Temperature
	}
	if r.TopP != nil {
		o.TopP = *r.TopP
	}
	if r.Truncation != nil {
		o.Truncation = *r.Truncation
	}
	if tc := getRaw(r.Body, "tool_choice"); tc != nil && string(tc) != "null" {
		o.ToolChoice = tc
	}
	if t := getRaw(r.Body, "tools"); t != nil && string(t) != "null" {
		o.Tools = t
	}
	if m := getRaw(r.Body, "metadata"); m != nil && string(m) != "null" {
		o.Metadata = m
	}
	reasoning := map[string]any{"effort": nil, "summary": nil}
	if r.Reasoning != nil {
		if r.Reasoning.Effort != nil {
			reasoning["effort"] = *r.Reasoning.Effort
		}
		if r.Reasoning.Summary != nil {
			reasoning["summary"] = *r.Reasoning.Summary
		}
	}
	o.Reasoning = reasoning
	o.Text = map[string]any{"format": map[string]string{"type": "text"}, "verbosity": "medium"}
	if t := getRaw(r.Body, "text"); t != nil && string(t) != "null" {
		o.Text = t
	}
	if output {
		for _, it := range b.items {
			o.Output = append(o.Output, it.json(itemStatus(it)))
		}
	}
	if b.hasUse && output {
		u := &usageObject{InputTokens: b.usage.PromptTokens, OutputTokens: b.usage.CompletionTokens, TotalTokens: b.usage.PromptTokens + b.usage.CompletionTokens}
		u.InputTokensDetails.CachedTokens = b.usage.CachedTokens
		u.OutputTokensDetails.ReasoningTokens = b.usage.ReasoningTokens
		o.Usage = u
	}
	return o
}

// emit appends one stream event (streams only), type and
// sequence_number first, as OpenAI writes them.
func (b *Builder) emit(typ string, fields map[string]any) {
	if !b.stream {
		return
	}
	data, _ := json.Marshal(fields)
	b.buf = sse.AppendTypedEvent(b.buf, typ, b.seq, data)
	b.seq++
}

// emitTextDelta emits response.output_text.delta, the event of nearly
// every chunk, written directly: the same bytes as emitItem's map through
// encoding/json (keys sorted), without the map, its sort and its boxing.
func (b *Builder) emitTextDelta(it *outItem, text string) {
	if !b.stream {
		return
	}
	d := append(b.scratch[:0], `{"content_index":0,"delta":`...)
	d = jsontext.AppendString(d, text)
	d = append(d, `,"item_id":`...)
	d = jsontext.AppendString(d, it.id)
	d = append(d, `,"logprobs":[],"output_index":`...)
	d = strconv.AppendInt(d, int64(it.index), 10)
	b.scratch = append(d, '}')
	b.buf = sse.AppendTypedEvent(b.buf, "response.output_text.delta", b.seq, b.scratch)
	b.seq++
}

// emitItem is emit with the item's id and output index.
func (b *Builder) emitItem(typ string, it *outItem, fields map[string]any) {
	if !b.stream {
		return
	}
	fields["item_id"] = it.id
	fields["output_index"] = it.index
	b.emit(typ, fields)
}

func (b *Builder) take() []byte {
	if len(b.buf) == 0 {
		return nil
	}
	return b.buf
}
