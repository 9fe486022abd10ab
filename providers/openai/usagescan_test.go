package openai

import "testing"

func TestCarriesUsage(t *testing.T) {
	for _, tt := range []struct {
		name, chunk string
		want        bool
	}{
		{"no usage key", `{"choices":[{"delta":{"content":"hi"}}]}`, false},
		{"usage null", `{"choices":[{"delta":{"content":"hi"}}],"usage":null}`, false},
		{"usage null spaced", `{"choices":[],"usage" : null }`, false},
		{"usage object", `{"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":4}}`, true},
		{"null then a real one", `{"x":{"usage":null},"usage":{"prompt_tokens":3}}`, true},
		{"the word in content", `{"choices":[{"delta":{"content":"\"usage\": 5"}}]}`, false},
		{"key without colon", `{"usage"}`, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := carriesUsage([]byte(tt.chunk)); got != tt.want {
				t.Fatalf("carriesUsage(%s) = %v, want %v", tt.chunk, got, tt.want)
			}
		})
	}
}
