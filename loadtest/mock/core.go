package mock

import (
	crand "crypto/rand"
	"encoding/binary"
	"math/rand/v2"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// Stats are the counters of a mock server since New.
type Stats struct {
	Requests         int64         // HTTP requests received, all routes
	Active           int64         // requests being handled now
	Chat             int64         // text requests: POST /v1/chat/completions, /v1/responses and /v1/completions, or the format's equivalent
	Embeddings       int64         // embeddings requests: POST /v1/embeddings, or the format's equivalent
	Streams          int64         // streams started (200 and stream headers sent)
	Completed        int64         // successful responses written to the end ([DONE] for streams)
	Canceled         int64         // requests whose client went away before the end
	Resets           int64         // connections cut on purpose (ResetRate or #mock:reset)
	Failures         map[int]int64 // error responses by HTTP status (injected or not)
	PromptTokens     int64         // prompt (input) tokens of answered text requests
	CompletionTokens int64         // completion tokens actually sent
}

// Core is what the mock of every wire format shares: the Stats counters,
// the failure RNG seeded from Config.Seed, and a source of random-looking
// ids. A format's Server keeps one (NewCore), reseeds it when its
// configuration changes, and counts into its exported counters. All
// methods are safe for concurrent use.
type Core struct {
	// The counters behind Stats; handlers add to them (see Stats for what
	// each one counts). Begin/End, Fail, Cut, Delay, Answered and Stream
	// keep Requests, Active, failures, Resets, Streams, Completed and
	// Canceled themselves.
	Requests, Active, Chat, Embeddings, Streams, Completed, Canceled, Resets atomic.Int64
	PromptTokens, CompletionTokens                                           atomic.Int64

	failures [600]atomic.Int64

	rngMu sync.Mutex
	rng   *rand.Rand

	idBase uint64
	idSeq  atomic.Uint64
}

// NewCore returns a Core with a random id base and the failure RNG seeded
// with 0.
func NewCore() *Core {
	var seed [8]byte
	_, _ = crand.Read(seed[:])
	c := &Core{idBase: binary.LittleEndian.Uint64(seed[:])}
	c.Reseed(0)
	return c
}

// Reseed restarts the failure RNG from seed (Config.Seed).
func (c *Core) Reseed(seed int64) {
	rng := rand.New(rand.NewPCG(uint64(seed), uint64(seed)^0x9e3779b97f4a7c15))
	c.rngMu.Lock()
	c.rng = rng
	c.rngMu.Unlock()
}

// Stats returns a snapshot of the counters.
func (c *Core) Stats() Stats {
	out := Stats{
		Requests:         c.Requests.Load(),
		Active:           c.Active.Load(),
		Chat:             c.Chat.Load(),
		Embeddings:       c.Embeddings.Load(),
		Streams:          c.Streams.Load(),
		Completed:        c.Completed.Load(),
		Canceled:         c.Canceled.Load(),
		Resets:           c.Resets.Load(),
		PromptTokens:     c.PromptTokens.Load(),
		CompletionTokens: c.CompletionTokens.Load(),
		Failures:         map[int]int64{},
	}
	for i := range c.failures {
		if n := c.failures[i].Load(); n != 0 {
			out.Failures[i] = n
		}
	}
	return out
}

// Begin counts a request coming in; End, deferred, counts it out.
func (c *Core) Begin() {
	c.Requests.Add(1)
	c.Active.Add(1)
}

// End counts a request begun with Begin as no longer active.
func (c *Core) End() { c.Active.Add(-1) }

// Fail counts an error response with status.
func (c *Core) Fail(status int) {
	if status >= 0 && status < len(c.failures) {
		c.failures[status].Add(1)
	}
}

// Roll decides how a request fails: it draws an injected failure with the
// rates of cfg (429, 500 or 503) and, for a stream, whether the connection
// is cut (cfg.ResetRate); then the directives d override both (d.Status
// replaces the status, d.Reset forces the cut). Directives addressed to
// another mock (only=) lose their faults here, before anything reads them.
func (c *Core) Roll(cfg *Config, d *Directives, stream bool) (status int, reset bool) {
	d.ForMock(cfg.Name)
	if cfg.FailRate429 > 0 || cfg.FailRate500 > 0 || cfg.FailRate503 > 0 || cfg.ResetRate > 0 {
		c.rngMu.Lock()
		u := c.rng.Float64()
		var v float64
		if stream && cfg.ResetRate > 0 {
			v = c.rng.Float64()
		}
		c.rngMu.Unlock()
		switch {
		case u < cfg.FailRate429:
			status = http.StatusTooManyRequests
		case u < cfg.FailRate429+cfg.FailRate500:
			status = http.StatusInternalServerError
		case u < cfg.FailRate429+cfg.FailRate500+cfg.FailRate503:
			status = http.StatusServiceUnavailable
		}
		reset = stream && status == 0 && v < cfg.ResetRate
	}
	if d.Status != 0 {
		status = d.Status
	}
	return status, reset || d.Reset
}

// Delay waits the latency of a request: d's when it sets one, else
// cfg.Latency. It reports false, counted as Canceled, when the client left
// first.
func (c *Core) Delay(r *http.Request, cfg *Config, d *Directives) bool {
	latency := cfg.Latency
	if d.HasLatency {
		latency = d.Latency
	}
	if !sleep(r, latency) {
		c.Canceled.Add(1)
		return false
	}
	return true
}

// sleep waits d or until the request is canceled; it reports false when
// canceled.
func sleep(r *http.Request, d time.Duration) bool {
	if d <= 0 {
		return r.Context().Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-r.Context().Done():
		return false
	}
}

// Cut closes the connection abruptly, counted in Resets: the client sees
// the body end without the chunked terminator (or gets no response).
func (c *Core) Cut(w http.ResponseWriter) {
	c.Resets.Add(1)
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		panic(http.ErrAbortHandler) // e.g. HTTP/2: the server resets the stream
	}
	_ = conn.Close()
}

// Answered counts a complete (not streamed) answer whose body was written
// with the error err: Completed, or Canceled when err is non-nil or the
// client has left.
func (c *Core) Answered(r *http.Request, err error) {
	if err != nil || r.Context().Err() != nil {
		c.Canceled.Add(1)
	} else {
		c.Completed.Add(1)
	}
}

// NextID returns a fresh random-looking number to derive an id from (see
// AppendAlnum).
func (c *Core) NextID() uint64 { return c.idBase ^ mix(c.idSeq.Add(1)) }
