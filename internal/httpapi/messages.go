package httpapi

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/tidwall/gjson"
	"github.com/tidwall/sjson"

	"github.com/xroute/xroute/internal/ingress/messages"
	"github.com/xroute/xroute/keys"
	"github.com/xroute/xroute/providers"
	"github.com/xroute/xroute/router"
)

// TokenCountingProvider is implemented by adapters whose upstream counts a
// request's input tokens exactly (Anthropic's count_tokens, Gemini's
// countTokens).
type TokenCountingProvider interface {
	CountTokens(ctx context.Context, call *providers.Call) (int, error)
}

func (s *modelAPI) routeMessages(v1 *gin.RouterGroup) {
	scope := s.scope(keys.EndpointMessages)
	v1.POST("/messages", scope, s.createMessage)
	v1.POST("/messages/count_tokens", scope, s.countMessageTokens)
}

// nativeHeaders are the caller's headers an Anthropic upstream gets too.
func nativeHeaders(r *http.Request) http.Header {
	h := http.Header{}
	for _, k := range [...]string{"anthropic-version", "anthropic-beta"} {
		for _, v := range r.Header.Values(k) {
			h.Add(k, v)
		}
	}
	return h
}

// parseMessage reads, checks and translates a Messages request.
func (s *modelAPI) parseMessage(c *gin.Context) (*messages.Request, *messages.Translation, *providers.ChatRequest, bool) {
	_, rq, ok := readRequest(s, c, messages.Parse, func(r *messages.Request) string { return r.Model })
	if !ok {
		return nil, nil, nil, false
	}
	tr, err := rq.Translate()
	if err != nil {
		writeRequestError(c, err)
		return nil, nil, nil, false
	}
	req := &providers.ChatRequest{
		Model: rq.Model, Stream: rq.Streamed(), MaxTokens: *rq.MaxTokens, Body: tr.PivotBody,
		HasTools: len(tr.Pivot.Tools) > 0, HasImages: tr.HasImages,
		ContextTokens: len(tr.PivotBody)/4 + *rq.MaxTokens,
		Format:        providers.FormatMessages, Native: tr.Native, NativeOnly: tr.NativeOnly,
		NativeHeaders: nativeHeaders(c.Request),
	}
	req.SetDecoded(tr.Pivot)
	return rq, tr, req, true
}

// createMessage is POST /v1/messages: the Anthropic Messages API on every
// provider (Claude Code, the Anthropic SDKs). On an Anthropic deployment
// the caller's body goes upstream as it is (only the model rewritten) and
// the answer is relayed as it is; on any other it is translated through
// the chat pivot and the answer re-encoded as Messages events.
func (s *modelAPI) createMessage(c *gin.Context) {
	info := infoOf(c)
	info.endpoint = "messages"
	rq, _, req, ok := s.parseMessage(c)
	if !ok {
		return
	}
	s.run(c, modelCall{model: rq.Model, stream: req.Stream, body: req.Body,
		worst: Worst{MaxTokens: req.MaxTokens, Hedgeable: true, WebSearches: rq.WebSearches()},
		serve: func(a *admitted) {
			out := &messageOut{b: messages.NewBuilder(rq, messages.NewID(), rq.Model, 0, req.Stream)}
			if s.own.Tokens != nil && req.Stream {
				// A translated stream's message_start reports the input (the
				// exact count follows in message_delta); a native one
				// relays the upstream's, so the count waits until a
				// translated stream starts.
				out.prompt = func() int { n, _ := s.own.Tokens.PromptTokens(req.Body); return n }
			}
			s.serve(c, a, req, out)
		}})
}

// messageOut writes a Messages stream: native events as they are,
// translated ones through the Builder.
type messageOut struct {
	b        *messages.Builder
	prompt   func() int // message_start's input estimate, if any
	native   bool
	seen     bool
	upstrErr bool
	buf      []byte
	final    []byte
}

func (o *messageOut) chunk(ch providers.Chunk) []byte {
	if !o.seen {
		o.seen, o.native = true, ch.Native
	}
	if o.native {
		o.upstrErr = o.upstrErr || ch.Name == "error"
		o.buf = append(o.buf[:0], "event: "...)
		o.buf = append(o.buf, ch.Name...)
		o.buf = append(o.buf, "\ndata: "...)
		o.buf = append(o.buf, ch.Data...)
		o.buf = append(o.buf, "\n\n"...)
		if ch.Name == "message_stop" {
			// The answer's last event waits for its usage to be kept:
			// finish sends it.
			o.final = append(o.final[:0], o.buf...)
			return nil
		}
		return o.buf
	}
	o.buf = o.buf[:0]
	if !o.b.Started() {
		o.buf = append(o.buf, o.start()...)
	}
	for _, ev := range ch.Events {
		o.buf = append(o.buf, o.b.Feed(ev, ch.Usage)...)
	}
	return o.buf
}

// start is the Builder's Start, with the input estimate counted now.
func (o *messageOut) start() []byte {
	if o.prompt != nil {
		o.b.SetPromptTokens(o.prompt())
	}
	return o.b.Start()
}

// render implements answerer: a native message as it came, else the
// neutral answer as a message.
func (o *messageOut) render(resp *providers.ChatResponse) []byte {
	if resp.Native {
		return resp.Body
	}
	for _, ev := range resp.Completion.Events() {
		o.b.Feed(ev, nil)
	}
	_, body := o.b.Finish(resp.Usage)
	return body
}

// keepalive implements keepaliver: Anthropic's ping event.
func (o *messageOut) keepalive() []byte { return []byte("event: ping\ndata: {\"type\": \"ping\"}\n\n") }

func (o *messageOut) finish(_ context.Context, info *requestInfo) []byte {
	if o.native {
		return o.final // message_stop, held back until now
	}
	var out []byte
	if !o.b.Started() {
		out = append(out, o.start()...)
	}
	ev, _ := o.b.Finish(providers.Usage{PromptTokens: info.prompt, CompletionTokens: info.complete, CachedTokens: info.cached, CacheWriteTokens: info.cacheWrite})
	return append(out, ev...)
}

func (o *messageOut) fail(e *apiError, _ *requestInfo) []byte {
	if o.native && o.upstrErr {
		return nil // the upstream's error event was relayed
	}
	_, body := anthropicError(e)
	typ := gjson.GetBytes(body, "error.type").Str
	var out []byte
	if !o.native && !o.b.Started() {
		out = append(out, o.start()...)
	}
	return append(out, o.b.Fail(typ, e.Message)...)
}

// countMessageTokens is POST /v1/messages/count_tokens: exact from the
// model's first deployment whose upstream counts tokens (Anthropic,
// Gemini), else xroute's own tokenizer. x-xroute-token-count says which
// ("exact" or "estimate"), and no model is called.
func (s *modelAPI) countMessageTokens(c *gin.Context) {
	body, bad := s.readBody(c)
	if bad != nil {
		writeError(c, bad)
		return
	}
	rq, err := messages.ParseCount(body)
	if err != nil {
		writeRequestError(c, err)
		return
	}
	if e := checkModelName(rq.Model); e != nil {
		writeError(c, e)
		return
	}
	tr, err := rq.Translate()
	if err != nil {
		writeRequestError(c, err)
		return
	}
	info := infoOf(c)
	info.model = rq.Model
	a := s.beginModelCall(c, info)
	if a == nil {
		return
	}
	defer a.abandon()
	req := &providers.ChatRequest{Model: rq.Model, MaxTokens: 1, Body: tr.PivotBody, Format: providers.FormatMessages,
		Native: countBody(tr.Native), NativeHeaders: nativeHeaders(c.Request)}
	req.SetDecoded(tr.Pivot)
	ctx, cancel := context.WithTimeout(c.Request.Context(), 30*time.Second)
	defer cancel()
	for _, d := range a.m.Deployments {
		tc, ok := d.Adapter().(TokenCountingProvider)
		if !ok {
			continue
		}
		n, err := tc.CountTokens(ctx, &providers.Call{Request: req, Model: d.Model})
		if err != nil {
			s.log.Info("exact token count failed; estimating", zapReq(info), zapErr(safeErr(err)))
			break
		}
		c.Writer.Header().Set("x-xroute-token-count", "exact")
		c.Writer.Header().Set("x-xroute-provider", d.Provider)
		c.JSON(http.StatusOK, gin.H{"input_tokens": n})
		return
	}
	n, ok := s.estimateTokens(c, tr.PivotBody)
	if !ok {
		return
	}
	c.JSON(http.StatusOK, gin.H{"input_tokens": n})
}

// estimateTokens counts the prompt tokens of a pivot body with the
// gateway's tokenizer, for the token-count endpoints when no exact
// counter answers, and marks the answer as an estimate. When it cannot
// count it writes the error and reports false.
func (s *modelAPI) estimateTokens(c *gin.Context, pivot []byte) (int, bool) {
	var n int
	err := errNoTokenizer
	if s.own.Tokens != nil {
		n, err = s.own.Tokens.PromptTokens(pivot)
	}
	if err != nil {
		writeError(c, newError(http.StatusServiceUnavailable, "server_error", "tokenizer_unavailable", "The gateway cannot count tokens right now."))
		return 0, false
	}
	c.Writer.Header().Set("x-xroute-token-count", "estimate")
	return n, true
}

var errNoTokenizer = errors.New("no tokenizer configured")

// countBody keeps what count_tokens accepts of a Messages body.
func countBody(body []byte) []byte {
	out := []byte(`{}`)
	for _, f := range [...]string{"model", "messages", "system", "tools", "tool_choice", "thinking", "mcp_servers", "context_management", "output_config"} {
		if v := gjson.GetBytes(body, f); v.Exists() {
			out, _ = sjson.SetRawBytes(out, f, []byte(v.Raw))
		}
	}
	return out
}

// anthropicModel is one model in Anthropic's shape, with its limits where
// the catalog knows them (the smallest of its deployments', what every
// one of them can take).
type anthropicModel struct {
	Type           string `json:"type"`
	ID             string `json:"id"`
	DisplayName    string `json:"display_name"`
	CreatedAt      string `json:"created_at"`
	MaxInputTokens *int   `json:"max_input_tokens,omitempty"`
	MaxTokens      *int   `json:"max_tokens,omitempty"`
}

func toAnthropicModel(m *router.Model) anthropicModel {
	out := anthropicModel{Type: "model", ID: m.Name, DisplayName: m.Name, CreatedAt: time.Unix(m.Created, 0).UTC().Format(time.RFC3339)}
	in, maxOut := 0, 0
	for i, d := range m.Deployments {
		if d.Info == nil || d.Info.Context <= 0 || d.Info.MaxOutput <= 0 {
			return out
		}
		if i == 0 || d.Info.Context < in {
			in = d.Info.Context
		}
		if i == 0 || d.Info.MaxOutput < maxOut {
			maxOut = d.Info.MaxOutput
		}
	}
	if in > 0 {
		out.MaxInputTokens, out.MaxTokens = &in, &maxOut
	}
	return out
}

// listAnthropicModels is GET /v1/models for an Anthropic client: the
// models the key may use, in Anthropic's list shape, paged as Anthropic
// pages it (limit 1..1000, default 20; after_id or before_id).
func (s *modelAPI) listAnthropicModels(c *gin.Context) {
	limit := 20
	if v := c.Query("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			writeError(c, invalidParam("limit", "limit: Input should be an integer from 1 to 1000"))
			return
		}
		limit = n
	}
	k := infoOf(c).key
	var all []anthropicModel
	for _, m := range s.cfg.Router.Models() {
		if k.AllowsModel(m.Name) {
			all = append(all, toAnthropicModel(m))
		}
	}
	start, end := 0, len(all)
	if id := c.Query("after_id"); id != "" {
		start = len(all)
		for i, m := range all {
			if m.ID == id {
				start = i + 1
				break
			}
		}
		end = min(start+limit, len(all))
	} else if id := c.Query("before_id"); id != "" {
		end = 0
		for i, m := range all {
			if m.ID == id {
				end = i
				break
			}
		}
		start = max(end-limit, 0)
	} else {
		end = min(limit, len(all))
	}
	page := all[start:end]
	var first, last any
	if len(page) > 0 {
		first, last = page[0].ID, page[len(page)-1].ID
	}
	more := end < len(all)
	if c.Query("before_id") != "" {
		more = start > 0
	}
	if page == nil {
		page = []anthropicModel{}
	}
	c.JSON(http.StatusOK, gin.H{"data": page, "has_more": more, "first_id": first, "last_id": last})
}
