package mock

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestOnlyDirective: only=NAME makes a directive's fault apply on the mock
// named NAME alone, in every path a fault takes (status, stream faults);
// the other mock answers the same request normally.
func TestOnlyDirective(t *testing.T) {
	t.Parallel()
	primary := httptest.NewServer(New(Config{Name: "mock-primary"}))
	defer primary.Close()
	backup := httptest.NewServer(New(Config{Name: "mock-backup"}))
	defer backup.Close()
	chat := func(msg string, stream bool) string {
		s := `{"model":"m","messages":[{"role":"user","content":"` + msg + `"}]}`
		if stream {
			s = `{"model":"m","stream":true,"messages":[{"role":"user","content":"` + msg + `"}]}`
		}
		return s
	}
	tests := []struct {
		name, path, body string
		primary, backup  int
		primaryBodyHas   string
	}{
		{"status", "/v1/chat/completions", chat("hi #mock:status=503;only=mock-primary", false), 503, 200, ""},
		{"429 with retry-after", "/v1/chat/completions", chat("hi #mock:status=429;retry-after=7;only=mock-primary", false), 429, 200, ""},
		{"stream error", "/v1/chat/completions", chat("hi #mock:stream-error;only=mock-primary", true), 200, 200, `"error"`},
		{"responses", "/v1/responses", `{"model":"m","input":"hi #mock:status=500;only=mock-primary"}`, 500, 200, ""},
		{"embeddings", "/v1/embeddings", `{"model":"m","input":"hi #mock:status=503;only=mock-primary"}`, 503, 200, ""},
		{"addressed to nobody here", "/v1/chat/completions", chat("hi #mock:status=503;only=mock-other", false), 200, 200, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, c := range []struct {
				url  string
				want int
				has  string
			}{{primary.URL, tt.primary, tt.primaryBodyHas}, {backup.URL, tt.backup, ""}} {
				resp, err := http.Post(c.url+tt.path, "application/json", strings.NewReader(tt.body))
				if err != nil {
					t.Fatal(err)
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != c.want {
					t.Fatalf("%s: status %d, want %d: %s", c.url, resp.StatusCode, c.want, b)
				}
				if c.has != "" && !strings.Contains(string(b), c.has) {
					t.Fatalf("%s: body lacks %s: %s", c.url, c.has, b)
				}
				if c.url == backup.URL && strings.Contains(string(b), `"error":{`) {
					t.Fatalf("the other mock failed too: %s", b)
				}
				if resp.StatusCode == 429 && resp.Header.Get("Retry-After") != "7" {
					t.Fatalf("429 without its Retry-After: %v", resp.Header)
				}
			}
		})
	}
	var d Directives
	if err := d.Scan("#mock:only="); err == nil {
		t.Fatal("only= with no name accepted")
	}
}
