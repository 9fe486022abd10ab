package mock

import (
	"crypto/subtle"
	"errors"
	"io"
	"math"
	"net/http"
	"strconv"
	"time"
)

// The scaffolding every format's mock shares below its wire format: how
// large a body may be and how it is read, and the Retry-After a 429
// carries. Each format writes its own error bodies and headers around
// them.

// MaxBodyBytes is the largest request body a mock reads (every provider
// refuses larger ones with a 413).
const MaxBodyBytes = 32 << 20

// ReadBody reads r's body up to MaxBodyBytes. tooLarge reports a body over
// the limit (answer 413); another error means the client went away.
func ReadBody(w http.ResponseWriter, r *http.Request) (body []byte, tooLarge bool, err error) {
	body, err = io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	var mbe *http.MaxBytesError
	return body, errors.As(err, &mbe), err
}

// RetryAfterOr is the Retry-After of a 429: the directive's (retry-after=)
// when the request set one, else def (Config.RetryAfter).
func (d *Directives) RetryAfterOr(def time.Duration) time.Duration {
	if d.HasRetryAfter {
		return d.RetryAfter
	}
	return def
}

// RetryAfterSeconds is d as a Retry-After header value: whole seconds,
// rounded up (a client that waits that long is never early).
func RetryAfterSeconds(d time.Duration) string {
	return strconv.FormatInt(int64(math.Ceil(d.Seconds())), 10)
}

// Serve is the front of every format's ServeHTTP: it counts the request in
// and out (Begin/End); when the mock wants a key (want), it compares the
// one the request carries (key) in constant time and answers a missing or
// wrong one with refuse in the format's words; then h routes the request.
func (c *Core) Serve(w http.ResponseWriter, r *http.Request, want string, key func(*http.Request) string, refuse func(w http.ResponseWriter, missing bool), h http.Handler) {
	c.Begin()
	defer c.End()
	if want != "" {
		got := key(r)
		if got == "" || subtle.ConstantTimeCompare([]byte(got), []byte(want)) != 1 {
			refuse(w, got == "")
			return
		}
	}
	h.ServeHTTP(w, r)
}
