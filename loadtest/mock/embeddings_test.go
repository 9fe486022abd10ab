package mock

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"math"
	"testing"

	openai "github.com/openai/openai-go/v3"
	goopenai "github.com/sashabaranov/go-openai"
)

func decodeB64(t *testing.T, s string) []float32 {
	t.Helper()
	raw, err := base64.StdEncoding.DecodeString(s)
	if err != nil || len(raw)%4 != 0 {
		t.Fatalf("base64 %q: %v", s, err)
	}
	out := make([]float32, len(raw)/4)
	for i := range out {
		out[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
	}
	return out
}

func TestEmbeddings(t *testing.T) {
	t.Parallel()
	_, base := startServer(t, Config{})
	gc := goClient(base, "")
	cases := []struct {
		name   string
		format goopenai.EmbeddingEncodingFormat
		dims   int
	}{
		{"float default dims", "", 0},
		{"float 16 dims", goopenai.EmbeddingEncodingFormatFloat, 16},
		{"base64", goopenai.EmbeddingEncodingFormatBase64, 0},
		{"base64 5 dims", goopenai.EmbeddingEncodingFormatBase64, 5},
	}
	var ref [][]float32
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := gc.CreateEmbeddings(context.Background(), goopenai.EmbeddingRequest{
				Input: []string{"alpha beta", "gamma"}, Model: "text-embedding-3-small",
				EncodingFormat: tc.format, Dimensions: tc.dims,
			})
			if err != nil {
				t.Fatal(err)
			}
			dims := tc.dims
			if dims == 0 {
				dims = 8
			}
			if len(resp.Data) != 2 || resp.Usage.PromptTokens != 3 || resp.Usage.TotalTokens != 3 {
				t.Fatalf("%+v", resp)
			}
			for i, d := range resp.Data {
				if d.Index != i || len(d.Embedding) != dims {
					t.Fatalf("data %d: %+v", i, d)
				}
				var norm float64
				for _, f := range d.Embedding {
					norm += float64(f) * float64(f)
				}
				if math.Abs(norm-1) > 1e-4 {
					t.Fatalf("norm %v", norm)
				}
			}
			if dims == 8 {
				got := [][]float32{resp.Data[0].Embedding, resp.Data[1].Embedding}
				if ref == nil {
					ref = got
				} else {
					for i := range got {
						for j := range got[i] {
							if got[i][j] != ref[i][j] {
								t.Fatalf("float and base64 vectors differ: %v vs %v", got, ref)
							}
						}
					}
				}
			}
		})
	}

	t.Run("raw base64", func(t *testing.T) {
		resp := post(t, context.Background(), base+"/embeddings", `{"model":"e","input":"alpha beta","encoding_format":"base64","dimensions":3}`, nil)
		var r struct {
			Object string `json:"object"`
			Data   []struct {
				Object    string `json:"object"`
				Embedding string `json:"embedding"`
			} `json:"data"`
			Model string `json:"model"`
		}
		if err := json.Unmarshal(readAll(t, resp), &r); err != nil {
			t.Fatal(err)
		}
		if r.Object != "list" || r.Data[0].Object != "embedding" || r.Model != "e" {
			t.Fatalf("%+v", r)
		}
		if v := decodeB64(t, r.Data[0].Embedding); len(v) != 3 {
			t.Fatalf("%v", v)
		}
	})

	t.Run("official float and tokens", func(t *testing.T) {
		oc := officialClient(base, "")
		r, err := oc.Embeddings.New(context.Background(), openai.EmbeddingNewParams{
			Model:          "text-embedding-3-small",
			Input:          openai.EmbeddingNewParamsInputUnion{OfString: openai.String("alpha beta")},
			EncodingFormat: openai.EmbeddingNewParamsEncodingFormatFloat,
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(r.Data) != 1 || len(r.Data[0].Embedding) != 8 || float32(r.Data[0].Embedding[0]) != ref[0][0] {
			t.Fatalf("%+v", r.Data)
		}
		r, err = oc.Embeddings.New(context.Background(), openai.EmbeddingNewParams{
			Model:          "text-embedding-3-small",
			Input:          openai.EmbeddingNewParamsInputUnion{OfArrayOfTokenArrays: [][]int64{{1, 2, 3}, {4}}},
			EncodingFormat: openai.EmbeddingNewParamsEncodingFormatFloat,
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(r.Data) != 2 || r.Usage.PromptTokens != 4 {
			t.Fatalf("%+v", r)
		}
	})
}

func TestModels(t *testing.T) {
	t.Parallel()
	_, base := startServer(t, Config{Models: []string{"gpt-a", "org/gpt-b"}})
	gc := goClient(base, "")
	list, err := gc.ListModels(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Models) != 2 || list.Models[1].ID != "org/gpt-b" || list.Models[0].Object != "model" {
		t.Fatalf("%+v", list)
	}
	m, err := gc.GetModel(context.Background(), "org/gpt-b")
	if err != nil || m.ID != "org/gpt-b" || m.OwnedBy != "mock" {
		t.Fatalf("%+v %v", m, err)
	}
	_, err = gc.GetModel(context.Background(), "nope")
	var apiErr *goopenai.APIError
	if !errors.As(err, &apiErr) || apiErr.HTTPStatusCode != 404 || apiErr.Code != "model_not_found" {
		t.Fatalf("%v", err)
	}
	om, err := officialClient(base, "").Models.Get(context.Background(), "gpt-a")
	if err != nil || om.ID != "gpt-a" {
		t.Fatalf("%+v %v", om, err)
	}

	_, anyBase := startServer(t, Config{})
	m, err = goClient(anyBase, "").GetModel(context.Background(), "whatever")
	if err != nil || m.ID != "whatever" {
		t.Fatalf("%+v %v", m, err)
	}
}
