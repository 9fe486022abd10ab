package httpapi

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"
	"unsafe"

	"github.com/gin-gonic/gin"
	"github.com/tidwall/gjson"
	"github.com/tidwall/sjson"
	"go.uber.org/zap"

	"github.com/xroute/xroute/billing"
	"github.com/xroute/xroute/billing/books"
	"github.com/xroute/xroute/internal/telemetry"
	"github.com/xroute/xroute/keys"
	"github.com/xroute/xroute/providers"
	"github.com/xroute/xroute/router"
)

// Meter prices requests against the caller's credits.
type Meter interface {
	// Hold reserves the most the request can cost on model m and checks
	// budgets. A nil Hold means the request costs nothing. requestID is
	// the id of the request's usage record; body the pivot (or the
	// caller's body) whose prompt is counted.
	Hold(ctx context.Context, requestID string, k *keys.Key, m *router.Model, body []byte, w Worst) (Hold, error)
}

// Worst is what multiplies a request's worst-case cost besides its
// prompt.
type Worst struct {
	// MaxTokens caps each answer's output (0: the model's limit).
	MaxTokens int
	// Choices is how many answers one call produces (n, best_of, several
	// prompts); 0 means 1.
	Choices int
	// Hedgeable: the request may be hedged, so two attempts may complete
	// and both be paid.
	Hedgeable bool
	// WebSearches is the most server-side web searches the request may
	// make (Anthropic's web_search tool: its max_uses).
	WebSearches int
	// Fallbacks are the models the request may fall back to (its "models"
	// list, as the key may use them): their deployments may serve it, so
	// they are priced and held for too. Set by the admission pipeline.
	Fallbacks []*router.Model
}

// UnpricedError is Hold's refusal of a request that a deployment without
// a price could serve: xroute serves no answer without a price, and free
// is only what an operator marks free.
type UnpricedError struct {
	Model      string // the public model
	Deployment string // its deployment without a price (provider/model)
}

func (e *UnpricedError) Error() string {
	return "model " + e.Model + " has no price (deployment " + e.Deployment + ")"
}

// Hold is one request's reservation.
type Hold interface {
	// Cost prices the usage served by deployment d, in nano-USD.
	Cost(d *router.Deployment, u providers.Usage) int64
	// Estimate counts usage when the provider reported none.
	Estimate(body []byte, delivered string) providers.Usage
	// Settle charges cost (after its record is committed) and releases the
	// rest of the reservation.
	Settle(cost int64)
	// Release frees the reservation of a request that cost nothing.
	Release()
}

// hold reserves credits for a request; on refusal it writes the answer
// and returns false.
func (s *modelAPI) hold(c *gin.Context, info *requestInfo, m *router.Model, body []byte, w Worst) bool {
	if s.own.Meter == nil {
		return true
	}
	h, err := s.own.Meter.Hold(c.Request.Context(), info.id, info.key, m, body, w)
	var be *billing.BudgetError
	var ue *UnpricedError
	switch {
	case err == nil:
		info.hold = h
		return true
	case errors.As(err, &ue):
		s.log.Warn("request refused: model has no price", zapReq(info), zap.String("model", ue.Model), zap.String("deployment", ue.Deployment))
		writeError(c, newError(http.StatusBadRequest, "invalid_request_error", "model_not_priced",
			"The model `"+ue.Model+"` has no price, and xroute serves no answer without one. An operator must price it (input_price and output_price) or mark it free in the configuration.").withParam("model"))
	case errors.Is(err, keys.ErrChildCap):
		writeError(c, childCapError(err))
	case errors.Is(err, billing.ErrInsufficientCredits):
		// As OpenAI answers an exhausted quota: a 429 the SDKs must not retry.
		e := newError(http.StatusTooManyRequests, "insufficient_quota", "insufficient_quota",
			"You exceeded your current quota: the account's credits cannot cover this request. Top up the account's credits.")
		e.NoRetry = true
		writeError(c, e)
	case errors.As(err, &be):
		e := newError(http.StatusTooManyRequests, "insufficient_quota", "budget_exceeded", be.Error())
		e.NoRetry = true
		if d := time.Until(be.ResetsAt); d > 0 {
			e.RetryAfter = d
		}
		writeError(c, e)
	case s.storeDown(err):
		s.log.Error("credit check failed: database unreachable", zapReq(info), zapErr(err))
		writeError(c, errStoreUnavailable())
	default:
		s.log.Error("credit check failed", zapReq(info), zapErr(err))
		writeError(c, newError(http.StatusServiceUnavailable, "server_error", "billing_unavailable", "The gateway cannot check credits right now. Please retry."))
	}
	return false
}

// price fills in the request's cost from its usage, estimating what the
// provider did not count (or counted wrong) from the prompt and the
// delivered output: an answer that came is never billed 0.
func (s *modelAPI) price(info *requestInfo, body []byte) {
	if info.hold == nil || info.deployment == nil {
		return
	}
	switch {
	case !info.usageSeen:
		if len(info.delivered) == 0 && !info.served {
			return // nothing came back: nothing to charge
		}
		u := info.hold.Estimate(body, string(info.delivered))
		info.prompt, info.complete, info.usageSeen, info.estimated = u.PromptTokens, u.CompletionTokens, true, true
	default:
		if (info.partialUsage || info.complete == 0) && len(info.delivered) > 0 {
			// The input side is the upstream's; the output stopped before
			// its count came, or was not counted: counted from what was
			// delivered.
			u := info.hold.Estimate(nil, string(info.delivered))
			info.complete, info.estimated = max(info.complete, u.CompletionTokens), true
		}
		if info.prompt == 0 {
			// The upstream read a prompt it did not count.
			info.prompt, info.estimated = info.hold.Estimate(body, "").PromptTokens, true
		}
	}
	u := providers.Usage{PromptTokens: info.prompt, CompletionTokens: info.complete, CachedTokens: info.cached, CacheWriteTokens: info.cacheWrite, CacheWrite1hTokens: info.cacheW1h, WebSearches: info.searches}
	info.cost = info.hold.Cost(info.deployment, u)
	if info.cacheHit {
		// A response cache hit: the configured part of the price; the rest
		// is what the response cache saved the account. No provider prompt
		// cache was used for it (the replayed counts are the original
		// request's), so it saved nothing there.
		full := info.cost
		info.cost = int64(float64(full) * s.cfg.Cache.PriceFraction)
		info.hitSaved = full - info.cost
		info.cacheSaved = 0
		return
	}
	info.cacheSaved = promptCacheSaved(info.hold, info.deployment, u, info.cost)
	// A hedge that lost but finished was served too: the caller pays for
	// what the upstream charged for it.
	for _, a := range info.tried {
		if !a.Won && a.Usage != nil && a.Deployment != nil {
			if err := a.Usage.Check(); err != nil {
				s.log.Warn("upstream usage of a losing hedge rejected", zapReq(info), zap.String("deployment", a.Deployment.Name()), zap.Error(err))
				continue
			}
			c := info.hold.Cost(a.Deployment, *a.Usage)
			info.cost += c
			info.cacheSaved += promptCacheSaved(info.hold, a.Deployment, *a.Usage, c)
		}
	}
}

// promptCacheSaved is what the provider's prompt cache saved on usage u
// that cost cost: the price of u with every cached and cache-written token
// at the plain input price, minus cost. Negative when cache writes (priced
// above input) outweighed the reads; 0 when no token touched the cache.
func promptCacheSaved(h Hold, d *router.Deployment, u providers.Usage, cost int64) int64 {
	if u.CachedTokens <= 0 && u.CacheWriteTokens <= 0 {
		return 0
	}
	u.CachedTokens, u.CacheWriteTokens, u.CacheWrite1hTokens = 0, 0, 0
	return h.Cost(d, u) - cost
}

func noteRoute(info *requestInfo, res router.Result) {
	info.attempts = res.Attempts
	info.tried = res.Tried
	if res.Deployment != nil {
		info.deployment = res.Deployment
		info.provider, info.upstream = res.Deployment.Provider, res.Deployment.Model
	}
}

// usageRecord is the record of a request as it stands.
func (s *modelAPI) usageRecord(info *requestInfo) books.UsageRecord {
	status := info.status
	if status == 0 {
		status = http.StatusOK
	}
	return books.UsageRecord{
		RequestID:              info.id,
		AccountID:              info.key.AccountID,
		KeyID:                  info.key.ID,
		Model:                  info.model,
		Provider:               info.provider,
		UpstreamModel:          info.upstream,
		Stream:                 info.stream,
		PromptTokens:           info.prompt,
		CompletionTokens:       info.complete,
		CachedTokens:           info.cached,
		CacheWriteTokens:       info.cacheWrite,
		Latency:                s.now().Sub(info.start),
		TTFT:                   info.ttft,
		Status:                 status,
		Attempts:               info.attempts,
		ErrorCode:              info.errCode,
		CreatedAt:              info.start,
		CostNano:               info.cost,
		Estimated:              info.estimated,
		Deployment:             deploymentName(info),
		Endpoint:               info.endpoint,
		TraceID:                info.traceID,
		CacheHit:               info.cacheHit,
		PromptCacheSavedNano:   info.cacheSaved,
		ResponseCacheSavedNano: info.hitSaved,
	}
}

// deploymentName names the deployment that served the request, or the
// last one tried when none did ("" when routing never ran).
func deploymentName(info *requestInfo) string {
	if info.deployment != nil {
		return info.deployment.Name()
	}
	if n := len(info.tried); n > 0 && info.tried[n-1].Deployment != nil {
		return info.tried[n-1].Deployment.Name()
	}
	return ""
}

// commitUsage prices and writes a successful request's record (with its
// ledger debit) and waits for the commit, so that a response whose last
// byte was sent always has its record and its charge, even if the process
// is killed right after. Then the reservation is settled.
//
// It returns false when the record could not be kept at all (the database
// is down and the usage spool full): the request is then not charged, and
// a caller that has not sent its answer yet refuses it instead.
func (s *modelAPI) commitUsage(c *gin.Context, info *requestInfo) bool {
	info.metered = true
	s.price(info, info.body)
	rec := s.usageRecord(info)
	sp := s.child(info, telemetry.SpanUsageWrite)
	err := s.own.Usage.Commit(c.Request.Context(), rec)
	endUsageWrite(sp, err)
	kept := !errors.Is(err, billing.ErrSpoolFull)
	switch {
	case !kept:
		// The log line is the only trace left of this request's usage.
		s.log.Error("usage record not kept: database down and usage spool full", zapReq(info), zap.Reflect("usage", rec))
		info.cost = 0
	case err != nil:
		s.log.Error("usage record not committed", zapReq(info), zap.Error(err))
	}
	s.settle(info)
	s.observeDone(info)
	return kept
}

// meter writes the record of a request that ended without commitUsage
// (errors, refusals, a caller that left, a stream that broke); it runs
// deferred. A part that was delivered is still charged.
func (s *modelAPI) meter(info *requestInfo) {
	if info.metered {
		return
	}
	info.metered = true
	s.price(info, info.body)
	rec := s.usageRecord(info)
	sp := s.child(info, telemetry.SpanUsageWrite)
	var err error
	if info.cost > 0 {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if err = s.own.Usage.Commit(ctx, rec); err != nil {
			s.log.Error("usage record not committed", zapReq(info), zap.Error(err))
		}
		cancel()
	} else if err = s.own.Usage.Record(rec); err != nil {
		s.log.Error("usage record not queued", zapReq(info), zap.Error(err))
	}
	endUsageWrite(sp, err)
	s.settle(info)
	s.observeDone(info)
}

// settle charges the reservation what the request cost (0 releases it).
func (s *modelAPI) settle(info *requestInfo) {
	if info.hold == nil {
		return
	}
	sp := s.child(info, telemetry.SpanSettle)
	if info.cost > 0 {
		info.hold.Settle(info.cost)
	} else {
		info.hold.Release()
	}
	info.hold = nil
	endSettle(sp, info.cost)
}

func (s *modelAPI) observeDone(info *requestInfo) {
	if s.cfg.Observe == nil {
		return
	}
	status := info.status
	if status == 0 {
		status = http.StatusOK
	}
	s.cfg.Observe(Observation{KeyID: info.key.ID, AccountID: info.key.AccountID, IP: info.clientAddr, Status: status, Tokens: info.prompt + info.complete})
}

// noteUsage records an answer's usage when the upstream's count can be
// believed, and reports whether it did. Usage that is negative, absurd or
// not numbers is an upstream error: logged (once a request), never
// stored, and the request is counted from the prompt and what was
// delivered instead. All zeros is no count at all.
func (s *modelAPI) noteUsage(info *requestInfo, u providers.Usage) bool {
	if err := u.Check(); err != nil {
		if !info.usageBad {
			info.usageBad = true
			s.log.Warn("upstream usage rejected; the request is billed from its estimate", zapReq(info),
				zap.String("provider", info.provider), zap.String("upstream_model", info.upstream), zap.Error(err))
		}
		return false
	}
	if u.PromptTokens == 0 && u.CompletionTokens == 0 {
		return false
	}
	info.prompt, info.complete, info.cached, info.cacheWrite, info.cacheW1h, info.usageSeen = u.PromptTokens, u.CompletionTokens, u.CachedTokens, u.CacheWriteTokens, u.CacheWrite1hTokens, true
	info.searches = u.WebSearches
	return true
}

// noteAnswer records a non-streamed answer's usage. An upstream that
// reported none (or nothing but zeros, or a count that cannot be right,
// or one side only) is counted from the prompt and everything the answer
// delivered instead, marked estimated: never billed 0.
func (s *modelAPI) noteAnswer(info *requestInfo, resp *providers.ChatResponse) {
	if s.noteUsage(info, resp.Usage) && info.prompt > 0 && info.complete > 0 {
		return
	}
	info.served = true
	info.delivered = appendAnswered(info.delivered, resp)
}

// saneUsage replaces the usage an upstream got wrong in a non-streamed
// answer with the count the request is billed (the estimate; zeros when it
// is free), so that the caller's SDK reads numbers that hold: in resp.Usage
// for the ingresses that render it, in the body where it is relayed as
// the upstream wrote it (chat, native answers).
func (s *modelAPI) saneUsage(info *requestInfo, f providers.Format, resp *providers.ChatResponse) {
	s.price(info, info.body)
	p, c := max(info.prompt, 0), max(info.complete, 0)
	resp.Usage = providers.Usage{PromptTokens: p, CompletionTokens: c, TotalTokens: p + c}
	if f != providers.FormatChat && !resp.Native {
		return
	}
	var raw string
	switch f {
	case providers.FormatResponses:
		raw = fmt.Sprintf(`{"input_tokens":%d,"output_tokens":%d,"total_tokens":%d}`, p, c, p+c)
	case providers.FormatMessages:
		raw = fmt.Sprintf(`{"input_tokens":%d,"output_tokens":%d}`, p, c)
	default:
		raw = fmt.Sprintf(`{"prompt_tokens":%d,"completion_tokens":%d,"total_tokens":%d}`, p, c, p+c)
	}
	if body, err := sjson.SetRawBytes(resp.Body, "usage", []byte(raw)); err == nil {
		resp.Body = body
	}
}

// appendAnswered appends everything a non-streamed answer delivered, in
// any format and for every choice: text, refusals, reasoning, tool-call
// names and arguments.
func appendAnswered(dst []byte, resp *providers.ChatResponse) []byte {
	if resp.Completion != nil {
		for _, ev := range resp.Completion.Events() {
			dst = appendEvent(dst, ev)
		}
		return dst
	}
	root := gjson.ParseBytes(resp.Body)
	for _, k := range [...]string{"choices", "output", "content"} {
		if v := root.Get(k); v.Exists() {
			return appendOutputs(dst, v)
		}
	}
	return dst
}

// answerTextKeys are the fields that hold delivered output in a chat
// completion or chunk (choices[].message or .delta), a legacy completion
// (choices[].text), a Responses object's output (message content,
// function calls, reasoning summaries) and an Anthropic message's content
// blocks.
var answerTextKeys = [...]string{"content", "text", "refusal", "reasoning_content", "reasoning", "thinking", "name", "arguments", "input", "summary", "tool_calls", "function_call", "function", "message", "delta"}

// appendOutputs appends the strings under the output fields of v, walking
// objects and arrays (the formats nest them differently); a tool_use
// block's input object counts as its JSON.
func appendOutputs(dst []byte, v gjson.Result) []byte {
	switch {
	case v.IsArray():
		v.ForEach(func(_, e gjson.Result) bool { dst = appendOutputs(dst, e); return true })
	case v.IsObject():
		v.ForEach(func(k, e gjson.Result) bool {
			for _, key := range answerTextKeys {
				if k.Str != key {
					continue
				}
				switch {
				case e.Type == gjson.String:
					dst = append(dst, e.Str...)
				case k.Str == "input" && e.IsObject():
					dst = append(dst, e.Raw...)
				default:
					dst = appendOutputs(dst, e)
				}
				break
			}
			return true
		})
	}
	return dst
}

// appendEvent appends what one answer event delivered.
func appendEvent(dst []byte, ev providers.Event) []byte {
	switch ev.Kind {
	case providers.EventText, providers.EventRefusal, providers.EventReasoning, providers.EventToolArgs:
		return append(dst, ev.Text...)
	case providers.EventToolStart:
		return append(dst, ev.Name...)
	}
	return dst
}

var (
	toolCallsKey    = []byte(`"tool_calls"`)
	reasoningKey    = []byte(`"reasoning`)
	functionCallKey = []byte(`"function_call"`)
	refusalKey      = []byte(`"refusal":"`)
	choicesKey      = []byte(`"index":`)
)

// isTextChunk reports whether a chat chunk can deliver nothing but
// choice 0's text: no tool calls (nor the legacy function_call), no
// reasoning, no refusal, one choice.
func isTextChunk(data []byte) bool {
	return !bytes.Contains(data, toolCallsKey) && !bytes.Contains(data, reasoningKey) &&
		!bytes.Contains(data, functionCallKey) && !bytes.Contains(data, refusalKey) &&
		bytes.Count(data, choicesKey) <= 1
}

// noteChunkUsage records the usage a streamed chunk reports. It returns
// false for a usage-only chunk whose count cannot be right: the caller
// drops it, as if none came.
func (s *modelAPI) noteChunkUsage(info *requestInfo, chunk *providers.Chunk) bool {
	if chunk.Usage == nil {
		return true
	}
	if s.noteUsage(info, *chunk.Usage) {
		info.partialUsage = chunk.UsagePartial
		return true
	}
	return !(chunk.UsageOnly && !chunk.Native && info.usageBad)
}

// noteDelivered keeps what a streamed chunk delivered, when it may have
// to be counted.
func noteDelivered(info *requestInfo, chunk *providers.Chunk) {
	if (info.hold != nil && (!info.usageSeen || info.partialUsage || info.complete == 0)) || info.traceContent {
		// Kept only for priced requests, to count what was delivered if
		// the provider never reports usage (or only its input side):
		// text, refusals, reasoning, tool names and arguments alike.
		// (And for a traced request whose content an operator captures.)
		evs := chunk.Events
		if evs == nil && !chunk.Native && len(chunk.Data) > 0 {
			if isTextChunk(chunk.Data) {
				// The common chunk: text only, one path lookup.
				// Looked up in place (no copy of the text): it is
				// appended before the chunk is reused.
				if t := gjson.Get(unsafe.String(unsafe.SliceData(chunk.Data), len(chunk.Data)), "choices.0.delta.content"); t.Type == gjson.String {
					info.delivered = append(info.delivered, t.Str...)
				}
			} else {
				info.delivered = appendOutputs(info.delivered, gjson.GetBytes(chunk.Data, "choices"))
			}
		}
		for _, ev := range evs {
			info.delivered = appendEvent(info.delivered, ev)
		}
	}
}
