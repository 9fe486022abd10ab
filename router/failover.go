package router

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/xroute/xroute/providers"
	"github.com/xroute/xroute/providers/catalog"
)

// Result says where a request went.
type Result struct {
	// Deployment answered (or was the last tried when none did).
	Deployment *Deployment
	// Model is the public model whose deployment answered: the requested
	// one, or a fallback from the request's "models" list.
	Model *Model
	// Attempts counts the upstream calls made, hedges included.
	Attempts int
	// Strategy named the order the candidates were tried in.
	Strategy string
	// Hedged is true when a hedge request was sent.
	Hedged bool
	// Tried lists every attempt in the order they started, the winner
	// (Won) included. Attempts other than the winner are what the upstreams
	// may bill besides the answer: see Attempt.
	Tried []Attempt
	// PromptTokens is the router's estimate of the prompt, for metering an
	// attempt whose usage is unknown (a cancelled hedge was probably billed
	// its prompt).
	PromptTokens int
}

// Attempt is one upstream call.
type Attempt struct {
	Deployment *Deployment
	Err        error
	Latency    time.Duration
	// Hedge is true for a request sent because the previous one was slow
	// (not because it failed).
	Hedge bool
	Won   bool
	// Canceled is true when the router stopped the call because another
	// attempt won: the upstream may have billed part of it (Usage unknown).
	Canceled bool
	// Usage is the upstream's count when the call finished with one: the
	// winner of a non-stream, or a hedge loser that finished anyway.
	Usage *providers.Usage
}

// CapabilityError means no deployment of a model can serve the request
// (tools, images, JSON schema, context length): a 400 for the caller.
type CapabilityError struct {
	Model   string
	Reasons []string
}

func (e *CapabilityError) Error() string {
	return "model " + e.Model + " cannot serve this request: " + strings.Join(e.Reasons, "; ")
}

// prepare checks that d can serve req and applies its quirks; a non-nil
// error is the reason to skip d.
func (d *Deployment) prepare(req *providers.ChatRequest) (*providers.ChatRequest, error) {
	native := req.Format != providers.FormatChat && providers.Speaks(d.adapter, req.Format, d.Model)
	if req.NativeOnly != "" && !native {
		return nil, errors.New(d.name + " does not speak the " + req.Format.String() + " API natively, which " + req.NativeOnly)
	}
	if native && req.Format == providers.FormatMessages && d.Info != nil {
		// The caller's own API judges its context: Claude's 1M-token beta,
		// and newer models stop at the window instead of refusing.
		check := *req
		check.ContextTokens = 0
		if _, err := d.prepareChecked(&check, true); err != nil {
			return nil, err
		}
		return req, nil
	}
	if req.Format != providers.FormatChat && !native && d.Info != nil {
		// A translated request carries its own client's output cap (Claude
		// Code asks 128000): cap it at what this deployment can write, and
		// at what its context leaves after the prompt.
		req = d.capOutput(req)
	}
	return d.prepareChecked(req, native)
}

// capOutput lowers a translated request's max tokens to the deployment's
// output limit and to what its context leaves after the prompt.
func (d *Deployment) capOutput(req *providers.ChatRequest) *providers.ChatRequest {
	limit := req.MaxTokens
	if d.Info.MaxOutput > 0 && limit > d.Info.MaxOutput {
		limit = d.Info.MaxOutput
	}
	if prompt := req.ContextTokens - req.MaxTokens; d.Info.Context > 0 && prompt < d.Info.Context && prompt+limit > d.Info.Context {
		limit = d.Info.Context - prompt
	}
	if limit >= req.MaxTokens || limit <= 0 {
		return req
	}
	return req.WithMaxTokens(limit)
}

// prepareChecked checks what the request needs of d and applies d's
// quirks to the pivot.
func (d *Deployment) prepareChecked(req *providers.ChatRequest, native bool) (*providers.ChatRequest, error) {
	if d.Info != nil && !d.fits(req) {
		if err := d.Info.Supports(catalog.Needs{Tools: req.HasTools, Vision: req.HasImages, JSONSchema: req.JSONSchema, ContextTokens: req.ContextTokens}); err != nil {
			return nil, err
		}
	}
	if d.quirks.IsZero() || native {
		// Quirks rewrite the chat pivot; a native call sends the caller's
		// own body, which the upstream's own API accepts as it is.
		return req, nil
	}
	body, err := d.quirks.Apply(req.Body)
	if err != nil {
		return nil, err
	}
	return req.WithBody(body), nil
}

// fits is the allocation-free test of what Supports checks.
func (d *Deployment) fits(req *providers.ChatRequest) bool {
	c := d.Info.Caps
	return (!req.HasTools || c.Tools) && (!req.HasImages || c.Vision) && (!req.JSONSchema || c.JSONSchema) && req.ContextTokens <= d.Info.Context
}

// Chat runs a non-streaming request with failover (and hedging, when the
// model has it).
func (r *Router) Chat(ctx context.Context, m *Model, req *providers.ChatRequest) (*providers.ChatResponse, Result, error) {
	resp, res, err := route(r, ctx, m, req, &chatOps)
	r.cleanResponse(resp)
	return resp, res, err
}

// ChatStream starts a stream with failover. It reads the first chunk before
// returning, so that a deployment failing before its first byte is replaced
// while the caller has seen nothing yet; hedged streams race to that first
// chunk.
func (r *Router) ChatStream(ctx context.Context, m *Model, req *providers.ChatRequest) (providers.Stream, Result, error) {
	s, res, err := route(r, ctx, m, req, &streamOps)
	if err != nil {
		return nil, res, err
	}
	return s, res, nil
}

type embedded struct {
	vecs  [][]float32
	usage providers.Usage
}

// Embed runs an embeddings request with failover over the deployments whose
// adapter serves embeddings.
func (r *Router) Embed(ctx context.Context, m *Model, inputs []string, dimensions int) ([][]float32, providers.Usage, Result, error) {
	o := ops[*embedded]{
		embed: true,
		call: func(ctx context.Context, a providers.Provider, d *Deployment, _ *providers.ChatRequest, _ int) (*embedded, error) {
			emb, ok := a.(providers.Embedder)
			if !ok {
				return nil, fmt.Errorf("%s does not serve embeddings", d.Provider)
			}
			vecs, usage, err := emb.Embed(ctx, d.Model, inputs, dimensions)
			if err != nil {
				return nil, err
			}
			return &embedded{vecs, usage}, nil
		},
		usage: func(e *embedded) *providers.Usage {
			if e == nil {
				return nil
			}
			return &e.usage
		},
	}
	for _, in := range inputs {
		o.embedTokens += len(in) / 4
	}
	e, res, err := route(r, ctx, m, nil, &o)
	if err != nil {
		return nil, providers.Usage{}, res, err
	}
	return e.vecs, e.usage, res, nil
}

// ops are what differs between chat, stream and embeddings attempts.
type ops[T any] struct {
	stream bool
	// embed marks embeddings requests (no chat request) of about
	// embedTokens prompt tokens.
	embed       bool
	embedTokens int
	// call makes one attempt.
	// breakpoints is the call's Call.Breakpoints.
	call func(ctx context.Context, a providers.Provider, d *Deployment, req *providers.ChatRequest, breakpoints int) (T, error)
	// usage is the upstream's count in a result, if known.
	usage func(T) *providers.Usage
	// won hands the winner to the caller; cancel ends its attempt's
	// context (nil when the caller's context was used).
	won func(v T, r *Router, d *Deployment, start int64, cancel context.CancelFunc) T
	// discard releases a result nobody will read (a hedge loser).
	discard func(T)
}

var chatOps = ops[*providers.ChatResponse]{
	call: func(ctx context.Context, a providers.Provider, d *Deployment, req *providers.ChatRequest, bp int) (*providers.ChatResponse, error) {
		return a.Chat(ctx, &providers.Call{Request: req, Model: d.Model, Breakpoints: bp})
	},
	usage: func(v *providers.ChatResponse) *providers.Usage {
		if v == nil {
			return nil
		}
		return &v.Usage
	},
}

var streamOps = ops[*peeked]{
	stream: true,
	call: func(ctx context.Context, a providers.Provider, d *Deployment, req *providers.ChatRequest, bp int) (*peeked, error) {
		// The attempt has its own context so that its watchdog can end it
		// alone: an upstream silent past the first-byte timeout (headers
		// sent or not) fails over like any retryable failure.
		actx, cancel := context.WithCancel(ctx)
		w := newWatchdog(cancel, d.firstByte)
		s, err := a.ChatStream(actx, &providers.Call{Request: req, Model: d.Model, Breakpoints: bp})
		if err == nil {
			var first providers.Chunk
			first, err = s.Recv()
			w.pause()
			if err == nil || errors.Is(err, io.EOF) {
				return &peeked{Stream: s, first: first, firstErr: err, pending: true, d: d, watch: w, release: cancel}, nil
			}
			s.Close()
		}
		w.stop()
		cancel()
		if ctx.Err() != nil {
			return nil, err // the caller left or its deadline passed: not the upstream's silence
		}
		return nil, w.explain(err, d.Provider, d.firstByte, false)
	},
	usage: func(*peeked) *providers.Usage { return nil },
	won: func(p *peeked, r *Router, d *Deployment, start int64, cancel context.CancelFunc) *peeked {
		p.r, p.start, p.cancel, p.won = r, start, cancel, true
		return p
	},
	discard: func(p *peeked) {
		p.Close()
	},
}

// route runs the failover loop of one request.
func route[T any](r *Router, ctx context.Context, m *Model, req *providers.ChatRequest, o *ops[T]) (T, Result, error) {
	var zero T
	p := r.plans.Get().(*plan)
	defer r.putPlan(p)
	if err := p.init(ctx, r, m, req, o.embed, o.embedTokens); err != nil {
		return zero, Result{Model: m}, fmt.Errorf("route %s: %w", m.Name, err)
	}
	res := Result{Strategy: p.strategyName(), PromptTokens: p.q.PromptTokens}
	var v T
	var err error
	if m.hedge && req != nil {
		v, err = hedged(r, ctx, p, o, &res)
	} else {
		v, err = sequential(r, ctx, p, o, &res)
	}
	if err != nil {
		return zero, res, fmt.Errorf("route %s: %w", m.Name, err)
	}
	return v, res, nil
}

// sequential tries the candidates one after the other.
func sequential[T any](r *Router, ctx context.Context, p *plan, o *ops[T], res *Result) (T, error) {
	var zero T
	var last error = ErrNoDeployment
	for {
		c, ok := p.next()
		if !ok {
			return zero, p.failure(last)
		}
		a, cred := c.d.adapterFor(c.avoid, c.prefer)
		start := r.begin(c.d)
		actx, sp := r.startAttempt(ctx, c.d, c.req, false, res.Strategy)
		v, err := o.call(actx, a, c.d, c.req, c.d.cacheMin(c.m))
		err = r.scrub(err)
		usage := o.usage(v)
		el := r.end(ctx, c.d, start, o.stream, c.done, cred, err, usage)
		if sp != nil {
			endAttempt(sp, c.d, seqOutcome(ctx, err), err)
		}
		res.Attempts++
		res.Deployment, res.Model = c.d, c.m
		res.Tried = append(res.Tried, Attempt{Deployment: c.d, Err: err, Latency: el, Won: err == nil, Usage: usage})
		if err == nil {
			if o.won != nil {
				v = o.won(v, r, c.d, start, nil)
			}
			p.sess.won(ctx, v, c.d, cred, usage)
			return v, nil
		}
		last = err
		if keyRejected(err) {
			p.keyRefused(c, cred)
		}
		if !r.failover(ctx, c.d, err) {
			return zero, err
		}
	}
}

// keyRejected reports whether err is the upstream refusing the key itself
// (providers.Error.KeyRejected).
func keyRejected(err error) bool {
	var pe *providers.Error
	return errors.As(err, &pe) && pe.KeyRejected()
}

// begin counts an attempt in flight and returns its start.
func (r *Router) begin(d *Deployment) int64 {
	d.health.inflight.Add(1)
	return r.now().UnixNano()
}

// end records an attempt's outcome: breaker, statistics, key pool,
// cooldown. A failure after the caller left or its deadline passed (ctx is
// the caller's) says nothing of the deployment: it is not counted. A
// successful stream stays in flight until it is closed.
func (r *Router) end(ctx context.Context, d *Deployment, start int64, stream bool, done func(error), cred string, err error, usage *providers.Usage) time.Duration {
	now := r.now().UnixNano()
	el := now - start
	verdict := err
	if err != nil && ctx.Err() != nil {
		verdict = context.Canceled
	}
	done(verdict)
	r.checkRejected(ctx, d, cred, err)
	h := &d.health
	h.requests.Add(1)
	switch judge(verdict) {
	case healthy:
		h.observeOutcome(false)
	case failed:
		h.observeOutcome(true)
	}
	switch {
	case err == nil && stream:
		h.observeTTFT(float64(el), now)
		return time.Duration(el)
	case err == nil:
		completion := 0
		if usage != nil {
			completion = usage.CompletionTokens
		}
		h.observeLatency(float64(el), completion, now)
	}
	var pe *providers.Error
	if errors.As(err, &pe) && pe.Status == http.StatusTooManyRequests {
		cool := pe.RetryAfter
		if cool <= 0 {
			cool = r.rt.RateLimitCooldown
		}
		h.coolDown(now, min(cool, r.rt.MaxCooldown))
	}
	h.inflight.Add(-1)
	return time.Duration(el)
}

// failover decides whether to try the next candidate after err.
func (r *Router) failover(ctx context.Context, d *Deployment, err error) bool {
	if ctx.Err() != nil {
		return false // the caller left or its deadline passed
	}
	var re *providers.RequestError
	if errors.As(err, &re) {
		// This adapter cannot express the request; another may.
		return true
	}
	// A refused key is the deployment's fault, not the request's: another
	// key or deployment may serve it.
	var pe *providers.Error
	if !errors.As(err, &pe) || !(pe.Retryable() || pe.KeyRejected()) {
		return false
	}
	r.log.Info("failover", zap.String("request_id", callerFrom(ctx).RequestID), zap.String("deployment", d.Name()), zap.Int("status", pe.Status), zap.Bool("mid_stream", pe.MidStream), zapTrace(ctx))
	return true
}
