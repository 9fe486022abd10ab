package app

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
)

// usageState is what the health monitor reads of the usage recorder.
type usageState interface {
	Full() bool
	Spooled() (records, bytes int64)
}

// storeHealth watches the database for the HTTP layer (it implements
// httpapi.StoreHealth): one goroutine pings it every interval; the store
// is down after a failed ping, or as soon as the usage recorder or a
// request sees it unreachable, and up again after the next successful
// ping.
type storeHealth struct {
	ping     func(context.Context) error
	log      *zap.Logger
	interval time.Duration
	timeout  time.Duration
	// usage is set before start and read-only after (nil: no recorder).
	usage usageState

	up   atomic.Bool
	gen  atomic.Uint64 // bumped by markDown: a ping that began before it cannot undo it
	stop chan struct{}
	wg   sync.WaitGroup
	once sync.Once
}

func newStoreHealth(ping func(context.Context) error, log *zap.Logger, interval, timeout time.Duration) *storeHealth {
	h := &storeHealth{ping: ping, log: log, interval: interval, timeout: timeout, stop: make(chan struct{})}
	h.up.Store(true) // the store was just opened
	return h
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

func (h *storeHealth) check() {
	gen := h.gen.Load()
	ctx, cancel := context.WithTimeout(context.Background(), h.timeout)
	err := h.ping(ctx)
	cancel()
	if err != nil {
		if h.up.Swap(false) {
			h.log.Error("database unreachable: refusing new requests", zap.Error(err))
		}
		return
	}
	if h.gen.Load() == gen && !h.up.Swap(true) {
		h.log.Info("database reachable again: serving new requests")
	}
}

// markDown takes the store down until the next successful ping.
func (h *storeHealth) markDown() {
	h.gen.Add(1)
	if h.up.Swap(false) {
		h.log.Error("database unreachable: refusing new requests")
	}
}

// StoreUp reports whether new requests may use the store.
func (h *storeHealth) StoreUp() bool { return h.up.Load() }

// SpoolFull reports that the usage recorder can keep no more records.
func (h *storeHealth) SpoolFull() bool { return h.usage != nil && h.usage.Full() }

// Unreachable reports whether err, from a store call on the request path,
// means the store cannot be reached (and if so takes it down until the
// next successful ping). While the store is down, every store error is
// taken to be that.
func (h *storeHealth) Unreachable(err error) bool {
	if err == nil {
		return false
	}
	if !h.up.Load() {
		return true
	}
	if unreachable(err) {
		h.markDown()
		return true
	}
	return false
}

// unreachable classifies connection failures of either driver: network
// errors (refused, reset, timed out), a connection the pool gave up on,
// a server shutting down or refusing connections (SQLSTATE classes 08 and
// 57P, 53300). A caller that went away (context.Canceled) is not one.
func unreachable(err error) bool {
	if errors.Is(err, context.Canceled) {
		return false
	}
	var ne net.Error
	var st interface{ SQLState() string }
	switch {
	case errors.As(err, &ne): // dial and I/O errors, and deadlines
		return true
	case errors.Is(err, driver.ErrBadConn), errors.Is(err, sql.ErrConnDone),
		errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE),
		errors.Is(err, io.ErrUnexpectedEOF):
		return true
	case errors.As(err, &st):
		code := st.SQLState()
		return strings.HasPrefix(code, "08") || strings.HasPrefix(code, "57P") || code == "53300"
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
