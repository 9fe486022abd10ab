// Package azure is a mock Azure OpenAI resource: Azure's addresses and
// api-key authentication in front of the OpenAI mock (package
// loadtest/mock), which answers the requests.
//
//	POST /openai/deployments/{deployment}/chat/completions?api-version=...
//	POST /openai/deployments/{deployment}/embeddings?api-version=...
//	POST /openai/v1/chat/completions   (v1 API: the deployment is the body's model)
//	POST /openai/v1/embeddings
//
// What Azure does differently from OpenAI, and the mock too: the key comes
// in the api-key header (the v1 API also takes it as a bearer token); a
// dated path needs an api-version; an unknown deployment is 404
// DeploymentNotFound; streams start with a chunk that has no choices, only
// prompt_filter_results; 429s have Azure's body ({"error":{"code":"429",
// "message":...}}) next to Retry-After; and a prompt can be refused by the
// content filter: a 400 with code content_filter, forced by
// "#azure:content_filter" in the request body or the header
// "X-Azure-Mock-Directive: content_filter". Everything else, the knobs and
// "#mock:" directives included, is the OpenAI mock's.
package azure

import (
	"bytes"
	"crypto/subtle"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/tidwall/gjson"
	"github.com/tidwall/sjson"

	"github.com/xroute/xroute/loadtest/mock"
)

// DirectiveHeader carries Azure-only directives ("content_filter").
const DirectiveHeader = "X-Azure-Mock-Directive"

// contentFilterMarker in a request body triggers the content filter.
const contentFilterMarker = "#azure:content_filter"

// Config holds the knobs: the OpenAI mock's, where APIKey is the resource
// key (api-key header; empty accepts any) and Models are the deployment
// names (empty accepts any).
type Config struct {
	mock.Config
	// APIVersions are the accepted api-version values of dated paths;
	// empty accepts any non-empty version.
	APIVersions []string
}

// Server is the mock resource; an http.Handler safe for concurrent use.
type Server struct {
	inner       *mock.Server
	cfg         Config
	deployments map[string]struct{}
	versions    map[string]struct{}
	mux         *http.ServeMux

	requests atomic.Int64
	failures [600]atomic.Int64
	idSeq    atomic.Uint64
}

// New returns a Server with cfg.
func New(cfg Config) *Server {
	inner := cfg.Config
	inner.APIKey, inner.Models = "", nil // checked here, Azure's way
	s := &Server{inner: mock.New(inner), cfg: cfg}
	if len(cfg.Models) > 0 {
		s.deployments = map[string]struct{}{}
		for _, m := range cfg.Models {
			s.deployments[m] = struct{}{}
		}
	}
	if len(cfg.APIVersions) > 0 {
		s.versions = map[string]struct{}{}
		for _, v := range cfg.APIVersions {
			s.versions[v] = struct{}{}
		}
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /openai/deployments/{deployment}/chat/completions", s.dated("/v1/chat/completions"))
	mux.HandleFunc("POST /openai/deployments/{deployment}/embeddings", s.dated("/v1/embeddings"))
	mux.HandleFunc("POST /openai/v1/chat/completions", s.v1("/v1/chat/completions"))
	mux.HandleFunc("POST /openai/v1/embeddings", s.v1("/v1/embeddings"))
	mux.HandleFunc("GET /openai/models", s.models)
	mux.HandleFunc("GET /openai/v1/models", s.models)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		s.writeError(w, http.StatusNotFound, `{"error":{"code":"404","message":"Resource not found"}}`)
	})
	s.mux = mux
	return s
}

// Stats returns the OpenAI mock's counters, with the requests and the
// failures answered here (authentication, routing, content filter) added.
func (s *Server) Stats() mock.Stats {
	st := s.inner.Stats()
	st.Requests = s.requests.Load()
	for i := range s.failures {
		if n := s.failures[i].Load(); n != 0 {
			st.Failures[i] += n
		}
	}
	return st
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.requests.Add(1)
	if key := s.cfg.APIKey; key != "" {
		got := r.Header.Get("api-key")
		if got == "" && strings.HasPrefix(r.URL.Path, "/openai/v1/") {
			got, _ = strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		}
		if subtle.ConstantTimeCompare([]byte(got), []byte(key)) != 1 {
			s.writeError(w, http.StatusUnauthorized, `{"error":{"code":"401","message":"Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a valid key for an active subscription and use a correct regional API endpoint for your resource."}}`)
			return
		}
	}
	s.mux.ServeHTTP(w, r)
}

func (s *Server) writeError(w http.ResponseWriter, status int, body string) {
	s.failures[status].Add(1)
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	h.Set("Apim-Request-Id", s.requestID())
	w.WriteHeader(status)
	_, _ = io.WriteString(w, body)
}

func (s *Server) requestID() string {
	n := s.idSeq.Add(1)
	return "00000000-0000-4000-8000-" + leftPad(strconv.FormatUint(n, 16), 12)
}

func leftPad(s string, n int) string {
	if len(s) >= n {
		return s
	}
	return strings.Repeat("0", n-len(s)) + s
}

// dated handles /openai/deployments/{deployment}/...?api-version=.
func (s *Server) dated(innerPath string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		v := r.URL.Query().Get("api-version")
		if _, ok := s.versions[v]; v == "" || (s.versions != nil && !ok) {
			s.writeError(w, http.StatusNotFound, `{"error":{"code":"404","message":"Resource not found"}}`)
			return
		}
		body, ok := s.readBody(w, r)
		if !ok {
			return
		}
		s.forward(w, r, innerPath, r.PathValue("deployment"), body, v)
	}
}

// models lists the resource's models (GET /openai/models?api-version=,
// GET /openai/v1/models): the OpenAI mock's list, as Azure's is shaped.
func (s *Server) models(w http.ResponseWriter, r *http.Request) {
	if !strings.HasPrefix(r.URL.Path, "/openai/v1/") && r.URL.Query().Get("api-version") == "" {
		s.writeError(w, http.StatusNotFound, `{"error":{"code":"404","message":"Resource not found"}}`)
		return
	}
	in := r.Clone(r.Context())
	in.URL.Path, in.URL.RawPath, in.URL.RawQuery = "/v1/models", "", ""
	in.RequestURI = ""
	in.Header.Del("api-key")
	in.Header.Del("Authorization")
	s.inner.ServeHTTP(w, in)
}

// v1 handles /openai/v1/...: the deployment is the body's model.
func (s *Server) v1(innerPath string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		body, ok := s.readBody(w, r)
		if !ok {
			return
		}
		s.forward(w, r, innerPath, gjson.GetBytes(body, "model").String(), body, "v1")
	}
}

func (s *Server) readBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	body, _, err := mock.ReadBody(w, r)
	if err != nil {
		s.writeError(w, http.StatusRequestEntityTooLarge, `{"error":{"code":"413","message":"Request body too large."}}`)
		return nil, false
	}
	return body, true
}

const contentFilterBody = `{"error":{"message":"The response was filtered due to the prompt triggering Azure OpenAI's content management policy. Please modify your prompt and retry. To learn more about our content filtering policies please read our documentation: https://go.microsoft.com/fwlink/?linkid=2198766","type":null,"param":"prompt","code":"content_filter","status":400,"innererror":{"code":"ResponsibleAIPolicyViolation","content_filter_result":{"hate":{"filtered":false,"severity":"safe"},"jailbreak":{"filtered":false,"detected":false},"self_harm":{"filtered":false,"severity":"safe"},"sexual":{"filtered":false,"severity":"safe"},"violence":{"filtered":true,"severity":"medium"}}}}}`

// forward sends the request to the OpenAI mock with the deployment as the
// model, and Azure's differences layered on its answer.
func (s *Server) forward(w http.ResponseWriter, r *http.Request, innerPath, deployment string, body []byte, version string) {
	if deployment == "" {
		s.writeError(w, http.StatusBadRequest, `{"error":{"code":"invalid_request_error","message":"Missing required parameter: 'model'.","param":"model","type":"invalid_request_error"}}`)
		return
	}
	if _, ok := s.deployments[deployment]; s.deployments != nil && !ok {
		s.writeError(w, http.StatusNotFound, `{"error":{"code":"DeploymentNotFound","message":"The API deployment for this resource does not exist. If you created the deployment within the last 5 minutes, please wait a moment and try again."}}`)
		return
	}
	if bytes.Contains(body, []byte(contentFilterMarker)) || strings.Contains(r.Header.Get(DirectiveHeader), "content_filter") {
		s.writeError(w, http.StatusBadRequest, contentFilterBody)
		return
	}
	if b, err := sjson.SetBytes(body, "model", deployment); err == nil {
		body = b
	}
	in := r.Clone(r.Context())
	in.URL.Path, in.URL.RawPath, in.URL.RawQuery = innerPath, "", ""
	in.RequestURI = ""
	in.Body, in.ContentLength = io.NopCloser(bytes.NewReader(body)), int64(len(body))
	in.Header.Del("api-key")
	in.Header.Del("Authorization")
	in.Header.Del("Content-Length")
	aw := &azureWriter{ResponseWriter: w, version: version, requestID: s.requestID()}
	s.inner.ServeHTTP(aw, in)
	aw.finish()
}

// promptFilterChunk is the first event of an Azure stream.
const promptFilterChunk = `data: {"choices":[],"created":0,"id":"","model":"","object":"","prompt_filter_results":[{"prompt_index":0,"content_filter_results":{"hate":{"filtered":false,"severity":"safe"},"jailbreak":{"filtered":false,"detected":false},"self_harm":{"filtered":false,"severity":"safe"},"sexual":{"filtered":false,"severity":"safe"},"violence":{"filtered":false,"severity":"safe"}}}]}` + "\n\n"

// azureWriter layers Azure's differences on the OpenAI mock's answer: the
// prompt-filter chunk first in streams, Azure's 429 body.
type azureWriter struct {
	http.ResponseWriter
	version, requestID string

	wroteHeader bool
	stream      bool
	filterSent  bool
	held        int // a status whose body is rewritten in finish
	buf         bytes.Buffer
}

func (w *azureWriter) WriteHeader(code int) {
	if w.wroteHeader {
		return
	}
	w.wroteHeader = true
	w.Header().Set("Apim-Request-Id", w.requestID)
	if code == http.StatusTooManyRequests {
		w.held = code
		return
	}
	w.stream = code == http.StatusOK && strings.HasPrefix(w.Header().Get("Content-Type"), "text/event-stream")
	w.ResponseWriter.WriteHeader(code)
}

func (w *azureWriter) Write(b []byte) (int, error) {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if w.held != 0 {
		return w.buf.Write(b)
	}
	if w.stream && !w.filterSent {
		w.filterSent = true
		if _, err := io.WriteString(w.ResponseWriter, promptFilterChunk); err != nil {
			return 0, err
		}
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach Flush and Hijack.
func (w *azureWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// finish writes a held answer in Azure's shape.
func (w *azureWriter) finish() {
	if w.held == 0 {
		return
	}
	wait := w.Header().Get("Retry-After")
	if wait == "" || wait == "0" {
		wait = "1"
	}
	body := `{"error":{"code":"429","message":"Requests to the ChatCompletions_Create Operation under Azure OpenAI API version ` + w.version +
		` have exceeded token rate limit of your current OpenAI S0 pricing tier. Please retry after ` + wait +
		` seconds. Please go here: https://aka.ms/oai/quotaincrease if you would like to further increase the default rate limit."}}`
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.ResponseWriter.WriteHeader(w.held)
	_, _ = io.WriteString(w.ResponseWriter, body)
}
