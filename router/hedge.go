package router

import (
	"context"
	"errors"
	"time"

	"go.opentelemetry.io/otel/trace"
)

// hedged keeps up to two attempts in flight: when the running one has not
// answered within the hedge delay, the next candidate starts too; the
// first success wins and the other is cancelled. Failures fail over as in
// sequential. It returns only after every attempt it started has ended.
func hedged[T any](r *Router, ctx context.Context, p *plan, o *ops[T], res *Result) (T, error) {
	type outcome struct {
		v   T
		err error
		i   int
	}
	type run struct {
		c      candidate
		cred   string
		start  int64
		cancel context.CancelFunc
		ended  bool
		span   trace.Span
	}
	var zero T
	results := make(chan outcome, 2)
	runs := make([]run, 0, 4)
	launch := func(hedge bool) bool {
		c, ok := p.next()
		if !ok {
			return false
		}
		a, cred := c.d.adapterFor(c.avoid, c.prefer)
		actx, cancel := context.WithCancel(ctx)
		actx, sp := r.startAttempt(actx, c.d, c.req, hedge, res.Strategy)
		i := len(runs)
		runs = append(runs, run{c: c, cred: cred, start: r.begin(c.d), cancel: cancel, span: sp})
		res.Attempts++
		res.Deployment, res.Model = c.d, c.m
		res.Tried = append(res.Tried, Attempt{Deployment: c.d, Hedge: hedge})
		if hedge {
			res.Hedged = true
		}
		go func() {
			v, err := o.call(actx, a, c.d, c.req, c.d.cacheMin(c.m))
			results <- outcome{v, r.scrub(err), i}
		}()
		return true
	}
	if !launch(false) {
		return zero, p.failure(ErrNoDeployment)
	}
	active := 1
	timer := time.NewTimer(r.hedgeDelay(runs[0].c.d, p.q.Stream))
	defer timer.Stop()
	hedgeC, doneC := timer.C, ctx.Done()
	winner := -1
	stopped := false
	var last error = ErrNoDeployment
	var val T
	stopOthers := func() {
		for j := range runs {
			if !runs[j].ended && j != winner {
				res.Tried[j].Canceled = true
				runs[j].cancel()
			}
		}
	}
	for active > 0 {
		select {
		case out := <-results:
			active--
			ru := &runs[out.i]
			ru.ended = true
			usage := o.usage(out.v)
			el := r.end(ctx, ru.c.d, ru.start, o.stream, ru.c.done, ru.cred, out.err, usage)
			at := &res.Tried[out.i]
			at.Err, at.Latency, at.Usage = out.err, el, usage
			if out.err == nil && winner < 0 && ctx.Err() == nil {
				winner, val = out.i, out.v
				at.Won = true
				res.Deployment, res.Model = ru.c.d, ru.c.m
				if ru.span != nil {
					endAttempt(ru.span, ru.c.d, "success", nil)
				}
				stopOthers()
				continue
			}
			if ru.span != nil {
				endAttempt(ru.span, ru.c.d, hedgeOutcome(out.err, winner >= 0 || stopped), out.err)
			}
			if winner >= 0 || stopped {
				switch {
				case out.err == nil && o.stream:
					// Streams are cut after their first chunk: usage unknown.
					o.discard(o.won(out.v, r, ru.c.d, ru.start, ru.cancel))
				case out.err == nil:
					at.Canceled = false // it finished anyway: its usage is known
				case !errors.Is(out.err, context.Canceled):
					at.Canceled = false // it failed on its own
				}
				ru.cancel()
				continue
			}
			ru.cancel()
			last = out.err
			if keyRejected(out.err) {
				p.keyRefused(ru.c, ru.cred)
			}
			if !r.failover(ctx, ru.c.d, out.err) {
				stopped = true
				stopOthers()
				continue
			}
			if active == 0 && launch(false) {
				active++
			}
			if active == 1 {
				// Watch the one still running (or the one just started).
				for j := len(runs) - 1; j >= 0; j-- {
					if !runs[j].ended {
						timer.Reset(r.hedgeDelay(runs[j].c.d, p.q.Stream))
						hedgeC = timer.C
						break
					}
				}
			}
		case <-hedgeC:
			hedgeC = nil
			if winner < 0 && !stopped && active == 1 && launch(true) {
				active++
			}
		case <-doneC:
			doneC = nil
			stopped = true
			for j := range runs {
				runs[j].cancel()
			}
		}
	}
	if winner < 0 {
		if stopped && ctx.Err() != nil && errors.Is(last, ErrNoDeployment) {
			last = ctx.Err()
		}
		return zero, p.failure(last)
	}
	w := runs[winner]
	if o.won != nil {
		val = o.won(val, r, w.c.d, w.start, w.cancel)
	} else {
		w.cancel()
	}
	p.sess.won(ctx, val, w.c.d, w.cred, o.usage(val))
	return val, nil
}

// hedgeDelay is how long to wait for d before hedging: the configured
// delay, else d's p95 time to first token (streams) or latency, within
// the configured bounds.
func (r *Router) hedgeDelay(d *Deployment, stream bool) time.Duration {
	h := r.rt.Hedge
	if h.Delay > 0 {
		return h.Delay
	}
	p95 := d.health.latencyP95.load()
	if stream {
		p95 = d.health.ttftP95.load()
	}
	if p95 <= 0 {
		return h.MaxDelay
	}
	return min(max(time.Duration(p95), h.MinDelay), h.MaxDelay)
}
