package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
)

// remote is the admin API of a running server, used when XROUTE_URL and
// XROUTE_ADMIN_KEY are set: changes then apply at once on every request
// that server handles (a direct database change waits for its cache TTL).
type remote struct {
	base string // http://host:port
	key  string
	hc   *http.Client
}

// remoteFromEnv returns the admin API client, or nil when the environment
// does not name a server.
func remoteFromEnv() *remote {
	base, key := strings.TrimRight(os.Getenv("XROUTE_URL"), "/"), os.Getenv("XROUTE_ADMIN_KEY")
	if base == "" || key == "" {
		return nil
	}
	base = strings.TrimSuffix(base, "/v1")
	return &remote{base: base, key: key, hc: &http.Client{Timeout: 60 * time.Second}}
}

// apiError is the server's OpenAI-shaped error, shown as the CLI's error
// with what an operator needs to find it in the server's log: the code
// and the request id.
type apiError struct {
	Status    int
	Message   string
	Param     string
	Code      string
	RequestID string // the answer's x-request-id
}

func (e *apiError) Error() string {
	msg := fmt.Sprintf("server answered %d: %s", e.Status, e.Message)
	if e.Param != "" {
		msg += " (" + e.Param + ")"
	}
	if e.Code != "" {
		msg += " [code " + e.Code + "]"
	}
	if e.RequestID != "" {
		msg += " [request id " + e.RequestID + "]"
	}
	switch e.Status {
	case http.StatusUnauthorized:
		msg += "; check XROUTE_ADMIN_KEY"
	case http.StatusForbidden:
		msg += "; XROUTE_ADMIN_KEY must be an admin key (xra-…)"
	}
	return msg
}

// do sends a request and decodes a JSON answer into out (when non-nil);
// it returns the raw body for CSV answers.
func (r *remote) do(ctx context.Context, method, path string, query url.Values, body, out any) ([]byte, error) {
	u := r.base + "/admin/v1" + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+r.key)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := r.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("cannot reach %s (XROUTE_URL): %w", r.base, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode >= 300 {
		var e struct {
			Error struct {
				Message string `json:"message"`
				Param   any    `json:"param"`
				Code    any    `json:"code"`
			} `json:"error"`
		}
		json.Unmarshal(raw, &e)
		ae := &apiError{Status: resp.StatusCode, Message: e.Error.Message, RequestID: resp.Header.Get("x-request-id")}
		if p, ok := e.Error.Param.(string); ok {
			ae.Param = p
		}
		if c, ok := e.Error.Code.(string); ok {
			ae.Code = c
		}
		if ae.Message == "" {
			ae.Message = http.StatusText(resp.StatusCode)
		}
		return nil, ae
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			return nil, fmt.Errorf("unexpected answer from %s: %w", u, err)
		}
	}
	return raw, nil
}

// list pages through a list endpoint and returns every item.
func (r *remote) list(ctx context.Context, path string, query url.Values, limit int) ([]json.RawMessage, error) {
	if query == nil {
		query = url.Values{}
	}
	var all []json.RawMessage
	after := ""
	for {
		q := url.Values{}
		for k, v := range query {
			q[k] = v
		}
		q.Set("limit", "100")
		if after != "" {
			q.Set("after", after)
		}
		var page struct {
			Data      []json.RawMessage `json:"data"`
			HasMore   bool              `json:"has_more"`
			NextAfter string            `json:"next_after"`
		}
		if _, err := r.do(ctx, http.MethodGet, path, q, nil, &page); err != nil {
			return nil, err
		}
		all = append(all, page.Data...)
		if !page.HasMore || page.NextAfter == "" || (limit > 0 && len(all) >= limit) {
			break
		}
		after = page.NextAfter
	}
	if limit > 0 && len(all) > limit {
		all = all[:limit]
	}
	return all, nil
}
