package mock

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestRetryAfter(t *testing.T) {
	t.Parallel()
	var d Directives
	if got := d.RetryAfterOr(3 * time.Second); got != 3*time.Second {
		t.Fatalf("no directive: %v", got)
	}
	d.RetryAfter, d.HasRetryAfter = 1500*time.Millisecond, true
	if got := d.RetryAfterOr(3 * time.Second); got != 1500*time.Millisecond {
		t.Fatalf("directive: %v", got)
	}
	for d, want := range map[time.Duration]string{0: "0", 1500 * time.Millisecond: "2", 3 * time.Second: "3"} {
		if got := RetryAfterSeconds(d); got != want {
			t.Errorf("RetryAfterSeconds(%v) = %q, want %q", d, got, want)
		}
	}
}

func TestReadBody(t *testing.T) {
	t.Parallel()
	r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader("{}"))
	if b, tooLarge, err := ReadBody(httptest.NewRecorder(), r); string(b) != "{}" || tooLarge || err != nil {
		t.Fatalf("%q %v %v", b, tooLarge, err)
	}
	r = httptest.NewRequest(http.MethodPost, "/", strings.NewReader(strings.Repeat("x", MaxBodyBytes+1)))
	if _, tooLarge, err := ReadBody(httptest.NewRecorder(), r); !tooLarge || err == nil {
		t.Fatalf("over the limit: %v %v", tooLarge, err)
	}
}

func TestClaudeCacheMin(t *testing.T) {
	t.Parallel()
	model := "claude-sonnet-4-5"
	if ClaudeCacheMin(100, model) != 100 || ClaudeCacheMin(-1, model) != 0 || ClaudeCacheMin(0, model) != ClaudeMinCacheTokens(model) {
		t.Fatal("knob: positive replaces, negative disables, zero is the model's")
	}
}

func TestCoreServeChecksTheKey(t *testing.T) {
	t.Parallel()
	c := NewCore()
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	key := func(r *http.Request) string { return r.Header.Get("k") }
	refuse := func(w http.ResponseWriter, missing bool) {
		if missing {
			w.WriteHeader(http.StatusUnauthorized)
		} else {
			w.WriteHeader(http.StatusForbidden)
		}
	}
	for _, tc := range []struct {
		want, got string
		status    int
	}{{"", "", http.StatusNoContent}, {"s3cret", "s3cret", http.StatusNoContent}, {"s3cret", "", http.StatusUnauthorized}, {"s3cret", "nope", http.StatusForbidden}} {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.Header.Set("k", tc.got)
		w := httptest.NewRecorder()
		c.Serve(w, r, tc.want, key, refuse, ok)
		if w.Code != tc.status {
			t.Errorf("want %q got %q: status %d, want %d", tc.want, tc.got, w.Code, tc.status)
		}
	}
	if st := c.Stats(); st.Requests != 4 || st.Active != 0 {
		t.Fatalf("counted %+v", st)
	}
}
