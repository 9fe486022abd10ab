package router

import (
	"context"
	"errors"
	"io"

	"github.com/xroute/xroute/providers"
)

// peeked replays the first chunk the router read while choosing, bounds
// the silence before each later chunk (the deployment's stream idle
// timeout), and keeps the deployment's statistics: time per token when
// the stream ends, a failure when it breaks, in flight until it is closed.
type peeked struct {
	providers.Stream
	first    providers.Chunk
	firstErr error
	pending  bool
	d        *Deployment
	watch    *watchdog
	release  context.CancelFunc // ends the attempt's own context

	r          *Router
	won        bool // handed out by won: counted in flight until Close
	start      int64
	cancel     context.CancelFunc
	completion int
	ended      bool
	closed     bool
	// sess and cred: the stream's session, told where it was served once
	// the usage (or the end) is known.
	sess *session
	cred string
}

func (p *peeked) Recv() (providers.Chunk, error) {
	var c providers.Chunk
	var err error
	if p.pending {
		p.pending = false
		c, err = p.first, p.firstErr
	} else {
		p.watch.arm(p.d.idle)
		c, err = p.Stream.Recv()
		p.watch.pause()
		if err != nil && !errors.Is(err, io.EOF) {
			err = p.watch.explain(err, p.d.Provider, p.d.idle, true)
		}
	}
	c, err = p.r.cleanChunk(c), p.r.scrub(err)
	if c.Usage != nil {
		p.completion = c.Usage.CompletionTokens
		if p.sess != nil {
			// An Anthropic message_start counts the cache already.
			p.sess.served(context.Background(), p.d, p.cred, c.Usage)
			p.sess = nil
		}
	}
	if err != nil && p.sess != nil && p.won {
		p.sess.served(context.Background(), p.d, p.cred, nil)
		p.sess = nil
	}
	if err != nil && p.won && !p.ended {
		p.ended = true
		if errors.Is(err, io.EOF) {
			p.d.health.observePerToken(float64(p.r.now().UnixNano()-p.start), p.completion)
		} else if judge(err) == failed {
			p.d.health.markFailed()
		}
	}
	return c, err
}

// OnWait implements providers.WaitNotifier when the deployment's stream
// does.
func (p *peeked) OnWait(f func()) bool {
	w, ok := p.Stream.(providers.WaitNotifier)
	return ok && w.OnWait(f)
}

// Close releases the upstream stream; it may be called more than once.
func (p *peeked) Close() error {
	if p.closed {
		return nil
	}
	p.closed = true
	err := p.Stream.Close()
	p.watch.stop()
	p.release()
	if p.won {
		p.d.health.inflight.Add(-1)
	}
	if p.cancel != nil {
		p.cancel()
	}
	return err
}
