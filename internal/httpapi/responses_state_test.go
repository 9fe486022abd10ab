package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"

	official "github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/responses"
	"github.com/tidwall/sjson"

	"github.com/xroute/xroute/billing"
	"github.com/xroute/xroute/config"
	"github.com/xroute/xroute/keys"
	"github.com/xroute/xroute/loadtest/mock"
)

// TestResponsesPreviousResponseAcrossFailover continues a conversation
// that a native OpenAI deployment started on an Anthropic deployment (the
// first one fails), and back: xroute rebuilds it from its own store.
func TestResponsesPreviousResponseAcrossFailover(t *testing.T) {
	t.Parallel()
	g := newRespGateway(t)
	ctx := context.Background()
	c := officialClient(g.gateway, g.key)
	var raw *http.Response
	first, err := c.Responses.New(ctx, responses.ResponseNewParams{Model: "failover-test", Input: textInput("My name is Ada. Remember it.")}, option.WithResponseInto(&raw))
	if err != nil {
		t.Fatal(err)
	}
	if raw.Header.Get("x-xroute-provider") != "primary" {
		t.Fatalf("first turn served by %s", raw.Header.Get("x-xroute-provider"))
	}
	// The native upstream got the caller's Responses body.
	if b := g.primary.last(t, "/v1/responses"); !bytes.Contains(b, []byte("My name is Ada")) {
		t.Fatalf("native body: %s", b)
	}
	// The OpenAI deployment is overloaded now: every request gets a 503.
	g.gateway.primary.SetConfig(mock.Config{APIKey: providerKey, FailRate503: 1})
	second, err := c.Responses.New(ctx, responses.ResponseNewParams{
		Model: "failover-test", PreviousResponseID: official.String(first.ID),
		Input: textInput("What is my name?"),
	}, option.WithResponseInto(&raw))
	g.gateway.primary.SetConfig(mock.Config{APIKey: providerKey})
	if err != nil {
		t.Fatal(err)
	}
	if raw.Header.Get("x-xroute-provider") != "claude" || raw.Header.Get("x-xroute-attempts") != "2" {
		t.Fatalf("second turn: provider %s attempts %s", raw.Header.Get("x-xroute-provider"), raw.Header.Get("x-xroute-attempts"))
	}
	if second.PreviousResponseID != first.ID || second.OutputText() == "" {
		t.Fatalf("second: %s", second.RawJSON())
	}
	// Anthropic saw the whole conversation: turn one's question and answer.
	var sent struct {
		Messages []struct {
			Role    string `json:"role"`
			Content []struct {
				Text string `json:"text"`
			} `json:"content"`
		} `json:"messages"`
	}
	if err := json.Unmarshal(g.claude.last(t, "/v1/messages"), &sent); err != nil {
		t.Fatal(err)
	}
	var convo []string
	for _, m := range sent.Messages {
		for _, b := range m.Content {
			convo = append(convo, m.Role+": "+b.Text)
		}
	}
	if len(convo) != 3 || !strings.Contains(convo[0], "My name is Ada") || convo[1] != "assistant: "+first.OutputText() || !strings.Contains(convo[2], "What is my name?") {
		t.Fatalf("conversation sent to Anthropic: %q", convo)
	}
	// Back on the native deployment, the stored chain (native turn, then
	// translated turn) is inlined: the upstream never saw turn two.
	third, err := c.Responses.New(ctx, responses.ResponseNewParams{Model: "gpt-4o-mini", PreviousResponseID: official.String(second.ID), Input: textInput("And again?")})
	if err != nil {
		t.Fatal(err)
	}
	nb := g.primary.last(t, "/v1/responses")
	var native struct {
		Input              []json.RawMessage `json:"input"`
		PreviousResponseID *string           `json:"previous_response_id"`
	}
	if err := json.Unmarshal(nb, &native); err != nil {
		t.Fatal(err)
	}
	if native.PreviousResponseID != nil || len(native.Input) != 5 || !bytes.Contains(nb, []byte(second.OutputText())) {
		t.Fatalf("native body of turn three (want 5 items, no previous_response_id): %s", nb)
	}
	if third.PreviousResponseID != second.ID {
		t.Fatalf("third: %s", third.RawJSON())
	}
}

func TestResponsesStoredRoutes(t *testing.T) {
	t.Parallel()
	g := newRespGateway(t)
	ctx := context.Background()
	c := officialClient(g.gateway, g.key)
	for _, m := range respModels {
		t.Run(m.model, func(t *testing.T) {
			resp, err := c.Responses.New(ctx, responses.ResponseNewParams{Model: m.model, Input: responses.ResponseNewParamsInputUnion{OfInputItemList: responses.ResponseInputParam{
				responses.ResponseInputItemParamOfMessage("You are terse.", responses.EasyInputMessageRoleDeveloper),
				responses.ResponseInputItemParamOfMessage("first question", responses.EasyInputMessageRoleUser),
				responses.ResponseInputItemParamOfMessage("second question", responses.EasyInputMessageRoleUser),
			}}})
			if err != nil {
				t.Fatal(err)
			}
			got, err := c.Responses.Get(ctx, resp.ID, responses.ResponseGetParams{})
			if err != nil {
				t.Fatal(err)
			}
			if got.ID != resp.ID || got.OutputText() != resp.OutputText() || got.Usage.TotalTokens != resp.Usage.TotalTokens {
				t.Fatalf("retrieved %s\nwant %s", got.RawJSON(), resp.RawJSON())
			}
			// input_items: newest first by default, paginated by item id.
			page, err := c.Responses.InputItems.List(ctx, resp.ID, responses.InputItemListParams{Limit: official.Int(2)})
			if err != nil {
				t.Fatal(err)
			}
			if len(page.Data) != 2 || !page.HasMore || page.Data[0].ID == "" || page.Data[0].AsMessage().Content[0].Text != "second question" {
				t.Fatalf("page 1: %s", page.RawJSON())
			}
			page2, err := c.Responses.InputItems.List(ctx, resp.ID, responses.InputItemListParams{Limit: official.Int(2), After: official.String(page.Data[1].ID)})
			if err != nil {
				t.Fatal(err)
			}
			if len(page2.Data) != 1 || page2.HasMore || page2.Data[0].Role != "developer" {
				t.Fatalf("page 2: %s", page2.RawJSON())
			}
			// Another account's key: a 404, as for an id that never existed.
			other := g.otherAccountKey(t)
			var apiErr *official.Error
			if _, err := officialClient(g.gateway, other).Responses.Get(ctx, resp.ID, responses.ResponseGetParams{}); !errors.As(err, &apiErr) || apiErr.StatusCode != 404 {
				t.Fatalf("other account's get: %v", err)
			}
			if err := officialClient(g.gateway, other).Responses.Delete(ctx, resp.ID); !errors.As(err, &apiErr) || apiErr.StatusCode != 404 {
				t.Fatalf("other account's delete: %v", err)
			}
			if _, err := officialClient(g.gateway, other).Responses.New(ctx, responses.ResponseNewParams{Model: m.model, Input: textInput("hi"), PreviousResponseID: official.String(resp.ID)}); !errors.As(err, &apiErr) || apiErr.StatusCode != 400 || apiErr.Code != "previous_response_not_found" {
				t.Fatalf("other account's previous_response_id: %v", err)
			}
			if err := c.Responses.Delete(ctx, resp.ID); err != nil {
				t.Fatal(err)
			}
			if _, err := c.Responses.Get(ctx, resp.ID, responses.ResponseGetParams{}); !errors.As(err, &apiErr) || apiErr.StatusCode != 404 {
				t.Fatalf("get after delete: %v", err)
			}
			// store: false is answered and never kept.
			unstored, err := c.Responses.New(ctx, responses.ResponseNewParams{Model: m.model, Input: textInput("hi"), Store: official.Bool(false)})
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(unstored.RawJSON(), `"store":false`) {
				t.Fatalf("store false not echoed: %s", unstored.RawJSON())
			}
			if _, err := c.Responses.Get(ctx, unstored.ID, responses.ResponseGetParams{}); !errors.As(err, &apiErr) || apiErr.StatusCode != 404 {
				t.Fatalf("store:false response was kept: %v", err)
			}
		})
	}
}

// TestResponsesCodexShapedRequest replays a request shaped like Codex
// CLI's (developer messages, reasoning items with encrypted content,
// function calls and outputs, an image tool output, namespaced and custom
// tools, web_search, store false, stream) to a native and to translated
// deployments, and checks what the client needs: the final event with
// usage, and the calls mapped back to the caller's own tools.
func TestResponsesCodexShapedRequest(t *testing.T) {
	t.Parallel()
	g := newRespGateway(t)
	body, err := os.ReadFile("../ingress/responses/testdata/req_codex.json")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range respModels {
		t.Run(m.model, func(t *testing.T) {
			b, _ := sjson.SetBytes(body, "model", m.model)
			s := streamRaw(t, g.gateway, b)
			if s.types[0] != "response.created" || s.types[len(s.types)-1] != "response.completed" {
				t.Fatalf("events %v", s.types)
			}
			fin := s.final()
			if fin.Usage.InputTokens == 0 || fin.Status != "completed" || len(fin.Output) == 0 {
				t.Fatalf("final: %s", fin.RawJSON())
			}
			if m.provider != "primary" && s.header.Get("x-xroute-dropped-tools") != "web_search" {
				t.Fatalf("dropped tools header: %v", s.header)
			}
		})
	}
	// Only a namespaced function: the call comes back with its namespace.
	for _, m := range respModels[1:] {
		t.Run(m.model+"/namespace", func(t *testing.T) {
			s := streamRaw(t, g.gateway, []byte(`{"model":"`+m.model+`","stream":true,"store":false,"input":"close it","tool_choice":"required",
				"tools":[{"type":"namespace","name":"multi_agent_v1","description":"agents","tools":[{"type":"function","name":"close_agent","parameters":{"type":"object","properties":{"id":{"type":"string"}},"required":["id"]}}]}]}`))
			var found bool
			for _, it := range s.final().Output {
				if it.Type == "function_call" {
					fc := it.AsFunctionCall()
					found = fc.Name == "close_agent" && fc.Namespace == "multi_agent_v1"
				}
			}
			if !found {
				t.Fatalf("namespaced call: %s", s.final().RawJSON())
			}
		})
		t.Run(m.model+"/custom", func(t *testing.T) {
			s := streamRaw(t, g.gateway, []byte(`{"model":"`+m.model+`","stream":true,"store":false,"input":"patch it","tool_choice":"required",
				"tools":[{"type":"custom","name":"apply_patch","description":"Apply a patch"}]}`))
			var call map[string]any
			for _, it := range s.final().Output {
				if it.Type == "custom_tool_call" {
					json.Unmarshal([]byte(it.RawJSON()), &call)
				}
			}
			if call["name"] != "apply_patch" || call["call_id"] == "" || call["input"] == nil {
				t.Fatalf("custom tool call: %s", s.final().RawJSON())
			}
			if !slices.Contains(s.types, "response.custom_tool_call_input.done") {
				t.Fatalf("events %v", s.types)
			}
		})
	}
}

// streamRaw posts a raw Responses body and decodes its stream with the
// official SDK's event types.
func streamRaw(t *testing.T, g *gateway, body []byte) rawStream {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, g.base+"/responses", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+g.key)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "text/event-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("status %d: %s", resp.StatusCode, b)
	}
	out := rawStream{header: resp.Header}
	all, _ := io.ReadAll(resp.Body)
	for _, ev := range strings.Split(strings.TrimSpace(string(all)), "\n\n") {
		_, data, ok := strings.Cut(ev, "data: ")
		if !ok {
			continue
		}
		var e responses.ResponseStreamEventUnion
		if err := json.Unmarshal([]byte(data), &e); err != nil {
			t.Fatalf("event %q: %v", ev, err)
		}
		out.types = append(out.types, e.Type)
		out.events = append(out.events, e)
	}
	if len(out.types) == 0 {
		t.Fatalf("empty stream: %s", all)
	}
	return out
}

// TestResponsesAreMeteredLikeChat: a Responses call (streamed or not,
// native or translated) and a legacy completion are held, debited and
// recorded like a chat call, and refused like one when the credits cannot
// cover their worst case.
func TestResponsesAreMeteredLikeChat(t *testing.T) {
	t.Parallel()
	g := newGateway(t, gwOptions{mutate: func(c *config.Config) {
		priced(c)
		c.Providers[0].NativeFormats = []string{"responses", "completions"}
	}})
	ctx := context.Background()
	// Nothing on the account yet: refused before any upstream call.
	before := g.primary.Stats().Requests
	for _, tc := range []struct{ path, body string }{
		{"/responses", `{"model":"gpt-4o-mini","input":"hi","max_output_tokens":64}`},
		{"/responses", `{"model":"gpt-4o-mini","input":"hi","max_output_tokens":64,"stream":true}`},
		{"/completions", `{"model":"gpt-4o-mini","prompt":"hi","max_tokens":64}`},
	} {
		st, b, h := call(t, "POST", g.base+tc.path, g.key, tc.body)
		if st != 429 || errCode(b) != "insufficient_quota" || h.Get("x-should-retry") != "false" {
			t.Fatalf("%s with no credits: %d %v", tc.path, st, b)
		}
	}
	if g.primary.Stats().Requests != before {
		t.Fatal("a refused request reached the upstream")
	}
	if _, _, err := g.app.Ledger.TopUp(ctx, keys.DefaultAccountID, 100*billing.NanoPerUSD, "t1", "test"); err != nil {
		t.Fatal(err)
	}
	c := officialClient(g, g.key)
	var raw *http.Response
	resp, err := c.Responses.New(ctx, responses.ResponseNewParams{Model: "gpt-4o-mini", Input: textInput("hello"), MaxOutputTokens: official.Int(64)}, option.WithResponseInto(&raw))
	if err != nil {
		t.Fatal(err)
	}
	rec := g.usageFor(raw.Header.Get("x-request-id"))
	want := int64(resp.Usage.InputTokens)*1000*1000 + int64(resp.Usage.OutputTokens)*2000*1000 // nano-USD at 1000/2000 USD per M
	if rec.CostNano != want || rec.Estimated {
		t.Fatalf("cost %d (estimated %v), want %d for %+v", rec.CostNano, rec.Estimated, want, resp.Usage)
	}
	s := streamResponse(ctx, c, responses.ResponseNewParams{Model: "gpt-4o-mini", Input: textInput("hello"), MaxOutputTokens: official.Int(64)}, option.WithResponseInto(&raw))
	s.checkOrder(t)
	u := s.final().Usage
	rec = g.usageFor(raw.Header.Get("x-request-id"))
	if rec.CostNano != int64(u.InputTokens)*1000*1000+int64(u.OutputTokens)*2000*1000 || !rec.Stream {
		t.Fatalf("stream record %+v for usage %+v", rec, u)
	}
	bal, reserved, _, err := g.app.Ledger.Balance(ctx, keys.DefaultAccountID)
	if err != nil || reserved != 0 || bal >= 100*billing.NanoPerUSD {
		t.Fatalf("balance %d reserved %d: %v", bal, reserved, err)
	}
}
