package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"mime"
	"net/http"
	"net/url"

	"github.com/gin-gonic/gin"
	"go.uber.org/zap"

	"github.com/xroute/xroute/internal/exchange"
)

// TokenExchanger exchanges identity tokens for short-lived keys
// (exchange.Service).
type TokenExchanger interface {
	Exchange(ctx context.Context, r exchange.Request) (exchange.Token, error)
}

// maxTokenRequest bounds a token request's body: a few parameters and a
// JWT.
const maxTokenRequest = 64 << 10

// routeToken mounts POST /v1/auth/token (RFC 8693, and RFC 6749's
// refresh_token grant) outside the authenticated /v1 group: the subject
// token, or the refresh token, is the credential.
func (s *modelAPI) routeToken(e *gin.RouterGroup) {
	if s.own.Exchange == nil {
		return
	}
	e.POST("/v1/auth/token", s.tokenExchange)
}

// tokenResponse is RFC 8693 §2.2.1's answer.
type tokenResponse struct {
	AccessToken     string `json:"access_token"`
	IssuedTokenType string `json:"issued_token_type"`
	TokenType       string `json:"token_type"`
	ExpiresIn       int64  `json:"expires_in"`
	Scope           string `json:"scope,omitempty"`
	RefreshToken    string `json:"refresh_token,omitempty"`
}

func (s *modelAPI) tokenExchange(c *gin.Context) {
	// RFC 6749 §5.1: token answers, errors included, are never cached.
	c.Header("Cache-Control", "no-store")
	c.Header("Pragma", "no-cache")
	if h := s.cfg.StoreHealth; h != nil && !h.StoreUp() {
		oauthError(c, http.StatusServiceUnavailable, exchange.CodeUnavailable, "The gateway's database is unavailable. Please retry.")
		return
	}
	params, msg := tokenParams(c.Request)
	if msg != "" {
		oauthError(c, http.StatusBadRequest, exchange.CodeInvalidRequest, msg)
		return
	}
	tok, err := s.own.Exchange.Exchange(c.Request.Context(), exchange.Request{
		GrantType:          params.Get("grant_type"),
		SubjectToken:       params.Get("subject_token"),
		SubjectTokenType:   params.Get("subject_token_type"),
		RequestedTokenType: params.Get("requested_token_type"),
		Scope:              params.Get("scope"),
		RefreshToken:       params.Get("refresh_token"),
		IP:                 c.ClientIP(),
	})
	var xe *exchange.Error
	switch {
	case err == nil:
		c.JSON(http.StatusOK, tokenResponse{AccessToken: tok.AccessToken, IssuedTokenType: tok.IssuedTokenType,
			TokenType: "Bearer", ExpiresIn: tok.ExpiresIn, Scope: tok.Scope, RefreshToken: tok.RefreshToken})
	case errors.As(err, &xe):
		oauthError(c, oauthStatus(xe.Code), xe.Code, xe.Description)
	default:
		s.log.Error("token exchange failed", zapReq(infoOf(c)), zap.Error(err))
		if s.storeDown(err) {
			oauthError(c, http.StatusServiceUnavailable, exchange.CodeUnavailable, "The gateway's database is unavailable. Please retry.")
			return
		}
		oauthError(c, http.StatusInternalServerError, exchange.CodeServerError, "The token could not be issued.")
	}
}

// oauthStatus is the status of each error code: 400 for the request's
// faults (RFC 6749 §5.2), 403 for an identity no rule admits.
func oauthStatus(code string) int {
	switch code {
	case exchange.CodeUnauthorizedClient:
		return http.StatusForbidden
	case exchange.CodeUnavailable:
		return http.StatusServiceUnavailable
	case exchange.CodeServerError:
		return http.StatusInternalServerError
	}
	return http.StatusBadRequest
}

// oauthError writes RFC 6749 §5.2's error shape.
func oauthError(c *gin.Context, status int, code, desc string) {
	c.AbortWithStatusJSON(status, gin.H{"error": code, "error_description": desc})
}

// tokenParams reads the request's parameters from a form (the RFC's
// encoding) or a JSON object of strings. A parameter given twice is
// refused (RFC 6749 §3.2): which of two values counts must not be a
// guess.
func tokenParams(r *http.Request) (url.Values, string) {
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	body := http.MaxBytesReader(nil, r.Body, maxTokenRequest)
	switch ct {
	case "application/x-www-form-urlencoded":
		r.Body = body
		if err := r.ParseForm(); err != nil {
			return nil, "The body is not a valid form of at most 64 KiB."
		}
		for k, v := range r.PostForm {
			if len(v) > 1 {
				return nil, "The parameter " + k + " is given more than once."
			}
		}
		return r.PostForm, ""
	case "application/json":
		var m map[string]any
		if err := json.NewDecoder(body).Decode(&m); err != nil {
			return nil, "The body is not a JSON object of at most 64 KiB."
		}
		v := url.Values{}
		for k, x := range m {
			str, ok := x.(string)
			if !ok {
				return nil, "The parameter " + k + " must be a string."
			}
			v.Set(k, str)
		}
		return v, ""
	}
	return nil, "The body must be application/x-www-form-urlencoded (or application/json)."
}
