// Package messages is the Anthropic Messages API ingress (POST
// /v1/messages, as Claude Code and the Anthropic SDKs call it): it reads a
// request once, checks it as Anthropic's API does, translates it into the
// Chat Completions pivot every adapter reads (pivot.go), and renders the
// neutral answer events as a Messages `message` object or its event stream
// (output.go). A deployment that speaks the Messages API natively
// (Anthropic) gets the caller's own body instead, with only the model
// rewritten and `role: "system"` messages folded into `system`.
package messages

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"

	json "github.com/segmentio/encoding/json"

	"github.com/xroute/xroute/internal/jsontext"
	"github.com/xroute/xroute/providers"
)

// Request is a create request as xroute reads it. Fields xroute does not
// read stay in Body (forwarded natively) and are dropped when translating.
type Request struct {
	Model         string          `json:"model"`
	MaxTokens     *int            `json:"max_tokens"`
	Messages      []Message       `json:"messages"`
	System        json.RawMessage `json:"system"`
	Tools         []Tool          `json:"tools"`
	ToolChoice    *ToolChoice     `json:"tool_choice"`
	StopSequences []string        `json:"stop_sequences"`
	Temperature   *float64        `json:"temperature"`
	TopP          *float64        `json:"top_p"`
	TopK          *int            `json:"top_k"`
	Metadata      *struct {
		UserID string `json:"user_id"`
	} `json:"metadata"`
	Thinking     *Thinking `json:"thinking"`
	OutputConfig *struct {
		Effort string `json:"effort"`
	} `json:"output_config"`
	Stream *bool `json:"stream"`
	providers.RoutingExtensions

	// Body is the caller's JSON, never modified.
	Body []byte `json:"-"`
	// SystemFolded is true when messages held role "system" turns, which
	// Anthropic's API refuses: Native folds them into system.
	SystemFolded bool `json:"-"`

	system []Block // System as Parse decoded it
}

// Message is one turn: content is a string or an array of blocks.
type Message struct {
	Role    string          `json:"role"`
	Content json.RawMessage `json:"content"`

	// decoded is Content as Parse read it: Translate and Native read the
	// blocks from here instead of decoding an agent's long turns again.
	decoded []Block
}

// blocks is the message's content as blocks: what Parse decoded, else
// decoded now (a Message built by hand).
func (m *Message) blocks(at string) ([]Block, error) {
	if m.decoded != nil {
		return m.decoded, nil
	}
	return blocks(at, m.Content)
}

// Block is one content block, decoded as far as xroute needs.
type Block struct {
	Type      string          `json:"type"`
	Text      jsontext.String `json:"text"`
	Source    *Source         `json:"source"`
	ID        string          `json:"id"`
	Name      string          `json:"name"`
	Input     json.RawMessage `json:"input"`
	ToolUseID string          `json:"tool_use_id"`
	Content   json.RawMessage `json:"content"`
	IsError   bool            `json:"is_error"`
	Thinking  jsontext.String `json:"thinking"`
	Signature string          `json:"signature"`
	Data      string          `json:"data"`
	Title     string          `json:"title"`
}

// Source is an image's or a document's source.
type Source struct {
	Type      string          `json:"type"` // base64, url, text, content, file
	MediaType string          `json:"media_type"`
	Data      string          `json:"data"`
	URL       string          `json:"url"`
	FileID    string          `json:"file_id"`
	Content   json.RawMessage `json:"content"`
}

// Tool is a client tool (name, description, input_schema) or a server
// tool Anthropic runs (a type such as web_search_20250305).
type Tool struct {
	Type        string          `json:"type"`
	Name        string          `json:"name"`
	Description string          `json:"description"`
	InputSchema json.RawMessage `json:"input_schema"`
	MaxUses     *int            `json:"max_uses"`
}

// DefaultSearchUses is the searches a web_search tool without max_uses is
// held for: the hold must cover a cost the API does not cap itself.
const DefaultSearchUses = 20

// WebSearches is the most web searches the request's server tools may
// run (each web_search tool's max_uses, DefaultSearchUses without one).
func (r *Request) WebSearches() int {
	n := 0
	for _, t := range r.Tools {
		if strings.HasPrefix(t.Type, "web_search") {
			if t.MaxUses != nil && *t.MaxUses >= 0 {
				n += *t.MaxUses
			} else {
				n += DefaultSearchUses
			}
		}
	}
	return n
}

// Server reports whether t is a server tool (run by Anthropic).
func (t *Tool) Server() bool { return t.Type != "" && t.Type != "custom" }

// ToolChoice is tool_choice.
type ToolChoice struct {
	Type                   string `json:"type"` // auto, any, tool, none
	Name                   string `json:"name"`
	DisableParallelToolUse bool   `json:"disable_parallel_tool_use"`
}

// Thinking is extended thinking: enabled with a token budget, disabled,
// or adaptive (the model decides, with output_config.effort).
type Thinking struct {
	Type         string `json:"type"`
	BudgetTokens int    `json:"budget_tokens"`
	// Display "omitted" asks for thinking blocks without their text
	// (Claude Code's default): only the signature.
	Display string `json:"display"`
}

// ThinkingEnabled reports whether the caller asked for thinking (any kind
// but disabled).
func (r *Request) ThinkingEnabled() bool {
	return r.Thinking != nil && r.Thinking.Type != "disabled"
}

func reqErr(param, format string, args ...any) error {
	return &providers.RequestError{Param: param, Message: fmt.Sprintf(format, args...)}
}

// maxMessages bounds one request's turns.
const maxMessages = 100000

// Parse decodes and checks a create request as Anthropic's API does.
// body is kept as given. Errors are *providers.RequestError.
func Parse(body []byte) (*Request, error) { return parse(body, false) }

// ParseCount is Parse for count_tokens, which takes no max_tokens (and so
// no check of the thinking budget against it).
func ParseCount(body []byte) (*Request, error) { return parse(body, true) }

func parse(body []byte, count bool) (*Request, error) {
	var r Request
	if err := providers.DecodeBody(body, &r); err != nil {
		return nil, err
	}
	r.Body = body
	if r.Model == "" {
		return nil, reqErr("model", "model: Field required")
	}
	if count {
		one := 1
		r.MaxTokens = &one
	}
	if r.MaxTokens == nil {
		return nil, reqErr("max_tokens", "max_tokens: Field required")
	}
	if *r.MaxTokens < 1 {
		return nil, reqErr("max_tokens", "max_tokens: Input should be greater than or equal to 1")
	}
	if len(r.Messages) == 0 {
		return nil, reqErr("messages", "messages: at least one message is required")
	}
	if len(r.Messages) > maxMessages {
		return nil, reqErr("messages", "messages: at most %d messages", maxMessages)
	}
	for i := range r.Messages {
		m := &r.Messages[i]
		at := "messages." + strconv.Itoa(i)
		switch m.Role {
		case "user", "assistant":
		case "system":
			// Claude Code sends these for model names it does not know;
			// Anthropic's API refuses them, so they go into system.
			r.SystemFolded = true
		default:
			return nil, reqErr(at+".role", "%s.role: Input should be 'user' or 'assistant'", at)
		}
		bs, err := blocks(at+".content", m.Content)
		if err != nil {
			return nil, err
		}
		m.decoded = bs
	}
	sys, err := blocksOrString("system", r.System)
	if err != nil {
		return nil, err
	}
	r.system = sys
	if t := r.Temperature; t != nil && (*t < 0 || *t > 1) {
		return nil, reqErr("temperature", "temperature: Input should be less than or equal to 1")
	}
	if th := r.Thinking; th != nil {
		switch th.Type {
		case "enabled":
			if th.BudgetTokens < 1024 {
				return nil, reqErr("thinking.budget_tokens", "thinking.enabled.budget_tokens: Input should be greater than or equal to 1024")
			}
			if !count && th.BudgetTokens >= *r.MaxTokens {
				return nil, reqErr("max_tokens", "`max_tokens` must be greater than `thinking.budget_tokens`.")
			}
		case "":
			return nil, reqErr("thinking.type", "thinking.type: Field required")
		default:
			// disabled, adaptive, between_tools, and kinds newer than this
			// gateway: a native upstream judges them, translation maps
			// what it knows.
		}
	}
	for i, t := range r.Tools {
		if !t.Server() && t.Name == "" {
			return nil, reqErr("tools."+strconv.Itoa(i)+".name", "tools.%d.name: Field required", i)
		}
	}
	if tc := r.ToolChoice; tc != nil {
		switch tc.Type {
		case "auto", "any", "none":
		case "tool":
			if tc.Name == "" {
				return nil, reqErr("tool_choice.name", "tool_choice.tool.name: Field required")
			}
		default:
			return nil, reqErr("tool_choice.type", "tool_choice.type: Input should be 'auto', 'any', 'tool' or 'none'")
		}
	}
	return &r, nil
}

// Streamed reports whether the caller asked for a stream.
func (r *Request) Streamed() bool { return r.Stream != nil && *r.Stream }

// blocks reads a content value: a string is one text block.
func blocks(at string, raw json.RawMessage) ([]Block, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return nil, reqErr(at, "%s: Field required", at)
	}
	return blocksOrString(at, raw)
}

func blocksOrString(at string, raw json.RawMessage) ([]Block, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	switch raw[0] {
	case '"':
		var s jsontext.String
		if err := s.UnmarshalJSON(raw); err != nil {
			return nil, reqErr(at, "%s: Input should be a valid string", at)
		}
		return []Block{{Type: "text", Text: s}}, nil
	case '[':
		var bs []Block
		if err := json.Unmarshal(raw, &bs); err != nil {
			return nil, reqErr(at, "%s: Input should be a valid list of content blocks", at)
		}
		for i, b := range bs {
			if b.Type == "" {
				return nil, reqErr(at+"."+strconv.Itoa(i)+".type", "%s.%d.type: Field required", at, i)
			}
		}
		return bs, nil
	}
	return nil, reqErr(at, "%s: Input should be a valid string or list of content blocks", at)
}

// text joins the text of text blocks.
func text(bs []Block) string {
	var sb strings.Builder
	for _, b := range bs {
		if b.Type == "text" && b.Text != "" {
			if sb.Len() > 0 {
				sb.WriteString("\n")
			}
			sb.WriteString(string(b.Text))
		}
	}
	return sb.String()
}
