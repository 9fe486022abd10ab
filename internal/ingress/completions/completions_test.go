package completions

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/xroute/xroute/providers"
)

func TestParse(t *testing.T) {
	cases := []struct {
		body, param, native string
		choices             int
	}{
		{body: `{"model":"m","prompt":"hi"}`, choices: 1},
		{body: `{"model":"m","prompt":["a","b"],"n":3}`, choices: 6, native: "several prompts, 'n' > 1 needs"},
		{body: `{"model":"m","prompt":"x","suffix":"y","echo":true,"logprobs":2,"best_of":3}`, choices: 3, native: "'suffix' (insertion), 'echo', 'logprobs', 'best_of' needs"},
		{body: `{"model":"m","prompt":"x","suffix":""}`, choices: 1},
		{body: `{"prompt":"x"}`, param: "model"},
		{body: `{"model":"m"}`, param: "prompt"},
		{body: `{"model":"m","prompt":[]}`, param: "prompt"},
		{body: `{"model":"m","prompt":[[1,2]]}`, param: "prompt"},
		{body: `{"model":"m","prompt":7}`, param: "prompt"},
		{body: `{"model":"m","prompt":"x","max_tokens":-1}`, param: "max_tokens"},
		{body: `{"model":"m","prompt":"x","n":0}`, param: "n"},
		{body: `{"model":"m","prompt":"x","temperature":"hot"}`, param: "temperature"},
	}
	for _, tc := range cases {
		r, err := Parse([]byte(tc.body))
		if tc.param != "" {
			var re *providers.RequestError
			if !errors.As(err, &re) || re.Param != tc.param {
				t.Errorf("%s: got %v, want a 400 on %s", tc.body, err, tc.param)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tc.body, err)
			continue
		}
		if r.Choices() != tc.choices || r.NativeOnly() != tc.native {
			t.Errorf("%s: choices %d native %q", tc.body, r.Choices(), r.NativeOnly())
		}
	}
}

func TestPivotAndBuilder(t *testing.T) {
	r, err := Parse([]byte(`{"model":"m","prompt":"Once","stop":"\n","temperature":0.5,"user":"u"}`))
	if err != nil {
		t.Fatal(err)
	}
	p, body, err := r.Pivot()
	if err != nil {
		t.Fatal(err)
	}
	if *p.MaxTokens != DefaultMaxTokens || p.Messages[0].Content.Text != "Once" || len(p.Stop) != 1 {
		t.Fatalf("pivot %s", body)
	}
	if _, err := providers.ParseChatRequest(body); err != nil {
		t.Fatalf("the pivot is not a chat request: %v", err)
	}
	b := NewBuilder("cmpl-1", "m", 7)
	var out strings.Builder
	for _, ev := range []providers.Event{{Kind: providers.EventRole}, {Kind: providers.EventText, Text: "upon"}, {Kind: providers.EventText, Text: " a time"}, {Kind: providers.EventFinish, Finish: "length"}} {
		out.Write(b.Feed(ev))
	}
	out.Write(b.StreamEnd(providers.Usage{PromptTokens: 3, CompletionTokens: 2}, true))
	var text, finish string
	var usage int
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n\n") {
		data := strings.TrimPrefix(line, "data: ")
		if data == "[DONE]" {
			continue
		}
		var c struct {
			Object  string `json:"object"`
			Choices []struct {
				Text         string  `json:"text"`
				FinishReason *string `json:"finish_reason"`
			} `json:"choices"`
			Usage *struct {
				Total int `json:"total_tokens"`
			} `json:"usage"`
		}
		if err := json.Unmarshal([]byte(data), &c); err != nil || c.Object != "text_completion" {
			t.Fatalf("chunk %q: %v", data, err)
		}
		for _, ch := range c.Choices {
			text += ch.Text
			if ch.FinishReason != nil {
				finish = *ch.FinishReason
			}
		}
		if c.Usage != nil {
			usage = c.Usage.Total
		}
	}
	if text != "upon a time" || finish != "length" || usage != 5 || !strings.HasSuffix(out.String(), "data: [DONE]\n\n") {
		t.Fatalf("stream %q", out.String())
	}
	s := "Hello"
	obj := b.Complete(&providers.Completion{Content: &s, FinishReason: "tool_calls"}, providers.Usage{PromptTokens: 1, CompletionTokens: 1})
	if !strings.Contains(string(obj), `"text":"Hello"`) || !strings.Contains(string(obj), `"finish_reason":"stop"`) {
		t.Fatalf("%s", obj)
	}
}
