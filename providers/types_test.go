package providers

import (
	"errors"
	"testing"
)

func TestParseChatRequest(t *testing.T) {
	tests := []struct {
		name      string
		body      string
		wantParam string // "" with wantErr=false means success
		wantErr   bool
		check     func(*ChatRequest) bool
	}{
		{"minimal", `{"model":"m","messages":[{"role":"user","content":"hi"}]}`, "", false, func(r *ChatRequest) bool { return r.Model == "m" && !r.Stream && r.MaxTokens == 0 }},
		{"stream with usage", `{"model":"m","messages":[{}],"stream":true,"stream_options":{"include_usage":true}}`, "", false, func(r *ChatRequest) bool { return r.Stream && r.IncludeUsage }},
		{"max_completion_tokens wins", `{"model":"m","messages":[{}],"max_tokens":5,"max_completion_tokens":9}`, "", false, func(r *ChatRequest) bool { return r.MaxTokens == 9 }},
		{"deprecated max_tokens", `{"model":"m","messages":[{}],"max_tokens":5}`, "", false, func(r *ChatRequest) bool { return r.MaxTokens == 5 }},
		{"unknown fields allowed", `{"model":"m","messages":[{}],"future":{"x":1}}`, "", false, nil},
		{"bad json", `{"model":`, "", true, nil},
		{"missing model", `{"messages":[{}]}`, "model", true, nil},
		{"empty model", `{"model":"","messages":[{}]}`, "model", true, nil},
		{"model not a string", `{"model":5,"messages":[{}]}`, "model", true, nil},
		{"missing messages", `{"model":"m"}`, "messages", true, nil},
		{"null messages", `{"model":"m","messages":null}`, "messages", true, nil},
		{"empty messages", `{"model":"m","messages":[ ]}`, "messages", true, nil},
		{"messages object", `{"model":"m","messages":{}}`, "messages", true, nil},
		{"stream not bool", `{"model":"m","messages":[{}],"stream":1}`, "stream", true, nil},
		{"negative max_tokens", `{"model":"m","messages":[{}],"max_tokens":-1}`, "max_tokens", true, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := ParseChatRequest([]byte(tt.body))
			if tt.wantErr {
				var re *RequestError
				if !errors.As(err, &re) {
					t.Fatalf("want *RequestError, got %v", err)
				}
				if re.Param != tt.wantParam || re.Message == "" {
					t.Fatalf("param %q message %q, want param %q", re.Param, re.Message, tt.wantParam)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if string(r.Body) != tt.body {
				t.Fatal("body must be kept as given")
			}
			if tt.check != nil && !tt.check(r) {
				t.Fatalf("fields: %+v", r)
			}
		})
	}
}
