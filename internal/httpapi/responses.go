package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/tidwall/gjson"
	"github.com/tidwall/sjson"
	"go.uber.org/zap"

	"github.com/xroute/xroute/internal/ingress/responses"
	"github.com/xroute/xroute/internal/store"
	"github.com/xroute/xroute/keys"
	"github.com/xroute/xroute/providers"
)

// ResponseStore keeps Responses API answers for retrieval and for
// previous_response_id, each readable only by its own account.
type ResponseStore interface {
	SaveResponse(ctx context.Context, r store.StoredResponse) error
	GetResponse(ctx context.Context, accountID, id string) (store.StoredResponse, error)
	DeleteResponse(ctx context.Context, accountID, id string) error
	ResponseChain(ctx context.Context, accountID, id string, maxDepth int) ([]store.StoredResponse, error)
}

// TokenCounter counts a pivot body's prompt tokens without a model call.
type TokenCounter interface {
	PromptTokens(body []byte) (int, error)
}

// maxConversation bounds the stored turns previous_response_id replays.
const maxConversation = 1000

func (s *modelAPI) routeResponses(v1 *gin.RouterGroup) {
	scope := s.scope(keys.EndpointResponses)
	v1.POST("/responses", scope, s.createResponse)
	v1.POST("/responses/input_tokens", scope, s.responseInputTokens)
	if s.own.Responses == nil {
		return
	}
	v1.GET("/responses/:id", scope, s.getResponse)
	v1.DELETE("/responses/:id", scope, s.deleteResponse)
	v1.GET("/responses/:id/input_items", scope, s.responseInputItems)
	v1.POST("/responses/:id/cancel", scope, func(c *gin.Context) {
		writeError(c, newError(http.StatusBadRequest, "invalid_request_error", "not_background",
			"Only background responses can be cancelled, and this gateway runs none."))
	})
}

// createResponse is POST /v1/responses: the Responses API on every
// provider. The request is parsed once and translated into the chat
// pivot; a deployment that speaks the Responses API natively gets the
// caller's own body (only the model rewritten) and its answer is relayed
// as it is. Either way the answer is stored, unless store is false.
func (s *modelAPI) createResponse(c *gin.Context) {
	info := infoOf(c)
	info.endpoint = "responses"
	_, rq, ok := readRequest(s, c, responses.Parse, func(r *responses.Request) string { return r.Model })
	if !ok {
		return
	}
	if rq.Stored() && s.own.Responses == nil {
		writeError(c, newError(http.StatusBadRequest, "invalid_request_error", "store_unavailable",
			"This gateway keeps no responses: send 'store': false.").withParam("store"))
		return
	}
	var tr *responses.Translation
	var req *providers.ChatRequest
	s.run(c, modelCall{model: rq.Model, stream: rq.Streamed(),
		// After the model, the key's scope, concurrency and RPM: a
		// refused request costs no chain read.
		prepare: func(mc *modelCall) bool {
			history, e := s.conversation(c, rq)
			if e != nil {
				writeError(c, e)
				return false
			}
			var err error
			if tr, err = rq.Translate(history); err != nil {
				writeRequestError(c, err)
				return false
			}
			maxTokens := 0
			if rq.MaxOutputTokens != nil {
				maxTokens = *rq.MaxOutputTokens
			}
			req = &providers.ChatRequest{
				Model: rq.Model, Stream: rq.Streamed(), MaxTokens: maxTokens, Body: tr.PivotBody,
				HasTools: len(tr.Pivot.Tools) > 0, HasImages: tr.HasImages, JSONSchema: tr.Pivot.ResponseFormat != nil && tr.Pivot.ResponseFormat.Type == "json_schema",
				ContextTokens: len(tr.PivotBody)/4 + maxTokens,
				Format:        providers.FormatResponses, Native: tr.Native, NativeOnly: tr.NativeOnly,
			}
			req.SetDecoded(tr.Pivot)
			if rq.PromptCacheKey != nil {
				req.CacheKey = *rq.PromptCacheKey
			}
			mc.body, mc.worst = tr.PivotBody, Worst{MaxTokens: maxTokens, Hedgeable: true}
			return true
		},
		serve: func(a *admitted) {
			s.serve(c, a, req, &responseOut{s: s, rq: rq, key: info.key, dropped: tr.Dropped,
				b: responses.NewBuilder(rq, tr.Tools, responses.NewID("resp_"), rq.Model, s.now().Unix(), req.Stream)})
		}})
}

// conversation loads the stored conversation previous_response_id names,
// oldest first: each turn's input, then its output.
func (s *modelAPI) conversation(c *gin.Context, rq *responses.Request) ([]responses.Item, *apiError) {
	if rq.PreviousResponseID == nil {
		return nil, nil
	}
	id := *rq.PreviousResponseID
	notFound := newError(http.StatusBadRequest, "invalid_request_error", "previous_response_not_found",
		"Previous response with id '"+id+"' not found.").withParam("previous_response_id")
	if s.own.Responses == nil {
		return nil, notFound
	}
	chain, err := s.own.Responses.ResponseChain(c.Request.Context(), infoOf(c).key.AccountID, id, maxConversation)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil, notFound
	case err != nil:
		return nil, s.storeError(c, "read the previous response", err)
	}
	turns := make([][2][]byte, len(chain))
	for i, r := range chain {
		turns[i] = [2][]byte{r.Input, r.Output}
	}
	items, err := responses.History(turns)
	if err != nil {
		return nil, s.storeError(c, "read the previous response", err)
	}
	return items, nil
}

func (s *modelAPI) storeError(c *gin.Context, what string, err error) *apiError {
	s.log.Error("responses store: "+what, zapReq(infoOf(c)), zapErr(err))
	if s.storeDown(err) {
		return errStoreUnavailable()
	}
	return newError(http.StatusInternalServerError, "server_error", "internal_error", "The gateway could not "+what+".")
}

// writeRequestError answers a *providers.RequestError as a 400.
func writeRequestError(c *gin.Context, err error) {
	var re *providers.RequestError
	if errors.As(err, &re) {
		writeError(c, newError(http.StatusBadRequest, "invalid_request_error", "", re.Message).withParam(re.Param))
		return
	}
	writeError(c, newError(http.StatusBadRequest, "invalid_request_error", "", err.Error()))
}

// responseOut renders one answer: the translated stream through the
// Builder, or a native stream relayed as it is; and stores the result.
type responseOut struct {
	s      *modelAPI
	rq     *responses.Request
	key    *keys.Key
	b      *responses.Builder
	native bool
	seen   bool // a chunk arrived: native or not is known
	// dropped are the built-in tools the pivot left out.
	dropped []string
	final   []byte
	buf     []byte
	// Native streams: events relayed (the next sequence number) and
	// whether the upstream's own error event was among them.
	relayed  int
	upstrErr bool
}

// routed implements routedHook: built-in tools a translating deployment
// left out are named in the answer; a native one kept them.
func (o *responseOut) routed(c *gin.Context, info *requestInfo) {
	if len(o.dropped) > 0 && info.deployment != nil && !info.deployment.Speaks(providers.FormatResponses) {
		c.Writer.Header().Set("x-xroute-dropped-tools", strings.Join(o.dropped, ","))
	}
}

// render implements answerer: a native response (its previous id
// restored), else the neutral answer as a response object.
func (o *responseOut) render(resp *providers.ChatResponse) []byte {
	if resp.Native {
		return o.rq.RestorePrevious(resp.Body, "")
	}
	for _, ev := range resp.Completion.Events() {
		o.b.Feed(ev, nil)
	}
	_, object := o.b.Finish(resp.Usage)
	return object
}

// keep implements keeper: the response is stored before it leaves; if it
// cannot be, the paid answer still goes out, saying so.
func (o *responseOut) keep(c *gin.Context, info *requestInfo, body []byte, resp *providers.ChatResponse) {
	if !o.save(c.Request.Context(), info, body, o.outputOf(body, resp.Native)) {
		c.Writer.Header().Set("x-xroute-stored", "false")
	}
}

// chunk implements encoder.
func (o *responseOut) chunk(ch providers.Chunk) []byte {
	if !o.seen {
		o.seen, o.native = true, ch.Native
	}
	if o.native {
		o.relayed++
		o.upstrErr = o.upstrErr || ch.Name == "error"
		data := ch.Data
		switch ch.Name {
		case "response.created", "response.in_progress", "response.completed", "response.incomplete", "response.failed":
			data = o.rq.RestorePrevious(data, "response.")
		}
		switch ch.Name {
		case "response.completed", "response.incomplete", "response.failed":
			// Stored (and usage committed) before it leaves: finish sends it.
			o.final = append(o.final[:0], "event: "+ch.Name+"\ndata: "...)
			o.final = append(o.final, data...)
			o.final = append(o.final, "\n\n"...)
			return nil
		}
		o.buf = append(o.buf[:0], "event: "...)
		o.buf = append(o.buf, ch.Name...)
		o.buf = append(o.buf, "\ndata: "...)
		o.buf = append(o.buf, data...)
		return append(o.buf, "\n\n"...)
	}
	o.buf = o.buf[:0]
	if !o.b.Started() {
		o.buf = append(o.buf, o.b.Start()...)
	}
	for _, ev := range ch.Events {
		o.buf = append(o.buf, o.b.Feed(ev, ch.Usage)...)
	}
	return o.buf
}

// finish implements encoder: the final event, after the response is
// stored (a client that continues at once finds it).
func (o *responseOut) finish(ctx context.Context, info *requestInfo) []byte {
	u := providers.Usage{PromptTokens: info.prompt, CompletionTokens: info.complete, CachedTokens: info.cached}
	if o.native {
		if len(o.final) == 0 {
			return nil
		}
		object := []byte(gjson.GetBytes(o.final[strings.Index(string(o.final), "data: ")+6:], "response").Raw)
		o.save(ctx, info, object, o.outputOf(object, true)) // paid for: sent even if not kept
		return o.final
	}
	var events []byte
	if !o.b.Started() {
		events = o.b.Start()
	}
	events = append([]byte(nil), events...)
	fin, object := o.b.Finish(u)
	events = append(events, fin...)
	o.save(ctx, info, object, o.b.Output()) // paid for: sent even if not kept
	return events
}

// keepalive implements keepaliver: an SSE comment (the Responses API
// has no keep-alive event of its own).
func (o *responseOut) keepalive() []byte { return ssePing }

// fail implements encoder.
func (o *responseOut) fail(e *apiError, info *requestInfo) []byte {
	code, _ := e.Code.(string)
	if code == "" {
		code = "server_error"
	}
	if o.native {
		if o.upstrErr {
			return nil // the upstream's error event was relayed
		}
		return responseErrorEvent(e, o.relayed)
	}
	var events []byte
	if !o.b.Started() {
		events = append(events, o.b.Start()...)
	}
	u := providers.Usage{PromptTokens: info.prompt, CompletionTokens: info.complete}
	fin, _ := o.b.Fail(code, e.Message, u)
	return append(events, fin...)
}

// outputOf is the output items of a response object.
func (o *responseOut) outputOf(object []byte, native bool) []byte {
	if !native {
		return o.b.Output()
	}
	if out := gjson.GetBytes(object, "output"); out.IsArray() {
		return []byte(out.Raw)
	}
	return []byte("[]")
}

// save keeps the response unless the caller said store: false. It
// reports whether the response is kept as asked; a failure is logged (the
// answer, already paid for, is delivered all the same).
func (o *responseOut) save(ctx context.Context, info *requestInfo, object, output []byte) bool {
	if !o.rq.Stored() || o.s.own.Responses == nil {
		return true
	}
	id := gjson.GetBytes(object, "id").Str
	if id == "" {
		id = o.b.ID()
	}
	prev := ""
	if o.rq.PreviousResponseID != nil {
		prev = *o.rq.PreviousResponseID
	}
	now := o.s.now()
	rec := store.StoredResponse{ID: id, AccountID: o.key.AccountID, KeyID: o.key.ID, PreviousID: prev, Model: o.rq.Model,
		Status: gjson.GetBytes(object, "status").Str, Input: o.rq.StoredInput(), Output: output, Response: object,
		CreatedAt: now, ExpiresAt: now.Add(o.s.own.ResponseRetention)}
	// A caller that left must not lose the turn it paid for.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := o.s.own.Responses.SaveResponse(ctx, rec); err != nil {
		o.s.log.Error("response not stored; the answer goes out unstored", zapReq(info), zap.String("response_id", id), zap.Error(err))
		return false
	}
	return true
}

// responseErrorEvent is a Responses stream's error event, numbered seq:
// the reference's fields at the top level and the nested object the live
// API sends, on which the SDKs raise.
func responseErrorEvent(e *apiError, seq int) []byte {
	code, _ := e.Code.(string)
	if code == "" {
		code = e.Type
	}
	b, _ := json.Marshal(map[string]any{"type": "error", "code": code, "message": e.Message, "param": e.Param, "sequence_number": seq,
		"error": map[string]any{"type": e.Type, "code": code, "message": e.Message, "param": e.Param}})
	return append(append([]byte("event: error\ndata: "), b...), "\n\n"...)
}

// getResponse is GET /v1/responses/{id}: the caller's own stored answer.
func (s *modelAPI) getResponse(c *gin.Context) {
	r, ok := s.ownResponse(c)
	if !ok {
		return
	}
	if c.Query("stream") == "true" {
		writeError(c, newError(http.StatusBadRequest, "invalid_request_error", "not_background",
			"Only background responses can be streamed again, and this gateway runs none.").withParam("stream"))
		return
	}
	c.Data(http.StatusOK, "application/json", r.Response)
}

// ownResponse reads the stored response named in the path; another
// account's is a 404 like one that does not exist.
func (s *modelAPI) ownResponse(c *gin.Context) (store.StoredResponse, bool) {
	id := c.Param("id")
	r, err := s.own.Responses.GetResponse(c.Request.Context(), infoOf(c).key.AccountID, id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		writeError(c, responseNotFound(id))
		return r, false
	case err != nil:
		writeError(c, s.storeError(c, "read the response", err))
		return r, false
	}
	return r, true
}

func responseNotFound(id string) *apiError {
	return newError(http.StatusNotFound, "invalid_request_error", "response_not_found", "Response with id '"+id+"' not found.")
}

// deleteResponse is DELETE /v1/responses/{id}.
func (s *modelAPI) deleteResponse(c *gin.Context) {
	id := c.Param("id")
	err := s.own.Responses.DeleteResponse(c.Request.Context(), infoOf(c).key.AccountID, id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		writeError(c, responseNotFound(id))
		return
	case err != nil:
		writeError(c, s.storeError(c, "delete the response", err))
		return
	}
	c.JSON(http.StatusOK, gin.H{"id": id, "object": "response.deleted", "deleted": true})
}

// responseInputItems is GET /v1/responses/{id}/input_items: limit (1 to
// 100, default 20), order (desc by default, as OpenAI), after an item id.
func (s *modelAPI) responseInputItems(c *gin.Context) {
	limit := 20
	if v := c.Query("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 100 {
			writeError(c, invalidParam("limit", "limit must be an integer from 1 to 100."))
			return
		}
		limit = n
	}
	order := c.DefaultQuery("order", "desc")
	if order != "asc" && order != "desc" {
		writeError(c, invalidParam("order", "order must be asc or desc."))
		return
	}
	r, ok := s.ownResponse(c)
	if !ok {
		return
	}
	items, ids, err := responses.ListItems(r.ID, r.Input)
	if err != nil {
		writeError(c, s.storeError(c, "read the input items", err))
		return
	}
	if order == "desc" {
		for i, j := 0, len(items)-1; i < j; i, j = i+1, j-1 {
			items[i], items[j] = items[j], items[i]
			ids[i], ids[j] = ids[j], ids[i]
		}
	}
	start := 0
	if after := c.Query("after"); after != "" {
		start = -1
		for i, id := range ids {
			if id == after {
				start = i + 1
				break
			}
		}
		if start < 0 {
			writeError(c, invalidParam("after", "after must be the id of an item of this response."))
			return
		}
	}
	end := min(start+limit, len(items))
	page := items[start:end]
	var first, last any
	if len(page) > 0 {
		first, last = ids[start], ids[end-1]
	}
	c.JSON(http.StatusOK, gin.H{"object": "list", "data": page, "first_id": first, "last_id": last, "has_more": end < len(items)})
}

// responseInputTokens is POST /v1/responses/input_tokens: the input's
// token count without a model call, from xroute's own tokenizer (OpenAI's
// encodings; an estimate for other vendors' models, which the
// x-xroute-token-count header says).
func (s *modelAPI) responseInputTokens(c *gin.Context) {
	body, bad := s.readBody(c)
	if bad != nil {
		writeError(c, bad)
		return
	}
	named := gjson.GetBytes(body, "model").Exists()
	if !named && gjson.ValidBytes(body) && gjson.ParseBytes(body).IsObject() {
		// The model is optional here; it picks the tokenizer.
		body, _ = sjson.SetBytes(body, "model", "gpt-4o")
	}
	rq, err := responses.Parse(body)
	if err != nil {
		writeRequestError(c, err)
		return
	}
	// No model call, but the key's scope and request limits hold: the
	// count may read a whole stored conversation.
	var adm *admission
	if named {
		info := infoOf(c)
		info.model = rq.Model
		a := s.beginModelCall(c, info)
		if a == nil {
			return
		}
		adm = a.adm
	} else if adm = s.admitRequest(c, infoOf(c).key); adm == nil {
		return
	}
	defer adm.release()
	history, e := s.conversation(c, rq)
	if e != nil {
		writeError(c, e)
		return
	}
	tr, err := rq.Translate(history)
	if err != nil {
		writeRequestError(c, err)
		return
	}
	n, ok := s.estimateTokens(c, tr.PivotBody)
	if !ok {
		return
	}
	c.JSON(http.StatusOK, gin.H{"object": "response.input_tokens", "input_tokens": n})
}
