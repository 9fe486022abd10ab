package mock

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/xroute/xroute/internal/testutil"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
)

// TestAutoPromptCache: OpenAI's automatic caching in chat completions and
// the Responses API, plain and streamed. A system prompt (instructions) of
// W words and a user message of 2 words are W+11 prompt tokens (3 per
// message, 3 for the reply); a repeat reads the longest cached prefix of
// 1024 + k*128 tokens: for W = 1300 (1311 tokens) that is 1280.
func TestAutoPromptCache(t *testing.T) {
	t.Parallel()
	clk := testutil.NewClock()
	clk.Set(time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC))
	_, base := startServer(t, Config{Clock: clk.Now})
	ctx := context.Background()
	long := strings.TrimSpace(strings.Repeat("stable ", 1300))
	short := strings.TrimSpace(strings.Repeat("stable ", 1000))

	chat := func(key, sys, user, pck string, stream bool) (prompt, cached int64) {
		t.Helper()
		body := map[string]any{"model": "gpt-test", "messages": []map[string]string{{"role": "system", "content": sys}, {"role": "user", "content": user}}}
		switch pck {
		case "":
		case "tools": // the same messages with a tool offered
			body["tools"] = []any{map[string]any{"type": "function", "function": map[string]any{"name": "ls", "parameters": map[string]any{"type": "object"}}}}
			body["tool_choice"] = "none"
		default:
			body["prompt_cache_key"] = pck
		}
		if !stream {
			c, err := officialClient(base, key).Chat.Completions.New(ctx, openai.ChatCompletionNewParams{}, withBody(t, body))
			if err != nil {
				t.Fatal(err)
			}
			return c.Usage.PromptTokens, c.Usage.PromptTokensDetails.CachedTokens
		}
		body["stream"], body["stream_options"] = true, map[string]bool{"include_usage": true}
		st := officialClient(base, key).Chat.Completions.NewStreaming(ctx, openai.ChatCompletionNewParams{}, withBody(t, body))
		defer st.Close()
		var acc openai.ChatCompletionAccumulator
		for st.Next() {
			acc.AddChunk(st.Current())
		}
		if err := st.Err(); err != nil {
			t.Fatal(err)
		}
		return acc.Usage.PromptTokens, acc.Usage.PromptTokensDetails.CachedTokens
	}
	responses := func(key, instr, user, pck string, stream bool) (prompt, cached int64) {
		t.Helper()
		body := map[string]any{"model": "gpt-test", "instructions": instr, "input": user, "stream": stream}
		switch pck {
		case "":
		case "tools": // the same input with a tool offered
			body["tools"] = []any{map[string]any{"type": "function", "name": "ls", "parameters": map[string]any{"type": "object"}}}
			body["tool_choice"] = "none"
		default:
			body["prompt_cache_key"] = pck
		}
		resp := post(t, ctx, base+"/responses", mustJSON(t, body), map[string]string{"Authorization": "Bearer " + key})
		defer resp.Body.Close()
		var r struct {
			Usage struct {
				Input   int64 `json:"input_tokens"`
				Details struct {
					Cached int64 `json:"cached_tokens"`
				} `json:"input_tokens_details"`
			} `json:"usage"`
		}
		raw := readAll(t, resp)
		if stream {
			// the last event, response.completed, carries the usage
			evs := strings.Split(strings.TrimSpace(string(raw)), "\n\n")
			_, data, _ := strings.Cut(evs[len(evs)-1], "data: ")
			var ev struct {
				Response json.RawMessage `json:"response"`
			}
			if err := json.Unmarshal([]byte(data), &ev); err != nil {
				t.Fatalf("%v: %s", err, data)
			}
			raw = ev.Response
		}
		if err := json.Unmarshal(raw, &r); err != nil {
			t.Fatalf("%v: %s", err, raw)
		}
		return r.Usage.Input, r.Usage.Details.Cached
	}

	for _, api := range []struct {
		name string
		// pck is the prompt_cache_key, or "tools": offer a tool instead
		call func(key, sys, user, pck string, stream bool) (int64, int64)
	}{{"chat", chat}, {"responses", responses}} {
		for _, stream := range []bool{false, true} {
			name := api.name
			if stream {
				name += " stream"
			}
			t.Run(name, func(t *testing.T) {
				key := "sk-" + strings.ReplaceAll(name, " ", "-") // a cache of its own
				steps := []struct {
					name               string
					key, sys, user     string
					pck                string
					advance            time.Duration
					wantPrompt, wantCa int64
				}{
					{"first call: nothing cached", key, long, "hi there", "", 0, 1311, 0},
					{"a repeat reads the prefix in 128-token steps", key, long, "hi there", "", time.Minute, 1311, 1280},
					{"a new question on the same prefix reads it too", key, long, "what now", "", 0, 1311, 1280},
					{"another API key does not share it", key + "-other", long, "hi there", "", 0, 1311, 0},
					{"another prompt_cache_key does not share it", key, long, "hi there", "session-a", 0, 1311, 0},
					{"that key's own repeat reads it", key, long, "hi there", "session-a", 0, 1311, 1280},
					{"below 1024 tokens: never cached", key, short, "hi there", "", 0, 1011, 0},
					{"and not on a repeat", key, short, "hi there", "", 0, 1011, 0},
					{"tools differ: another prefix", key, long, "hi there", "tools", 0, 1311, 0},
					{"expired after 5 minutes without use", key, long, "hi there", "", 5*time.Minute + time.Second, 1311, 0},
					{"written again", key, long, "hi there", "", 0, 1311, 1280},
				}
				for _, st := range steps {
					clk.Advance(st.advance)
					prompt, cached := api.call(st.key, st.sys, st.user, st.pck, stream)
					if prompt != st.wantPrompt || cached != st.wantCa {
						t.Fatalf("%s: prompt %d cached %d, want %d and %d", st.name, prompt, cached, st.wantPrompt, st.wantCa)
					}
				}
			})
		}
	}
}

// withBody sends body as the request's JSON instead of the params.
func withBody(t *testing.T, body any) option.RequestOption {
	t.Helper()
	return option.WithRequestBody("application/json", []byte(mustJSON(t, body)))
}
