package httpapi_test

// Regression tests from the review of the Responses API ingress, legacy
// completions and the shared admission pipeline. Each test states what
// must hold, and failed on the code it was written against (the defect
// it proves is in its comment).

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	official "github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/responses"
	"github.com/tidwall/gjson"

	"github.com/xroute/xroute/billing"
	"github.com/xroute/xroute/config"
	"github.com/xroute/xroute/keys"
	"github.com/xroute/xroute/loadtest/mock"
	geminimock "github.com/xroute/xroute/loadtest/mock/gemini"
)

// reviewPost posts body (bytes, kept as they are) with the gateway's key.
func reviewPost(t *testing.T, g *gateway, key, path string, body []byte) rawResponse {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, g.srv.URL+path, bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return rawResponse{resp, string(b)}
}

func reviewBalance(t *testing.T, g *gateway) billing.Nano {
	t.Helper()
	bal, _, _, err := g.app.Ledger.Balance(context.Background(), keys.DefaultAccountID)
	if err != nil {
		t.Fatal(err)
	}
	return bal
}

func reviewTopUp(t *testing.T, g *gateway, amount billing.Nano) {
	t.Helper()
	if _, _, err := g.app.Ledger.TopUp(context.Background(), keys.DefaultAccountID, amount, "review-"+t.Name(), "test"); err != nil {
		t.Fatal(err)
	}
}

// sseTypes splits a raw Responses stream into its events' types.
func sseTypes(body string) []string {
	var out []string
	for _, ev := range strings.Split(strings.TrimSpace(body), "\n\n") {
		if _, data, ok := strings.Cut(ev, "data: "); ok {
			out = append(out, gjson.Get(data, "type").Str)
		}
	}
	return out
}

// 1. An empty body on POST /v1/responses/input_tokens is a client error,
// answered 400 in OpenAI's shape; today it panics (body[1:] on an empty
// slice) and the recovery answers 500.
func TestReviewInputTokensEmptyBody(t *testing.T) {
	t.Parallel()
	g := newRespGateway(t)
	r := reviewPost(t, g.gateway, g.key, "/v1/responses/input_tokens", nil)
	if r.StatusCode != http.StatusBadRequest || !strings.Contains(r.body, `"invalid_request_error"`) {
		t.Fatalf("empty body: %d %s", r.StatusCode, r.body)
	}
}

// 2. The Responses request is translated into the pivot before routing,
// and a translation error is a 400 even when the deployment that would
// serve it speaks the Responses API natively. Items and parts only the
// pivot lacks (a web_search_call Codex sends back in its history, a file
// by URL, an image by file id, an item_reference) must reach a native
// deployment.
func TestReviewNativeServesItemsThePivotCannotExpress(t *testing.T) {
	t.Parallel()
	g := newRespGateway(t)
	for name, item := range map[string]string{
		"web_search_call": `{"type":"web_search_call","id":"ws_1","status":"completed","action":{"type":"search","query":"weather"}}`,
		"file by url":     `{"role":"user","content":[{"type":"input_file","file_url":"https://example.com/a.pdf"}]}`,
		"image by id":     `{"role":"user","content":[{"type":"input_image","file_id":"file-abc"}]}`,
	} {
		t.Run(name, func(t *testing.T) {
			body := `{"model":"gpt-4o-mini","store":false,"input":[{"role":"user","content":"hello"},` + item + `,{"role":"user","content":"and?"}]}`
			r := reviewPost(t, g.gateway, g.key, "/v1/responses", []byte(body))
			if r.StatusCode != 200 {
				t.Fatalf("native deployment, %s: %d %s", name, r.StatusCode, r.body)
			}
		})
	}
}

// 3. A body that is not UTF-8 is a 400 before anything is spent (OpenAI
// refuses it as unparsable). xroute accepts it, calls the upstream,
// commits the usage (the account is charged), then fails to store the
// turn (the store requires UTF-8) and answers 500: the caller pays for an
// answer it never gets, and the SDKs retry the 500 twice more.
func TestReviewInvalidUTF8IsRefusedBeforeCharging(t *testing.T) {
	t.Parallel()
	g := newGateway(t, gwOptions{mutate: func(c *config.Config) {
		priced(c)
		c.Providers[0].NativeFormats = []string{"responses", "completions"}
	}})
	reviewTopUp(t, g, 100*billing.NanoPerUSD)
	for _, stream := range []string{"false", "true"} {
		t.Run("stream="+stream, func(t *testing.T) {
			before, upstream := reviewBalance(t, g), g.primary.Stats().Requests
			body := []byte(`{"model":"gpt-4o-mini","stream":` + stream + `,"max_output_tokens":64,"input":[{"role":"user","content":"caf` + "\xe9" + ` au lait"}]}`)
			r := reviewPost(t, g, g.key, "/v1/responses", body)
			if r.StatusCode != http.StatusBadRequest {
				t.Errorf("invalid UTF-8: %d %s", r.StatusCode, r.body)
			}
			if after := reviewBalance(t, g); after != before {
				t.Errorf("charged %d nano-USD for a refused request", before-after)
			}
			if n := g.primary.Stats().Requests; n != upstream {
				t.Errorf("a bad request reached the upstream (%d calls)", n-upstream)
			}
		})
	}
}

// failResponseInserts makes every SaveResponse fail from now on (a full
// disk, a constraint, a lost primary: any store error).
func failResponseInserts(t *testing.T, dbPath string) {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+dbPath)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`CREATE TRIGGER review_fail_save BEFORE INSERT ON responses BEGIN SELECT RAISE(ABORT, 'disk I/O error'); END`); err != nil {
		t.Fatal(err)
	}
}

// 4. When the turn cannot be stored, the answer has been produced and its
// usage committed (the account is charged) but the caller gets a 500 (not
// streamed) or an error event instead of response.completed (streamed):
// it paid for an answer it never received, and the SDKs (and Codex, which
// retries a stream that ends without response.completed) send it again
// and pay again. Either the answer goes out (the store failure reported
// another way) or nothing is charged.
func TestReviewStoreFailureChargesForAnAnswerNotDelivered(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	dbPath := filepath.Join(dir, "review.db")
	g := newGateway(t, gwOptions{mutate: func(c *config.Config) {
		priced(c)
		c.Database.Path = dbPath
		c.Providers[0].NativeFormats = []string{"responses"}
		c.Providers = append(c.Providers, config.Provider{Name: "compat", Type: "openai", BaseURL: c.Providers[0].BaseURL, APIKey: c.Providers[0].APIKey, NativeFormats: []string{"none"}})
		c.Models = append(c.Models, config.Model{Name: "compat-test", Deployments: []config.Deployment{{Provider: "compat", Model: "mock-small", InputPrice: "1000", OutputPrice: "2000"}}})
	}})
	reviewTopUp(t, g, 100*billing.NanoPerUSD)
	failResponseInserts(t, dbPath)
	for _, model := range []string{"gpt-4o-mini", "compat-test"} {
		for _, stream := range []bool{false, true} {
			name := model + map[bool]string{false: "/plain", true: "/stream"}[stream]
			t.Run(name, func(t *testing.T) {
				before := reviewBalance(t, g)
				body, _ := json.Marshal(map[string]any{"model": model, "input": "Say hello", "max_output_tokens": 64, "stream": stream})
				r := reviewPost(t, g, g.key, "/v1/responses", body)
				charged := before - reviewBalance(t, g)
				delivered := r.StatusCode == 200
				if stream {
					types := sseTypes(r.body)
					delivered = r.StatusCode == 200 && len(types) > 0 && types[len(types)-1] == "response.completed"
				}
				if !delivered && charged > 0 {
					t.Fatalf("charged %d nano-USD, answer not delivered: %d %s", charged, r.StatusCode, tail(r.body))
				}
			})
		}
	}
}

func tail(s string) string {
	if len(s) > 400 {
		return "…" + s[len(s)-400:]
	}
	return s
}

// 5. Native passthrough with previous_response_id: a reasoning model's
// stored turn holds [reasoning rs_…, function_call fc_…]. xroute inlines
// the turn but drops the reasoning item (no encrypted_content) while it
// keeps the function call with its id; OpenAI refuses exactly that: "Item
// 'fc_…' of type 'function_call' was provided without its required
// 'reasoning' item: 'rs_…'". The default flow of openai-python/agents
// (store on, previous_response_id, tools, a gpt-5/o-series model) breaks
// on its second turn. Keep the reasoning item (the upstream stored it) or
// drop the ids of the items that followed it.
func TestReviewNativeHistoryKeepsReasoningOfFunctionCall(t *testing.T) {
	t.Parallel()
	g := newRespGateway(t)
	ctx := context.Background()
	c := officialClient(g.gateway, g.key)
	first, err := c.Responses.New(ctx, responses.ResponseNewParams{
		Model: "gpt-4o-mini", Input: textInput("What is the weather in Paris?"), Tools: []responses.ToolUnionParam{weatherTool},
		ToolChoice: responses.ResponseNewParamsToolChoiceUnion{OfToolChoiceMode: official.Opt(responses.ToolChoiceOptionsRequired)},
		Reasoning:  responses.ReasoningParam{Effort: responses.ReasoningEffortLow},
	})
	if err != nil {
		t.Fatal(err)
	}
	var rsID, fcID, callID string
	for _, it := range first.Output {
		switch it.Type {
		case "reasoning":
			rsID = it.ID
		case "function_call":
			fcID, callID = it.ID, it.CallID
		}
	}
	if rsID == "" || fcID == "" {
		t.Fatalf("turn 1 output lacks reasoning or a call: %s", first.RawJSON())
	}
	_, err = c.Responses.New(ctx, responses.ResponseNewParams{
		Model: "gpt-4o-mini", PreviousResponseID: official.String(first.ID), Tools: []responses.ToolUnionParam{weatherTool},
		Input: responses.ResponseNewParamsInputUnion{OfInputItemList: responses.ResponseInputParam{
			{OfFunctionCallOutput: &responses.ResponseInputItemFunctionCallOutputParam{CallID: official.String(callID),
				Output: responses.ResponseInputItemFunctionCallOutputOutputUnionParam{OfString: official.String(`{"temperature_c":21}`)}}},
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	nb := g.primary.last(t, "/v1/responses")
	var hasRS, hasFC bool
	for _, it := range gjson.GetBytes(nb, "input").Array() {
		switch it.Get("id").Str {
		case rsID:
			hasRS = true
		case fcID:
			hasFC = true
		}
	}
	if hasFC && !hasRS {
		t.Fatalf("native body sends function_call %s without its reasoning item %s (OpenAI answers 400): %s", fcID, rsID, gjson.GetBytes(nb, "input").Raw)
	}
}

// 6. The reverse case: a translated turn's output holds a reasoning item
// xroute minted (rs_…, a summary, no encrypted_content). A store:false
// client (Codex) sends it back in its next input; when that turn is
// served natively (the OpenAI deployment is back after a failover), the
// item goes upstream as it is, and OpenAI refuses an rs_ id it never
// stored ("Item with id 'rs_…' not found. Items are not persisted when
// store is set to false"). xroute filters such items only out of the
// stored history, never out of the caller's own input.
func TestReviewNativeStoreFalseDropsUnresolvableReasoning(t *testing.T) {
	t.Parallel()
	g := newRespGateway(t)
	minted := `{"id":"rs_0123456789abcdef0123456789abcdef0123456789abcdef","type":"reasoning","summary":[{"type":"summary_text","text":"thinking"}]}`
	body := `{"model":"gpt-4o-mini","store":false,"include":["reasoning.encrypted_content"],"input":[` +
		`{"role":"user","content":"hi"},` + minted + `,{"type":"message","role":"assistant","content":[{"type":"output_text","text":"hello"}]},{"role":"user","content":"again"}]}`
	r := reviewPost(t, g.gateway, g.key, "/v1/responses", []byte(body))
	if r.StatusCode != 200 {
		t.Fatalf("%d %s", r.StatusCode, r.body)
	}
	nb := g.primary.last(t, "/v1/responses")
	for _, it := range gjson.GetBytes(nb, "input").Array() {
		if it.Get("type").Str == "reasoning" && !it.Get("encrypted_content").Exists() {
			t.Fatalf("store:false native body carries a reasoning item OpenAI cannot resolve: %s", it.Raw)
		}
	}
}

// 7. A translated stream reports output_tokens_details.reasoning_tokens:
// the upstream's reasoning count reaches the Builder with the usage chunk,
// but the encoder's finish rebuilds the usage from requestInfo, which has
// no reasoning field, so a streamed answer always says 0 where the same
// answer not streamed says the real count.
func TestReviewStreamedTranslatedReasoningTokens(t *testing.T) {
	t.Parallel()
	gm := httptest.NewServer(geminimock.New(geminimock.Config{Config: mock.Config{APIKey: "AIza-test-key-0001"}, ThoughtsTokens: 7}))
	t.Cleanup(gm.Close)
	g := newGateway(t, gwOptions{mutate: func(c *config.Config) {
		c.Providers = append(c.Providers, config.Provider{Name: "google", Type: "gemini", BaseURL: gm.URL, APIKey: "AIza-test-key-0001"})
		c.Models = append(c.Models, config.Model{Name: "gemini-test", Deployments: []config.Deployment{{Provider: "google", Model: "gemini-2.5-flash"}}})
	}})
	ctx := context.Background()
	c := officialClient(g, g.key)
	p := responses.ResponseNewParams{Model: "gemini-test", Input: textInput("Think, then say hi"), Store: official.Bool(false)}
	plain, err := c.Responses.New(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	if plain.Usage.OutputTokensDetails.ReasoningTokens != 7 {
		t.Fatalf("not streamed: reasoning_tokens %d", plain.Usage.OutputTokensDetails.ReasoningTokens)
	}
	s := streamResponse(ctx, c, p)
	s.checkOrder(t)
	if got := s.final().Usage.OutputTokensDetails.ReasoningTokens; got != 7 {
		t.Fatalf("streamed: reasoning_tokens %d, want 7 (as not streamed)", got)
	}
}

// reviewCatalog writes a catalog file pricing openai/mock-small at 1000
// and 2000 USD per M tokens with an output cap of 100 tokens (catalog
// entries must name a preset provider: the test names the primary
// provider "openai").
func reviewCatalog(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "catalog.yaml")
	const y = `models:
  - name: review-small
    provider: openai
    id: mock-small
    input: "1000"
    output: "2000"
    context: 100000
    max_output: 100
    caps: [tools, vision, json_schema, streaming_usage]
`
	if err := os.WriteFile(path, []byte(y), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// 8. A legacy completion with n choices can produce n × max_tokens. The
// handler asks for a hold of max_tokens × choices, but MaxCost caps the
// output at the model's per-answer limit (max_output), so on any model
// whose limit is known the hold covers one choice: n = 4 at max_tokens =
// max_output holds a quarter of the cost, and the account goes negative.
func TestReviewCompletionsHoldCoversEveryChoice(t *testing.T) {
	t.Parallel()
	cat := reviewCatalog(t)
	g := newGateway(t, gwOptions{mutate: func(c *config.Config) {
		c.Catalog.File = cat
		c.Providers[0].Name = "openai"
		c.Providers[0].NativeFormats = []string{"completions"}
		for i := range c.Models {
			for j := range c.Models[i].Deployments {
				if c.Models[i].Deployments[j].Provider == "primary" {
					c.Models[i].Deployments[j].Provider = "openai"
				}
			}
		}
	}})
	// 0.5 USD covers one choice of 100 tokens (0.2 USD) and the prompt,
	// not four (0.8 USD).
	reviewTopUp(t, g, billing.NanoPerUSD/2)
	st, b, _ := call(t, "POST", g.base+"/completions", g.key, `{"model":"gpt-4o-mini","prompt":"Say something #mock:tokens=100","max_tokens":100,"n":4}`)
	if st == 200 {
		if bal := reviewBalance(t, g); bal < 0 {
			t.Fatalf("served 4 × 100 tokens on a hold for one choice: balance now %d nano-USD (usage %v)", bal, b["usage"])
		}
	}
	if st != 429 || errCode(b) != "insufficient_quota" {
		t.Fatalf("n=4 × max_tokens=100 with credits for one choice: %d %v", st, b)
	}
}

// 9. best_of generates (and bills) best_of completions; the hold counts
// only n, so a best_of=5 request holds a fifth of its worst case.
func TestReviewCompletionsBestOfHold(t *testing.T) {
	t.Parallel()
	g := newGateway(t, gwOptions{mutate: func(c *config.Config) {
		priced(c)
		c.Providers[0].NativeFormats = []string{"completions"}
	}})
	// 3 USD covers one completion of 1000 tokens (2 USD), not five.
	reviewTopUp(t, g, 3*billing.NanoPerUSD)
	before := g.primary.Stats().Requests
	st, b, _ := call(t, "POST", g.base+"/completions", g.key, `{"model":"gpt-4o-mini","prompt":"Say something","max_tokens":1000,"best_of":5}`)
	if st != 429 || g.primary.Stats().Requests != before {
		t.Fatalf("best_of=5 × max_tokens=1000 with credits for one completion: %d %v (upstream calls %d)", st, b, g.primary.Stats().Requests-before)
	}
}

// 10. The router hedges every request of a hedged model that has a
// request (chat, Responses and legacy completions alike): two attempts
// may complete and both are paid (price adds a finished loser). Chat and
// Responses hold twice the worst case for that; completions pass
// hedgeable=false and hold once, so the same credits that refuse a chat
// request admit the completion.
func TestReviewCompletionsHedgedHold(t *testing.T) {
	t.Parallel()
	g := newGateway(t, gwOptions{backup: &mock.Config{}, mutate: func(c *config.Config) {
		priced(c)
		c.Routing.Hedge.Enabled = true
		c.Providers[0].NativeFormats = []string{"completions"}
	}})
	// One attempt of 1000 tokens costs 2 USD (+ a tiny prompt); two, 4 USD.
	reviewTopUp(t, g, 3*billing.NanoPerUSD)
	st, b, _ := call(t, "POST", g.base+"/chat/completions", g.key, `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Say something"}],"max_tokens":1000}`)
	if st != 429 {
		t.Fatalf("chat on a hedged model, credits for one attempt: %d %v", st, b)
	}
	st, b, _ = call(t, "POST", g.base+"/completions", g.key, `{"model":"gpt-4o-mini","prompt":"Say something","max_tokens":1000}`)
	if st != 429 {
		t.Fatalf("completion on a hedged model, credits for one attempt: %d %v (chat was refused)", st, b)
	}
}

// 11. A non-streamed answer whose upstream reports no usage is free: the
// handler notes the zero usage as seen, so price never estimates it (a
// stream would have been estimated from its delivered text). Here a
// Responses-speaking upstream (native_formats on an OpenAI-compatible
// server) answers without a usage object.
func TestReviewNonStreamWithoutUsageIsBilled(t *testing.T) {
	t.Parallel()
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"id":"resp_nousage1","object":"response","created_at":1,"status":"completed","model":"m","output":[{"id":"msg_1","type":"message","status":"completed","role":"assistant","content":[{"type":"output_text","text":"`+strings.Repeat("word ", 200)+`","annotations":[]}]}],"usage":null}`)
	}))
	t.Cleanup(up.Close)
	g := newGateway(t, gwOptions{mutate: func(c *config.Config) {
		c.Providers = append(c.Providers, config.Provider{Name: "vllm", Type: "openai", BaseURL: up.URL + "/v1", APIKey: "k", NativeFormats: []string{"responses"}})
		c.Models = append(c.Models, config.Model{Name: "nousage", Deployments: []config.Deployment{{Provider: "vllm", Model: "m", InputPrice: "1000", OutputPrice: "2000"}}})
	}})
	reviewTopUp(t, g, 100*billing.NanoPerUSD)
	r := reviewPost(t, g, g.key, "/v1/responses", []byte(`{"model":"nousage","input":"Say 200 words","store":false,"max_output_tokens":1000}`))
	if r.StatusCode != 200 {
		t.Fatalf("%d %s", r.StatusCode, r.body)
	}
	rec := g.usageFor(r.Header.Get("x-request-id"))
	if rec.CostNano == 0 || rec.CompletionTokens == 0 {
		t.Fatalf("a 200-word answer recorded as free: %+v", rec)
	}
}

// 12. POST /v1/responses/input_tokens skips admission: no RPM, TPM or
// concurrency limit and no model scope, while it reads the whole stored
// conversation (up to 1000 turns) and runs the tokenizer over it.
func TestReviewInputTokensIsRateLimited(t *testing.T) {
	t.Parallel()
	g := newRespGateway(t)
	k, _, err := g.app.Keys.Create(context.Background(), keys.CreateParams{Name: "rpm1", RPM: 1, AllowedModels: []string{"claude-test"}})
	if err != nil {
		t.Fatal(err)
	}
	// The same limit refuses the second create.
	ck, _, err := g.app.Keys.Create(context.Background(), keys.CreateParams{Name: "rpm1-control", RPM: 1})
	if err != nil {
		t.Fatal(err)
	}
	create := []byte(`{"model":"claude-test","input":"hi","store":false}`)
	if a, b := reviewPost(t, g.gateway, ck, "/v1/responses", create).StatusCode, reviewPost(t, g.gateway, ck, "/v1/responses", create).StatusCode; a != 200 || b != 429 {
		t.Fatalf("control: two creates at 1 RPM: %d %d", a, b)
	}
	body := []byte(`{"model":"gpt-4o-mini","input":"count me"}`)
	var statuses []int
	for range 3 {
		statuses = append(statuses, reviewPost(t, g.gateway, k, "/v1/responses/input_tokens", body).StatusCode)
	}
	if statuses[1] != 429 && statuses[2] != 429 && statuses[0] != 403 {
		t.Fatalf("a key limited to 1 RPM and to claude-test counted gpt-4o-mini tokens 3 times: %v", statuses)
	}
}

// 13. x-xroute-dropped-tools says which built-in tools were left out; it
// is set before routing, so a native deployment that kept web_search
// answers that it dropped it.
func TestReviewDroppedToolsHeaderOnNative(t *testing.T) {
	t.Parallel()
	g := newRespGateway(t)
	r := reviewPost(t, g.gateway, g.key, "/v1/responses", []byte(`{"model":"gpt-4o-mini","input":"hi","store":false,"tools":[{"type":"web_search"}]}`))
	if r.StatusCode != 200 || r.Header.Get("x-xroute-provider") != "primary" {
		t.Fatalf("%d %v %s", r.StatusCode, r.Header, r.body)
	}
	if !bytes.Contains(g.primary.last(t, "/v1/responses"), []byte(`"web_search"`)) {
		t.Fatal("native body lost web_search")
	}
	if h := r.Header.Get("x-xroute-dropped-tools"); h != "" {
		t.Fatalf("native deployment kept web_search, header says dropped: %q", h)
	}
}

// 14. A native stream that breaks: the live API's error event carries a
// nested "error" object, on which openai-go (and the other SDKs) raise;
// xroute does not relay that event but writes its own, without the nested
// object and with sequence_number 0, and no response.failed. Straight to
// the upstream the SDK reports the failure; through xroute the same
// stream ends with Err() == nil and no terminal event: a silently
// truncated answer.
func TestReviewNativeStreamErrorReachesSDK(t *testing.T) {
	t.Parallel()
	g := newRespGateway(t)
	ctx := context.Background()
	direct := httptest.NewServer(mock.New(mock.Config{APIKey: providerKey}))
	t.Cleanup(direct.Close)
	dc := official.NewClient(option.WithBaseURL(direct.URL+"/v1/"), option.WithAPIKey(providerKey), option.WithMaxRetries(0))
	p := responses.ResponseNewParams{Model: "gpt-4o-mini", Input: textInput("tell me #mock:stream-error"), Store: official.Bool(false)}
	if s := streamResponse(ctx, &dc, p); s.err == nil {
		t.Fatalf("control: the SDK does not raise on the upstream's error event: %v", s.types)
	}
	s := streamResponse(ctx, officialClient(g.gateway, g.key), p)
	last := s.events[len(s.events)-1]
	if s.err == nil && last.Type != "response.failed" {
		t.Errorf("through xroute the SDK sees a clean end (last event %q, no error)", last.Type)
	}
	for i := 1; i < len(s.events); i++ {
		if s.events[i].SequenceNumber <= s.events[i-1].SequenceNumber {
			t.Errorf("event %d (%s) has sequence_number %d after %d", i, s.events[i].Type, s.events[i].SequenceNumber, s.events[i-1].SequenceNumber)
		}
	}
}

// 15. previous_response_id is resolved (one recursive read of up to 1000
// stored turns, each up to max_body_bytes, then their translation) before
// the model lookup, the key's model scope and its rate and concurrency
// limits: a key over its RPM, or not allowed the model, still makes the
// gateway read the whole chain on every request. The order is visible in
// the answer: such a key gets previous_response_not_found, not 429/403.
func TestReviewConversationLoadedBeforeAdmission(t *testing.T) {
	t.Parallel()
	g := newRespGateway(t)
	ctx := context.Background()
	k, _, err := g.app.Keys.Create(ctx, keys.CreateParams{Name: "rpm1", RPM: 1, AllowedModels: []string{"claude-test"}})
	if err != nil {
		t.Fatal(err)
	}
	if r := reviewPost(t, g.gateway, k, "/v1/responses", []byte(`{"model":"claude-test","input":"hi","store":false}`)); r.StatusCode != 200 {
		t.Fatalf("first request: %d %s", r.StatusCode, r.body)
	}
	for name, body := range map[string]string{
		"over its RPM":      `{"model":"claude-test","input":"hi","previous_response_id":"resp_doesnotexist"}`,
		"model not allowed": `{"model":"gpt-4o-mini","input":"hi","previous_response_id":"resp_doesnotexist"}`,
		"unknown model":     `{"model":"no-such-model","input":"hi","previous_response_id":"resp_doesnotexist"}`,
	} {
		r := reviewPost(t, g.gateway, k, "/v1/responses", []byte(body))
		if strings.Contains(r.body, "previous_response_not_found") {
			t.Errorf("%s: the stored conversation was read before admission refused the request: %d %s", name, r.StatusCode, r.body)
		}
	}
}
