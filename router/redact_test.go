package router

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/xroute/xroute/keys"
	"github.com/xroute/xroute/providers"
)

// TestScrubKeepsWhatFailoverDecidesOn: redacting an upstream error changes
// its text only: status, retryability, timeouts and the transport cause
// stay, so failover and the caller's status are what they were.
func TestScrubKeepsWhatFailoverDecidesOn(t *testing.T) {
	rd := keys.NewRedactor()
	rd.Set("config", "opaque-provider-secret-1")
	r := &Router{redact: rd}
	cause := fmt.Errorf("Post \"https://x/v1?key=opaque-provider-secret-1\": %w", context.DeadlineExceeded)
	for _, tc := range []struct {
		name string
		err  error
	}{
		{"4xx quoting the key", &providers.Error{Provider: "p", Status: 400, Message: "bad key opaque-provider-secret-1", Param: "Bearer opaque-provider-secret-1"}},
		{"timeout whose cause quotes the key", &providers.Error{Provider: "p", Message: "upstream request failed", Err: cause}},
		{"wrapped", fmt.Errorf("route m: %w", &providers.Error{Provider: "p", Status: 503, Message: "x-api-key: opaque-provider-secret-1"})},
		{"not an upstream error", errors.New("dial: Bearer opaque-provider-secret-1")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := r.scrub(tc.err)
			if strings.Contains(got.Error(), "opaque-provider-secret-1") {
				t.Fatalf("secret left: %v", got)
			}
			var before, after *providers.Error
			if errors.As(tc.err, &before) {
				if !errors.As(got, &after) || after.Status != before.Status || after.Retryable() != before.Retryable() || after.Timeout() != before.Timeout() {
					t.Fatalf("before %+v after %+v", before, after)
				}
				if strings.Contains(after.Message+after.Param, "opaque-provider-secret-1") {
					t.Fatalf("fields keep the secret: %+v", after)
				}
			}
			if errors.Is(tc.err, context.DeadlineExceeded) != errors.Is(got, context.DeadlineExceeded) {
				t.Fatal("the cause was lost")
			}
		})
	}
	clean := &providers.Error{Provider: "p", Status: 400, Message: "The model does not exist."}
	if got := r.scrub(clean); got != clean {
		t.Fatal("a clean error was copied")
	}
}

func TestCleanChunk(t *testing.T) {
	rd := keys.NewRedactor()
	r := &Router{redact: rd}
	ok := providers.Chunk{Data: []byte(`{"choices":[{"delta":{"content":"Bearer looks-like-a-token-but-is-content"}}]}`)}
	if got := r.cleanChunk(ok); &got.Data[0] != &ok.Data[0] {
		t.Fatal("a successful chunk was searched and copied")
	}
	bad := providers.Chunk{Data: []byte("{\"delta\":\"caf\xe9\"}")}
	if got := r.cleanChunk(bad); !utf8.Valid(got.Data) {
		t.Fatalf("invalid UTF-8 relayed: %q", got.Data)
	}
	ev := providers.Chunk{Native: true, Name: "error", Data: []byte(`{"type":"error","error":{"message":"x-api-key: sk-ant-api03-AbCdEfGhIjKlMnOpQrStUvWx"}}`)}
	if got := r.cleanChunk(ev); strings.Contains(string(got.Data), "sk-ant") {
		t.Fatalf("native error event relayed with a key: %s", got.Data)
	}
}

// BenchmarkCleanChunk is what every relayed chunk pays: a UTF-8 check.
func BenchmarkCleanChunk(b *testing.B) {
	r := &Router{redact: keys.NewRedactor()}
	c := providers.Chunk{Data: []byte(`{"id":"chatcmpl-123","object":"chat.completion.chunk","created":1700000000,"model":"gpt-4o-mini","choices":[{"index":0,"delta":{"content":" tokens"},"finish_reason":null}]}`)}
	b.ReportAllocs()
	for b.Loop() {
		r.cleanChunk(c)
	}
}
