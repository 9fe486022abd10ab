package httpapi

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"go.uber.org/zap"

	"github.com/xroute/xroute/keys"
)

const infoKey = "xroute.request"

// requestInfo collects what the access log line and the usage record need.
// It never holds key material: only the key's id.
type requestInfo struct {
	id        string
	start     time.Time
	key       *keys.Key
	model     string
	provider  string
	upstream  string
	stream    bool
	attempts  int
	status    int // overrides the written status (499: client went away)
	errCode   string
	errMsg    string
	prompt    int
	complete  int
	cached    int
	ttft      time.Duration
	usageSeen bool
}

func infoOf(c *gin.Context) *requestInfo {
	v, ok := c.Get(infoKey)
	if !ok {
		return nil
	}
	return v.(*requestInfo)
}

func newRequestID() string {
	var b [12]byte
	rand.Read(b[:])
	return "req_" + hex.EncodeToString(b[:])
}

// begin gives every request an id (echoed as x-request-id on every answer,
// errors included), recovers panics into an OpenAI-shaped 500 and writes
// one access log line when the request ends.
func (s *Server) begin(c *gin.Context) {
	info := &requestInfo{id: newRequestID(), start: s.now()}
	c.Set(infoKey, info)
	c.Writer.Header().Set("x-request-id", info.id)
	defer func() {
		if p := recover(); p != nil {
			if errors.Is(asError(p), http.ErrAbortHandler) {
				panic(p) // net/http's own signal to abort a response
			}
			s.log.Error("panic in handler", zap.String("request_id", info.id), zap.Any("panic", p), zap.Stack("stack"))
			if !c.Writer.Written() {
				writeError(c, newError(http.StatusInternalServerError, "server_error", "internal_error", "The server had an error while processing your request."))
			}
		}
		s.logRequest(c, info)
	}()
	c.Next()
}

func asError(p any) error {
	if err, ok := p.(error); ok {
		return err
	}
	return nil
}

func (s *Server) logRequest(c *gin.Context, info *requestInfo) {
	status := info.status
	if status == 0 {
		status = c.Writer.Status()
	}
	fields := make([]zap.Field, 0, 16)
	fields = append(fields,
		zap.String("request_id", info.id),
		zap.String("method", c.Request.Method),
		zap.String("path", c.Request.URL.Path),
		zap.Int("status", status),
		zap.Duration("latency", s.now().Sub(info.start)),
		zap.String("client_ip", c.ClientIP()),
	)
	if info.key != nil {
		fields = append(fields, zap.String("key_id", info.key.ID))
	}
	if info.model != "" {
		fields = append(fields, zap.String("model", info.model), zap.Bool("stream", info.stream))
	}
	if info.provider != "" {
		fields = append(fields, zap.String("provider", info.provider), zap.String("upstream_model", info.upstream), zap.Int("attempts", info.attempts))
	}
	if info.usageSeen {
		fields = append(fields, zap.Int("prompt_tokens", info.prompt), zap.Int("completion_tokens", info.complete))
	}
	if info.ttft > 0 {
		fields = append(fields, zap.Duration("ttft", info.ttft))
	}
	if info.errCode != "" {
		fields = append(fields, zap.String("error_code", info.errCode), zap.String("error", info.errMsg))
	}
	s.log.Info("request", fields...)
}

// authenticate reads the caller key from the Authorization header only
// (never from the URL) and verifies it.
func (s *Server) authenticate(c *gin.Context) {
	h := c.GetHeader("Authorization")
	scheme, token, found := strings.Cut(h, " ")
	if h == "" || !found || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(token) == "" {
		writeError(c, newError(http.StatusUnauthorized, "invalid_request_error", "missing_api_key",
			"You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY)."))
		return
	}
	k, err := s.keys.Verify(c.Request.Context(), strings.TrimSpace(token))
	if err != nil {
		switch {
		case errors.Is(err, keys.ErrRevoked):
			writeError(c, newError(http.StatusUnauthorized, "invalid_request_error", "api_key_revoked", "This API key has been revoked."))
		case errors.Is(err, keys.ErrExpired):
			writeError(c, newError(http.StatusUnauthorized, "invalid_request_error", "api_key_expired", "This API key has expired."))
		case errors.Is(err, keys.ErrMalformed), errors.Is(err, keys.ErrUnknown):
			// The presented key is never echoed back, not even masked.
			writeError(c, newError(http.StatusUnauthorized, "invalid_request_error", "invalid_api_key", "Incorrect API key provided."))
		default:
			s.log.Error("key verification failed", zap.String("request_id", infoOf(c).id), zap.Error(err))
			writeError(c, newError(http.StatusServiceUnavailable, "server_error", "auth_unavailable", "The gateway cannot verify API keys right now. Please retry."))
		}
		return
	}
	infoOf(c).key = k
	c.Next()
}
