package billing

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"go.uber.org/zap"

	"github.com/xroute/xroute/billing/books"
)

// CaptureStore persists a batch of request captures (a capture whose
// request id is stored already is skipped).
type CaptureStore interface {
	InsertCaptures(ctx context.Context, caps []books.RequestCapture) error
}

// Capture is the raw capture of one request, as the HTTP layer hands it
// over: the bodies as received and sent, not yet redacted or cut.
type Capture struct {
	RequestID string
	AccountID string
	Request   []byte // not copied: the caller hands it over
	Response  []byte
	// Truncated: the response was cut before it came here (a stream
	// longer than the buffer the HTTP layer keeps).
	Truncated bool
	MaxBytes  int // the most kept of each body
	CreatedAt time.Time
	ExpiresAt time.Time
}

// Captures writes request captures off the request path: Capture queues
// one and returns at once; one goroutine redacts, cuts and writes what is
// queued, in batches (everything waiting when it looks). Captures are
// diagnostics, not records: unlike usage they are never spooled, and one
// that finds the queue full or whose write fails is dropped and counted,
// so that a slow database never holds a request or its memory.
type Captures struct {
	w      CaptureStore
	redact func([]byte) []byte
	log    *zap.Logger

	mu     sync.RWMutex // guards closed against sends on a closed channel
	closed bool
	queue  chan captureItem
	done   chan struct{}

	dropped atomic.Int64
}

type captureItem struct {
	c   *Capture
	ack chan struct{} // Flush's barrier (c nil)
}

// captureBatch caps the captures one transaction writes.
const captureBatch = 64

// NewCaptures starts the writer; Close stops it. redact removes secrets
// from a body (nil: none, which only tests should do); queueSize bounds
// the captures waiting (each up to two bodies of an account's max bytes).
func NewCaptures(w CaptureStore, redact func([]byte) []byte, log *zap.Logger, queueSize int) *Captures {
	c := &Captures{w: w, redact: redact, log: log, queue: make(chan captureItem, max(queueSize, 1)), done: make(chan struct{})}
	go c.run()
	return c
}

// Capture queues cp for writing; it never blocks (a full queue drops it).
func (c *Captures) Capture(cp Capture) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.closed {
		return
	}
	select {
	case c.queue <- captureItem{c: &cp}:
	default:
		if n := c.dropped.Add(1); n&(n-1) == 0 { // the 1st, 2nd, 4th, 8th...: a line now and then
			c.log.Warn("request capture dropped: the capture queue is full", zap.String("request_id", cp.RequestID), zap.Int64("dropped", n))
		}
	}
}

// Dropped is how many captures were dropped (queue full, write failed).
func (c *Captures) Dropped() int64 { return c.dropped.Load() }

// Flush waits until every capture queued before it is written (or
// dropped).
func (c *Captures) Flush(ctx context.Context) error {
	ack := make(chan struct{})
	c.mu.RLock()
	if c.closed {
		c.mu.RUnlock()
		return errors.New("billing: captures closed")
	}
	select {
	case c.queue <- captureItem{ack: ack}:
	case <-ctx.Done():
		c.mu.RUnlock()
		return ctx.Err()
	}
	c.mu.RUnlock()
	select {
	case <-ack:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close writes what is queued and stops the writer.
func (c *Captures) Close(ctx context.Context) error {
	c.mu.Lock()
	if !c.closed {
		c.closed = true
		close(c.queue)
	}
	c.mu.Unlock()
	select {
	case <-c.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (c *Captures) run() {
	defer close(c.done)
	batch := make([]books.RequestCapture, 0, captureBatch)
	var acks []chan struct{}
	for it := range c.queue {
		batch, acks = c.add(batch[:0], acks[:0], it)
	drain: // everything else already waiting joins the batch
		for len(batch) < captureBatch {
			select {
			case it, ok := <-c.queue:
				if !ok {
					break drain
				}
				batch, acks = c.add(batch, acks, it)
			default:
				break drain
			}
		}
		c.write(batch)
		for _, a := range acks {
			close(a)
		}
	}
}

func (c *Captures) add(batch []books.RequestCapture, acks []chan struct{}, it captureItem) ([]books.RequestCapture, []chan struct{}) {
	if it.c == nil {
		return batch, append(acks, it.ack)
	}
	return append(batch, c.prepare(it.c)), acks
}

func (c *Captures) write(batch []books.RequestCapture) {
	if len(batch) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.w.InsertCaptures(ctx, batch); err != nil {
		c.dropped.Add(int64(len(batch)))
		c.log.Error("request captures not written", zap.Int("captures", len(batch)), zap.Error(err))
	}
}

// prepare redacts both bodies whole, then cuts them at the account's max
// bytes: a secret that straddles the cut is still recognised and
// replaced before any part of it could be kept.
func (c *Captures) prepare(cp *Capture) books.RequestCapture {
	req, cutReq := c.clean(cp.Request, cp.MaxBytes)
	resp, cutResp := c.clean(cp.Response, cp.MaxBytes)
	return books.RequestCapture{RequestID: cp.RequestID, AccountID: cp.AccountID, Request: req, Response: resp,
		Truncated: cp.Truncated || cutReq || cutResp, CreatedAt: cp.CreatedAt, ExpiresAt: cp.ExpiresAt}
}

func (c *Captures) clean(b []byte, maxBytes int) (string, bool) {
	if c.redact != nil {
		b = c.redact(b)
	}
	if maxBytes <= 0 || len(b) <= maxBytes {
		return string(b), false
	}
	cut := maxBytes
	for cut > 0 && !utf8.RuneStart(b[cut]) { // not inside a character
		cut--
	}
	return string(b[:cut]), true
}
