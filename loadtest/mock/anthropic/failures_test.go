package anthropic

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/xroute/xroute/internal/testutil"
	"github.com/xroute/xroute/loadtest/mock"
)

func TestFailures(t *testing.T) {
	t.Parallel()
	_, base := start(t, Config{Config: mock.Config{RetryAfter: 1500 * time.Millisecond}})
	tests := []struct {
		directive string
		status    int
		typ       string
	}{
		{"status=400", 400, "invalid_request_error"},
		{"status=401", 401, "authentication_error"},
		{"quota", 402, "billing_error"},
		{"status=403", 403, "permission_error"},
		{"status=404", 404, "not_found_error"},
		{"status=413", 413, "request_too_large"},
		{"status=429", 429, "rate_limit_error"},
		{"status=500", 500, "api_error"},
		{"status=504", 504, "timeout_error"},
		{"status=529", 529, "overloaded_error"},
	}
	for _, tt := range tests {
		t.Run(tt.directive, func(t *testing.T) {
			body := `{"model":"m","max_tokens":5,"messages":[{"role":"user","content":"hi #mock:` + tt.directive + `"}]}`
			resp := post(t, base, body, nil)
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d", resp.StatusCode)
			}
			var e errBody
			readJSON(t, resp, &e)
			if e.Error.Type != tt.typ {
				t.Fatalf("type %s", e.Error.Type)
			}
			if tt.status == 429 && resp.Header.Get("retry-after") != "2" {
				t.Fatalf("retry-after %q", resp.Header.Get("retry-after"))
			}
		})
	}

	t.Run("header directive and fail rate", func(t *testing.T) {
		resp := post(t, base, hello, map[string]string{mock.DirectiveHeader: "status=529"})
		if resp.StatusCode != 529 {
			t.Fatalf("status %d", resp.StatusCode)
		}
		s, b2 := start(t, Config{Config: mock.Config{FailRate503: 1}})
		if resp := post(t, b2, hello, nil); resp.StatusCode != 529 {
			t.Fatalf("FailRate503 answered %d", resp.StatusCode)
		}
		if s.Stats().Failures[529] != 1 {
			t.Fatalf("stats %+v", s.Stats())
		}
	})

	t.Run("stream error event", func(t *testing.T) {
		resp := post(t, base, `{"model":"m","max_tokens":50,"stream":true,"messages":[{"role":"user","content":"hi #mock:stream-error"}]}`, nil)
		evs, err := readEvents(t, resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		want := "message_start content_block_start ping content_block_delta error"
		if names(evs) != want {
			t.Fatalf("events %s", names(evs))
		}
		if evs[4].data["error"].(map[string]any)["type"] != "overloaded_error" {
			t.Fatalf("error event %v", evs[4].data)
		}
	})

	t.Run("stream reset", func(t *testing.T) {
		s, b := start(t, Config{})
		resp := post(t, b, `{"model":"m","max_tokens":50,"stream":true,"messages":[{"role":"user","content":"hi #mock:reset"}]}`, nil)
		evs, err := readEvents(t, resp.Body)
		if err == nil {
			t.Fatalf("stream not cut: %s", names(evs))
		}
		if len(evs) != 4 || s.Stats().Resets != 1 {
			t.Fatalf("events %s, stats %+v", names(evs), s.Stats())
		}
	})
}

func TestLatencyAndCancel(t *testing.T) {
	t.Parallel()
	s, base := start(t, Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, base+"/v1/messages", strings.NewReader(`{"model":"m","max_tokens":5,"messages":[{"role":"user","content":"hi #mock:latency=5s"}]}`))
	req.Header.Set("anthropic-version", "2023-06-01")
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
		t.Fatal("expected a timeout")
	}
	testutil.Eventually(t, "the cancel counted", func() bool { return s.Stats().Canceled == 1 })
}

func TestTokensDirectiveAndPacing(t *testing.T) {
	_, base := start(t, Config{Config: mock.Config{TokensPerSec: 200}})
	begin := time.Now()
	resp := post(t, base, `{"model":"m","max_tokens":100,"stream":true,"messages":[{"role":"user","content":"hi #mock:tokens=10"}]}`, nil)
	evs, err := readEvents(t, resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if el := time.Since(begin); el < 40*time.Millisecond {
		t.Fatalf("10 tokens at 200/s took %v", el)
	}
	md := evs[len(evs)-2].data
	if md["usage"].(map[string]any)["output_tokens"] != float64(10) {
		t.Fatalf("message_delta %v", md)
	}
}

func TestNotFound(t *testing.T) {
	t.Parallel()
	_, base := start(t, Config{Config: mock.Config{Models: []string{"claude-a"}}})
	resp := post(t, base, hello, nil)
	var e errBody
	readJSON(t, resp, &e)
	if resp.StatusCode != 404 || e.Error.Type != "not_found_error" {
		t.Fatalf("%d %+v", resp.StatusCode, e)
	}
	r2, err := http.Get(base + "/v1/other")
	if err != nil {
		t.Fatal(err)
	}
	r2.Body.Close()
	if r2.StatusCode != 404 {
		t.Fatalf("status %d", r2.StatusCode)
	}
}
