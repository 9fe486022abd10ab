package anthropic

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/tidwall/gjson"
	"github.com/tidwall/sjson"

	"github.com/xroute/xroute/providers"
	"github.com/xroute/xroute/providers/sse"
)

// Speaks implements providers.NativeSpeaker: Anthropic serves the Messages
// API itself, so a Messages request is passed through as it is (prompt
// caching, thinking signatures and new beta fields keep working).
func (a *Adapter) Speaks(f providers.Format, _ string) bool { return f == providers.FormatMessages }

// nativeBody is the caller's Messages body with the upstream's model id,
// and cache breakpoints when it marks none (AddBreakpoints): every other
// byte as the caller sent it.
func nativeBody(call *providers.Call) ([]byte, error) {
	body := call.Request.Native
	if call.Model != call.Request.Model {
		out, err := sjson.SetBytes(body, "model", call.Model)
		if err != nil {
			return nil, fmt.Errorf("rewrite model: %w", err)
		}
		body = out
	}
	return AddBreakpoints(body, call.Breakpoints), nil
}

// nativeRequest is newRequest with the caller's anthropic-version and
// anthropic-beta: the caller knows which API version and betas its body
// is written for (the config's betas are added to its own).
func (a *Adapter) nativeRequest(ctx context.Context, u string, body []byte, stream bool, h http.Header) (*http.Request, error) {
	req, err := a.newRequest(ctx, body, stream)
	if err != nil {
		return nil, err
	}
	req.URL, _ = req.URL.Parse(u)
	if v := h.Get("anthropic-version"); v != "" {
		req.Header.Set("anthropic-version", v)
	}
	betas := h.Values("anthropic-beta")
	if own := req.Header.Get("anthropic-beta"); own != "" {
		betas = append(betas, own)
	}
	if len(betas) > 0 {
		req.Header.Set("anthropic-beta", strings.Join(betas, ","))
	}
	return req, nil
}

// chatNative serves a native Messages call: the answer is the upstream's
// message as it is.
func (a *Adapter) chatNative(ctx context.Context, call *providers.Call) (*providers.ChatResponse, error) {
	body, err := nativeBody(call)
	if err != nil {
		return nil, err
	}
	raw, err := providers.Send(ctx, a.client, a.name, a.timeout,
		func(ctx context.Context) (*http.Request, error) {
			return a.nativeRequest(ctx, a.url, body, false, call.Request.NativeHeaders)
		},
		func(resp *http.Response, raw []byte) error { return a.upstreamError(resp, raw) })
	if err != nil {
		return nil, err
	}
	if !gjson.ValidBytes(raw) || gjson.GetBytes(raw, "type").Str != "message" {
		return nil, providers.Malformed(a.name, false, "upstream sent an invalid response", errNotMessage)
	}
	out := &providers.ChatResponse{Body: raw, Native: true}
	var u usage
	readUsageInto(&u, gjson.GetBytes(raw, "usage"))
	out.Usage = u.openAI()
	return out, nil
}

// streamNative serves a native streamed Messages call: every event is
// relayed as it is (Chunk.Native); usage is read from message_start and
// message_delta, and the delivered text, arguments and thinking become
// Events to meter a stream that breaks before its usage.
func (a *Adapter) streamNative(ctx context.Context, call *providers.Call) (providers.Stream, error) {
	body, err := nativeBody(call)
	if err != nil {
		return nil, err
	}
	resp, cancel, err := providers.OpenStream(ctx, a.client, a.name, a.timeout,
		func(ctx context.Context) (*http.Request, error) {
			return a.nativeRequest(ctx, a.url, body, true, call.Request.NativeHeaders)
		},
		func(resp *http.Response, raw []byte) error { return a.upstreamError(resp, raw) })
	if err != nil {
		return nil, err
	}
	return &nativeStream{name: a.name, r: sse.NewReader(resp.Body), body: resp.Body, cancel: cancel}, nil
}

type nativeStream struct {
	name    string
	r       *sse.Reader
	body    io.ReadCloser
	cancel  context.CancelFunc
	usage   usage
	sent    bool
	done    bool
	pending error
	// queue holds events read ahead (copies): message_start and pings
	// wait for the first content block, so that a stream that fails right
	// after message_start (an overloaded Anthropic) fails over instead of
	// failing the caller.
	queue []providers.Chunk
	ahead bool // message_start seen, no content yet
}

// OnWait implements providers.WaitNotifier.
func (s *nativeStream) OnWait(f func()) bool {
	s.r.OnWait(f)
	return true
}

func (s *nativeStream) Recv() (providers.Chunk, error) {
	for {
		if len(s.queue) > 0 && !s.ahead {
			c := s.queue[0]
			s.queue = s.queue[1:]
			s.sent = true
			return c, nil
		}
		if s.pending != nil {
			err := s.pending
			s.pending = nil
			return providers.Chunk{}, err
		}
		if s.done {
			return providers.Chunk{}, io.EOF
		}
		c, err := s.next()
		if err != nil {
			if s.ahead && s.sent {
				// Read ahead, but some event went out already: the error
				// follows what is queued.
				s.ahead, s.pending = false, err
				continue
			}
			return providers.Chunk{}, err
		}
		switch {
		case c.Name == "message_start":
			s.ahead = true
			s.queue = append(s.queue, copyChunk(c))
		case s.ahead && c.Name == "ping":
			s.queue = append(s.queue, copyChunk(c))
		case s.ahead:
			s.ahead = false
			s.queue = append(s.queue, copyChunk(c))
		default:
			s.sent = true
			return c, nil
		}
	}
}

// copyChunk keeps a chunk past the next read (the reader reuses Data).
func copyChunk(c providers.Chunk) providers.Chunk {
	c.Data = bytes.Clone(c.Data)
	return c
}

func (s *nativeStream) next() (providers.Chunk, error) {
	for {
		ev, err := s.r.Next()
		if err != nil {
			s.done = true
			return providers.Chunk{}, brokenStream(s.name, err)
		}
		data := bytes.TrimSpace(ev.Data)
		if len(data) == 0 {
			continue
		}
		if !gjson.ValidBytes(data) {
			s.done = true
			return providers.Chunk{}, providers.Malformed(s.name, true, "upstream sent a malformed stream", errors.New("invalid JSON in event "+ev.Name))
		}
		name := ev.Name
		if name == "" {
			name = gjson.GetBytes(data, "type").Str
		}
		c := providers.Chunk{Data: data, Native: true, Name: name}
		switch name {
		case "message_start":
			// The input side is exact here (cache reads and writes
			// included): a stream that breaks later is billed from it.
			readUsageInto(&s.usage, gjson.GetBytes(data, "message.usage"))
			u := s.usage.openAI()
			u.CompletionTokens, u.TotalTokens = 0, u.PromptTokens
			c.Usage, c.UsagePartial = &u, true
		case "content_block_start":
			if cb := gjson.GetBytes(data, "content_block"); cb.Get("type").Str == "tool_use" {
				c.Events = []providers.Event{{Kind: providers.EventToolStart, Name: cb.Get("name").Str}}
			}
		case "content_block_delta":
			d := gjson.GetBytes(data, "delta")
			switch d.Get("type").Str {
			case "text_delta":
				c.Events = []providers.Event{{Kind: providers.EventText, Text: d.Get("text").Str}}
			case "input_json_delta":
				c.Events = []providers.Event{{Kind: providers.EventToolArgs, Text: d.Get("partial_json").Str}}
			case "thinking_delta":
				c.Events = []providers.Event{{Kind: providers.EventReasoning, Text: d.Get("thinking").Str}}
			}
		case "message_delta":
			// The final count: message_delta's usage is cumulative.
			readUsageInto(&s.usage, gjson.GetBytes(data, "usage"))
			u := s.usage.openAI()
			c.Usage = &u
			c.Events = []providers.Event{{Kind: providers.EventUsage}}
		case "message_stop":
			s.done = true
		case "error":
			s.done = true
			pe := streamError(s.name, data)
			if !s.sent {
				return providers.Chunk{}, pe // nothing sent yet: another deployment may serve it
			}
			// The upstream's own error event reaches the caller (its SDK
			// raises on it), then the stream ends with the failure.
			s.pending = pe
		}
		return c, nil
	}
}

func (s *nativeStream) Close() error {
	s.cancel()
	return s.body.Close()
}

// readUsageInto overwrites the usage fields present in u.
func readUsageInto(dst *usage, u gjson.Result) {
	if !u.IsObject() {
		return
	}
	for _, f := range [...]struct {
		key string
		dst *int
	}{
		{"input_tokens", &dst.InputTokens},
		{"cache_creation_input_tokens", &dst.CacheCreationInputTokens},
		{"cache_read_input_tokens", &dst.CacheReadInputTokens},
		{"output_tokens", &dst.OutputTokens},
		{"cache_creation.ephemeral_1h_input_tokens", &dst.CacheCreation1h},
		{"server_tool_use.web_search_requests", &dst.WebSearches},
	} {
		if v := u.Get(f.key); v.Exists() && v.Type != gjson.Null {
			*f.dst = providers.UsageCount(v)
		}
	}
}

// CountTokens asks the upstream's count_tokens endpoint for the exact
// input tokens of a Messages request (the caller's body, count_tokens'
// fields only).
func (a *Adapter) CountTokens(ctx context.Context, call *providers.Call) (int, error) {
	if call.Request.Format != providers.FormatMessages || call.Request.Native == nil {
		return 0, errors.New("anthropic: count_tokens needs a Messages request")
	}
	body, err := nativeBody(call)
	if err != nil {
		return 0, err
	}
	raw, err := providers.Send(ctx, a.client, a.name, a.timeout,
		func(ctx context.Context) (*http.Request, error) {
			return a.nativeRequest(ctx, a.url+"/count_tokens", body, false, call.Request.NativeHeaders)
		},
		func(resp *http.Response, raw []byte) error { return a.upstreamError(resp, raw) })
	if err != nil {
		return 0, err
	}
	n := gjson.GetBytes(raw, "input_tokens")
	if n.Type != gjson.Number || n.Int() < 0 {
		return 0, &providers.Error{Provider: a.name, Status: http.StatusBadGateway, Message: "upstream sent an invalid token count"}
	}
	return int(n.Int()), nil
}
