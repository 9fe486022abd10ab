package anthropic

import (
	"bytes"
	"encoding/json"
	"net/http"
)

type countResponse struct {
	InputTokens       int                `json:"input_tokens"`
	ContextManagement *countContextUsage `json:"context_management,omitempty"`
}

type countContextUsage struct {
	OriginalInputTokens int `json:"original_input_tokens"`
}

// handleCountTokens answers POST /v1/messages/count_tokens with the prompt
// tokens a Messages request of the same body reports (input plus cache
// tokens). It validates the body as a Messages request, minus max_tokens;
// directives and injected failures do not apply, and the prompt cache is
// left untouched.
func (s *Server) handleCountTokens(w http.ResponseWriter, r *http.Request) {
	st := s.st.Load()
	version, ok := s.apiVersion(w, r)
	if !ok {
		return
	}
	var req request
	if e := decodeRequest(w, r, version, true, &req); e != nil {
		s.writeError(w, e.status, errorType(e.status), e.message)
		return
	}
	a, e := s.analyze(st, &req, version, r.Header.Get("anthropic-beta"), true, false)
	if e != nil {
		s.writeError(w, e.status, errorType(e.status), e.message)
		return
	}
	resp := countResponse{InputTokens: a.prompt.Tokens}
	if cm := bytes.TrimSpace(req.ContextManagement); len(cm) > 0 && string(cm) != "null" {
		resp.ContextManagement = &countContextUsage{OriginalInputTokens: a.prompt.Tokens}
	}
	body, _ := json.Marshal(resp)
	s.writeJSON(w, http.StatusOK, body)
}
