package httpapi

import (
	"embed"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strings"

	"github.com/gin-gonic/gin"
)

// uiFiles is the operator dashboard: plain HTML, CSS and ES modules, no
// build step and nothing fetched from the internet. The pages call the
// admin API with the admin key the operator logs in with.
//
//go:embed ui
var uiFiles embed.FS

// uiCSP allows only the dashboard's own files and calls to its own origin:
// no inline script, no third-party anything.
const uiCSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
	"base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// UI is the dashboard: its assets at /ui (index.html for /ui and /ui/).
// The assets are public; every datum comes from /admin/v1 with the key.
type UI struct{}

// Mount serves the dashboard under e (the root group).
func (UI) Mount(e *gin.RouterGroup) {
	sub, err := fs.Sub(uiFiles, "ui")
	if err != nil {
		panic(err) // the embedded directory is part of the binary
	}
	serve := func(c *gin.Context) {
		name := strings.TrimPrefix(path.Clean("/"+c.Param("filepath")), "/")
		if name == "" {
			name = "index.html"
		}
		b, err := fs.ReadFile(sub, name)
		if err != nil {
			writeError(c, newError(http.StatusNotFound, "invalid_request_error", "unknown_url", "Invalid URL ("+c.Request.Method+" "+c.Request.URL.Path+")"))
			return
		}
		ctype := mime.TypeByExtension(path.Ext(name))
		if path.Ext(name) == ".js" || path.Ext(name) == ".mjs" {
			ctype = "text/javascript; charset=utf-8"
		}
		if ctype == "" {
			ctype = "application/octet-stream"
		}
		h := c.Writer.Header()
		h.Set("Content-Security-Policy", uiCSP)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Cache-Control", "no-cache")
		c.Data(http.StatusOK, ctype, b)
	}
	e.GET("/ui", func(c *gin.Context) { c.Redirect(http.StatusMovedPermanently, "/ui/") })
	e.GET("/ui/*filepath", serve)
	e.HEAD("/ui/*filepath", serve)
}
