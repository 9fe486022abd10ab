package app

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/xroute/xroute/internal/store"
)

// usageState is what the health monitor reads of the usage recorder.
type usageState interface {
	Full() bool
	Spooled() (records, bytes int64)
}

const (
	// minPingTimeout bounds a ping's deadline from below. A ping waits
	// for a connection of the pool like any query: a shorter deadline
	// mistakes a pool busy with slow reports or lock waits for a dead
	// database, and takes every replica down at once.
	minPingTimeout = time.Second
	// downAfterPings is how many pings in a row must fail for the store
	// to be down: one slow ping is no outage, and a store that flaps
	// between up and down each second helps no one.
	downAfterPings = 3
)

// storeHealth watches the database for the HTTP layer (it implements
// httpapi.StoreHealth): one goroutine pings it every interval; the store
// is down after downAfterPings failed pings in a row, or as soon as the
// usage recorder or a request finds it unreachable (a connection error,
// not a deadline), and up again after the next successful ping.
type storeHealth struct {
	*storeState
	ping     func(context.Context) error
	interval time.Duration
	timeout  time.Duration
	usage    usageState // nil: no recorder

	fails atomic.Int32 // failed pings in a row
	stop  chan struct{}
	wg    sync.WaitGroup
	once  sync.Once
}

// storeState is the store's up or down, apart from the ping loop: the
// usage recorder, built before the monitor that reads it, takes the store
// down through it (billing.WithOnOutage(state.markDown)).
type storeState struct {
	log *zap.Logger
	up  atomic.Bool
	gen atomic.Uint64 // bumped by markDown: a ping that began before it cannot undo it
}

// newStoreState starts up: the store was just opened.
func newStoreState(log *zap.Logger) *storeState {
	s := &storeState{log: log}
	s.up.Store(true)
	return s
}

// newStoreHealth pings every interval, each ping with a deadline of
// timeout, but at least minPingTimeout, and updates st. usage (nil: none)
// is the recorder whose spool it reports.
func newStoreHealth(st *storeState, ping func(context.Context) error, usage usageState, interval, timeout time.Duration) *storeHealth {
	return &storeHealth{storeState: st, ping: ping, usage: usage, interval: interval, timeout: max(timeout, minPingTimeout), stop: make(chan struct{})}
}

// start runs the ping loop until close.
func (h *storeHealth) start() {
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		t := time.NewTicker(h.interval)
		defer t.Stop()
		for {
			h.check()
			select {
			case <-h.stop:
				return
			case <-t.C:
			}
		}
	}()
}

func (h *storeHealth) close() {
	h.once.Do(func() { close(h.stop) })
	h.wg.Wait()
}

// check pings the store once and updates its state; only the ping loop
// (or a test, instead of it) calls it.
func (h *storeHealth) check() {
	gen := h.gen.Load()
	ctx, cancel := context.WithTimeout(context.Background(), h.timeout)
	err := h.ping(ctx)
	cancel()
	if err != nil {
		n := h.fails.Add(1)
		if n < downAfterPings {
			h.log.Warn("database ping failed", zap.Int32("in_a_row", n), zap.Error(err))
			return
		}
		if h.up.Swap(false) {
			h.log.Error("database unreachable: refusing new requests", zap.Int32("failed_pings", n), zap.Error(err))
		}
		return
	}
	h.fails.Store(0)
	if h.gen.Load() == gen && !h.up.Swap(true) {
		h.log.Info("database reachable again: serving new requests")
	}
}

// markDown takes the store down until the next successful ping: the
// usage recorder found it unreachable (billing.WithOnOutage).
func (s *storeState) markDown() {
	s.gen.Add(1)
	if s.up.Swap(false) {
		s.log.Error("database unreachable: refusing new requests")
	}
}

// StoreUp reports whether new requests may use the store.
func (s *storeState) StoreUp() bool { return s.up.Load() }

// SpoolFull reports that the usage recorder can keep no more records.
func (h *storeHealth) SpoolFull() bool { return h.usage != nil && h.usage.Full() }

// Unreachable reports whether err, from a store call on the request path,
// means the store cannot be reached (and if so takes it down until the
// next successful ping). While the store is down, every store error is
// taken to be that. A deadline or a cancellation alone is not (see
// store.IsUnavailable, which reads the driver's error: the request path's
// store calls are not all typed, so billing.IsUnreachable's dberr kind is
// not enough here): a pool busy with slow queries would else take
// the store down for every tenant.
func (h *storeHealth) Unreachable(err error) bool {
	if err == nil {
		return false
	}
	if !h.up.Load() {
		return true
	}
	if store.IsUnavailable(err) {
		h.markDown()
		return true
	}
	return false
}

// collectors are the store's and the spool's gauges, read at scrape time.
func (h *storeHealth) collectors() []prometheus.Collector {
	b2f := func(b bool) float64 {
		if b {
			return 1
		}
		return 0
	}
	cs := []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "xroute_store_up",
			Help: "1 while the database answers, 0 while new requests are refused for want of it.",
		}, func() float64 { return b2f(h.StoreUp()) }),
	}
	if h.usage != nil {
		cs = append(cs,
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "xroute_usage_spool_records",
				Help: "Usage records kept locally (the spool), not yet known to be in the database.",
			}, func() float64 { r, _ := h.usage.Spooled(); return float64(r) }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "xroute_usage_spool_bytes",
				Help: "Bytes of the local usage spool on disk.",
			}, func() float64 { _, b := h.usage.Spooled(); return float64(b) }),
		)
	}
	return cs
}
