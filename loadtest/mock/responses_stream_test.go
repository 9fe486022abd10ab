package mock

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/xroute/xroute/internal/testutil"

	openai "github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/responses"
)

func TestResponsesStreamEvents(t *testing.T) {
	t.Parallel()
	msg := []string{"response.output_item.added", "response.content_part.added", "response.output_text.delta+",
		"response.output_text.done", "response.content_part.done", "response.output_item.done"}
	call := []string{"response.output_item.added", "response.function_call_arguments.delta+",
		"response.function_call_arguments.done", "response.output_item.done"}
	reasoning := []string{"response.output_item.added", "response.reasoning_summary_part.added", "response.reasoning_summary_text.delta+",
		"response.reasoning_summary_text.done", "response.reasoning_summary_part.done", "response.output_item.done"}
	join := func(parts ...[]string) []string {
		out := []string{"response.created", "response.in_progress"}
		for _, p := range parts {
			out = append(out, p...)
		}
		return out
	}
	tools := `,"tools":[{"type":"function","name":"get_weather","parameters":` + mustJSON(t, weatherParams) +
		`},{"type":"function","name":"get_time","parameters":` + mustJSON(t, timeParams) + `}]`
	cases := []struct {
		name       string
		body       string
		want       []string
		wantDeltas int // text deltas, 0 = not checked
		wantStatus string
	}{
		{"text", `"model":"m","input":"tell me"`, join(msg, []string{"response.completed"}), 4, "completed"},
		{"cut by max_output_tokens", `"model":"m","input":"tell me #mock:tokens=40","max_output_tokens":16`, join(msg, []string{"response.incomplete"}), 8, "incomplete"},
		{"tool calls", `"model":"m","input":"weather?"` + tools, join(call, call, []string{"response.completed"}), 0, "completed"},
		{"reasoning with summary", `"model":"gpt-5-mini","input":"think","reasoning":{"effort":"low","summary":"auto"},"include":["reasoning.encrypted_content"]`,
			join(reasoning, msg, []string{"response.completed"}), 4, "completed"},
		{"reasoning without summary", `"model":"o4-mini","input":"think"`,
			join([]string{"response.output_item.added", "response.output_item.done"}, msg, []string{"response.completed"}), 4, "completed"},
		{"reasoning then tool call", `"model":"m","input":"weather?","reasoning":{"effort":"minimal","summary":"concise"},"parallel_tool_calls":false` + tools,
			join(reasoning, call, []string{"response.completed"}), 0, "completed"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv, base := startServer(t, Config{CompletionTokens: 7, ChunkTokens: 2})
			resp := post(t, context.Background(), base+"/responses", `{"stream":true,`+tc.body+`}`, map[string]string{"Accept": "application/json"})
			defer resp.Body.Close()
			if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" || resp.Header.Get("Cache-Control") != "no-cache" ||
				resp.Header.Get("x-ratelimit-limit-requests") == "" || !strings.HasPrefix(resp.Header.Get("x-request-id"), "req_") {
				t.Fatalf("status %d headers %v", resp.StatusCode, resp.Header)
			}
			events, err := readEvents(t, resp.Body)
			if err != nil {
				t.Fatal(err)
			}
			var types []string
			var respID string
			text, summary, args := "", "", map[string]string{}
			deltas := 0
			for i, ev := range events {
				if strings.Contains(ev.data, "[DONE]") {
					t.Fatal("a Responses stream has no [DONE]")
				}
				u := checkEvent(t, ev)
				if u.SequenceNumber != int64(i) || !u.JSON.SequenceNumber.Valid() {
					t.Fatalf("event %d (%s): sequence_number %s", i, ev.name, u.JSON.SequenceNumber.Raw())
				}
				types = append(types, ev.name)
				switch ev.name {
				case "response.created", "response.in_progress":
					if u.Response.Status != "in_progress" || len(u.Response.Output) != 0 || u.Response.JSON.Usage.Raw() != "null" {
						t.Fatalf("%s: %s", ev.name, ev.data)
					}
					if respID == "" {
						respID = u.Response.ID
					}
				case "response.output_item.added":
					switch it := u.Item; it.Type {
					case "message":
						if it.Status != "in_progress" || len(it.Content) != 0 {
							t.Fatalf("added: %s", ev.data)
						}
					case "function_call":
						if it.Status != "in_progress" || it.Arguments.OfString != "" || it.Name == "" || it.CallID == "" {
							t.Fatalf("added: %s", ev.data)
						}
					case "reasoning":
						if len(it.Summary) != 0 || it.EncryptedContent != "" {
							t.Fatalf("added: %s", ev.data)
						}
					}
				case "response.content_part.added":
					if u.Part.Type != "output_text" || u.Part.Text != "" {
						t.Fatalf("%s", ev.data)
					}
				case "response.output_text.delta":
					if u.JSON.Logprobs.Raw() != "[]" || u.ContentIndex != 0 {
						t.Fatalf("%s", ev.data)
					}
					text += u.Delta
					deltas++
				case "response.output_text.done":
					if u.Text != text {
						t.Fatalf("done %q != deltas %q", u.Text, text)
					}
				case "response.content_part.done":
					if u.Part.Text != text {
						t.Fatalf("%s", ev.data)
					}
				case "response.reasoning_summary_text.delta":
					summary += u.Delta
				case "response.reasoning_summary_text.done", "response.reasoning_summary_part.done":
					if got := u.Text + u.Part.Text; got != summary {
						t.Fatalf("%s: %q != deltas %q", ev.name, got, summary)
					}
				case "response.function_call_arguments.delta":
					args[u.ItemID] += u.Delta
				case "response.function_call_arguments.done":
					if u.Arguments != args[u.ItemID] || u.Arguments == "" || !strings.Contains(ev.data, `"name":`) {
						t.Fatalf("%s", ev.data)
					}
				case "response.output_item.done":
					if it := u.Item; it.Type != "reasoning" && string(it.Status) != map[bool]string{true: "incomplete", false: "completed"}[tc.wantStatus == "incomplete"] {
						t.Fatalf("done: %s", ev.data)
					}
				case "response.completed", "response.incomplete":
					r := u.Response
					if string(r.Status) != tc.wantStatus || r.ID != respID || r.OutputText() != text || r.Usage.TotalTokens == 0 {
						t.Fatalf("final: %s", ev.data)
					}
					// The same answer as without streaming.
					body := readAll(t, post(t, context.Background(), base+"/responses", `{`+tc.body+`}`, nil))
					var full responses.Response
					if err := json.Unmarshal(body, &full); err != nil {
						t.Fatal(err)
					}
					if full.OutputText() != r.OutputText() || full.Usage.RawJSON() != r.Usage.RawJSON() || len(full.Output) != len(r.Output) {
						t.Fatalf("stream %s\n!= non-stream %s", ev.data, body)
					}
				}
			}
			if got := collapse(types); strings.Join(got, " ") != strings.Join(tc.want, " ") {
				t.Fatalf("events\n got %v\nwant %v", got, tc.want)
			}
			if tc.wantDeltas > 0 && deltas != tc.wantDeltas {
				t.Fatalf("%d text deltas, want %d", deltas, tc.wantDeltas)
			}
			testutil.Eventually(t, "stream completed", func() bool { return srv.Stats().Completed == 2 })
			if s := srv.Stats(); s.Streams != 1 || s.Chat != 2 || s.Canceled != 0 || s.CompletionTokens%2 != 0 {
				t.Fatalf("stats %+v", s)
			}
		})
	}
}

func TestResponsesStreamSDK(t *testing.T) {
	t.Parallel()
	srv, base := startServer(t, Config{ChunkTokens: 2, TokensPerSec: 5000})
	oc := officialClient(base, "")
	params := responses.ResponseNewParams{Model: "m", Input: userInput("stream please"), MaxOutputTokens: openai.Int(16)}
	r := streamToResponse(t, oc, params)
	full, err := oc.Responses.New(context.Background(), params)
	if err != nil {
		t.Fatal(err)
	}
	if r.OutputText() != full.OutputText() || r.Usage.OutputTokens != 16 || r.Status != "completed" {
		t.Fatalf("stream %s\nnon-stream %s", r.RawJSON(), full.RawJSON())
	}
	testutil.Eventually(t, "completed", func() bool { return srv.Stats().Completed == 2 })
	if s := srv.Stats(); s.Streams != 1 || s.CompletionTokens != 32 || s.PromptTokens != 2*(3+3+2) {
		t.Fatalf("stats %+v", s)
	}
}
