package httpapi

import (
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
)

// StoreHealth is what the HTTP layer needs to know of the database and of
// the usage spool to decide whether a new request can be served and
// metered.
type StoreHealth interface {
	// StoreUp is false while the database cannot be reached.
	StoreUp() bool
	// SpoolFull is true while the local usage spool can keep no more
	// records (the database has been down a long while).
	SpoolFull() bool
	// Unreachable reports whether err, returned by a store call on the
	// request path, means the database cannot be reached.
	Unreachable(err error) bool
}

// storeRetryAfter is how soon a refused caller may retry: the health
// monitor pings every second.
const storeRetryAfter = 2 * time.Second

func errStoreUnavailable() *apiError {
	e := newError(http.StatusServiceUnavailable, "server_error", "store_unavailable", "xroute cannot reach its database; retry shortly")
	e.RetryAfter = storeRetryAfter
	return e
}

func errSpoolFull() *apiError {
	e := newError(http.StatusServiceUnavailable, "server_error", "usage_spool_full", "xroute cannot meter new requests until its database is back; retry shortly")
	e.RetryAfter = storeRetryAfter
	return e
}

// storeGate refuses new /v1 requests while the database is down or the
// usage spool is full: a request that could not be authenticated, charged
// or metered is better refused at once than failed halfway. Requests
// already past the gate finish.
func (s *base) storeGate(c *gin.Context) {
	if h := s.cfg.StoreHealth; h != nil {
		switch {
		case !h.StoreUp():
			writeError(c, errStoreUnavailable())
			return
		case h.SpoolFull():
			writeError(c, errSpoolFull())
			return
		}
	}
	c.Next()
}

// storeDown reports whether a store error on the request path means the
// database cannot be reached (the answer is then store_unavailable).
func (s *base) storeDown(err error) bool {
	return s.cfg.StoreHealth != nil && s.cfg.StoreHealth.Unreachable(err)
}

// healthzStore answers /healthz from the monitor's state, naming the
// dependency that is down so that a load balancer and an operator see it.
func (s *base) healthzStore(c *gin.Context) {
	h := s.cfg.StoreHealth
	st, spool := "up", "ok"
	if !h.StoreUp() {
		st = "down"
	}
	if h.SpoolFull() {
		spool = "full"
	}
	if st != "up" || spool != "ok" {
		c.JSON(http.StatusServiceUnavailable, gin.H{"status": "unavailable", "store": st, "usage_spool": spool})
		return
	}
	c.JSON(http.StatusOK, gin.H{"status": "ok", "store": st, "usage_spool": spool})
}
