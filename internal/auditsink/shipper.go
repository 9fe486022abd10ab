package auditsink

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"

	"go.uber.org/zap"

	"github.com/xroute/xroute/internal/store"
	"github.com/xroute/xroute/keys/auditlog"
)

// Store is what a shipper needs of persistence (*store.DB is one).
type Store interface {
	ScanAudit(ctx context.Context, afterSeq int64, limit int) ([]auditlog.Row, error)
	LastAuditSeq(ctx context.Context) (int64, error)
	LeaseSink(ctx context.Context, name, owner string, now time.Time, ttl time.Duration) (acked int64, ok bool, err error)
	SinkAcked(ctx context.Context, name string) (int64, error)
	AckSink(ctx context.Context, name, owner string, seq int64, now time.Time) error
	ReleaseSink(ctx context.Context, name, owner string) error
}

// Sink delivers a batch of rows (ascending seq, no gaps) to a receiver;
// nil means the receiver has them.
type Sink interface {
	Deliver(ctx context.Context, rows []auditlog.Row) error
	Close() error
}

// leaseTTL is how long a replica holds a sink without renewing it: a
// replica that dies stops its sinks for at most this long.
const leaseTTL = 30 * time.Second

// shipper moves one sink's cursor forward: read after the cursor, deliver,
// acknowledge, repeat; wait for a nudge or the poll interval when caught
// up; back off while the receiver fails.
type shipper struct {
	name       string
	sink       Sink
	st         Store
	log        *zap.Logger
	m          *Metrics
	owner      string
	batch      int
	poll       time.Duration
	timeout    time.Duration
	minBackoff time.Duration
	maxBackoff time.Duration
	now        func() time.Time
	nudge      <-chan struct{}

	leased  time.Time // when the lease was last taken or renewed (zero: not held)
	acked   int64
	failing int // consecutive failures, for the backoff
}

// run ships until ctx ends, then gives the lease up.
func (s *shipper) run(ctx context.Context) {
	defer func() {
		if !s.leased.IsZero() {
			rctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := s.st.ReleaseSink(rctx, s.name, s.owner); err != nil {
				s.log.Warn("releasing the audit sink's lease", zap.Error(err))
			}
		}
	}()
	for ctx.Err() == nil {
		wait, err := s.step(ctx)
		if err != nil && ctx.Err() == nil {
			s.failing++
			s.m.errors.WithLabelValues(s.name).Inc()
			wait = s.backoff()
			s.log.Warn("audit sink delivery failed; retrying from the last acknowledged seq",
				zap.Int64("acked_seq", s.acked), zap.Int("failures", s.failing), zap.Duration("retry_in", wait), zap.Error(err))
		}
		if wait > 0 {
			s.sleep(ctx, wait)
		}
	}
}

// step does one round and says how long to wait before the next (0: go
// on at once, there is more).
func (s *shipper) step(ctx context.Context) (time.Duration, error) {
	if s.leased.IsZero() || s.now().Sub(s.leased) > leaseTTL/3 {
		acked, ok, err := s.st.LeaseSink(ctx, s.name, s.owner, s.now(), leaseTTL)
		if err != nil {
			s.leased = time.Time{}
			return 0, err
		}
		if !ok { // another replica ships it: only report its lag
			s.leased = time.Time{}
			acked, err := s.st.SinkAcked(ctx, s.name)
			if err != nil {
				return 0, err
			}
			s.acked = acked
			s.reportLag(ctx)
			return leaseTTL / 3, nil
		}
		s.leased, s.acked = s.now(), acked
	}
	rows, err := s.st.ScanAudit(ctx, s.acked, s.batch)
	if err != nil {
		return 0, err
	}
	s.reportLag(ctx)
	if len(rows) == 0 {
		s.failing = 0
		return s.poll, nil
	}
	dctx, cancel := context.WithTimeout(ctx, s.timeout)
	err = s.sink.Deliver(dctx, rows)
	cancel()
	if err != nil {
		return 0, err
	}
	last := rows[len(rows)-1].Seq
	if err := s.st.AckSink(ctx, s.name, s.owner, last, s.now()); err != nil {
		if errors.Is(err, store.ErrSinkLease) {
			// Stalled past the lease and another replica took over: it
			// resends from the persisted cursor; stand back.
			s.leased = time.Time{}
			return leaseTTL / 3, nil
		}
		return 0, err
	}
	s.acked, s.failing = last, 0
	s.reportLag(ctx)
	return 0, nil // look again at once: a full batch, or rows written meanwhile
}

// reportLag sets the lag gauge: the seqs written but not acknowledged.
func (s *shipper) reportLag(ctx context.Context) {
	// Not cut by shutdown: the gauge then shows the cursor as persisted.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	last, err := s.st.LastAuditSeq(ctx)
	if err != nil {
		return
	}
	s.m.lag.WithLabelValues(s.name).Set(float64(max(last-s.acked, 0)))
	s.m.acked.WithLabelValues(s.name).Set(float64(s.acked))
}

// backoff is the wait after the failing-th failure in a row: doubling
// from minBackoff, capped at maxBackoff, with jitter over its upper half
// so that replicas and sinks do not retry in step.
func (s *shipper) backoff() time.Duration {
	d := s.minBackoff
	for i := 1; i < s.failing && d < s.maxBackoff; i++ {
		d *= 2
	}
	d = min(d, s.maxBackoff)
	return d/2 + rand.N(d/2+1)
}

// sleep waits d, or less if ctx ends or a nudge comes while caught up.
func (s *shipper) sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	nudge := s.nudge
	if s.failing > 0 || s.leased.IsZero() {
		nudge = nil // a failing receiver waits out its backoff; a standby, the lease
	}
	select {
	case <-ctx.Done():
	case <-t.C:
	case <-nudge:
	}
}
