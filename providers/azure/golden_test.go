package azure

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/xroute/xroute/config"
	xgolden "github.com/xroute/xroute/internal/golden"
	"github.com/xroute/xroute/providers"
	"github.com/xroute/xroute/providers/openai"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// golden compares got with testdata/name (or writes it with -update).
func golden(t *testing.T, name string, got []byte) { t.Helper(); xgolden.Check(t, *update, name, got) }

// TestRequestGolden: each testdata/request_*.json is sent to deployment
// "prod" through the dated and the v1 API; the golden file holds the URL
// and the body that go upstream.
func TestRequestGolden(t *testing.T) {
	inputs, _ := filepath.Glob(filepath.Join("testdata", "request_*.json"))
	if len(inputs) == 0 {
		t.Fatal("no inputs")
	}
	for _, in := range inputs {
		name := strings.TrimSuffix(filepath.Base(in), ".json")
		t.Run(name, func(t *testing.T) {
			body, err := os.ReadFile(in)
			if err != nil {
				t.Fatal(err)
			}
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
			golden(t, name+".golden", out.Bytes())
		})
	}
}

// TestStreamGolden: recorded Azure streams (testdata/stream_*.sse) and the
// chunks the adapter passes on (testdata/stream_*.golden).
func TestStreamGolden(t *testing.T) {
	inputs, _ := filepath.Glob(filepath.Join("testdata", "stream_*.sse"))
	if len(inputs) == 0 {
		t.Fatal("no inputs")
	}
	for _, in := range inputs {
		name := strings.TrimSuffix(filepath.Base(in), ".sse")
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(in)
			if err != nil {
				t.Fatal(err)
			}
			var out bytes.Buffer
			for _, line := range readAll(data) {
				out.Write(line)
				out.WriteByte('\n')
			}
			golden(t, name+".golden", out.Bytes())
		})
	}
}

// readAll runs the stream reader over data: one line per chunk, then how
// the stream ended.
func readAll(data []byte) [][]byte {
	s := recordedStream(io.NopCloser(bytes.NewReader(data)))
	var lines [][]byte
	for {
		c, err := s.Recv()
		if errors.Is(err, io.EOF) {
			return append(lines, []byte("END: EOF"))
		}
		if err != nil {
			var pe *providers.Error
			if errors.As(err, &pe) {
				e, _ := json.Marshal(struct {
					Status    int    `json:"status"`
					Type      string `json:"type"`
					Code      string `json:"code"`
					Message   string `json:"message"`
					MidStream bool   `json:"mid_stream"`
				}{pe.Status, pe.Type, pe.Code, pe.Message, pe.MidStream})
				return append(lines, append([]byte("END: "), e...))
			}
			return append(lines, []byte("END: "+err.Error()))
		}
		prefix := "CHUNK "
		if c.UsageOnly {
			prefix = "USAGE "
		}
		lines = append(lines, append([]byte(prefix), bytes.Clone(c.Data)...))
	}
}

// recordedStream reads a recorded Azure SSE body through the adapter's
// stream, as ChatStream would.
func recordedStream(body io.ReadCloser) providers.Stream {
	p, _ := New(config.Provider{Name: "az", BaseURL: "https://res.openai.azure.com", APIKey: "k"}, providers.Deps{})
	return p.(*openai.Adapter).StreamFrom(body)
}
