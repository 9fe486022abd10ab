package httpapi

import (
	"bytes"
	"net/http"
	"strconv"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/gin-gonic/gin"

	"github.com/xroute/xroute/internal/telemetry"
	"github.com/xroute/xroute/keys"
	"github.com/xroute/xroute/router"
)

// modelAPI is the data plane: the token exchange and the authenticated
// /v1 group — the ingresses callers speak (chat, embeddings, completions,
// responses, messages), models, the caller's credits, ephemeral keys and
// the app's caller routes. Its handlers live in the files named after
// them; the request path reads top to bottom in chat.go and pipeline.go.
type modelAPI struct {
	*base
	own          *ModelConfig  // the data plane's own part of the config
	cacheMetrics *cacheMetrics // the response cache's outcomes (nil: cache or metrics off)
}

func newModelAPI(b *base) (*modelAPI, error) {
	m := &modelAPI{base: b, own: &b.cfg.Model}
	if m.own.ResponseRetention <= 0 {
		m.own.ResponseRetention = 30 * 24 * time.Hour
	}
	if c := b.cfg.Cache; c.Cache != nil && c.Metrics != nil {
		m.cacheMetrics = c.Metrics.m
	}
	return m, nil
}

// Mount mounts POST /v1/auth/token and the authenticated /v1 group on the
// root group.
func (s *modelAPI) Mount(root *gin.RouterGroup) {
	s.routeToken(root) // before the /v1 group: the subject token is the credential
	v1 := root.Group("/v1", s.storeGate, s.traced(telemetry.SpanAuth, s.authenticate), s.callerOnly, s.corsAccount)
	for _, m := range s.ingresses() {
		m.Mount(v1)
	}
	v1.GET("/models", s.scope(keys.EndpointModels), s.listModels)
	v1.GET("/models/:id", s.scope(keys.EndpointModels), s.getModel)
	if s.cfg.Credits != nil {
		v1.GET("/credits", s.scope(keys.EndpointUsage), s.callerCredits)
	}
	s.routeEphemeral(v1)
	for _, r := range s.own.CallerRoutes {
		r.Mount(v1)
	}
}

// ingresses are the model APIs callers speak, each mounted on the
// authenticated /v1 group. A new ingress is one new file (its handler
// and route) plus one line here.
func (s *modelAPI) ingresses() []Mounter {
	return []Mounter{
		MountFunc(func(g *gin.RouterGroup) { g.POST("/chat/completions", s.scope(keys.EndpointChat), s.chat) }),
		MountFunc(func(g *gin.RouterGroup) { g.POST("/embeddings", s.scope(keys.EndpointEmbeddings), s.embeddings) }),
		MountFunc(func(g *gin.RouterGroup) { g.POST("/completions", s.scope(keys.EndpointCompletions), s.completion) }),
		MountFunc(s.routeResponses), // /responses (responses.go)
		MountFunc(s.routeMessages),  // /messages (messages.go)
	}
}

type modelObject struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Created int64  `json:"created"`
	OwnedBy string `json:"owned_by"`
}

func toModelObject(m *router.Model) modelObject {
	return modelObject{ID: m.Name, Object: "model", Created: m.Created, OwnedBy: m.OwnedBy}
}

// listModels lists the models the caller's key may use, in Anthropic's
// shape for an Anthropic client.
func (s *modelAPI) listModels(c *gin.Context) {
	if infoOf(c).anthropic {
		s.listAnthropicModels(c)
		return
	}
	k := infoOf(c).key
	data := []modelObject{}
	for _, m := range s.cfg.Router.Models() {
		if k.AllowsModel(m.Name) {
			data = append(data, toModelObject(m))
		}
	}
	c.JSON(http.StatusOK, gin.H{"object": "list", "data": data})
}

func (s *modelAPI) getModel(c *gin.Context) {
	id := c.Param("id")
	m, ok := s.cfg.Router.Lookup(id)
	if !ok || !infoOf(c).key.AllowsModel(id) {
		writeError(c, modelNotFound(id))
		return
	}
	if infoOf(c).anthropic {
		c.JSON(http.StatusOK, toAnthropicModel(m))
		return
	}
	c.JSON(http.StatusOK, toModelObject(m))
}

// maxModelName bounds a model name. Names are stored in every usage
// record and echoed in errors; real ones are well under 100 bytes.
const maxModelName = 256

// checkModelName refuses a model name no deployment could have: too long,
// not UTF-8, or with control characters (PostgreSQL refuses a NUL in
// text, and such a record must never reach the usage writer).
func checkModelName(model string) *apiError {
	bad := len(model) > maxModelName || !utf8.ValidString(model)
	for _, r := range model {
		if bad || unicode.IsControl(r) {
			bad = true
			break
		}
	}
	if bad {
		return newError(http.StatusBadRequest, "invalid_request_error", "invalid_model",
			"The model name must be at most "+strconv.Itoa(maxModelName)+" bytes of UTF-8 text without control characters.").withParam("model")
	}
	return nil
}

func modelNotFound(id string) *apiError {
	return newError(http.StatusNotFound, "invalid_request_error", "model_not_found",
		"The model `"+id+"` does not exist or you do not have access to it.").withParam("model")
}

func bytesReader(b []byte) *bytes.Reader { return bytes.NewReader(b) }
