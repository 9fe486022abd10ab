package gemini

import (
	"net/http"
	"strconv"
	"strings"

	"github.com/xroute/xroute/loadtest/mock"
)

// handleEmbed serves batchEmbedContents ({"requests":[...]} →
// {"embeddings":[{"values":[...]}]}) and embedContent ({"content":...} →
// {"embedding":{"values":[...]}}). Vectors are the OpenAI mock's
// deterministic unit vectors of each text (8 dimensions unless
// outputDimensionality says otherwise). Like the Gemini API, the answer
// carries no token count.
func (s *Server) handleEmbed(w http.ResponseWriter, r *http.Request, model string, batch bool) {
	s.core.Embeddings.Add(1)
	st := s.st.Load()
	cfg := &st.cfg
	var reqs []embedContentRequest
	if batch {
		var b batchEmbedRequest
		if status, msg := decode(w, r, &b); status != 0 {
			s.writeError(w, status, statusName(status), msg, nil)
			return
		}
		if len(b.Requests) == 0 {
			s.badRequest(w, "* BatchEmbedContentsRequest.requests: at least one request is required\n")
			return
		}
		if len(b.Requests) > maxBatchRequests {
			s.badRequest(w, "* BatchEmbedContentsRequest: at most "+strconv.Itoa(maxBatchRequests)+" requests can be in one batch\n")
			return
		}
		for i := range b.Requests {
			if b.Requests[i].Model != "models/"+model {
				s.badRequest(w, "* BatchEmbedContentsRequest.requests["+strconv.Itoa(i)+"].model: the model of each request must be the model of the batch (models/"+model+")\n")
				return
			}
		}
		reqs = b.Requests
	} else {
		var one embedContentRequest
		if status, msg := decode(w, r, &one); status != 0 {
			s.writeError(w, status, statusName(status), msg, nil)
			return
		}
		reqs = []embedContentRequest{one}
	}
	if !st.models.Has(model) {
		method := "embedContent"
		if batch {
			method = "batchEmbedContents"
		}
		s.writeError(w, http.StatusNotFound, "NOT_FOUND", modelNotFound(model, method), nil)
		return
	}
	texts := make([]string, len(reqs))
	for i := range reqs {
		field := "requests[" + strconv.Itoa(i) + "]"
		if len(reqs[i].Content.Parts) == 0 {
			s.badRequest(w, "* BatchEmbedContentsRequest."+field+".content.parts: contents.parts must not be empty.\n")
			return
		}
		for j := range reqs[i].Content.Parts {
			p := &reqs[i].Content.Parts[j]
			if p.Text == nil {
				s.badRequest(w, "* BatchEmbedContentsRequest."+field+".content.parts["+strconv.Itoa(j)+"]: only text parts can be embedded by this model\n")
				return
			}
		}
		texts[i] = textOf(&reqs[i].Content)
		if strings.TrimSpace(texts[i]) == "" {
			s.badRequest(w, "* BatchEmbedContentsRequest."+field+".content: text content is empty.\n")
			return
		}
		if od := reqs[i].OutputDimensionality; od != nil && (*od < 1 || *od > maxEmbeddingDims) {
			s.badRequest(w, "* BatchEmbedContentsRequest."+field+".output_dimensionality: must be between 1 and "+strconv.Itoa(maxEmbeddingDims)+"\n")
			return
		}
	}
	d, err := mock.ParseDirectives(r.Header.Get(mock.DirectiveHeader), strings.Join(texts, "\n"))
	if err != nil {
		s.badRequest(w, "mock: bad #mock: directive in the input or the "+mock.DirectiveHeader+" header")
		return
	}
	status, reset := s.core.Roll(&cfg.Config, &d, false)
	if !s.core.Delay(r, &cfg.Config, &d) {
		return
	}
	if status != 0 {
		s.writeFailure(w, cfg, status, &d, model)
		return
	}
	if reset {
		s.core.Cut(w)
		return
	}
	out := make([]embedding, len(reqs))
	tokens := 0
	for i := range reqs {
		dims := defaultEmbeddingDims
		if od := reqs[i].OutputDimensionality; od != nil {
			dims = *od
		}
		out[i].Values = make([]float32, dims)
		mock.UnitVector(out[i].Values, mock.Seed(texts[i]))
		tokens += max(1, mock.CountWords(texts[i]))
	}
	s.core.PromptTokens.Add(int64(tokens))
	if batch {
		s.writeJSON(w, http.StatusOK, map[string]any{"embeddings": out})
	} else {
		s.writeJSON(w, http.StatusOK, map[string]any{"embedding": out[0]})
	}
	s.core.Completed.Add(1)
}
