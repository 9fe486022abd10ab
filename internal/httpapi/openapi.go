package httpapi

import (
	"bytes"
	_ "embed"
	"net/http"

	"github.com/gin-gonic/gin"
)

// openAPIDoc is the admin API's OpenAPI 3.0 document. openapi_test.go
// checks that it lists every /admin/v1 route, and only those, and that
// real answers validate against it: a route added without its
// description fails the build's tests.
//
//go:embed openapi.json
var openAPIDoc []byte

// OpenAPI returns the admin API's OpenAPI 3.0 document (JSON).
func OpenAPI() []byte { return bytes.Clone(openAPIDoc) }

// Routes lists the routes the server serves (method, path with :params).
func (s *Server) Routes() gin.RoutesInfo { return s.engine.Routes() }

// adminOpenAPI is GET /admin/v1/openapi.json.
func (s *adminAPI) adminOpenAPI(c *gin.Context) {
	c.Data(http.StatusOK, "application/json", openAPIDoc)
}
