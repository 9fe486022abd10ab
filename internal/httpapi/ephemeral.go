package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"
	"go.uber.org/zap"

	"github.com/xroute/xroute/billing"
	"github.com/xroute/xroute/keys"
	"github.com/xroute/xroute/keys/auditlog"
)

// ChildKeys mints ephemeral child keys and counts their requests
// (keys.Service).
type ChildKeys interface {
	Mint(ctx context.Context, parent *keys.Key, p keys.MintParams) (string, keys.Key, error)
	AdmitChild(ctx context.Context, k *keys.Key) error
}

// routeEphemeral mounts POST /v1/keys/ephemeral on the caller group.
func (s *modelAPI) routeEphemeral(v1 *gin.RouterGroup) {
	if s.own.Children == nil {
		return
	}
	v1.POST("/keys/ephemeral", s.mintScope, s.mintEphemeral)
}

// mintScope admits a key that names keys.mint in its endpoint list; an
// empty list or "*" does not grant it, and a child never has it.
func (s *modelAPI) mintScope(c *gin.Context) {
	if !infoOf(c).key.CanMint() {
		writeError(c, newError(http.StatusForbidden, "permission_error", "endpoint_not_allowed",
			"This API key may not mint keys: it needs the "+keys.EndpointMint+" scope (its endpoint list must name it), and an ephemeral key never has it."))
		return
	}
	c.Next()
}

// mintRequest is the body of POST /v1/keys/ephemeral. Every field is
// optional; what is left out is the parent's.
type mintRequest struct {
	Name          string          `json:"name"`
	Models        []string        `json:"models"`
	Endpoints     []string        `json:"endpoints"`
	AllowedCIDRs  []string        `json:"allowed_cidrs"`
	RPM           int             `json:"rpm"`
	TPM           int             `json:"tpm"`
	MaxConcurrent int             `json:"max_concurrent"`
	TTLSeconds    int64           `json:"ttl_seconds"`
	MaxSpendUSD   json.RawMessage `json:"max_spend_usd"` // "0.05" or 0.05
	MaxRequests   int64           `json:"max_requests"`
}

// childKeyObject is a minted key: the key (shown once) and its limits.
type childKeyObject struct {
	KeyObject
	ParentID    string `json:"parent_id"`
	MaxSpendUSD string `json:"max_spend_usd,omitempty"`
	MaxRequests int64  `json:"max_requests,omitempty"`
}

// maxTTLSeconds bounds ttl_seconds before it becomes a Duration (the
// operator's cap is checked by keys).
const maxTTLSeconds = 366 * 24 * 3600

func (s *modelAPI) mintEphemeral(c *gin.Context) {
	var req mintRequest
	if !s.bindJSON(c, &req) {
		return
	}
	bad := func(param, msg string) {
		writeError(c, newError(http.StatusBadRequest, "invalid_request_error", "invalid_value", msg).withParam(param))
	}
	if req.TTLSeconds < 0 || req.TTLSeconds > maxTTLSeconds {
		bad("ttl_seconds", "ttl_seconds must be a positive number of seconds, at most the operator's cap (auth.ephemeral_max_ttl).")
		return
	}
	var spend billing.Nano
	if raw := bytes.TrimSpace(req.MaxSpendUSD); len(raw) > 0 && !bytes.Equal(raw, []byte("null")) {
		txt := string(raw)
		if raw[0] == '"' {
			if err := json.Unmarshal(raw, &txt); err != nil {
				bad("max_spend_usd", "max_spend_usd must be a USD amount such as \"0.05\".")
				return
			}
		}
		n, err := billing.ParseUSD(txt)
		if err != nil || n <= 0 {
			bad("max_spend_usd", "max_spend_usd must be a positive USD amount such as \"0.05\" (at most 9 decimals).")
			return
		}
		spend = n
	}
	parent := infoOf(c).key
	plain, k, err := s.own.Children.Mint(c.Request.Context(), parent, keys.MintParams{
		Name: req.Name, Models: req.Models, Endpoints: req.Endpoints, CIDRs: req.AllowedCIDRs,
		RPM: req.RPM, TPM: req.TPM, MaxConcurrent: req.MaxConcurrent,
		TTL: time.Duration(req.TTLSeconds) * time.Second, SpendCap: int64(spend), MaxRequests: req.MaxRequests,
	})
	var ve *keys.ValidationError
	switch {
	case err == nil:
	case errors.As(err, &ve):
		writeError(c, newError(http.StatusBadRequest, "invalid_request_error", "invalid_value", ve.Error()).withParam(ve.Field))
		return
	case s.storeDown(err):
		writeError(c, errStoreUnavailable())
		return
	default:
		s.log.Error("minting an ephemeral key failed", zapReq(infoOf(c)), zapErr(err))
		writeError(c, newError(http.StatusInternalServerError, "server_error", "internal_error", "The key could not be minted. Please retry."))
		return
	}
	obj := childKeyObject{KeyObject: NewKeyObject(k, s.now()), ParentID: parent.ID, MaxRequests: req.MaxRequests}
	obj.Key = plain
	if spend > 0 {
		obj.MaxSpendUSD = spend.String()
	}
	c.Header("Cache-Control", "no-store")
	c.JSON(http.StatusCreated, obj)
}

// admitChild counts a child key's model call against its request cap; on
// refusal it has answered and returns false.
func (s *modelAPI) admitChild(c *gin.Context, info *requestInfo) bool {
	if s.own.Children == nil || info.key.Child == nil {
		return true
	}
	err := s.own.Children.AdmitChild(c.Request.Context(), info.key)
	switch {
	case err == nil:
		return true
	case errors.Is(err, keys.ErrChildCap):
		writeError(c, childCapError(err))
	case s.storeDown(err):
		writeError(c, errStoreUnavailable())
	default:
		s.log.Error("counting an ephemeral key's request failed", zapReq(info), zapErr(err))
		writeError(c, newError(http.StatusServiceUnavailable, "server_error", "billing_unavailable", "The gateway cannot check this key's limits right now. Please retry."))
	}
	return false
}

// childCapError is a child key's exhausted cap, answered as an exhausted
// quota: a 429 the SDKs must not retry (only a new key helps).
func childCapError(err error) *apiError {
	e := newError(http.StatusTooManyRequests, "insufficient_quota", "ephemeral_key_cap",
		"This ephemeral key has reached its cap ("+err.Error()+"). Mint a new key.")
	e.NoRetry = true
	return e
}

// routeCORSAdmin mounts the per-account CORS origins on the admin API.
func (s *adminAPI) routeCORSAdmin(g *gin.RouterGroup) {
	if s.corsOn == nil {
		return
	}
	g.GET("/accounts/:id/cors", s.adminGetCORS)
	g.PUT("/accounts/:id/cors", s.adminPutCORS)
}

func (s *adminAPI) adminGetCORS(c *gin.Context) {
	id := c.Param("id")
	if _, err := s.own.Keys.Account(c.Request.Context(), id); err != nil {
		adminError(c, err)
		return
	}
	all, err := s.corsOn.src.CORSOrigins(c.Request.Context())
	if err != nil {
		adminError(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"object": "account.cors", "account_id": id, "origins": nonNilStrings(all[id])})
}

func (s *adminAPI) adminPutCORS(c *gin.Context) {
	var req struct {
		Origins *[]string `json:"origins"` // required: [] removes them all
	}
	if !s.bindJSON(c, &req) {
		return
	}
	if req.Origins == nil {
		writeError(c, newError(http.StatusBadRequest, "invalid_request_error", "missing_field",
			"origins is required: a list of origins such as https://app.example.com, or [] to allow none.").withParam("origins"))
		return
	}
	id := c.Param("id")
	if _, err := s.own.Keys.Account(c.Request.Context(), id); err != nil {
		adminError(c, err)
		return
	}
	origins := make([]string, 0, len(*req.Origins))
	for i, o := range *req.Origins {
		norm, ok := normalOrigin(o)
		if !ok {
			writeError(c, newError(http.StatusBadRequest, "invalid_request_error", "invalid_value",
				"origins["+strconv.Itoa(i)+"]: "+strconv.Quote(o)+" is not an origin: want scheme://host[:port] (http or https, no path, no wildcard).").withParam("origins"))
			return
		}
		if !containsString(origins, norm) {
			origins = append(origins, norm)
		}
	}
	if err := s.corsOn.src.SetCORSOrigins(c.Request.Context(), id, origins, s.now()); err != nil {
		adminError(c, err)
		return
	}
	s.corsOn.invalidate()
	if s.own.AuditWriter != nil {
		if err := s.own.AuditWriter.Record(c.Request.Context(), auditlog.Event{Kind: "account.cors_set", Actor: actor(c), AccountID: id, Subject: id,
			Details: map[string]any{"origins": origins}}); err != nil {
			s.log.Error("audit cors origins", zapReq(infoOf(c)), zapErr(err))
		}
	}
	s.log.Info("cors origins set", zapReq(infoOf(c)), zap.String("account_id", id), zap.Int("origins", len(origins)))
	c.JSON(http.StatusOK, gin.H{"object": "account.cors", "account_id": id, "origins": origins})
}

func nonNilStrings(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func containsString(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}
