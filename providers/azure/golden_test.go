package azure

import (
	"bytes"
	"context"
	"flag"
	"io"
	"testing"

	"github.com/xroute/xroute/config"
	"github.com/xroute/xroute/providers"
	"github.com/xroute/xroute/providers/openai"
	"github.com/xroute/xroute/providers/providertest"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// TestRequestGolden: each testdata/request_*.json is sent to deployment
// "prod" through the dated and the v1 API; the golden file holds the URL
// and the body that go upstream.
func TestRequestGolden(t *testing.T) {
	providertest.Goldens(t, *update, "testdata/request_*.json", ".json", func(t *testing.T, _ string, body []byte) []byte {
		req, err := providers.ParseChatRequest(bytes.TrimSpace(body))
		if err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		for _, version := range []string{"", APIVersionV1} {
			p, err := New(config.Provider{Name: "az", BaseURL: "https://res.openai.azure.com", APIKey: "k", APIVersion: version}, providers.Deps{})
			if err != nil {
				t.Fatal(err)
			}
			a := p.(*openai.Adapter)
			r, err := a.NewRequest(context.Background(), &providers.Call{Request: req, Model: "prod"})
			if err != nil {
				t.Fatal(err)
			}
			sent, _ := io.ReadAll(r.Body)
			out.WriteString("POST " + r.URL.String() + "\n")
			out.WriteString("api-key: " + r.Header.Get("api-key") + "\n")
			out.Write(sent)
			out.WriteString("\n\n")
		}
		return out.Bytes()
	})
}

// TestStreamGolden: recorded Azure streams (testdata/stream_*.sse) and the
// chunks the adapter passes on (testdata/stream_*.golden).
func TestStreamGolden(t *testing.T) {
	providertest.Goldens(t, *update, "testdata/stream_*.sse", ".sse", func(t *testing.T, _ string, in []byte) []byte {
		return providertest.Transcript(t, recordedStream(io.NopCloser(bytes.NewReader(in))))
	})
}

// recordedStream reads a recorded Azure SSE body through the adapter's
// stream, as ChatStream would.
func recordedStream(body io.ReadCloser) providers.Stream {
	p, _ := New(config.Provider{Name: "az", BaseURL: "https://res.openai.azure.com", APIKey: "k"}, providers.Deps{})
	return p.(*openai.Adapter).StreamFrom(body)
}
