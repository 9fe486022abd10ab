package gemini

import (
	"net/http"
)

// handleCountTokens answers models.countTokens: {"totalTokens": N} with N
// the promptTokenCount generateContent reports for the same request, and
// cachedContentTokenCount when the request names a cachedContent (implicit
// caching happens only when a request is answered). The body is contents
// or a generateContentRequest (which wins when both are sent), validated as
// generateContent validates it, thought signatures aside.
func (s *Server) handleCountTokens(w http.ResponseWriter, r *http.Request, model string) {
	st := s.st.Load()
	var body countTokensRequest
	if status, msg := decode(w, r, &body); status != 0 {
		s.writeError(w, status, statusName(status), msg, nil)
		return
	}
	req := generateRequest{Contents: body.Contents}
	if body.GenerateContentRequest != nil {
		req = body.GenerateContentRequest.generateRequest
	}
	if len(req.Contents) == 0 {
		s.badRequest(w, "* CountTokensRequest.contents: contents is not specified\n")
		return
	}
	if msg := check(&req, false); msg != "" {
		s.badRequest(w, msg)
		return
	}
	if !st.models.Has(model) {
		s.writeError(w, http.StatusNotFound, "NOT_FOUND", modelNotFound(model, "countTokens"), nil)
		return
	}
	n := countPrompt(&req)
	resp := countTokensResponse{TotalTokens: n, PromptTokensDetails: []modalityCount{{Modality: "TEXT", TokenCount: n}}}
	if req.CachedContent != "" {
		resp.CachedContentTokenCount = n / 2
		resp.CacheTokensDetails = []modalityCount{{Modality: "TEXT", TokenCount: n / 2}}
	}
	s.writeJSON(w, http.StatusOK, &resp)
}
