package anthropic

import (
	"errors"
	"io"

	"github.com/tidwall/gjson"

	"github.com/xroute/xroute/providers"
	"github.com/xroute/xroute/providers/sse"
)

// blockKind is what a content block of the stream becomes.
type blockKind uint8

const (
	blockIgnored blockKind = iota // thinking, server tools, ...
	blockText
	blockTool     // an OpenAI tool call
	blockJSON     // the forced JSON-mode tool: its input is content
	blockThinking // shown reasoning: Events only, never chat content
)

type blockState struct {
	kind  blockKind
	call  int  // OpenAI tool call index (blockTool)
	wrote bool // some input fragment was emitted
}

// translator turns Anthropic stream events into OpenAI chunks. It is the
// Next of a providers.TranslatedStream.
type translator struct {
	name     string
	r        *sse.Reader
	cb       providers.ChunkBuilder
	jsonTool bool

	started bool
	done    bool
	blocks  map[int]*blockState
	calls   int // tool calls opened so far
	stop    string
	usage   usage
}

func newTranslator(name string, body io.Reader, jsonTool bool, model string, created int64) *translator {
	return &translator{
		name:     name,
		r:        sse.NewReader(body),
		cb:       providers.ChunkBuilder{ID: providers.NewCompletionID(), Model: model, Created: created},
		jsonTool: jsonTool,
		blocks:   map[int]*blockState{},
	}
}

// start emits the role chunk before anything else.
func (t *translator) start(out []providers.Chunk) []providers.Chunk {
	if t.started {
		return out
	}
	t.started = true
	return append(out, t.cb.Role())
}

// readUsage overwrites the usage fields present in u (message_delta usage
// is cumulative; newer API versions repeat the input counts there).
func (t *translator) readUsage(u gjson.Result) { readUsageInto(&t.usage, u) }

// next reads events until one yields chunks, the stream ends (io.EOF after
// message_stop) or breaks (*providers.Error with MidStream).
func (t *translator) next() ([]providers.Chunk, error) {
	if t.done {
		return nil, io.EOF
	}
	for {
		ev, err := t.r.Next()
		if err != nil {
			return nil, brokenStream(t.name, err)
		}
		name := ev.Name
		if name == "ping" {
			continue
		}
		if !gjson.ValidBytes(ev.Data) {
			return nil, providers.Malformed(t.name, true, "upstream sent a malformed stream", errors.New("invalid JSON in event "+name))
		}
		data := gjson.ParseBytes(ev.Data)
		if name == "" { // tolerate data-only events: the type is in the data
			name = data.Get("type").String()
		}
		out, err := t.handle(name, data, ev.Data)
		if err != nil || len(out) > 0 {
			return out, err
		}
	}
}

func (t *translator) handle(name string, data gjson.Result, raw []byte) ([]providers.Chunk, error) {
	switch name {
	case "message_start":
		if t.started {
			return nil, nil
		}
		msg := data.Get("message")
		if m := msg.Get("model").String(); m != "" {
			t.cb.Model = m
		}
		t.readUsage(msg.Get("usage"))
		// The role chunk waits for the first content block: a stream that
		// fails right after message_start (overloaded) has then sent
		// nothing, and fails over.
		return nil, nil

	case "content_block_start":
		out := t.start(nil)
		idx := int(data.Get("index").Int())
		cb := data.Get("content_block")
		st := &blockState{}
		t.blocks[idx] = st
		switch cb.Get("type").String() {
		case "text":
			if t.jsonTool {
				break // the answer is the JSON tool's input
			}
			st.kind = blockText
			if s := cb.Get("text").String(); s != "" {
				out = append(out, t.cb.Text(s))
			}
		case "thinking":
			st.kind = blockThinking
			if s := cb.Get("thinking").String(); s != "" {
				out = append(out, t.cb.Reasoning(s))
			}
		case "tool_use":
			if t.jsonTool && cb.Get("name").String() == jsonToolName {
				st.kind = blockJSON
				break
			}
			st.kind, st.call = blockTool, t.calls
			t.calls++
			id := cb.Get("id").String()
			if id == "" { // OpenAI clients need an id on every call
				id = providers.ToolCallID(st.call)
			}
			out = append(out, t.cb.ToolCallStart(st.call, id, cb.Get("name").String()))
		}
		return out, nil

	case "content_block_delta":
		st := t.blocks[int(data.Get("index").Int())]
		if st == nil {
			return nil, nil
		}
		delta := data.Get("delta")
		switch delta.Get("type").String() {
		case "text_delta":
			if st.kind == blockText {
				if s := delta.Get("text").String(); s != "" {
					return []providers.Chunk{t.cb.Text(s)}, nil
				}
			}
		case "thinking_delta":
			if st.kind == blockThinking {
				if s := delta.Get("thinking").String(); s != "" {
					return []providers.Chunk{t.cb.Reasoning(s)}, nil
				}
			}
		case "input_json_delta":
			frag := delta.Get("partial_json").String()
			if frag == "" { // the first fragment is often empty
				return nil, nil
			}
			switch st.kind {
			case blockTool:
				st.wrote = true
				return []providers.Chunk{t.cb.ToolCallArgs(st.call, frag)}, nil
			case blockJSON:
				st.wrote = true
				return []providers.Chunk{t.cb.Text(frag)}, nil
			}
		}
		return nil, nil

	case "content_block_stop":
		st := t.blocks[int(data.Get("index").Int())]
		if st == nil || st.wrote {
			return nil, nil
		}
		// A call without arguments: OpenAI clients expect a JSON object.
		st.wrote = true
		switch st.kind {
		case blockTool:
			return []providers.Chunk{t.cb.ToolCallArgs(st.call, "{}")}, nil
		case blockJSON:
			return []providers.Chunk{t.cb.Text("{}")}, nil
		}
		return nil, nil

	case "message_delta":
		if s := data.Get("delta.stop_reason").String(); s != "" {
			t.stop = s
		}
		t.readUsage(data.Get("usage"))
		return nil, nil

	case "message_stop":
		t.done = true
		out := t.start(nil)
		out = append(out, t.cb.Finish(finishReason(t.stop, t.jsonTool)), t.cb.Usage(t.usage.openAI()))
		return out, io.EOF

	case "error":
		return nil, streamError(t.name, raw)
	}
	return nil, nil // unknown events may be added to the API at any time
}
