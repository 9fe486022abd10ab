package mock

import (
	"net/http"
	"time"
)

// modelCreated is the "created" of every listed model.
const modelCreated = 1_700_000_000

// defaultModels are listed by GET /v1/models when Config.Models is empty
// (any model id is accepted then).
var defaultModels = []string{"mock-gpt", "gpt-4o-mini", "text-embedding-3-small"}

func appendModel(b []byte, id string) []byte {
	b = append(b, `{"id":`...)
	b = appendString(b, id)
	b = append(b, `,"object":"model","created":`...)
	b = appendInt(b, modelCreated)
	return append(b, `,"owned_by":"mock"}`...)
}

func appendModelList(b []byte, models []string) []byte {
	if len(models) == 0 {
		models = defaultModels
	}
	b = append(b, `{"object":"list","data":[`...)
	for i, m := range models {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendModel(b, m)
	}
	return append(b, "]}"...)
}

func (s *Server) handleModels(w http.ResponseWriter, r *http.Request) {
	s.writeJSON(w, time.Now(), http.StatusOK, 0, s.st.Load().modelsBody)
}

func (s *Server) handleModel(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	st := s.st.Load()
	id := r.PathValue("id")
	if id == "" {
		s.handleModels(w, r)
		return
	}
	if !st.models.Has(id) {
		s.writeError(w, start, http.StatusNotFound, "The model '"+id+"' does not exist", "invalid_request_error", "model", "model_not_found")
		return
	}
	s.writeJSON(w, start, http.StatusOK, 0, appendModel(nil, id))
}
