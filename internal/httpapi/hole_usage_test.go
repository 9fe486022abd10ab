package httpapi_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/tidwall/gjson"

	"github.com/xroute/xroute/billing"
	"github.com/xroute/xroute/config"
	"github.com/xroute/xroute/loadtest/mock"
)

// TestHoleAnswerWithoutUsageBilled: a 200 whose upstream sent no usage
// (or usage that is negative, absurd or not numbers) is counted from the
// prompt and the delivered output, text or tool calls, marked estimated:
// never billed 0 nor at a count the upstream made up, in every ingress,
// streamed or not. The caller gets the answer; the metrics stay sane.
func TestHoleAnswerWithoutUsageBilled(t *testing.T) {
	t.Parallel()
	g := newGateway(t, gwOptions{mutate: func(c *config.Config) {
		listPriced(c)
		c.Providers[0].NativeFormats = []string{"responses"}
	}})
	reviewTopUp(t, g, 10*billing.NanoPerUSD)
	const tools = `"tools":[{"type":"function","function":{"name":"lookup","description":"Look a word up","parameters":{"type":"object","properties":{"word":{"type":"string"}},"required":["word"]}}}]`
	const rtools = `"tools":[{"type":"function","name":"lookup","description":"Look a word up","parameters":{"type":"object","properties":{"word":{"type":"string"}},"required":["word"]}}]`
	const mtools = `"tools":[{"name":"lookup","description":"Look a word up","input_schema":{"type":"object","properties":{"word":{"type":"string"}},"required":["word"]}}]`
	type answer struct{ path, body string }
	chat := func(mode string, stream bool, tool bool) answer {
		extra := ""
		if tool {
			extra = tools + ","
			mode += " #mock:call=lookup #mock:arg.word=" + strings.Repeat("serendipity", 40)
		}
		return answer{"/v1/chat/completions", fmt.Sprintf(`{"model":"gpt-4o-mini","stream":%v,%s"messages":[{"role":"user","content":"Tell me a story #mock:usage=%s"}]}`, stream, extra, mode)}
	}
	var cases []struct {
		name string
		a    answer
	}
	add := func(name string, a answer) {
		cases = append(cases, struct {
			name string
			a    answer
		}{name, a})
	}
	for _, mode := range mock.UsageModes {
		add("chat "+mode, chat(mode, false, false))
		add("chat stream "+mode, chat(mode, true, false))
		add("responses native "+mode, answer{"/v1/responses", `{"model":"gpt-4o-mini","store":false,"input":"Tell me a story #mock:usage=` + mode + `"}`})
		add("responses native stream "+mode, answer{"/v1/responses", `{"model":"gpt-4o-mini","store":false,"stream":true,"input":"Tell me a story #mock:usage=` + mode + `"}`})
	}
	call := " #mock:call=lookup #mock:arg.word=" + strings.Repeat("serendipity", 40)
	add("chat tool call", chat("omit", false, true))
	add("chat tool-call stream", chat("omit", true, true))
	add("responses native tool-call stream", answer{"/v1/responses", `{"model":"gpt-4o-mini","store":false,"stream":true,` + rtools + `,"input":"Look it up #mock:usage=omit` + call + `"}`})
	add("responses translated tool-call stream", answer{"/v1/responses", `{"model":"gpt-4o","store":false,"stream":true,` + rtools + `,"input":"Look it up #mock:usage=omit` + call + `"}`})
	add("messages tool-call stream", answer{"/v1/messages", `{"model":"gpt-4o-mini","max_tokens":1024,"stream":true,` + mtools + `,"messages":[{"role":"user","content":"Look it up #mock:usage=omit` + call + `"}]}`})
	add("messages tool call", answer{"/v1/messages", `{"model":"gpt-4o-mini","max_tokens":1024,` + mtools + `,"messages":[{"role":"user","content":"Look it up #mock:usage=negative` + call + `"}]}`})
	add("completions stream", answer{"/v1/completions", `{"model":"gpt-4o","stream":true,"prompt":"Tell me a story #mock:usage=omit"}`})
	add("completions", answer{"/v1/completions", `{"model":"gpt-4o","prompt":"Tell me a story #mock:usage=huge"}`})
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := moneyPost(t, g, g.key, c.a.path, c.a.body)
			if r.StatusCode != 200 || len(r.body) < 20 {
				t.Fatalf("%d %s", r.StatusCode, r.body)
			}
			if strings.Contains(c.name, "tool") && !strings.Contains(r.body, "lookup") {
				t.Fatalf("no tool call in the answer: %s", r.body)
			}
			rec := g.usageFor(r.Header.Get("x-request-id"))
			// The mock's answers are 16 tokens; the tool call's arguments
			// alone ~100. At these prices 1000 tokens cost at most 10
			// million nano-USD (0.01 USD).
			least := 8
			if strings.Contains(c.name, "tool") {
				least = 50
			}
			if !rec.Estimated || rec.PromptTokens <= 0 || rec.PromptTokens > 1000 || rec.CompletionTokens < least || rec.CompletionTokens > 1000 || rec.CostNano <= 0 || rec.CostNano > 10_000_000 {
				t.Fatalf("record %+v; want an estimate of the prompt and the delivered output, billed", rec)
			}
			if strings.HasPrefix(r.body, "{") {
				// The caller's SDK reads the count billed, not the upstream's.
				u := gjson.Get(r.body, "usage")
				for _, k := range []string{"prompt_tokens", "completion_tokens", "input_tokens", "output_tokens"} {
					if v := u.Get(k); v.Exists() && (v.Type != gjson.Number || v.Int() < 0 || v.Int() > 1000) {
						t.Fatalf("answer's usage %s", u.Raw)
					}
				}
			}
		})
	}
	_, reserved := balance(t, g)
	if reserved != 0 {
		t.Fatalf("%s still held", reserved)
	}
	mr, err := http.Get(g.srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(mr.Body)
	mr.Body.Close()
	if mr.StatusCode != 200 {
		t.Fatalf("metrics: %d", mr.StatusCode)
	}
	for _, line := range strings.Split(string(metrics), "\n") {
		if strings.HasPrefix(line, "xroute_tokens_total") && strings.Contains(line, " -") {
			t.Fatalf("negative token counter: %s", line)
		}
	}
	if !strings.Contains(g.logs.String(), "upstream usage rejected") {
		t.Fatal("broken upstream usage was not logged")
	}
}

// TestHoleStreamWithNothingDeliveredChargesPrompt: a stream that ended
// without usage and without text used to be free, prompt included: the
// upstream read the prompt all the same.
func TestHoleStreamWithNothingDeliveredChargesPrompt(t *testing.T) {
	t.Parallel()
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}]}\n\n")
		fmt.Fprint(w, "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n")
	}))
	defer up.Close()
	g := newGateway(t, gwOptions{mutate: func(c *config.Config) {
		c.Providers = append(c.Providers, config.Provider{Name: "silent", Type: "openai", BaseURL: up.URL})
		c.Models = append(c.Models, config.Model{Name: "silent", Deployments: []config.Deployment{{Provider: "silent", Model: "m", InputPrice: "1000", OutputPrice: "2000"}}})
	}})
	reviewTopUp(t, g, 10*billing.NanoPerUSD)
	r := moneyPost(t, g, g.key, "/v1/chat/completions", `{"model":"silent","stream":true,"max_tokens":64,"messages":[{"role":"user","content":"`+strings.Repeat("a long prompt ", 50)+`"}]}`)
	if r.StatusCode != 200 {
		t.Fatalf("%d %s", r.StatusCode, r.body)
	}
	rec := g.usageFor(r.Header.Get("x-request-id"))
	if !rec.Estimated || rec.PromptTokens < 50 || rec.CostNano <= 0 {
		t.Fatalf("record %+v; want the prompt charged", rec)
	}
}

// TestHoleEmbeddingsWithoutUsageBilled: embeddings whose upstream sent no
// usage (or a negative one) were recorded with 0 prompt tokens and billed
// nothing. The inputs are counted by the tokenizer, and the answer's usage
// says what was billed.
func TestHoleEmbeddingsWithoutUsageBilled(t *testing.T) {
	t.Parallel()
	for _, usage := range []string{``, `,"usage":{"prompt_tokens":-5,"total_tokens":-5}`} {
		up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.Copy(io.Discard, r.Body)
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, `{"object":"list","data":[{"object":"embedding","index":0,"embedding":[0.5,-0.25]}],"model":"m"`+usage+`}`)
		}))
		t.Cleanup(up.Close)
		g := newGateway(t, gwOptions{mutate: func(c *config.Config) {
			c.Providers = append(c.Providers, config.Provider{Name: "vectors", Type: "openai", BaseURL: up.URL})
			c.Models = append(c.Models, config.Model{Name: "embed", Deployments: []config.Deployment{{Provider: "vectors", Model: "m", InputPrice: "1000", OutputPrice: "0"}}})
		}})
		reviewTopUp(t, g, billing.NanoPerUSD)
		r := moneyPost(t, g, g.key, "/v1/embeddings", `{"model":"embed","input":"`+strings.Repeat("count these words ", 20)+`"}`)
		if r.StatusCode != 200 {
			t.Fatalf("%d %s", r.StatusCode, r.body)
		}
		rec := g.usageFor(r.Header.Get("x-request-id"))
		if !rec.Estimated || rec.PromptTokens < 40 || rec.CostNano <= 0 || gjson.Get(r.body, "usage.prompt_tokens").Int() != int64(rec.PromptTokens) {
			t.Fatalf("usage %q: record %+v, answer %s", usage, rec, r.body)
		}
	}
}

// TestHoleFunctionCallStreamWithoutUsageBilled: a stream of legacy
// function_call deltas (the functions API) ending without usage was read
// as text-only chunks with no content: nothing delivered, so nothing
// billed, prompt included. Every delivered output counts.
func TestHoleFunctionCallStreamWithoutUsageBilled(t *testing.T) {
	t.Parallel()
	args := strings.Repeat(`{\"city\":\"Saint-Remy-de-Provence\",\"days\":14} `, 30)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "text/event-stream")
		chunk := func(delta, finish string) {
			fmt.Fprintf(w, "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":%s,\"finish_reason\":%s}]}\n\n", delta, finish)
		}
		chunk(`{"role":"assistant","content":null,"function_call":{"name":"get_weather","arguments":""}}`, "null")
		for i := 0; i < len(args); i += 40 {
			chunk(`{"function_call":{"arguments":"`+args[i:min(i+40, len(args))]+`"}}`, "null")
		}
		chunk(`{}`, `"function_call"`)
		fmt.Fprint(w, "data: [DONE]\n\n")
	}))
	t.Cleanup(up.Close)
	g := newGateway(t, gwOptions{mutate: func(c *config.Config) {
		c.Providers = append(c.Providers, config.Provider{Name: "legacy", Type: "openai", BaseURL: up.URL})
		c.Models = append(c.Models, config.Model{Name: "legacy", Deployments: []config.Deployment{{Provider: "legacy", Model: "m", InputPrice: "1000", OutputPrice: "2000"}}})
	}})
	reviewTopUp(t, g, 10*billing.NanoPerUSD)
	r := moneyPost(t, g, g.key, "/v1/chat/completions", `{"model":"legacy","stream":true,"max_tokens":1000,"functions":[{"name":"get_weather","parameters":{"type":"object"}}],"messages":[{"role":"user","content":"Weather?"}]}`)
	if r.StatusCode != 200 || !strings.Contains(r.body, "get_weather") {
		t.Fatalf("%d %s", r.StatusCode, r.body)
	}
	rec := g.usageFor(r.Header.Get("x-request-id"))
	if !rec.Estimated || rec.PromptTokens == 0 || rec.CompletionTokens < 200 || rec.CostNano <= 0 {
		t.Fatalf("record %+v; want the function call's arguments billed", rec)
	}
	t.Logf("a %d-character function_call stream without usage: %d prompt + %d completion tokens, %d nano-USD", len(args), rec.PromptTokens, rec.CompletionTokens, rec.CostNano)
}
