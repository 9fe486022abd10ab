package gemini

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/xroute/xroute/loadtest/mock"
)

// generated answers a generateContent request and returns its usage.
func generated(t *testing.T, base, body string) map[string]any {
	t.Helper()
	resp, b := post(t, context.Background(), base+"/v1beta/models/gemini-2.5-flash:generateContent", body, nil)
	if resp.StatusCode != 200 {
		t.Fatalf("generate: %d %s", resp.StatusCode, b)
	}
	var r response
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	return r.UsageMetadata
}

func TestCountTokens(t *testing.T) {
	t.Parallel()
	_, base := start(t, Config{Config: mock.Config{Models: []string{"gemini-2.5-flash"}}})
	full := `{"systemInstruction":{"parts":[{"text":"be brief"}]},"contents":[{"role":"user","parts":[{"text":"hello there"},{"inlineData":{"mimeType":"image/png","data":"AAAA"}}]}],` +
		`"tools":[{"functionDeclarations":[{"name":"get_weather","description":"Weather of a city","parameters":{"type":"OBJECT","properties":{"city":{"type":"STRING"}}}}]}]`
	tests := []struct {
		name     string
		body     string // countTokens body
		generate string // the generateContent request of the same prompt
	}{
		{"contents", `{"contents":[{"role":"user","parts":[{"text":"hello there"}]}]}`, hello},
		{"generateContentRequest", `{"generateContentRequest":{"model":"models/gemini-2.5-flash",` + full[1:] + `}}`, full + `}`},
		{"cachedContent", `{"generateContentRequest":{"model":"models/gemini-2.5-flash","cachedContent":"cachedContents/abc",` + full[1:] + `}}`, `{"cachedContent":"cachedContents/abc",` + full[1:] + `}`},
		{"generateContentRequest wins over contents", `{"contents":[{"parts":[{"text":"x"}]}],"generateContentRequest":{"model":"models/gemini-2.5-flash",` + full[1:] + `}}`, full + `}`},
		{"function call without its signature", `{"contents":[{"role":"user","parts":[{"text":"weather?"}]},{"role":"model","parts":[{"functionCall":{"name":"get_weather","args":{"city":"Paris"}}}]},{"role":"user","parts":[{"functionResponse":{"name":"get_weather","response":{"t":21}}}]}]}`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, b := post(t, context.Background(), base+"/v1beta/models/gemini-2.5-flash:countTokens", tt.body, nil)
			if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
				t.Fatalf("%d %s", resp.StatusCode, b)
			}
			var c countTokensResponse
			if err := json.Unmarshal(b, &c); err != nil || c.TotalTokens == 0 || len(c.PromptTokensDetails) != 1 {
				t.Fatalf("%v %s", err, b)
			}
			if tt.generate == "" {
				return
			}
			u := generated(t, base, tt.generate)
			if float64(c.TotalTokens) != u["promptTokenCount"] || u["cachedContentTokenCount"] != nil && float64(c.CachedContentTokenCount) != u["cachedContentTokenCount"] ||
				u["cachedContentTokenCount"] == nil && c.CachedContentTokenCount != 0 {
				t.Fatalf("countTokens %s, generateContent usage %v", b, u)
			}
		})
	}

	errs := []struct {
		name, url, body string
		status          int
		msg             string
	}{
		{"no contents", "gemini-2.5-flash:countTokens", `{}`, 400, "contents is not specified"},
		{"unknown field", "gemini-2.5-flash:countTokens", `{"contents":[{"parts":[{"text":"x"}]}],"maxTokens":3}`, 400, "Unknown name"},
		{"invalid part", "gemini-2.5-flash:countTokens", `{"contents":[{"parts":[{"inlineData":{"mimeType":"image/png","data":"!!"}}]}]}`, 400, "Base64 decoding failed"},
		{"unknown model", "other:countTokens", `{"contents":[{"parts":[{"text":"x"}]}]}`, 404, "not supported for countTokens"},
	}
	for _, tt := range errs {
		t.Run(tt.name, func(t *testing.T) {
			resp, b := post(t, context.Background(), base+"/v1beta/models/"+tt.url, tt.body, nil)
			if e := decodeError(t, b); resp.StatusCode != tt.status || !strings.Contains(e.Error.Message, tt.msg) {
				t.Fatalf("%d %s", resp.StatusCode, b)
			}
		})
	}
}

func TestThinking(t *testing.T) {
	t.Parallel()
	withConfig := func(tc string) string {
		return `{"contents":[{"role":"user","parts":[{"text":"hello there"}]}],"generationConfig":{"thinkingConfig":` + tc + `}}`
	}
	tests := []struct {
		name     string
		cfg      Config
		body     string
		thoughts int  // thoughtsTokenCount, 0 = absent
		part     bool // a thought part comes first
	}{
		{"no thinking by default", Config{}, hello, 0, false},
		{"the configured default", Config{ThoughtsTokens: 5}, hello, 5, false},
		{"budget 0 turns it off", Config{ThoughtsTokens: 5}, withConfig(`{"thinkingBudget":0,"includeThoughts":true}`), 0, false},
		{"a budget", Config{}, withConfig(`{"thinkingBudget":20}`), 20, false},
		{"a large budget", Config{}, withConfig(`{"thinkingBudget":8192,"includeThoughts":true}`), maxThoughts, true},
		{"dynamic budget", Config{}, withConfig(`{"thinkingBudget":-1}`), dynamicThoughts, false},
		{"dynamic budget, configured default", Config{ThoughtsTokens: 5}, withConfig(`{"thinkingBudget":-1,"includeThoughts":true}`), 5, true},
		{"includeThoughts alone", Config{}, withConfig(`{"includeThoughts":true}`), dynamicThoughts, true},
		{"thinkingLevel low", Config{}, withConfig(`{"thinkingLevel":"low","includeThoughts":true}`), 16, true},
		{"thinkingLevel HIGH", Config{}, withConfig(`{"thinkingLevel":"HIGH"}`), 64, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, base := start(t, tt.cfg)
			for _, stream := range []bool{false, true} {
				url := base + "/v1beta/models/m:generateContent"
				if stream {
					url = base + "/v1beta/models/m:streamGenerateContent?alt=sse"
				}
				resp, b := post(t, context.Background(), url, tt.body, nil)
				if resp.StatusCode != 200 {
					t.Fatalf("%d %s", resp.StatusCode, b)
				}
				var evs []response
				if stream {
					evs = sseEvents(t, b)
				} else {
					var r response
					if err := json.Unmarshal(b, &r); err != nil {
						t.Fatal(err)
					}
					evs = []response{r}
				}
				first, last := evs[0].Candidates[0].Content.Parts[0], evs[len(evs)-1]
				if first.Thought != tt.part || (tt.part && (first.Text == nil || *first.Text == "")) {
					t.Fatalf("stream %v: first part %+v", stream, first)
				}
				u := last.UsageMetadata
				if got, _ := u["thoughtsTokenCount"].(float64); int(got) != tt.thoughts ||
					u["totalTokenCount"] != u["promptTokenCount"].(float64)+u["candidatesTokenCount"].(float64)+got {
					t.Fatalf("stream %v: usage %v", stream, u)
				}
			}
		})
	}

	_, base := start(t, Config{})
	for _, tt := range []struct{ name, tc, msg string }{
		{"unknown level", `{"thinkingLevel":"extreme"}`, "thinking_level"},
		{"negative budget", `{"thinkingBudget":-2}`, "thinking_budget"},
		{"budget and level", `{"thinkingBudget":10,"thinkingLevel":"low"}`, "cannot use both"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			resp, b := post(t, context.Background(), base+"/v1beta/models/m:generateContent", withConfig(tt.tc), nil)
			if e := decodeError(t, b); resp.StatusCode != 400 || !strings.Contains(e.Error.Message, tt.msg) {
				t.Fatalf("%d %s", resp.StatusCode, b)
			}
		})
	}
}
