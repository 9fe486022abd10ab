package httpapi

import (
	"io/fs"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"
)

// TestUIServesVendoredChartLibrary: uPlot comes from the embedded files,
// with the headers and the CSP of every dashboard file, and the page
// names no other origin (no CDN, no external font).
func TestUIServesVendoredChartLibrary(t *testing.T) {
	t.Parallel()
	gin.SetMode(gin.TestMode)
	e := gin.New()
	UI{}.Mount(&e.RouterGroup)
	get := func(path string) *httptest.ResponseRecorder {
		w := httptest.NewRecorder()
		e.ServeHTTP(w, httptest.NewRequest(http.MethodGet, path, nil))
		return w
	}
	tests := []struct {
		path, ctype, contains string
	}{
		{"/ui/vendor/uplot-1.6.32/uPlot.iife.min.js", "text/javascript; charset=utf-8", "uPlot"},
		{"/ui/vendor/uplot-1.6.32/uPlot.min.css", "text/css; charset=utf-8", ".uplot"},
		{"/ui/vendor/uplot-1.6.32/LICENSE", "application/octet-stream", "MIT"},
		{"/ui/charts.js", "text/javascript; charset=utf-8", "new uPlot("},
		{"/ui/", "text/html; charset=utf-8", "/ui/vendor/uplot-1.6.32/uPlot.iife.min.js"},
	}
	for _, tc := range tests {
		t.Run(tc.path, func(t *testing.T) {
			w := get(tc.path)
			if w.Code != http.StatusOK {
				t.Fatalf("status %d", w.Code)
			}
			if got := w.Header().Get("Content-Type"); got != tc.ctype {
				t.Errorf("Content-Type %q, want %q", got, tc.ctype)
			}
			if got := w.Header().Get("Content-Security-Policy"); got != uiCSP {
				t.Errorf("CSP %q", got)
			}
			if got := w.Header().Get("Cache-Control"); got != "no-cache" {
				t.Errorf("Cache-Control %q", got)
			}
			if !strings.Contains(w.Body.String(), tc.contains) {
				t.Errorf("body lacks %q", tc.contains)
			}
		})
	}

	// No file of ours loads anything from another origin.
	external := regexp.MustCompile(`(?i)(src|href)\s*=\s*["']?(https?:)?//|@import\s+url\(\s*["']?(https?:)?//|fetch\(\s*["']https?:`)
	err := fs.WalkDir(uiFiles, "ui", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || strings.Contains(path, "/vendor/") {
			return err
		}
		b, err := fs.ReadFile(uiFiles, path)
		if err != nil {
			return err
		}
		if m := external.Find(b); m != nil {
			t.Errorf("%s loads from another origin: %s", path, m)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// The hand-drawn charts are gone.
	if b, _ := fs.ReadFile(uiFiles, "ui/charts.js"); strings.Contains(string(b), "createElementNS") {
		t.Error("charts.js still draws SVG by hand")
	}
}
