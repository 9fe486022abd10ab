package httpapi

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"
	"go.uber.org/zap"

	"github.com/xroute/xroute/keys"
	"github.com/xroute/xroute/router"
)

// foreignError is an error type the HTTP layer has never heard of.
type foreignError struct{ msg string }

func (e *foreignError) Error() string { return e.msg }

// foreignMeter refuses every hold with a foreign error.
type foreignMeter struct{ err error }

func (m foreignMeter) Hold(context.Context, string, *keys.Key, *router.Model, []byte, Worst) (Hold, error) {
	return nil, m.err
}

// TestForeignErrorsAnswerInTheCallersShape: an error of a type no
// branch knows (bare or wrapped) is never a panic nor an empty answer:
// the caller gets a 5xx (or, for a request error, a 400) in its own
// shape, OpenAI's or Anthropic's, and the request is recorded with it.
func TestForeignErrorsAnswerInTheCallersShape(t *testing.T) {
	gin.SetMode(gin.TestMode)
	foreign := &foreignError{"sk-secret-words-of-a-library"}
	wrapped := fmt.Errorf("somewhere deep: %w", foreign)
	s := &modelAPI{base: &base{cfg: &Config{}, log: zap.NewNop()}, own: &ModelConfig{}}
	tests := []struct {
		name      string
		anthropic bool
		do        func(c *gin.Context)
		status    int
		typ, code string
	}{
		{"route failed", false, func(c *gin.Context) { s.routeFailed(c, foreign) }, http.StatusBadGateway, "server_error", "upstream_error"},
		{"route failed, wrapped", false, func(c *gin.Context) { s.routeFailed(c, wrapped) }, http.StatusBadGateway, "server_error", "upstream_error"},
		{"route failed, anthropic", true, func(c *gin.Context) { s.routeFailed(c, wrapped) }, http.StatusBadGateway, "api_error", ""},
		{"request error", false, func(c *gin.Context) { writeRequestError(c, wrapped) }, http.StatusBadRequest, "invalid_request_error", ""},
		{"request error, anthropic", true, func(c *gin.Context) { writeRequestError(c, foreign) }, http.StatusBadRequest, "invalid_request_error", ""},
		{"credit hold", false, func(c *gin.Context) {
			hs := &modelAPI{base: &base{cfg: &Config{}, log: zap.NewNop()}, own: &ModelConfig{Meter: foreignMeter{wrapped}}}
			if hs.hold(c, infoOf(c), &router.Model{Name: "m"}, nil, Worst{}) {
				t.Error("a hold that failed admitted the request")
			}
		}, http.StatusServiceUnavailable, "server_error", "billing_unavailable"},
		{"credit hold, anthropic", true, func(c *gin.Context) {
			hs := &modelAPI{base: &base{cfg: &Config{}, log: zap.NewNop()}, own: &ModelConfig{Meter: foreignMeter{foreign}}}
			hs.hold(c, infoOf(c), &router.Model{Name: "m"}, nil, Worst{})
		}, 529, "overloaded_error", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := httptest.NewRecorder()
			c, _ := gin.CreateTestContext(w)
			c.Request = httptest.NewRequest(http.MethodPost, "/v1/chat/completions", nil)
			info := &requestInfo{id: "req_1", key: &keys.Key{Record: keys.Record{ID: "k"}}, anthropic: tc.anthropic}
			c.Set(infoKey, info)
			tc.do(c)
			if w.Code != tc.status || info.status != tc.status {
				t.Fatalf("status %d (recorded %d), want %d: %s", w.Code, info.status, tc.status, w.Body)
			}
			var body struct {
				Type  string `json:"type"`
				Error struct {
					Type    string `json:"type"`
					Code    any    `json:"code"`
					Message string `json:"message"`
				} `json:"error"`
			}
			if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
				t.Fatalf("%v: %s", err, w.Body)
			}
			if tc.anthropic != (body.Type == "error") || body.Error.Type != tc.typ || body.Error.Message == "" {
				t.Fatalf("not the caller's shape: %s", w.Body)
			}
			if code, _ := body.Error.Code.(string); tc.code != "" && code != tc.code {
				t.Fatalf("code %v, want %s: %s", body.Error.Code, tc.code, w.Body)
			}
			if tc.status >= 500 && (strings.Contains(w.Body.String(), foreign.msg)) {
				t.Fatalf("a foreign error's words reached the caller: %s", w.Body)
			}
		})
	}
}
