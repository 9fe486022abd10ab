package loadtest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"
)

// Doer performs one operation; *Client is the real one.
type Doer interface {
	Do(ctx context.Context, req *Request, scheduled time.Time, out *Outcome)
}

// OpenLoop sends requests at a fixed arrival rate whatever the responses do:
// request i is due at start + i/Rate. When the sender falls behind it sends
// at once, and latency still counts from the due time, so that a slow server
// cannot hide its queueing (coordinated omission is corrected).
type OpenLoop struct {
	Rate        float64       // requests per second, > 0
	Duration    time.Duration // no request is due at or after start+Duration
	MaxInFlight int           // due requests beyond this many in flight are dropped (counted as errors); 0 means 10000
	MaxRequests int64         // stop after this many due requests; 0 means no limit
	Drain       time.Duration // how long in-flight requests may run after Duration; 0 means 10s
}

// ClosedLoop runs Workers loops that each send the next request as soon as
// the previous one ends (maximum throughput, or N concurrent streams).
type ClosedLoop struct {
	Workers     int           // > 0
	Duration    time.Duration // no request starts at or after start+Duration
	MaxRequests int64         // stop after this many requests; 0 means no limit
	Drain       time.Duration // how long in-flight requests may run after Duration; 0 means 10s
	// Ramp spreads the workers' first requests evenly over this time (worker
	// i starts at i*Ramp/Workers), so that N long streams do not all begin,
	// and then end and restart, in lockstep. 0 starts every worker at once.
	Ramp time.Duration
}

// Runner drives load from one client with one request.
type Runner struct {
	doer     Doer
	req      *Request
	progress io.Writer
	label    string
	now      func() time.Time
}

// NewRunner returns a runner that sends req through doer. Each second it
// writes a progress line, prefixed with label, to progress (nil: none).
func NewRunner(doer Doer, req *Request, label string, progress io.Writer) *Runner {
	return &Runner{doer: doer, req: req, progress: progress, label: label, now: time.Now}
}

var outcomes = sync.Pool{New: func() any { return new(Outcome) }}

// do runs one operation and records it.
func (r *Runner) do(ctx context.Context, rec *Recorder, scheduled time.Time) {
	o := outcomes.Get().(*Outcome)
	o.Reset()
	r.doer.Do(ctx, r.req, scheduled, o)
	rec.Add(o, r.req.Stream)
	outcomes.Put(o)
}

func drainOrDefault(d time.Duration) time.Duration {
	if d <= 0 {
		return 10 * time.Second
	}
	return d
}

// Open runs an open-loop load. It returns when the last request has ended,
// or the drain time is over (those requests are canceled and counted), or ctx
// is done.
func (r *Runner) Open(ctx context.Context, cfg OpenLoop) (*Result, error) {
	if cfg.Rate <= 0 || cfg.Duration <= 0 {
		return nil, errors.New("open loop: rate and duration must be > 0")
	}
	maxInFlight := int64(cfg.MaxInFlight)
	if maxInFlight <= 0 {
		maxInFlight = 10000
	}
	rec := NewRecorder()
	start := r.now()
	end := start.Add(cfg.Duration)
	reqCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stopProgress := r.startProgress(rec, start)

	var wg sync.WaitGroup
	timer := time.NewTimer(0)
	defer timer.Stop()
	<-timer.C
	interval := float64(time.Second) / cfg.Rate
loop:
	for i := int64(0); cfg.MaxRequests <= 0 || i < cfg.MaxRequests; i++ {
		due := start.Add(time.Duration(float64(i) * interval))
		if !due.Before(end) {
			break
		}
		if wait := due.Sub(r.now()); wait > 0 {
			timer.Reset(wait)
			select {
			case <-ctx.Done():
				break loop
			case <-timer.C:
			}
		} else if ctx.Err() != nil {
			break
		}
		rec.sent.Add(1)
		if rec.inFlight.Load() >= maxInFlight {
			rec.drop()
			continue
		}
		rec.inFlight.Add(1)
		wg.Go(func() {
			defer rec.inFlight.Add(-1)
			r.do(reqCtx, rec, due)
		})
	}
	// Sending is over (at the end of Duration, or earlier with MaxRequests):
	// what is still in flight gets Drain to finish.
	drain := time.AfterFunc(drainOrDefault(cfg.Drain), func() { cancel(context.DeadlineExceeded) })
	wg.Wait()
	drain.Stop()
	elapsed := r.now().Sub(start)
	stopProgress()
	res := rec.result(r.req.Stream)
	res.Mode, res.TargetRate = "open", cfg.Rate
	finish(res, cfg.Duration, elapsed)
	if err := ctx.Err(); err != nil {
		return res, fmt.Errorf("open loop: %w", err)
	}
	return res, nil
}

// Closed runs a closed-loop load.
func (r *Runner) Closed(ctx context.Context, cfg ClosedLoop) (*Result, error) {
	if cfg.Workers <= 0 || cfg.Duration <= 0 {
		return nil, errors.New("closed loop: workers and duration must be > 0")
	}
	rec := NewRecorder()
	start := r.now()
	end := start.Add(cfg.Duration)
	reqCtx, cancel := context.WithDeadline(ctx, end.Add(drainOrDefault(cfg.Drain)))
	defer cancel()
	stopProgress := r.startProgress(rec, start)

	var wg sync.WaitGroup
	for w := range cfg.Workers {
		wg.Go(func() {
			if cfg.Ramp > 0 && w > 0 {
				delay := time.Duration(int64(cfg.Ramp) * int64(w) / int64(cfg.Workers))
				t := time.NewTimer(delay)
				select {
				case <-ctx.Done():
					t.Stop()
					return
				case <-t.C:
				}
			}
			for ctx.Err() == nil {
				now := r.now()
				if !now.Before(end) {
					return
				}
				if n := rec.sent.Add(1); cfg.MaxRequests > 0 && n > cfg.MaxRequests {
					rec.sent.Add(-1)
					return
				}
				rec.inFlight.Add(1)
				r.do(reqCtx, rec, now)
				rec.inFlight.Add(-1)
			}
		})
	}
	wg.Wait()
	elapsed := r.now().Sub(start)
	stopProgress()
	res := rec.result(r.req.Stream)
	res.Mode, res.Workers = "closed", cfg.Workers
	finish(res, cfg.Duration, elapsed)
	if err := ctx.Err(); err != nil {
		return res, fmt.Errorf("closed loop: %w", err)
	}
	return res, nil
}

func finish(res *Result, duration, elapsed time.Duration) {
	res.Duration = duration.Seconds()
	res.Elapsed = elapsed.Seconds()
	res.AchievedRate = float64(res.Completed) / duration.Seconds()
}

// startProgress writes a progress line each second until the returned stop
// function is called; stop waits for the writer goroutine to end.
func (r *Runner) startProgress(rec *Recorder, start time.Time) (stop func()) {
	if r.progress == nil {
		return func() {}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		var last int64
		for {
			select {
			case <-done:
				return
			case <-tick.C:
			}
			p := rec.Progress()
			fmt.Fprintf(r.progress, "%s t=%4.1fs rate=%5d/s in-flight=%d ok=%d errors=%d p99=%s\n",
				r.label, r.now().Sub(start).Seconds(), p.OK-last, p.InFlight, p.OK, p.Errors,
				p.P99.Round(10*time.Microsecond))
			last = p.OK
		}
	})
	return func() {
		close(done)
		wg.Wait()
	}
}
