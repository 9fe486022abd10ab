package bedrock

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"time"

	"github.com/xroute/xroute/loadtest/mock"
)

// cacheLookback is how many blocks before a cache point a cached prefix is
// looked for, as for Anthropic's breakpoints.
const cacheLookback = 20

// cachePointTTL is the TTL of a cachePoint block ({"type":"default"},
// optionally "ttl":"5m" or "1h").
func cachePointTTL(raw json.RawMessage) time.Duration {
	var cp struct {
		TTL string `json:"ttl"`
	}
	if json.Unmarshal(raw, &cp) == nil && cp.TTL == "1h" {
		return mock.CacheTTL1h
	}
	return mock.CacheTTL5m
}

func hasCachePoint(req *converseRequest) bool {
	if req.ToolConfig != nil {
		for _, t := range req.ToolConfig.Tools {
			if t.CachePoint != nil {
				return true
			}
		}
	}
	for _, b := range req.System {
		if b.CachePoint != nil {
			return true
		}
	}
	for i := range req.Messages {
		for _, b := range req.Messages[i].Content {
			if b.CachePoint != nil {
				return true
			}
		}
	}
	return false
}

// cachePrefix is the prompt of req in cache order (tools, system,
// messages) with a breakpoint at each cachePoint (on the block before it),
// counting tokens as makePlan does: 3 of framing, each system text block 3
// plus its words, each message 3 plus its blocks' (tool definitions count
// none, but are part of the prefix).
func cachePrefix(model string, req *converseRequest) *mock.Prefix {
	p := mock.NewPrefix(model, true)
	p.Hidden(func() []byte { return []byte("framing") }, 3)
	if req.ToolConfig != nil {
		for _, t := range req.ToolConfig.Tools {
			switch {
			case t.CachePoint != nil:
				p.MarkLast(cachePointTTL(t.CachePoint))
			case t.ToolSpec != nil:
				raw, _ := json.Marshal(t.ToolSpec)
				p.Add(func() []byte { return raw }, 0, 0)
			default:
				raw := t.SystemTool
				p.Add(func() []byte { return raw }, 0, 0)
			}
		}
	}
	for _, b := range req.System {
		switch {
		case b.CachePoint != nil:
			p.MarkLast(cachePointTTL(b.CachePoint))
		case b.Text != nil:
			t := *b.Text
			p.Add(func() []byte { return []byte("system\x00" + t) }, 3+mock.CountWords(t), 0)
		}
	}
	for i := range req.Messages {
		m := &req.Messages[i]
		role := m.Role
		p.Hidden(func() []byte { return []byte("role:" + role) }, 3)
		for j := range m.Content {
			b := &m.Content[j]
			switch {
			case b.CachePoint != nil:
				p.MarkLast(cachePointTTL(b.CachePoint))
			case b.Text != nil:
				t := *b.Text
				p.Add(func() []byte { return []byte("text\x00" + t) }, mock.CountWords(t), 0)
			default:
				tokens := 0
				switch {
				case b.ToolUse != nil:
					tokens = 1 + mock.CountWords(string(b.ToolUse.Input))
				case b.ToolResult != nil:
					tokens = mock.CountWords(resultText(b.ToolResult))
				}
				raw, _ := json.Marshal(b)
				p.Add(func() []byte { return raw }, tokens, 0)
			}
		}
	}
	return p
}

// callerKey is the credential a request came with: the access key id of a
// SigV4 Authorization header, or a Bedrock API key (bearer). The prompt
// cache is per credential in the mock (per account on AWS).
func callerKey(r *http.Request) string {
	h := r.Header.Get("Authorization")
	if k, ok := strings.CutPrefix(h, "Bearer "); ok {
		return strings.TrimSpace(k)
	}
	if _, cred, ok := strings.Cut(h, "Credential="); ok {
		akid, _, _ := strings.Cut(cred, "/")
		return akid
	}
	return string(bytes.TrimSpace([]byte(h)))
}
