package providers

import (
	"crypto/rand"
	"encoding/json"
	"strconv"
	"sync"
)

// This file builds OpenAI-shaped answers for translating adapters, so that
// every adapter produces exactly the same chat.completion and
// chat.completion.chunk objects (what the SDKs' parsers and stream helpers
// require is in shared/WIRE-NOTES.md).

// NewCompletionID returns a "chatcmpl-" id.
func NewCompletionID() string {
	const alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	var b [24]byte
	rand.Read(b[:])
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return "chatcmpl-" + string(b[:])
}

type usageJSON struct {
	PromptTokens        int `json:"prompt_tokens"`
	CompletionTokens    int `json:"completion_tokens"`
	TotalTokens         int `json:"total_tokens"`
	PromptTokensDetails struct {
		CachedTokens int `json:"cached_tokens"`
	} `json:"prompt_tokens_details"`
}

func toUsageJSON(u Usage) *usageJSON {
	if u.TotalTokens == 0 {
		u.TotalTokens = u.PromptTokens + u.CompletionTokens
	}
	out := &usageJSON{PromptTokens: u.PromptTokens, CompletionTokens: u.CompletionTokens, TotalTokens: u.TotalTokens}
	out.PromptTokensDetails.CachedTokens = u.CachedTokens
	return out
}

// Completion is a finished answer in neutral form.
type Completion struct {
	ID           string
	Model        string
	Created      int64
	Content      *string // nil when the answer is only tool calls
	Refusal      *string
	ToolCalls    []ToolCall
	FinishReason string // stop, length, tool_calls, content_filter
	Usage        Usage
	// Reasoning is the reasoning the provider showed (thinking text or a
	// summary); chat answers leave it out.
	Reasoning string
}

// Response renders c as an OpenAI chat.completion, with usage extracted.
func (c *Completion) Response() (*ChatResponse, error) {
	type message struct {
		Role             string     `json:"role"`
		Content          *string    `json:"content"`
		Refusal          *string    `json:"refusal"`
		ReasoningContent string     `json:"reasoning_content,omitempty"`
		ToolCalls        []ToolCall `json:"tool_calls,omitempty"`
	}
	type choice struct {
		Index        int     `json:"index"`
		Message      message `json:"message"`
		Logprobs     any     `json:"logprobs"`
		FinishReason string  `json:"finish_reason"`
	}
	body, err := json.Marshal(struct {
		ID      string     `json:"id"`
		Object  string     `json:"object"`
		Created int64      `json:"created"`
		Model   string     `json:"model"`
		Choices []choice   `json:"choices"`
		Usage   *usageJSON `json:"usage"`
	}{c.ID, "chat.completion", c.Created, c.Model,
		[]choice{{Message: message{Role: "assistant", Content: c.Content, Refusal: c.Refusal, ReasoningContent: c.Reasoning, ToolCalls: c.ToolCalls}, FinishReason: c.FinishReason}},
		toUsageJSON(c.Usage)})
	if err != nil {
		return nil, err
	}
	return &ChatResponse{Body: body, Usage: c.Usage, Completion: c}, nil
}

// ChunkBuilder renders chat.completion.chunk objects that share one id,
// created time and model, as OpenAI's stream does.
type ChunkBuilder struct {
	ID      string
	Model   string
	Created int64
}

type chunkDelta struct {
	Role             string          `json:"role,omitempty"`
	ReasoningContent string          `json:"reasoning_content,omitempty"`
	Content          *string         `json:"content,omitempty"`
	Refusal          *string         `json:"refusal,omitempty"`
	ToolCalls        []toolCallDelta `json:"tool_calls,omitempty"`
}

type toolCallDelta struct {
	Index    int               `json:"index"`
	ID       string            `json:"id,omitempty"`
	Type     string            `json:"type,omitempty"`
	Function functionCallDelta `json:"function"`
}

// functionCallDelta keeps "arguments" even when empty: the first fragment
// of a call carries `"arguments": ""`, as OpenAI sends it.
type functionCallDelta struct {
	Name      string `json:"name,omitempty"`
	Arguments string `json:"arguments"`
}

type chunkChoice struct {
	Index        int        `json:"index"`
	Delta        chunkDelta `json:"delta"`
	Logprobs     any        `json:"logprobs"`
	FinishReason *string    `json:"finish_reason"`
}

func (b *ChunkBuilder) chunk(choices []chunkChoice, usage *usageJSON, ev Event) Chunk {
	data, _ := json.Marshal(struct {
		ID      string        `json:"id"`
		Object  string        `json:"object"`
		Created int64         `json:"created"`
		Model   string        `json:"model"`
		Choices []chunkChoice `json:"choices"`
		Usage   *usageJSON    `json:"usage,omitempty"`
	}{b.ID, "chat.completion.chunk", b.Created, b.Model, choices, usage})
	return Chunk{Data: data, Events: []Event{ev}}
}

// Role is the first chunk: role "assistant" and empty content.
func (b *ChunkBuilder) Role() Chunk {
	empty := ""
	return b.chunk([]chunkChoice{{Delta: chunkDelta{Role: "assistant", Content: &empty}}}, nil, Event{Kind: EventRole})
}

// Text is a content delta.
func (b *ChunkBuilder) Text(s string) Chunk {
	return b.chunk([]chunkChoice{{Delta: chunkDelta{Content: &s}}}, nil, Event{Kind: EventText, Text: s})
}

// Refusal is a refusal delta.
func (b *ChunkBuilder) Refusal(s string) Chunk {
	return b.chunk([]chunkChoice{{Delta: chunkDelta{Refusal: &s}}}, nil, Event{Kind: EventRefusal, Text: s})
}

// Reasoning is a fragment of shown reasoning, as reasoning_content: the
// field DeepSeek, vLLM and go-openai use for it in chat (clients that do
// not know it ignore it).
func (b *ChunkBuilder) Reasoning(s string) Chunk {
	return b.chunk([]chunkChoice{{Delta: chunkDelta{ReasoningContent: s}}}, nil, Event{Kind: EventReasoning, Text: s})
}

// ToolCallStart opens tool call number index (0, 1, ... in the order the
// calls appear, not the provider's block index).
func (b *ChunkBuilder) ToolCallStart(index int, id, name string) Chunk {
	return b.chunk([]chunkChoice{{Delta: chunkDelta{ToolCalls: []toolCallDelta{{Index: index, ID: id, Type: "function", Function: functionCallDelta{Name: name}}}}}}, nil,
		Event{Kind: EventToolStart, Index: index, ID: id, Name: name})
}

// ToolCallArgs appends a fragment to tool call index's arguments.
func (b *ChunkBuilder) ToolCallArgs(index int, fragment string) Chunk {
	return b.chunk([]chunkChoice{{Delta: chunkDelta{ToolCalls: []toolCallDelta{{Index: index, Function: functionCallDelta{Arguments: fragment}}}}}}, nil,
		Event{Kind: EventToolArgs, Index: index, Text: fragment})
}

// Finish is the chunk with the finish reason and an empty delta.
func (b *ChunkBuilder) Finish(reason string) Chunk {
	return b.chunk([]chunkChoice{{Delta: chunkDelta{}, FinishReason: &reason}}, nil, Event{Kind: EventFinish, Finish: reason})
}

// Usage is the include_usage chunk: empty choices and the usage object.
func (b *ChunkBuilder) Usage(u Usage) Chunk {
	c := b.chunk([]chunkChoice{}, toUsageJSON(u), Event{Kind: EventUsage})
	c.Usage, c.UsageOnly = &u, true
	return c
}

// TranslatedStream turns a provider's own stream into OpenAI chunks. Next
// reads the provider's next event and returns zero or more chunks; it
// returns io.EOF when the provider's stream ended cleanly. Adapters supply
// only Next and Close; the queueing lives here once.
type TranslatedStream struct {
	Next    func() ([]Chunk, error)
	CloseFn func() error

	queue     []Chunk
	err       error
	closeOnce sync.Once
	closeErr  error
}

// Recv implements Stream.
func (t *TranslatedStream) Recv() (Chunk, error) {
	for len(t.queue) == 0 {
		if t.err != nil {
			return Chunk{}, t.err
		}
		chunks, err := t.Next()
		t.queue = append(t.queue, chunks...)
		if err != nil {
			t.err = err
		}
	}
	c := t.queue[0]
	t.queue = t.queue[1:]
	return c, nil
}

// Close implements Stream.
func (t *TranslatedStream) Close() error {
	t.closeOnce.Do(func() {
		if t.CloseFn != nil {
			t.closeErr = t.CloseFn()
		}
	})
	return t.closeErr
}

// ToolCallID synthesizes an OpenAI-style call id for providers that do not
// give one (Gemini).
func ToolCallID(n int) string {
	var b [12]byte
	rand.Read(b[:])
	const alphabet = "0123456789abcdefghijklmnopqrstuvwxyz"
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return "call_" + string(b[:]) + strconv.Itoa(n)
}
