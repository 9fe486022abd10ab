package messages

import (
	"testing"

	"github.com/tidwall/gjson"
)

// OpenRouter's routing extensions go to the pivot as sent (the router
// reads them there) and never to a native upstream.
func TestRoutingExtensions(t *testing.T) {
	ext := map[string]string{
		"provider":   `{"sort":"price","order":["a","b"]}`,
		"models":     `["x","y"]`,
		"route":      `"fallback"`,
		"transforms": `null`,
		"plugins":    `[{"id":"web"}]`,
	}
	body := `{"model":"m","max_tokens":16,"messages":[{"role":"user","content":"hi"}],` + `"provider":` + ext["provider"] + `,"models":` + ext["models"] + `,"route":` + ext["route"] +
		`,"transforms":` + ext["transforms"] + `,"plugins":` + ext["plugins"] + `}`
	r, err := Parse([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	tr, err := r.Translate()
	if err != nil {
		t.Fatal(err)
	}
	for f, raw := range ext {
		if got := gjson.GetBytes(tr.PivotBody, f).Raw; got != raw {
			t.Errorf("pivot %s = %s, want %s", f, got, raw)
		}
		if gjson.GetBytes(tr.Native, f).Exists() {
			t.Errorf("native body keeps %s: %s", f, tr.Native)
		}
	}
	// Without them, the native body is the caller's as it is.
	r, err = Parse([]byte(`{"model":"m","max_tokens":16,"messages":[{"role":"user","content":"hi"}],` + `"stream":false}`))
	if err != nil {
		t.Fatal(err)
	}
	if tr, err = r.Translate(); err != nil {
		t.Fatal(err)
	}
	if string(tr.Native) != string(r.Body) {
		t.Errorf("native body %s, want the caller's %s", tr.Native, r.Body)
	}
}
