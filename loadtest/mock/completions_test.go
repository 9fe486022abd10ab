package mock

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	openai "github.com/openai/openai-go/v3"

	"github.com/xroute/xroute/internal/testutil"
)

// streamCompletion streams params with the official SDK and returns the
// texts and finish reasons by choice index, the tokens of the logprobs, and
// the usage when one came.
func streamCompletion(t *testing.T, oc *openai.Client, params openai.CompletionNewParams) (texts, finishes map[int64]string, lpTokens map[int64][]string, usage *openai.CompletionUsage) {
	t.Helper()
	texts, finishes, lpTokens = map[int64]string{}, map[int64]string{}, map[int64][]string{}
	st := oc.Completions.NewStreaming(context.Background(), params)
	defer st.Close()
	var id string
	for st.Next() {
		c := st.Current()
		if id == "" {
			id = c.ID
		}
		if c.ID != id || c.Object != "text_completion" || !strings.HasPrefix(c.ID, "cmpl-") {
			t.Fatalf("chunk envelope: %s", c.RawJSON())
		}
		if c.JSON.Usage.Valid() {
			u := c.Usage
			usage = &u
		}
		for _, ch := range c.Choices {
			if finishes[ch.Index] != "" {
				t.Fatalf("choice %d continues after its finish: %s", ch.Index, c.RawJSON())
			}
			texts[ch.Index] += ch.Text
			finishes[ch.Index] = string(ch.FinishReason)
			lpTokens[ch.Index] = append(lpTokens[ch.Index], ch.Logprobs.Tokens...)
		}
	}
	if err := st.Err(); err != nil {
		t.Fatal(err)
	}
	return texts, finishes, lpTokens, usage
}

func TestCompletions(t *testing.T) {
	t.Parallel()
	const prompt = "Say this is a test"
	// The default answer is 20 words; max_tokens defaults to 16.
	full := strings.Join(Answer(Seed(prompt), 16, false), "")
	pieces := Answer(Seed(prompt), 16, false)
	stop := pieces[3] + pieces[4]
	cases := []struct {
		name       string
		setup      func(p *openai.CompletionNewParams)
		wantTexts  []string // by choice index; "" = only checked for length
		wantWords  []int
		wantFinish []string
		wantPrompt int64
	}{
		{"default max_tokens", func(p *openai.CompletionNewParams) {}, []string{full}, []int{16}, []string{"length"}, 5},
		{"max_tokens", func(p *openai.CompletionNewParams) { p.MaxTokens = openai.Int(5) }, nil, []int{5}, []string{"length"}, 5},
		{"max_tokens 0 with echo scores the prompt", func(p *openai.CompletionNewParams) {
			p.MaxTokens, p.Echo = openai.Int(0), openai.Bool(true)
		}, []string{prompt}, []int{0}, []string{"length"}, 5},
		{"shorter answer", func(p *openai.CompletionNewParams) {
			p.Prompt.OfString = openai.String(prompt + " #mock:tokens=3")
		}, nil, []int{3}, []string{"stop"}, 6},
		{"stop sequence", func(p *openai.CompletionNewParams) {
			p.Stop = openai.CompletionNewParamsStopUnion{OfStringArray: []string{"never there", stop}}
		}, []string{full[:strings.Index(full, stop)]}, nil, []string{"stop"}, 5},
		{"echo", func(p *openai.CompletionNewParams) { p.Echo = openai.Bool(true) }, []string{prompt + full}, nil, []string{"length"}, 5},
		{"suffix counts as prompt", func(p *openai.CompletionNewParams) { p.Suffix = openai.String("and more") }, []string{full}, nil, []string{"length"}, 7},
		{"n choices of each prompt", func(p *openai.CompletionNewParams) {
			p.Prompt = openai.CompletionNewParamsPromptUnion{OfArrayOfStrings: []string{prompt, "other prompt"}}
			p.N = openai.Int(2)
		}, []string{full, "", "", ""}, []int{16, 16, 16, 16}, []string{"length", "length", "length", "length"}, 7},
		{"token prompts", func(p *openai.CompletionNewParams) {
			p.Prompt = openai.CompletionNewParamsPromptUnion{OfArrayOfTokenArrays: [][]int64{{1, 2, 3}, {4}}}
		}, nil, []int{16, 16}, []string{"length", "length"}, 4},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv, base := startServer(t, Config{CompletionTokens: 20, ChunkTokens: 3})
			oc := officialClient(base, "")
			params := openai.CompletionNewParams{
				Model:  "gpt-3.5-turbo-instruct",
				Prompt: openai.CompletionNewParamsPromptUnion{OfString: openai.String(prompt)},
			}
			tc.setup(&params)
			c, err := oc.Completions.New(context.Background(), params)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(c.ID, "cmpl-") || c.Object != "text_completion" || c.Model != "gpt-3.5-turbo-instruct" || c.Created == 0 {
				t.Fatalf("envelope: %s", c.RawJSON())
			}
			n := max(len(tc.wantTexts), len(tc.wantWords))
			if len(c.Choices) != n {
				t.Fatalf("%d choices: %s", len(c.Choices), c.RawJSON())
			}
			completion := int64(0)
			seen := map[string]bool{}
			for i, ch := range c.Choices {
				if ch.Index != int64(i) || string(ch.FinishReason) != tc.wantFinish[i] || ch.JSON.Logprobs.Raw() != "null" {
					t.Fatalf("choice %d: %s", i, ch.RawJSON())
				}
				if i < len(tc.wantTexts) && tc.wantTexts[i] != "" && ch.Text != tc.wantTexts[i] {
					t.Fatalf("choice %d: %q, want %q", i, ch.Text, tc.wantTexts[i])
				}
				answer := ch.Text
				if params.Echo.Value {
					var ok bool
					if answer, ok = strings.CutPrefix(ch.Text, prompt); !ok {
						t.Fatalf("no echo: %q", ch.Text)
					}
				}
				words := len(strings.Fields(answer))
				if i < len(tc.wantWords) && words != tc.wantWords[i] {
					t.Fatalf("choice %d: %q has %d words, want %d", i, answer, words, tc.wantWords[i])
				}
				if seen[ch.Text] {
					t.Fatalf("choices repeat: %s", c.RawJSON())
				}
				seen[ch.Text] = true
				completion += int64(words)
			}
			u := c.Usage
			if u.PromptTokens != tc.wantPrompt || u.CompletionTokens != completion || u.TotalTokens != u.PromptTokens+u.CompletionTokens {
				t.Fatalf("usage %s, want prompt %d completion %d", u.RawJSON(), tc.wantPrompt, completion)
			}

			// Streamed: the same choices, with a usage chunk when asked.
			params.StreamOptions = openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)}
			texts, finishes, _, usage := streamCompletion(t, oc, params)
			for i, ch := range c.Choices {
				if texts[int64(i)] != ch.Text || finishes[int64(i)] != string(ch.FinishReason) {
					t.Fatalf("stream choice %d: %q %q, want %q %q", i, texts[int64(i)], finishes[int64(i)], ch.Text, ch.FinishReason)
				}
			}
			if usage == nil || usage.TotalTokens != u.TotalTokens {
				t.Fatalf("stream usage %+v, want %s", usage, u.RawJSON())
			}
			testutil.Eventually(t, "completed", func() bool { return srv.Stats().Completed == 2 })
			if s := srv.Stats(); s.Chat != 2 || s.Streams != 1 || s.CompletionTokens != 2*u.CompletionTokens || s.PromptTokens != 2*u.PromptTokens {
				t.Fatalf("stats %+v", s)
			}
		})
	}
}

func TestCompletionsLogprobs(t *testing.T) {
	t.Parallel()
	_, base := startServer(t, Config{CompletionTokens: 6, ChunkTokens: 4})
	oc := officialClient(base, "")
	const prompt = "one  two\nthree"
	for _, k := range []int64{0, 1, 3} {
		t.Run("logprobs="+strconv.FormatInt(k, 10), func(t *testing.T) {
			params := openai.CompletionNewParams{
				Model: "m", Prompt: openai.CompletionNewParamsPromptUnion{OfString: openai.String(prompt)},
				Echo: openai.Bool(true), Logprobs: openai.Int(k),
			}
			c, err := oc.Completions.New(context.Background(), params)
			if err != nil {
				t.Fatal(err)
			}
			ch := c.Choices[0]
			var raw struct {
				Tokens        []string             `json:"tokens"`
				TokenLogprobs []*float64           `json:"token_logprobs"`
				TopLogprobs   []map[string]float64 `json:"top_logprobs"`
				TextOffset    []int                `json:"text_offset"`
			}
			if err := json.Unmarshal([]byte(ch.JSON.Logprobs.Raw()), &raw); err != nil {
				t.Fatal(err)
			}
			if strings.Join(raw.Tokens, "") != ch.Text || len(raw.Tokens) != 3+6 || raw.Tokens[1] != "  two" || raw.Tokens[2] != "\nthree" {
				t.Fatalf("tokens %q for %q", raw.Tokens, ch.Text)
			}
			off := 0
			for i, tok := range raw.Tokens {
				if raw.TextOffset[i] != off {
					t.Fatalf("text_offset %v", raw.TextOffset)
				}
				off += len(tok)
				lp := raw.TokenLogprobs[i]
				if (i == 0) != (lp == nil) || (lp != nil && (*lp >= 0 || *lp < -3)) {
					t.Fatalf("token_logprobs %v", raw.TokenLogprobs)
				}
				switch {
				case k == 0:
					if raw.TopLogprobs != nil {
						t.Fatalf("top_logprobs %v", raw.TopLogprobs)
					}
				case i == 0:
					if raw.TopLogprobs[0] != nil {
						t.Fatalf("top_logprobs[0] %v", raw.TopLogprobs[0])
					}
				default:
					top := raw.TopLogprobs[i]
					if len(top) != int(k) || top[tok] != *lp {
						t.Fatalf("top_logprobs[%d] = %v for %q (%v)", i, top, tok, *lp)
					}
				}
			}

			// Streamed, the logprobs tokens add up to the text too.
			texts, _, lpTokens, _ := streamCompletion(t, oc, params)
			if texts[0] != ch.Text || strings.Join(lpTokens[0], "") != ch.Text {
				t.Fatalf("stream %q / %q, want %q", texts[0], lpTokens[0], ch.Text)
			}
		})
	}
}

func TestCompletionsStreamWire(t *testing.T) {
	t.Parallel()
	for _, includeUsage := range []bool{false, true} {
		t.Run("include_usage="+strconv.FormatBool(includeUsage), func(t *testing.T) {
			_, base := startServer(t, Config{CompletionTokens: 5, ChunkTokens: 2})
			body := `{"model":"m","prompt":"tell me","stream":true`
			if includeUsage {
				body += `,"stream_options":{"include_usage":true}`
			}
			resp := post(t, context.Background(), base+"/completions", body+"}", nil)
			defer resp.Body.Close()
			if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" || resp.Header.Get("x-request-id") == "" {
				t.Fatalf("%d %v", resp.StatusCode, resp.Header)
			}
			events, err := readSSE(t, resp.Body)
			if err != nil {
				t.Fatal(err)
			}
			want := 3 + 1 + 1 // three chunks of text, the finish, [DONE]
			if includeUsage {
				want++
			}
			if len(events) != want || events[len(events)-1] != "[DONE]" {
				t.Fatalf("events %q", events)
			}
			for i, ev := range events[:len(events)-1] {
				var c map[string]json.RawMessage
				if err := json.Unmarshal([]byte(ev), &c); err != nil {
					t.Fatal(err)
				}
				last := includeUsage && i == len(events)-2
				switch {
				case last:
					if string(c["choices"]) != "[]" || !strings.Contains(string(c["usage"]), `"completion_tokens":5`) {
						t.Fatalf("usage chunk %s", ev)
					}
				case includeUsage && string(c["usage"]) != "null":
					t.Fatalf("chunk %d lacks usage:null: %s", i, ev)
				case !includeUsage && c["usage"] != nil:
					t.Fatalf("chunk %d has usage: %s", i, ev)
				}
				if string(c["object"]) != `"text_completion"` {
					t.Fatalf("%s", ev)
				}
			}
		})
	}
}

func TestCompletionsErrors(t *testing.T) {
	t.Parallel()
	t.Run("429 with retry-after", func(t *testing.T) {
		_, base := startServer(t, Config{FailRate429: 1, RetryAfter: 2 * time.Second})
		_, err := officialClient(base, "").Completions.New(context.Background(), openai.CompletionNewParams{
			Model: "m", Prompt: openai.CompletionNewParamsPromptUnion{OfString: openai.String("hi")},
		})
		var apiErr *openai.Error
		if !errors.As(err, &apiErr) || apiErr.StatusCode != 429 || apiErr.Code != "rate_limit_exceeded" ||
			apiErr.Response.Header.Get("Retry-After") != "2" || apiErr.Response.Header.Get("retry-after-ms") != "2000" {
			t.Fatalf("%v", err)
		}
	})
	for _, tc := range []struct{ name, prompt string }{{"stream-error", "hi #mock:stream-error"}, {"reset", "hi #mock:reset"}} {
		t.Run(tc.name, func(t *testing.T) {
			srv, base := startServer(t, Config{})
			st := officialClient(base, "").Completions.NewStreaming(context.Background(), openai.CompletionNewParams{
				Model: "m", Prompt: openai.CompletionNewParamsPromptUnion{OfString: openai.String(tc.prompt)},
			})
			n := 0
			for st.Next() {
				n++
			}
			st.Close()
			if st.Err() == nil || n != eventsBeforeFault {
				t.Fatalf("openai-go: err %v after %d chunks", st.Err(), n)
			}
			resp := post(t, context.Background(), base+"/completions", `{"model":"m","stream":true,"prompt":"`+tc.prompt+`"}`, nil)
			events, err := readSSE(t, resp.Body)
			resp.Body.Close()
			if tc.name == "reset" {
				if err == nil || len(events) != eventsBeforeFault {
					t.Fatalf("%d events, err %v", len(events), err)
				}
			} else if err != nil || len(events) != eventsBeforeFault+1 || !strings.HasPrefix(events[len(events)-1], `{"error":{`) {
				t.Fatalf("events %q, err %v", events, err)
			}
			testutil.Eventually(t, "handlers done", func() bool { return srv.Stats().Active == 0 })
			if s := srv.Stats(); s.Completed != 0 || s.Streams != 2 {
				t.Fatalf("stats %+v", s)
			}
		})
	}
}

func TestCompletionsValidation(t *testing.T) {
	t.Parallel()
	_, base := startServer(t, Config{Models: []string{"gpt-3.5-turbo-instruct"}})
	cases := []struct {
		name, body string
		wantStatus int
		wantParam  string
		wantCode   string
	}{
		{"missing model", `{"prompt":"x"}`, 400, "model", "missing_required_parameter"},
		{"missing prompt", `{"model":"gpt-3.5-turbo-instruct"}`, 400, "prompt", "missing_required_parameter"},
		{"bad prompt", `{"model":"gpt-3.5-turbo-instruct","prompt":{"a":1}}`, 400, "prompt", ""},
		{"empty prompt is fine", `{"model":"gpt-3.5-turbo-instruct","prompt":""}`, 200, "", ""},
		{"negative max_tokens", `{"model":"gpt-3.5-turbo-instruct","prompt":"x","max_tokens":-1}`, 400, "max_tokens", "integer_below_min_value"},
		{"n of 0", `{"model":"gpt-3.5-turbo-instruct","prompt":"x","n":0}`, 400, "n", "invalid_value"},
		{"logprobs above 5", `{"model":"gpt-3.5-turbo-instruct","prompt":"x","logprobs":6}`, 400, "logprobs", "integer_above_max_value"},
		{"five stop sequences", `{"model":"gpt-3.5-turbo-instruct","prompt":"x","stop":["a","b","c","d","e"]}`, 400, "stop", "array_above_max_length"},
		{"bad stop", `{"model":"gpt-3.5-turbo-instruct","prompt":"x","stop":5}`, 400, "stop", "invalid_type"},
		{"unknown model", `{"model":"davinci","prompt":"x"}`, 404, "", "model_not_found"},
		{"bad directive", `{"model":"gpt-3.5-turbo-instruct","prompt":"x #mock:tokens=0"}`, 400, "prompt", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp := post(t, context.Background(), base+"/completions", tc.body, nil)
			body := readAll(t, resp)
			if resp.StatusCode != tc.wantStatus || resp.Header.Get("Content-Type") != "application/json" {
				t.Fatalf("status %d: %s", resp.StatusCode, body)
			}
			if tc.wantStatus == 200 {
				return
			}
			var e struct {
				Error map[string]json.RawMessage `json:"error"`
			}
			if err := json.Unmarshal(body, &e); err != nil {
				t.Fatal(err)
			}
			want := func(v string) string {
				if v == "" {
					return "null"
				}
				return strconv.Quote(v)
			}
			if string(e.Error["param"]) != want(tc.wantParam) || string(e.Error["code"]) != want(tc.wantCode) {
				t.Fatalf("body %s", body)
			}
		})
	}
}
