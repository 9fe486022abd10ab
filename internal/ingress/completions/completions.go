// Package completions is the legacy OpenAI Completions ingress (POST
// /v1/completions): a prompt in, text out. A deployment that serves the
// endpoint natively gets the caller's body as it is; every other one gets
// the prompt as the user message of a chat pivot, and the answer is
// rendered back as text_completion objects. Parameters only a real
// completions endpoint can honour (suffix, echo, logprobs, best_of, more
// than one prompt or choice) require such a deployment.
package completions

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/tidwall/gjson"

	"github.com/xroute/xroute/providers"
)

// Request is a completions request as xroute reads it.
type Request struct {
	Model         string          `json:"model"`
	Prompt        json.RawMessage `json:"prompt"`
	MaxTokens     *int            `json:"max_tokens"`
	Stream        bool            `json:"stream"`
	StreamOptions *struct {
		IncludeUsage bool `json:"include_usage"`
	} `json:"stream_options"`
	Suffix           *string                `json:"suffix"`
	Echo             *bool                  `json:"echo"`
	Logprobs         *int                   `json:"logprobs"`
	N                *int                   `json:"n"`
	BestOf           *int                   `json:"best_of"`
	Stop             providers.StringList   `json:"stop"`
	Temperature      *float64               `json:"temperature"`
	TopP             *float64               `json:"top_p"`
	PresencePenalty  *float64               `json:"presence_penalty"`
	FrequencyPenalty *float64               `json:"frequency_penalty"`
	Seed             *int64                 `json:"seed"`
	User             string                 `json:"user"`
	LogitBias        map[string]json.Number `json:"logit_bias"`

	// Prompts is Prompt as strings.
	Prompts []string `json:"-"`
}

// DefaultMaxTokens is max_tokens when the caller set none, as the
// reference documents.
const DefaultMaxTokens = 16

func reqErr(param, format string, args ...any) error {
	return &providers.RequestError{Param: param, Message: fmt.Sprintf(format, args...)}
}

// Parse decodes and checks a request. Errors are *providers.RequestError.
func Parse(body []byte) (*Request, error) {
	var r Request
	if err := providers.DecodeBody(body, &r); err != nil {
		return nil, err
	}
	if r.Model == "" {
		return nil, reqErr("model", "Missing required parameter: 'model'.")
	}
	p := bytes.TrimSpace(r.Prompt)
	switch {
	case len(p) == 0 || string(p) == "null":
		return nil, reqErr("prompt", "Missing required parameter: 'prompt'.")
	case p[0] == '"':
		var s string
		if err := json.Unmarshal(p, &s); err != nil {
			return nil, reqErr("prompt", "Invalid 'prompt'.")
		}
		r.Prompts = []string{s}
	case p[0] == '[':
		if err := json.Unmarshal(p, &r.Prompts); err != nil {
			return nil, reqErr("prompt", "Invalid 'prompt': expected a string or an array of strings (token arrays are not supported by this gateway).")
		}
		if len(r.Prompts) == 0 {
			return nil, reqErr("prompt", "Invalid 'prompt': empty array.")
		}
	default:
		return nil, reqErr("prompt", "Invalid type for 'prompt': expected a string or an array of strings.")
	}
	if r.MaxTokens != nil && *r.MaxTokens < 0 {
		return nil, reqErr("max_tokens", "Invalid 'max_tokens': integer below minimum value. Expected a value >= 0, but got %d instead.", *r.MaxTokens)
	}
	if r.N != nil && (*r.N < 1 || *r.N > 128) {
		return nil, reqErr("n", "Invalid 'n': expected an integer from 1 to 128.")
	}
	if r.BestOf != nil && (*r.BestOf < 1 || *r.BestOf > 20 || (r.N != nil && *r.BestOf < *r.N)) {
		return nil, reqErr("best_of", "Invalid 'best_of': expected an integer from 1 to 20, at least 'n'.")
	}
	return &r, nil
}

// MaxOutput is the answer's token cap: max_tokens, 16 by default.
func (r *Request) MaxOutput() int {
	if r.MaxTokens != nil {
		return *r.MaxTokens
	}
	return DefaultMaxTokens
}

// Choices is how many completions the upstream generates and bills:
// prompts × max(n, best_of) (best_of answers are generated server-side,
// n returned).
func (r *Request) Choices() int {
	n := 1
	if r.N != nil {
		n = *r.N
	}
	if r.BestOf != nil && *r.BestOf > n {
		n = *r.BestOf
	}
	return n * len(r.Prompts)
}

// NativeOnly says why only a deployment with a real completions endpoint
// can serve the request ("" when a chat model can).
func (r *Request) NativeOnly() string {
	var needs []string
	if r.Suffix != nil && *r.Suffix != "" {
		needs = append(needs, "'suffix' (insertion)")
	}
	if r.Echo != nil && *r.Echo {
		needs = append(needs, "'echo'")
	}
	if r.Logprobs != nil {
		needs = append(needs, "'logprobs'")
	}
	if r.BestOf != nil && *r.BestOf > 1 {
		needs = append(needs, "'best_of'")
	}
	if len(r.Prompts) > 1 {
		needs = append(needs, "several prompts")
	}
	if r.N != nil && *r.N > 1 {
		needs = append(needs, "'n' > 1")
	}
	if len(needs) == 0 {
		return ""
	}
	return strings.Join(needs, ", ") + " needs"
}

// Pivot is the chat request a chat model answers instead: the prompt as
// the user message.
func (r *Request) Pivot() (*providers.OpenAIRequest, []byte, error) {
	max := r.MaxOutput()
	out := &providers.OpenAIRequest{
		Model:    r.Model,
		Messages: []providers.Message{{Role: "user", Content: providers.Content{Text: r.Prompts[0]}}},
		Stream:   r.Stream, Stop: r.Stop, Temperature: r.Temperature, TopP: r.TopP,
		PresencePenalty: r.PresencePenalty, FrequencyPenalty: r.FrequencyPenalty, Seed: r.Seed, User: r.User,
	}
	if max > 0 {
		out.MaxTokens = &max
	}
	b, err := json.Marshal(out)
	return out, b, err
}

// Builder renders neutral answer events as text_completion objects.
type Builder struct {
	id      string
	model   string
	created int64
	text    strings.Builder
	finish  string
	buf     []byte
}

// NewBuilder starts an answer.
func NewBuilder(id, model string, created int64) *Builder {
	return &Builder{id: id, model: model, created: created}
}

type choice struct {
	Text         string  `json:"text"`
	Index        int     `json:"index"`
	Logprobs     any     `json:"logprobs"`
	FinishReason *string `json:"finish_reason"`
}

type usageJSON struct {
	PromptTokens     int `json:"prompt_tokens"`
	CompletionTokens int `json:"completion_tokens"`
	TotalTokens      int `json:"total_tokens"`
}

func (b *Builder) object(choices []choice, u *providers.Usage) []byte {
	var uj *usageJSON
	if u != nil {
		uj = &usageJSON{u.PromptTokens, u.CompletionTokens, u.PromptTokens + u.CompletionTokens}
	}
	out, _ := json.Marshal(struct {
		ID      string     `json:"id"`
		Object  string     `json:"object"`
		Created int64      `json:"created"`
		Model   string     `json:"model"`
		Choices []choice   `json:"choices"`
		Usage   *usageJSON `json:"usage,omitempty"`
	}{b.id, "text_completion", b.created, b.model, choices, uj})
	return out
}

// Feed adds one event and returns the stream chunk it produces (a `data:`
// line), or nil.
func (b *Builder) Feed(ev providers.Event) []byte {
	switch ev.Kind {
	case providers.EventText:
		if ev.Text == "" {
			return nil
		}
		b.text.WriteString(ev.Text)
		return b.data(b.object([]choice{{Text: ev.Text}}, nil))
	case providers.EventFinish:
		b.finish = finishReason(ev.Finish)
		f := b.finish
		return b.data(b.object([]choice{{FinishReason: &f}}, nil))
	}
	return nil
}

// StreamEnd is the usage chunk (when the caller asked for it) and [DONE].
func (b *Builder) StreamEnd(u providers.Usage, includeUsage bool) []byte {
	b.buf = b.buf[:0]
	if includeUsage {
		b.buf = append(b.buf, "data: "...)
		b.buf = append(b.buf, b.object([]choice{}, &u)...)
		b.buf = append(b.buf, "\n\n"...)
	}
	return append(b.buf, "data: [DONE]\n\n"...)
}

// Complete renders a finished answer as one text_completion object.
func (b *Builder) Complete(c *providers.Completion, u providers.Usage) []byte {
	t := ""
	if c.Content != nil {
		t = *c.Content
	}
	f := finishReason(c.FinishReason)
	return b.object([]choice{{Text: t, FinishReason: &f}}, &u)
}

func (b *Builder) data(obj []byte) []byte {
	b.buf = append(b.buf[:0], "data: "...)
	b.buf = append(b.buf, obj...)
	return append(b.buf, "\n\n"...)
}

// finishReason maps chat's finish reasons to the completions API's (stop,
// length, content_filter; a tool call cannot happen without tools).
func finishReason(f string) string {
	switch f {
	case "length", "content_filter":
		return f
	}
	return "stop"
}

// IsUsageOnly reports whether a native stream chunk is the usage chunk
// (empty choices).
func IsUsageOnly(data []byte) bool {
	ch := gjson.GetBytes(data, "choices")
	return ch.IsArray() && len(ch.Array()) == 0
}
