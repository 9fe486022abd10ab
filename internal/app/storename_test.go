package app

import (
	"strings"
	"testing"

	"github.com/xroute/xroute/config"
)

func TestStoreNameNeverShowsCredentials(t *testing.T) {
	for _, c := range []struct{ url, path, want string }{
		{"", "x.db", "x.db"},
		{"postgres://xroute:s3cret@db.internal:5432/xroute?sslmode=require&password=other", "", "postgres://db.internal:5432/xroute"},
		{"postgresql://u:p%40ss@[::1]/db", "", "postgres://[::1]/db"},
	} {
		cfg := config.Default()
		cfg.Database.URL, cfg.Database.Path = c.url, c.path
		got := StoreName(cfg)
		if got != c.want || strings.Contains(got, "s3cret") || strings.Contains(got, "other") {
			t.Errorf("StoreName(%q) = %q, want %q", c.url, got, c.want)
		}
	}
}
