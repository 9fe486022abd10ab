package gemini

import (
	"context"
	"encoding/json"
	"errors"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/xroute/xroute/loadtest/mock"
	mockgemini "github.com/xroute/xroute/loadtest/mock/gemini"
	"github.com/xroute/xroute/providers"
)

func TestEmbed(t *testing.T) {
	a, s := newMock(t, mockgemini.Config{})
	many := make([]string, 230)
	for i := range many {
		many[i] = "input number " + strings.Repeat("x", i%7)
	}
	tests := []struct {
		name   string
		inputs []string
		dims   int
		calls  int64
	}{
		{"one", []string{"hello world"}, 0, 1},
		{"dimensions", []string{"a", "bb"}, 16, 1},
		{"batched by 100", many, 4, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := s.Stats().Embeddings
			vecs, usage, err := a.Embed(context.Background(), "gemini-embedding-001", tt.inputs, tt.dims)
			if err != nil {
				t.Fatal(err)
			}
			if got := s.Stats().Embeddings - before; got != tt.calls {
				t.Fatalf("%d upstream calls, want %d", got, tt.calls)
			}
			wantDims := tt.dims
			if wantDims == 0 {
				wantDims = 8
			}
			if len(vecs) != len(tt.inputs) {
				t.Fatalf("%d vectors for %d inputs", len(vecs), len(tt.inputs))
			}
			tokens := 0
			for i, v := range vecs {
				want := make([]float32, wantDims)
				mock.UnitVector(want, mock.Seed(tt.inputs[i]))
				if len(v) != wantDims || v[0] != want[0] || v[wantDims-1] != want[wantDims-1] {
					t.Fatalf("vector %d = %v, want %v", i, v, want)
				}
				tokens += max(1, (len(tt.inputs[i])+3)/4)
			}
			if usage.PromptTokens != tokens || usage.TotalTokens != tokens {
				t.Fatalf("usage %+v, want %d estimated tokens", usage, tokens)
			}
		})
	}
	t.Run("errors", func(t *testing.T) {
		_, _, err := a.Embed(context.Background(), "gemini-embedding-001", []string{"x #mock:status=429"}, 0)
		var pe *providers.Error
		if !errors.As(err, &pe) || pe.Status != 429 || !pe.Retryable() {
			t.Fatalf("err = %v", err)
		}
		_, _, err = a.Embed(context.Background(), "gemini-embedding-001", nil, 0)
		var re *providers.RequestError
		if !errors.As(err, &re) {
			t.Fatalf("err = %v", err)
		}
		_, _, err = a.Embed(context.Background(), "gemini-embedding-001", []string{"a"}, 99999)
		if !errors.As(err, &pe) || pe.Status != 400 {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("reported usage wins", func(t *testing.T) {
		up := &capture{status: 200, reply: `{"embeddings":[{"values":[0.5,0.5]}],"usageMetadata":{"promptTokenCount":11}}`}
		srv := httptest.NewServer(up)
		t.Cleanup(srv.Close)
		vecs, usage, err := adapterFor(t, srv, testKey).Embed(context.Background(), "models/text-embedding-004", []string{"hi"}, 2)
		if err != nil || usage.PromptTokens != 11 || len(vecs[0]) != 2 {
			t.Fatalf("%v %+v %v", vecs, usage, err)
		}
		var req map[string]any
		_ = json.Unmarshal(up.body, &req)
		if !strings.HasSuffix(up.req.URL.Path, "/models/text-embedding-004:batchEmbedContents") ||
			!strings.Contains(string(up.body), `"model":"models/text-embedding-004"`) || !strings.Contains(string(up.body), `"outputDimensionality":2`) {
			t.Fatalf("%s %s", up.req.URL.Path, up.body)
		}
	})
}
