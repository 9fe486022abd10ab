package providers

import (
	"net/http"
	"testing"
)

func TestHeadersExtraNeverReplaceTheWireFormats(t *testing.T) {
	t.Parallel()
	h := http.Header{}
	Headers{
		Extra: map[string]string{"User-Agent": "evil", "Content-Type": "text/plain", "X-Key": "extra", "X-Team": "a"},
		Own:   func(h http.Header) { h.Set("X-Key", "own") },
	}.Set(h, ContentJSON, Accept(true))
	want := map[string]string{"User-Agent": "xroute", "Content-Type": ContentJSON, "Accept": EventStream, "X-Key": "own", "X-Team": "a"}
	for k, v := range want {
		if got := h.Get(k); got != v {
			t.Errorf("%s: %q, want %q", k, got, v)
		}
	}
	if len(h) != len(want) {
		t.Errorf("headers %v", h)
	}
}

func TestHeadersLeaveOutWhatIsNotGiven(t *testing.T) {
	t.Parallel()
	h := http.Header{}
	Headers{Extra: map[string]string{"Accept": "*/*"}}.Set(h, "", "")
	if h.Get("Content-Type") != "" || h.Get("Accept") != "*/*" || h.Get("User-Agent") != "xroute" || Accept(false) != ContentJSON {
		t.Fatalf("headers %v", h)
	}
}
