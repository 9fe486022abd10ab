package httpapi

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/xroute/xroute/config"
	"github.com/xroute/xroute/internal/exchange"
	"github.com/xroute/xroute/internal/store"
)

// IssuerAdmin manages the trusted issuers of the token exchange
// (exchange.Registry).
type IssuerAdmin interface {
	List(ctx context.Context) ([]exchange.Entry, error)
	Get(ctx context.Context, ref string) (exchange.Entry, error)
	Create(ctx context.Context, actor string, is config.Issuer) (exchange.Entry, error)
	Replace(ctx context.Context, actor, id string, is config.Issuer) (exchange.Entry, error)
	Patch(ctx context.Context, actor, id string, patch []byte) (exchange.Entry, error)
	Delete(ctx context.Context, actor, id string) error
}

// IssuerObject is a trusted issuer in the admin API: its definition in
// the config file's field names (config.IssuerDoc), where it comes from,
// and who last changed it. A config issuer is read_only.
type IssuerObject struct {
	Object string `json:"object"`
	ID     string `json:"id"`
	Source string `json:"source"`
	config.IssuerDoc
	ReadOnly  bool       `json:"read_only"`
	CreatedAt *time.Time `json:"created_at"`
	CreatedBy string     `json:"created_by,omitempty"`
	UpdatedAt *time.Time `json:"updated_at"`
	UpdatedBy string     `json:"updated_by,omitempty"`
}

// NewIssuerObject renders e for the admin API and the CLI.
func NewIssuerObject(e exchange.Entry) IssuerObject {
	o := IssuerObject{Object: "issuer", ID: e.ID, Source: e.Source, IssuerDoc: config.NewIssuerDoc(e.Issuer),
		ReadOnly: e.Source == exchange.SourceConfig, CreatedBy: e.CreatedBy, UpdatedBy: e.UpdatedBy}
	if o.Audiences == nil {
		o.Audiences = []string{}
	}
	if o.Rules == nil {
		o.Rules = []config.IssuerRuleDoc{}
	}
	if !e.CreatedAt.IsZero() {
		o.CreatedAt, o.UpdatedAt = &e.CreatedAt, &e.UpdatedAt
	}
	return o
}

// maxIssuerBody bounds an issuer document.
const maxIssuerBody = 256 << 10

// IssuersRoute mounts the trusted issuers on the admin API:
//
//	GET    /issuers            every issuer, config ones first (?issuer=URL: that one)
//	GET    /issuers/:id        one (an id from the list; config ones are cfg_…)
//	POST   /issuers            add one (the config file's fields, as JSON)
//	PUT    /issuers/:id        replace an API issuer's definition
//	PATCH  /issuers/:id        change some fields (JSON merge patch)
//	DELETE /issuers/:id        remove an API issuer
//
// Writes are validated with the config file's rules (400 naming the
// field), refused on config issuers and on an iss the config file or
// another API issuer already has (409), audited (issuer.created,
// issuer.updated, issuer.deleted), and in force on this replica when
// the answer is sent (the others within seconds).
func IssuersRoute(reg IssuerAdmin) MountFunc {
	return func(g *gin.RouterGroup) {
		g.GET("/issuers", func(c *gin.Context) {
			list, err := reg.List(c.Request.Context())
			if err != nil {
				issuerError(c, err)
				return
			}
			want := c.Query("issuer")
			data := make([]IssuerObject, 0, len(list))
			for _, e := range list {
				if want == "" || e.Issuer.Issuer == want {
					data = append(data, NewIssuerObject(e))
				}
			}
			c.JSON(http.StatusOK, listPage{Object: "list", Data: data})
		})
		g.GET("/issuers/:id", func(c *gin.Context) {
			e, err := reg.Get(c.Request.Context(), c.Param("id"))
			if err != nil {
				issuerError(c, err)
				return
			}
			c.JSON(http.StatusOK, NewIssuerObject(e))
		})
		g.POST("/issuers", func(c *gin.Context) {
			is, ok := readIssuer(c)
			if !ok {
				return
			}
			e, err := reg.Create(c.Request.Context(), actor(c), is)
			if err != nil {
				issuerError(c, err)
				return
			}
			c.JSON(http.StatusCreated, NewIssuerObject(e))
		})
		g.PUT("/issuers/:id", func(c *gin.Context) {
			is, ok := readIssuer(c)
			if !ok {
				return
			}
			e, err := reg.Replace(c.Request.Context(), actor(c), c.Param("id"), is)
			if err != nil {
				issuerError(c, err)
				return
			}
			c.JSON(http.StatusOK, NewIssuerObject(e))
		})
		g.PATCH("/issuers/:id", func(c *gin.Context) {
			body, err := io.ReadAll(io.LimitReader(c.Request.Body, maxIssuerBody))
			if err != nil {
				writeError(c, newError(http.StatusBadRequest, "invalid_request_error", "invalid_json", "The request body could not be read."))
				return
			}
			e, err := reg.Patch(c.Request.Context(), actor(c), c.Param("id"), body)
			if err != nil {
				issuerError(c, err)
				return
			}
			c.JSON(http.StatusOK, NewIssuerObject(e))
		})
		g.DELETE("/issuers/:id", func(c *gin.Context) {
			if err := reg.Delete(c.Request.Context(), actor(c), c.Param("id")); err != nil {
				issuerError(c, err)
				return
			}
			c.JSON(http.StatusOK, gin.H{"object": "issuer.deleted", "id": c.Param("id"), "deleted": true})
		})
	}
}

// readIssuer reads and validates an issuer document from the body.
func readIssuer(c *gin.Context) (config.Issuer, bool) {
	body, err := io.ReadAll(io.LimitReader(c.Request.Body, maxIssuerBody))
	if err != nil {
		writeError(c, newError(http.StatusBadRequest, "invalid_request_error", "invalid_json", "The request body could not be read."))
		return config.Issuer{}, false
	}
	doc, err := config.ParseIssuerDoc(body)
	if err != nil {
		issuerError(c, err)
		return config.Issuer{}, false
	}
	is, err := doc.Parse()
	if err != nil {
		issuerError(c, err)
		return config.Issuer{}, false
	}
	return is, true
}

// fieldErrors flattens err (one *config.FieldError, or errors.Join of
// them) into its field errors.
func fieldErrors(err error) []*config.FieldError {
	var fe *config.FieldError
	if errors.As(err, &fe) && !isJoined(err) {
		return []*config.FieldError{fe}
	}
	var out []*config.FieldError
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range j.Unwrap() {
			out = append(out, fieldErrors(e)...)
		}
	}
	return out
}

func isJoined(err error) bool {
	_, ok := err.(interface{ Unwrap() []error })
	return ok
}

func issuerError(c *gin.Context, err error) {
	if fes := fieldErrors(err); len(fes) > 0 {
		msgs := make([]string, len(fes))
		for i, fe := range fes {
			msgs[i] = fe.Error()
		}
		writeError(c, newError(http.StatusBadRequest, "invalid_request_error", "invalid_value",
			"Invalid issuer: "+strings.Join(msgs, "; ")).withParam(fes[0].Field))
		return
	}
	switch {
	case errors.Is(err, exchange.ErrConfigIssuer):
		writeError(c, newError(http.StatusConflict, "invalid_request_error", "issuer_read_only",
			"This issuer is set in the config file (auth.issuers); change it there."))
	case errors.Is(err, exchange.ErrShadowsConfig):
		writeError(c, newError(http.StatusConflict, "invalid_request_error", "issuer_in_config",
			"The config file already trusts an issuer with this iss; an API issuer may not shadow it.").withParam("issuer"))
	case errors.Is(err, store.ErrConflict):
		writeError(c, newError(http.StatusConflict, "invalid_request_error", "issuer_exists",
			"Another issuer added through the API has this iss.").withParam("issuer"))
	case errors.Is(err, store.ErrNotFound):
		writeError(c, newError(http.StatusNotFound, "invalid_request_error", "not_found", "No such issuer: "+c.Param("id")))
	default:
		adminError(c, err)
	}
}
