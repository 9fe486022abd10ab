package anthropic

import (
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"unicode"
)

// defaultModels are listed when Config.Models is empty (any model id is
// accepted then), the most recent first.
var defaultModels = []string{"claude-opus-5-5", "claude-sonnet-5-5", "claude-haiku-4-5"}

// modelCreated is the created_at of every listed model.
const modelCreated = "2026-01-15T00:00:00Z"

type support struct {
	Supported bool `json:"supported"`
}

var yes = support{Supported: true}

// modelInfo is a ModelInfo of the reference.
type modelInfo struct {
	Type           string          `json:"type"`
	ID             string          `json:"id"`
	DisplayName    string          `json:"display_name"`
	CreatedAt      string          `json:"created_at"`
	MaxInputTokens int             `json:"max_input_tokens"`
	MaxTokens      int             `json:"max_tokens"`
	Lifecycle      string          `json:"lifecycle"`
	DeprecatedAt   json.RawMessage `json:"deprecated_at"`
	RetiresAt      json.RawMessage `json:"retires_at"`
	Capabilities   map[string]any  `json:"capabilities"`
}

func newModelInfo(id string) modelInfo {
	return modelInfo{Type: "model", ID: id, DisplayName: displayName(id), CreatedAt: modelCreated,
		MaxInputTokens: 1_000_000, MaxTokens: 128_000, Lifecycle: "active", DeprecatedAt: jsonNull, RetiresAt: jsonNull,
		Capabilities: map[string]any{
			"batch": yes, "citations": yes, "code_execution": yes, "image_input": yes, "pdf_input": yes, "structured_outputs": yes,
			"context_management": map[string]any{"supported": true, "clear_thinking_20251015": yes, "clear_tool_uses_20250919": yes, "compact_20260112": yes},
			"effort":             map[string]any{"supported": true, "low": yes, "medium": yes, "high": yes, "xhigh": yes, "max": yes},
			"server_tools":       map[string]any{"supported": true, "code_execution": yes, "web_search": yes},
			"thinking":           map[string]any{"supported": true, "types": map[string]any{"adaptive": yes, "between_tools": yes, "disabled": yes, "enabled": yes}},
		}}
}

// displayName spells an id the way the API names models: "claude-sonnet-5-5"
// is "Claude Sonnet 5.5" (a trailing date is dropped).
func displayName(id string) string {
	parts := strings.Split(id, "-")
	if n := len(parts); n > 1 && len(parts[n-1]) == 8 && isDigits(parts[n-1]) {
		parts = parts[:n-1]
	}
	var words []string
	for i := 0; i < len(parts); i++ {
		w := parts[i]
		if isDigits(w) {
			nums := []string{w}
			for i+1 < len(parts) && isDigits(parts[i+1]) {
				i++
				nums = append(nums, parts[i])
			}
			words = append(words, strings.Join(nums, "."))
			continue
		}
		if w != "" {
			words = append(words, strings.ToUpper(w[:1])+w[1:])
		}
	}
	return strings.Join(words, " ")
}

func isDigits(s string) bool {
	return s != "" && strings.IndexFunc(s, func(r rune) bool { return !unicode.IsDigit(r) }) < 0
}

type modelPage struct {
	Data    []modelInfo `json:"data"`
	HasMore bool        `json:"has_more"`
	FirstID *string     `json:"first_id"`
	LastID  *string     `json:"last_id"`
}

// handleModels answers GET /v1/models: the page of at most limit (1..1000,
// default 20) models after after_id or before before_id.
func (s *Server) handleModels(w http.ResponseWriter, r *http.Request) {
	if _, ok := s.apiVersion(w, r); !ok {
		return
	}
	ids := s.st.Load().cfg.Models
	if len(ids) == 0 {
		ids = defaultModels
	}
	q := r.URL.Query()
	limit := 20
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		switch {
		case err != nil:
			s.writeError(w, http.StatusBadRequest, "invalid_request_error", "limit: Input should be a valid integer")
			return
		case n < 1:
			s.writeError(w, http.StatusBadRequest, "invalid_request_error", "limit: Input should be greater than or equal to 1")
			return
		case n > 1000:
			s.writeError(w, http.StatusBadRequest, "invalid_request_error", "limit: Input should be less than or equal to 1000")
			return
		}
		limit = n
	}
	after, before := q.Get("after_id"), q.Get("before_id")
	if after != "" && before != "" {
		s.writeError(w, http.StatusBadRequest, "invalid_request_error", "before_id and after_id cannot both be set")
		return
	}
	from, to := 0, len(ids)
	hasMore := false
	switch {
	case after != "":
		i := slices.Index(ids, after)
		if i < 0 {
			from = to
		} else {
			from = i + 1
		}
		to = min(to, from+limit)
		hasMore = to < len(ids)
	case before != "":
		i := slices.Index(ids, before)
		if i < 0 {
			i = 0
		}
		to = i
		from = max(0, to-limit)
		hasMore = from > 0
	default:
		to = min(to, limit)
		hasMore = to < len(ids)
	}
	page := modelPage{Data: []modelInfo{}, HasMore: hasMore}
	for _, id := range ids[from:to] {
		page.Data = append(page.Data, newModelInfo(id))
	}
	if n := len(page.Data); n > 0 {
		page.FirstID, page.LastID = &page.Data[0].ID, &page.Data[n-1].ID
	}
	body, _ := json.Marshal(page)
	s.writeJSON(w, http.StatusOK, body)
}

// handleModel answers GET /v1/models/{id}: any id when Config.Models is
// empty.
func (s *Server) handleModel(w http.ResponseWriter, r *http.Request) {
	if _, ok := s.apiVersion(w, r); !ok {
		return
	}
	id := r.PathValue("id")
	st := s.st.Load()
	if !st.models.Has(id) {
		s.writeError(w, http.StatusNotFound, "not_found_error", "model: "+id)
		return
	}
	body, _ := json.Marshal(newModelInfo(id))
	s.writeJSON(w, http.StatusOK, body)
}
