// Package ingress_test holds the tests every ingress shares.
package ingress_test

import (
	"testing"

	"github.com/tidwall/gjson"

	"github.com/xroute/xroute/internal/ingress/messages"
	"github.com/xroute/xroute/internal/ingress/responses"
)

// OpenRouter's routing extensions go to the pivot as sent (the router
// reads them there) and never to a native upstream, on every ingress that
// translates.
func TestRoutingExtensions(t *testing.T) {
	ext := map[string]string{
		"provider":   `{"sort":"price","order":["a","b"]}`,
		"models":     `["x","y"]`,
		"route":      `"fallback"`,
		"transforms": `null`,
		"plugins":    `[{"id":"web"}]`,
	}
	with := `"provider":` + ext["provider"] + `,"models":` + ext["models"] + `,"route":` + ext["route"] +
		`,"transforms":` + ext["transforms"] + `,"plugins":` + ext["plugins"] + `}`
	for _, in := range []struct {
		name      string
		prefix    string // the body up to its last fields
		translate func(body []byte) (pivot, native []byte, err error)
	}{
		{"messages", `{"model":"m","max_tokens":16,"messages":[{"role":"user","content":"hi"}],`, func(body []byte) ([]byte, []byte, error) {
			r, err := messages.Parse(body)
			if err != nil {
				return nil, nil, err
			}
			tr, err := r.Translate()
			if err != nil {
				return nil, nil, err
			}
			return tr.PivotBody, tr.Native, nil
		}},
		{"responses", `{"model":"m","input":"hi",`, func(body []byte) ([]byte, []byte, error) {
			r, err := responses.Parse(body)
			if err != nil {
				return nil, nil, err
			}
			tr, err := r.Translate(nil)
			if err != nil {
				return nil, nil, err
			}
			return tr.PivotBody, tr.Native, nil
		}},
	} {
		t.Run(in.name, func(t *testing.T) {
			pivot, native, err := in.translate([]byte(in.prefix + with))
			if err != nil {
				t.Fatal(err)
			}
			for f, raw := range ext {
				if got := gjson.GetBytes(pivot, f).Raw; got != raw {
					t.Errorf("pivot %s = %s, want %s", f, got, raw)
				}
				if gjson.GetBytes(native, f).Exists() {
					t.Errorf("native body keeps %s: %s", f, native)
				}
			}
			// Without them, the native body is the caller's as it is.
			body := in.prefix + `"stream":false}`
			if _, native, err = in.translate([]byte(body)); err != nil {
				t.Fatal(err)
			}
			if string(native) != body {
				t.Errorf("native body %s, want the caller's %s", native, body)
			}
		})
	}
}
