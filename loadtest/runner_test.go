package loadtest

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// fakeUpstream serves /v1/chat/completions, streaming when the body asks to,
// and counts the requests it answered. It requires the Bearer key "sk-test".
func fakeUpstream(t *testing.T) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var n atomic.Int64
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/chat/completions", func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		if r.Header.Get("Authorization") != "Bearer sk-test" {
			http.Error(w, `{"error":{"message":"bad key"}}`, http.StatusUnauthorized)
			return
		}
		body, err := io.ReadAll(r.Body)
		if err != nil {
			return
		}
		if !strings.Contains(string(body), `"stream":true`) {
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprint(w, `{"id":"c1","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}]}`)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		f := w.(http.Flusher)
		for _, line := range strings.SplitAfter(chatStream([]string{"a", "b", "c"}, 3, true), "\n\n") {
			fmt.Fprint(w, line)
			f.Flush()
		}
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv, &n
}

func TestOpenLoopSendsScheduledCount(t *testing.T) {
	srv, served := fakeUpstream(t)
	c := NewClient(Target{Name: "fake", BaseURL: srv.URL + "/v1", APIKey: "sk-test"}, 64)
	defer c.CloseIdle()
	req := ChatRequest("m", "hello", 4, false)
	r := NewRunner(c, &req, "test", nil)
	// 200/s over 250 ms: requests are due at 0, 5, ..., 245 ms, i.e. 50.
	res, err := r.Open(context.Background(), OpenLoop{Rate: 200, Duration: 250 * time.Millisecond, Drain: 5 * time.Second})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if res.Sent != 50 || res.Completed != 50 || res.ErrorsTotal != 0 {
		t.Fatalf("sent %d completed %d errors %v, want 50/50/none", res.Sent, res.Completed, res.Errors)
	}
	if got := served.Load(); got != 50 {
		t.Fatalf("server answered %d requests, want 50", got)
	}
	if res.Latency.Count != 50 || res.Mode != "open" || res.TargetRate != 200 {
		t.Fatalf("unexpected result %+v", res)
	}
}

func TestOpenLoopMaxRequestsAndInFlightCap(t *testing.T) {
	block := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-block
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(block) })
	c := NewClient(Target{BaseURL: srv.URL}, 16)
	defer c.CloseIdle()
	req := Request{Path: "/", Body: []byte("{}")}
	r := NewRunner(c, &req, "test", nil)
	// The server never answers: 2 requests go out, the next 8 due are dropped,
	// and the 2 in flight are canceled at the end of the drain.
	res, err := r.Open(context.Background(), OpenLoop{
		Rate: 1000, Duration: time.Minute, MaxRequests: 10, MaxInFlight: 2, Drain: 100 * time.Millisecond,
	})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if res.Sent != 10 || res.Completed != 0 || res.Errors["dropped_inflight_cap"] != 8 || res.Errors["timeout"] != 2 {
		t.Fatalf("sent %d completed %d errors %v", res.Sent, res.Completed, res.Errors)
	}
}

func TestClosedLoopStreamsThroughProxy(t *testing.T) {
	srv, served := fakeUpstream(t)
	up, err := url.Parse(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httptest.NewServer(NewProxyHandler(up, nil))
	t.Cleanup(proxy.Close)

	c := NewClient(Target{Name: "proxy", BaseURL: proxy.URL + "/v1", APIKey: "sk-test"}, 8)
	defer c.CloseIdle()
	req := ChatRequest("m", "hello", 3, true)
	req.Check.TokensPerChunk = 1
	req.Check.ExpectContent = "abc"
	r := NewRunner(c, &req, "test", nil)
	res, err := r.Closed(context.Background(), ClosedLoop{Workers: 4, Duration: 10 * time.Second, MaxRequests: 40, Ramp: 20 * time.Millisecond})
	if err != nil {
		t.Fatalf("Closed: %v", err)
	}
	if res.Sent != 40 || res.Completed != 40 || res.ErrorsTotal != 0 {
		t.Fatalf("sent %d completed %d errors %v", res.Sent, res.Completed, res.Errors)
	}
	if served.Load() != 40 {
		t.Fatalf("upstream answered %d, want 40", served.Load())
	}
	if s := res.Streams; s == nil || s.Valid != 40 || s.ContentChunks != 120 || res.TTFT.Count != 40 || res.ChunkGap.Count != 80 {
		t.Fatalf("streams %+v ttft %+v gaps %+v", res.Streams, res.TTFT, res.ChunkGap)
	}
}

func TestClientErrorKinds(t *testing.T) {
	srv, _ := fakeUpstream(t)
	tests := []struct {
		name   string
		target Target
		want   string
	}{
		{"wrong key", Target{BaseURL: srv.URL + "/v1", APIKey: "nope"}, "http_401"},
		{"nothing listening", Target{BaseURL: "http://127.0.0.1:1/v1"}, "conn_refused"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := NewClient(tc.target, 1)
			defer c.CloseIdle()
			req := ChatRequest("m", "x", 1, false)
			var o Outcome
			c.Do(context.Background(), &req, time.Now(), &o)
			if o.ErrKind != tc.want {
				t.Fatalf("ErrKind = %q, want %q", o.ErrKind, tc.want)
			}
		})
	}
}
