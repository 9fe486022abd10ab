package loadtest

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"syscall"
	"time"
)

// Target is one endpoint under load: an OpenAI-compatible base URL ending in
// /v1 and the Bearer key to present.
type Target struct {
	Name    string `json:"name"`
	BaseURL string `json:"base_url"`
	APIKey  string `json:"-"`
	// Header holds further headers sent with every request to this target
	// (e.g. a gateway's routing headers), after the request's own. It is
	// only read.
	Header http.Header `json:"-"`
}

// Request is the request every operation of a run sends, built once.
type Request struct {
	Method string       // POST when empty
	Path   string       // relative to the target's base URL, e.g. "/chat/completions"
	Body   []byte       // sent as is, Content-Type: application/json
	Stream bool         // the body asks for an SSE stream
	Format StreamFormat // how the stream is read and checked
	Check  StreamCheck
	// KeyHeader is the header that carries the target's key as it is
	// (x-api-key for the Anthropic Messages API); "" sends it as
	// "Authorization: Bearer KEY".
	KeyHeader string
	// Header holds further headers sent with every request (e.g.
	// anthropic-version). It is only read.
	Header http.Header
}

// SetHeaders sets the headers of req on h: the key (apiKey) in KeyHeader
// or as a bearer token, the content type of a request with a body, Accept
// and req.Header.
func (req *Request) SetHeaders(h http.Header, apiKey string) {
	if req.KeyHeader != "" {
		h.Set(req.KeyHeader, apiKey)
	} else {
		h.Set("Authorization", "Bearer "+apiKey)
	}
	if req.Body != nil {
		h.Set("Content-Type", "application/json")
	}
	h.Set("Accept", "application/json")
	for k, vs := range req.Header {
		h[http.CanonicalHeaderKey(k)] = vs
	}
}

// StreamFormat is the wire format of a streamed answer.
type StreamFormat uint8

const (
	// StreamChat is a chat completion stream: chunks ending in
	// "data: [DONE]" (ReadChatStream).
	StreamChat StreamFormat = iota
	// StreamResponses is a Responses API stream: typed events ending in
	// response.completed (ReadResponsesStream).
	StreamResponses
	// StreamMessages is an Anthropic Messages stream: typed events from
	// message_start to message_stop (ReadMessagesStream).
	StreamMessages
)

// ChatRequest builds the chat completion request the benchmark sends. With
// stream, it asks for an SSE stream with a final usage chunk.
func ChatRequest(model, prompt string, maxTokens int, stream bool) Request {
	var b strings.Builder
	fmt.Fprintf(&b, `{"model":%q,"messages":[{"role":"user","content":%q}],"max_tokens":%d`, model, prompt, maxTokens)
	if stream {
		b.WriteString(`,"stream":true,"stream_options":{"include_usage":true}`)
	}
	b.WriteString("}")
	return Request{
		Method: http.MethodPost,
		Path:   "/chat/completions",
		Body:   []byte(b.String()),
		Stream: stream,
		Check:  StreamCheck{ExpectUsage: stream},
	}
}

// ResponsesRequest builds the Responses API request (POST /responses) the
// benchmark sends: the prompt as input, max_output_tokens, and store:
// false, so that a gateway's cost is its path and not a response store
// (chat completions store nothing either). With stream, it asks for an SSE
// stream, whose response.completed carries the usage.
func ResponsesRequest(model, prompt string, maxOutputTokens int, stream bool) Request {
	var b strings.Builder
	fmt.Fprintf(&b, `{"model":%q,"input":%q,"max_output_tokens":%d,"store":false`, model, prompt, maxOutputTokens)
	if stream {
		b.WriteString(`,"stream":true`)
	}
	b.WriteString("}")
	return Request{
		Method: http.MethodPost,
		Path:   "/responses",
		Body:   []byte(b.String()),
		Stream: stream,
		Format: StreamResponses,
		Check:  StreamCheck{ExpectUsage: stream},
	}
}

// AnthropicVersion is the anthropic-version header of MessagesRequest.
const AnthropicVersion = "2023-06-01"

// MessagesRequest builds the Anthropic Messages API request (POST
// /messages) the benchmark sends, as Claude Code and the Anthropic SDKs do:
// the prompt as one user message, max_tokens, the key in x-api-key and
// anthropic-version 2023-06-01. With stream, it asks for an SSE stream,
// whose message_delta carries the usage.
func MessagesRequest(model, prompt string, maxTokens int, stream bool) Request {
	var b strings.Builder
	fmt.Fprintf(&b, `{"model":%q,"max_tokens":%d`, model, maxTokens)
	if stream {
		b.WriteString(`,"stream":true`)
	}
	fmt.Fprintf(&b, `,"messages":[{"role":"user","content":%q}]}`, prompt)
	return Request{
		Method:    http.MethodPost,
		Path:      "/messages",
		Body:      []byte(b.String()),
		Stream:    stream,
		Format:    StreamMessages,
		Check:     StreamCheck{ExpectUsage: stream},
		KeyHeader: "x-api-key",
		Header:    http.Header{"Anthropic-Version": {AnthropicVersion}},
	}
}

// Client sends requests to one target over a tuned HTTP/1.1 transport.
type Client struct {
	target Target
	url    string
	hc     *http.Client
	tr     *http.Transport
	now    func() time.Time
}

// NewClient returns a client of target that keeps up to maxConns idle
// connections (at least as many as the requests it will have in flight).
func NewClient(target Target, maxConns int) *Client {
	if maxConns <= 0 {
		maxConns = 1024
	}
	tr := &http.Transport{
		Proxy: nil, // never an environment proxy: the traffic is local
		DialContext: (&net.Dialer{
			Timeout:   5 * time.Second,
			KeepAlive: 30 * time.Second,
		}).DialContext,
		MaxIdleConns:        0, // no global limit
		MaxIdleConnsPerHost: maxConns,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
		ForceAttemptHTTP2:   false,
		TLSNextProto:        map[string]func(string, *tls.Conn) http.RoundTripper{}, // HTTP/1.1 only
	}
	return &Client{
		target: target,
		url:    strings.TrimSuffix(target.BaseURL, "/"),
		hc:     &http.Client{Transport: tr},
		tr:     tr,
		now:    time.Now,
	}
}

// Target returns the client's target.
func (c *Client) Target() Target { return c.target }

// CloseIdle closes the idle connections of the client's pool.
func (c *Client) CloseIdle() { c.tr.CloseIdleConnections() }

// Outcome is the measurement of one operation.
type Outcome struct {
	Scheduled time.Time     // when the operation was due to start
	Sent      time.Time     // when it actually started
	Latency   time.Duration // scheduled start to end of the response
	Service   time.Duration // actual start to end of the response
	Status    int
	ErrKind   string // "" for success; otherwise a stable kind, e.g. "http_502"
	Stream    StreamResult
	Bytes     int64
}

// Reset empties o for reuse.
func (o *Outcome) Reset() {
	s := o.Stream
	s.Reset()
	*o = Outcome{Stream: s}
}

// Do performs req once. scheduled is when the operation was due (latency is
// measured from it, to correct coordinated omission); it never is after now.
func (c *Client) Do(ctx context.Context, req *Request, scheduled time.Time, out *Outcome) {
	out.Scheduled = scheduled
	out.Sent = c.now()
	defer func() {
		end := c.now()
		out.Latency = end.Sub(out.Scheduled)
		out.Service = end.Sub(out.Sent)
	}()
	method := req.Method
	if method == "" {
		method = http.MethodPost
	}
	var body io.Reader
	if req.Body != nil {
		body = bytes.NewReader(req.Body)
	}
	hreq, err := http.NewRequestWithContext(ctx, method, c.url+req.Path, body)
	if err != nil {
		out.ErrKind = "bad_request"
		return
	}
	req.SetHeaders(hreq.Header, c.target.APIKey)
	for k, vs := range c.target.Header {
		hreq.Header[http.CanonicalHeaderKey(k)] = vs
	}
	resp, err := c.hc.Do(hreq)
	if err != nil {
		out.ErrKind = classifyErr(ctx, err)
		return
	}
	defer resp.Body.Close()
	out.Status = resp.StatusCode
	if resp.StatusCode != http.StatusOK {
		n, _ := io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
		out.Bytes = n
		out.ErrKind = fmt.Sprintf("http_%d", resp.StatusCode)
		return
	}
	if req.Stream {
		read := ReadChatStream
		switch req.Format {
		case StreamResponses:
			read = ReadResponsesStream
		case StreamMessages:
			read = ReadMessagesStream
		}
		if err := read(resp.Body, out.Scheduled, c.now, req.Check, &out.Stream); err != nil {
			out.ErrKind = "read_" + classifyErr(ctx, err)
			return
		}
		out.Bytes = int64(out.Stream.ContentBytes)
		out.ErrKind = out.Stream.Problem(req.Check)
		return
	}
	n, err := io.Copy(io.Discard, resp.Body)
	out.Bytes = n
	if err != nil {
		out.ErrKind = "read_" + classifyErr(ctx, err)
		return
	}
	if n == 0 {
		out.ErrKind = "empty_body"
	}
}

// classifyErr names a transport error.
func classifyErr(ctx context.Context, err error) string {
	var nerr net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(context.Cause(ctx), context.DeadlineExceeded):
		return "timeout"
	case errors.Is(err, context.Canceled) || ctx.Err() != nil:
		return "canceled"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "conn_refused"
	case errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE):
		return "conn_reset"
	case errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF):
		return "unexpected_eof"
	case errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE):
		return "too_many_files"
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		return "no_ports"
	case errors.Is(err, os.ErrDeadlineExceeded):
		return "timeout"
	case errors.As(err, &nerr) && nerr.Timeout():
		return "timeout"
	}
	return "transport"
}
