package catalog

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
)

func preset(t *testing.T, name string) Preset {
	t.Helper()
	p, ok := PresetByName(name)
	if !ok {
		t.Fatalf("no preset %q", name)
	}
	return p
}

func jsonEqual(t *testing.T, got []byte, want string) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, got)
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatalf("bad golden: %v", err)
	}
	if !reflect.DeepEqual(g, w) {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
}

func TestQuirksApply(t *testing.T) {
	c := load(t)
	tests := []struct {
		name       string
		quirks     Quirks
		in, want   string
		wantReject string // the rejected parameter, when Apply must refuse
	}{
		{
			name:   "groq drops logprobs and message names",
			quirks: preset(t, "groq").Quirks,
			in:     `{"model":"m","logprobs":true,"top_logprobs":2,"logit_bias":{"1":2},"messages":[{"role":"system","name":"s","content":"a"},{"role":"user","content":"b"},{"role":"user","name":"u","content":"c"}],"n":1}`,
			want:   `{"model":"m","messages":[{"role":"system","content":"a"},{"role":"user","content":"b"},{"role":"user","content":"c"}],"n":1}`,
		},
		{
			name:       "groq refuses n>1",
			quirks:     preset(t, "groq").Quirks,
			in:         `{"model":"m","messages":[],"n":2}`,
			wantReject: "n",
		},
		{
			name:   "mistral renames seed and max_completion_tokens, drops stream_options and user",
			quirks: preset(t, "mistral").Quirks,
			in:     `{"model":"m","seed":42,"max_completion_tokens":100,"stream":true,"stream_options":{"include_usage":true},"user":"u1","messages":[]}`,
			want:   `{"model":"m","random_seed":42,"max_tokens":100,"stream":true,"messages":[]}`,
		},
		{
			name:   "rename keeps an existing target",
			quirks: preset(t, "mistral").Quirks,
			in:     `{"max_tokens":10,"max_completion_tokens":100}`,
			want:   `{"max_tokens":10}`,
		},
		{
			name:       "perplexity refuses tools",
			quirks:     preset(t, "perplexity").Quirks,
			in:         `{"model":"sonar","tools":[{"type":"function","function":{"name":"f"}}],"messages":[]}`,
			wantReject: "tools",
		},
		{
			name:   "perplexity: empty tools and stray tool_choice are dropped, not refused",
			quirks: preset(t, "perplexity").Quirks,
			in:     `{"model":"sonar","tools":[],"tool_choice":"auto","messages":[]}`,
			want:   `{"model":"sonar","tools":[],"messages":[]}`,
		},
		{
			name:   "perplexity: null tools are not a request for tools",
			quirks: preset(t, "perplexity").Quirks,
			in:     `{"tools":null}`,
			want:   `{"tools":null}`,
		},
		{
			name:       "cerebras refuses a forced function",
			quirks:     preset(t, "cerebras").Quirks,
			in:         `{"tools":[{"type":"function"}],"tool_choice":{"type":"function","function":{"name":"f"}}}`,
			wantReject: "tool_choice.type",
		},
		{
			name:       "cerebras refuses tool_choice required",
			quirks:     preset(t, "cerebras").Quirks,
			in:         `{"tool_choice":"required"}`,
			wantReject: "tool_choice",
		},
		{
			name:   "cerebras drops penalties, keeps tool_choice auto",
			quirks: preset(t, "cerebras").Quirks,
			in:     `{"tool_choice":"auto","presence_penalty":0.5,"frequency_penalty":0.1,"parallel_tool_calls":false}`,
			want:   `{"tool_choice":"auto"}`,
		},
		{
			name:   "openai reasoning model: preset plus model quirks",
			quirks: find(t, c, "openai", "gpt-5").RequestQuirks(),
			in:     `{"model":"gpt-5","max_tokens":500,"temperature":0.2,"top_p":0.9,"messages":[]}`,
			want:   `{"model":"gpt-5","max_completion_tokens":500,"messages":[]}`,
		},
		{
			name:   "deepseek-reasoner drops logprobs, renames max_completion_tokens",
			quirks: find(t, c, "deepseek", "deepseek-reasoner").RequestQuirks(),
			in:     `{"logprobs":true,"top_logprobs":3,"max_completion_tokens":9}`,
			want:   `{"max_tokens":9}`,
		},
		{
			name:   "ollama: n=1 passes, max_completion_tokens renamed",
			quirks: preset(t, "ollama").Quirks,
			in:     `{"n":1,"max_completion_tokens":64}`,
			want:   `{"n":1,"max_tokens":64}`,
		},
		{
			name:       "value rule over an array",
			quirks:     Quirks{Reject: []string{"messages.#.role=developer"}},
			in:         `{"messages":[{"role":"user"},{"role":"developer"}]}`,
			wantReject: "messages.#.role",
		},
		{
			name:   "value rule over an array, no match",
			quirks: Quirks{Reject: []string{"messages.#.role=developer"}},
			in:     `{"messages":[{"role":"user"}]}`,
			want:   `{"messages":[{"role":"user"}]}`,
		},
		{
			name:   "nested drop and missing fields",
			quirks: Quirks{Drop: []string{"response_format.json_schema.strict", "absent", "a.#.b"}},
			in:     `{"response_format":{"type":"json_schema","json_schema":{"name":"x","strict":true}},"a":[1,{"c":2}]}`,
			want:   `{"response_format":{"type":"json_schema","json_schema":{"name":"x"}},"a":[1,{"c":2}]}`,
		},
		{
			name:       "json_schema response format refused",
			quirks:     Quirks{Reject: []string{"response_format.type=json_schema"}},
			in:         `{"response_format":{"type":"json_schema"}}`,
			wantReject: "response_format.type",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.quirks.Apply([]byte(tt.in))
			if tt.wantReject != "" {
				var ue *UnsupportedError
				if !errors.As(err, &ue) || !errors.Is(err, ErrUnsupported) {
					t.Fatalf("Apply = %s, %v; want an *UnsupportedError", got, err)
				}
				if ue.Param != tt.wantReject || !strings.Contains(err.Error(), tt.wantReject) {
					t.Fatalf("rejected %q (%v), want %q", ue.Param, err, tt.wantReject)
				}
				return
			}
			if err != nil {
				t.Fatalf("Apply: %v", err)
			}
			jsonEqual(t, got, tt.want)
		})
	}
}

func TestQuirksApplyEdgeCases(t *testing.T) {
	in := []byte(`{"a":1}`)
	out, err := Quirks{}.Apply(in)
	if err != nil || &out[0] != &in[0] {
		t.Fatalf("zero quirks must return the input untouched: %s, %v", out, err)
	}
	groq := preset(t, "groq").Quirks
	for _, bad := range []string{`not json`, `[1,2]`, `"s"`, `{"a":`} {
		if _, err := groq.Apply([]byte(bad)); err == nil {
			t.Errorf("Apply(%q) succeeded", bad)
		}
	}
	// The input slice is never modified, even when the output differs.
	body := []byte(`{"logprobs":true,"model":"m"}`)
	keep := string(body)
	if _, err := groq.Apply(body); err != nil || string(body) != keep {
		t.Fatalf("input modified: %s (%v)", body, err)
	}
}

func TestQuirksMerge(t *testing.T) {
	a := Quirks{Drop: []string{"x", "y"}, Rename: map[string]string{"a": "b"}, MaxN: 4}
	b := Quirks{Drop: []string{"y", "z"}, Rename: map[string]string{"a": "c", "d": "e"}, Reject: []string{"tools"}, MaxN: 1}
	got := a.Merge(b)
	want := Quirks{Drop: []string{"x", "y", "z"}, Rename: map[string]string{"a": "c", "d": "e"}, Reject: []string{"tools"}, MaxN: 1}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Merge = %+v, want %+v", got, want)
	}
	if len(a.Drop) != 2 || a.Rename["a"] != "b" {
		t.Fatal("Merge modified its receiver")
	}
	if m := (Quirks{MaxN: 2}).Merge(Quirks{}); m.MaxN != 2 {
		t.Fatalf("MaxN = %d", m.MaxN)
	}
	if !(Quirks{}).Merge(Quirks{}).IsZero() {
		t.Fatal("merge of zero quirks is not zero")
	}
}
