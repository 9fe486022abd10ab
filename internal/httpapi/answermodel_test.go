package httpapi_test

import (
	"strings"
	"testing"

	"github.com/tidwall/gjson"
)

// The answer's model is the public model name the caller asked for, on
// every ingress, from every provider, streamed or not: the name the
// caller can send again (the upstream's id is in x-xroute-model).
func TestAnswerModelIsThePublicName(t *testing.T) {
	g := nativeGateway(t)
	ingresses := []struct {
		name, path string
		body       func(model string, stream bool) string
		// models are the model fields of an answer: every one present
		// must be the public name, and at least one must be.
		models func(body string, stream bool) []gjson.Result
	}{
		{"chat", "/v1/chat/completions",
			func(m string, st bool) string {
				return `{"model":"` + m + `","stream":` + bstr(st) + `,"max_tokens":16,"messages":[{"role":"user","content":"Say hello"}]}`
			},
			func(b string, st bool) []gjson.Result { return modelFields(b, st, "model") }},
		{"completions", "/v1/completions",
			func(m string, st bool) string {
				return `{"model":"` + m + `","stream":` + bstr(st) + `,"max_tokens":16,"prompt":"Say hello"}`
			},
			func(b string, st bool) []gjson.Result { return modelFields(b, st, "model") }},
		{"responses", "/v1/responses",
			func(m string, st bool) string {
				return `{"model":"` + m + `","stream":` + bstr(st) + `,"store":false,"max_output_tokens":16,"input":"Say hello"}`
			},
			func(b string, st bool) []gjson.Result {
				if st {
					return modelFields(b, st, "response.model")
				}
				return modelFields(b, st, "model")
			}},
		{"messages", "/v1/messages",
			func(m string, st bool) string {
				return `{"model":"` + m + `","stream":` + bstr(st) + `,"max_tokens":16,"messages":[{"role":"user","content":"Say hello"}]}`
			},
			func(b string, st bool) []gjson.Result {
				if st {
					return modelFields(b, st, "message.model")
				}
				return modelFields(b, st, "model")
			}},
	}
	for _, model := range []string{"gpt-4o-mini", "claude-test", "gemini-test", "azure-test", "bedrock-test"} {
		for _, in := range ingresses {
			for _, stream := range []bool{false, true} {
				name := model + "/" + in.name + "/" + map[bool]string{false: "body", true: "stream"}[stream]
				t.Run(name, func(t *testing.T) {
					r := postRaw(t, g, in.path, in.body(model, stream))
					if r.StatusCode != 200 {
						t.Fatalf("status %d: %s", r.StatusCode, r.body)
					}
					ms := in.models(r.body, stream)
					if len(ms) == 0 {
						t.Fatalf("no model field in the answer: %s", r.body)
					}
					for _, m := range ms {
						if m.String() != model {
							t.Fatalf("answer model %s, want the public name %q (upstream %s): %s", m.Raw, model, r.Header.Get("x-xroute-model"), r.body)
						}
					}
				})
			}
		}
	}
	for _, model := range []string{"embed-openai", "embed-gemini"} {
		t.Run(model+"/embeddings", func(t *testing.T) {
			r := postRaw(t, g, "/v1/embeddings", `{"model":"`+model+`","input":"hello"}`)
			if r.StatusCode != 200 || gjson.Get(r.body, "model").String() != model {
				t.Fatalf("status %d: %s", r.StatusCode, r.body)
			}
		})
	}
}

func bstr(b bool) string {
	if b {
		return "true"
	}
	return "false"
}

// modelFields are the values at path in a JSON body, or in every SSE
// event of a stream that has it.
func modelFields(body string, stream bool, path string) []gjson.Result {
	if !stream {
		if v := gjson.Get(body, path); v.Exists() {
			return []gjson.Result{v}
		}
		return nil
	}
	var out []gjson.Result
	for _, d := range sseData(body) {
		if !strings.HasPrefix(d, "{") {
			continue
		}
		if v := gjson.Get(d, path); v.Exists() {
			out = append(out, v)
		}
	}
	return out
}
