package gemini

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	mockgemini "github.com/xroute/xroute/loadtest/mock/gemini"
	"github.com/xroute/xroute/providers"
)

const weatherTools = `"tools":[{"type":"function","function":{"name":"get_weather","description":"Weather of a city","parameters":{"type":"object","properties":{"city":{"type":"string"},"days":{"type":"integer"}},"required":["city"],"additionalProperties":false},"strict":true}},{"type":"function","function":{"name":"get_time","parameters":{"type":"object","properties":{"tz":{"type":"string","enum":["UTC","CET"]}}}}}]`

func TestTools(t *testing.T) {
	a, _ := newMock(t, mockgemini.Config{})
	tests := []struct {
		name      string
		extra     string
		wantNames []string
	}{
		{"auto calls two in parallel", ``, []string{"get_weather", "get_time"}},
		{"required", `,"tool_choice":"required"`, []string{"get_weather", "get_time"}},
		{"named", `,"tool_choice":{"type":"function","function":{"name":"get_time"}}`, []string{"get_time"}},
		{"none answers text", `,"tool_choice":"none"`, nil},
	}
	for _, tt := range tests {
		for _, streamMode := range []bool{false, true} {
			name := tt.name
			if streamMode {
				name += " streamed"
			}
			t.Run(name, func(t *testing.T) {
				body := `{"model":"pub","messages":[{"role":"user","content":"weather in Paris?"}],` + weatherTools + tt.extra + `}`
				var calls []providers.ToolCall
				var finish string
				if streamMode {
					got := stream(t, a, strings.Replace(body, `{"model":"pub",`, `{"model":"pub","stream":true,`, 1))
					if got.err != nil {
						t.Fatal(got.err)
					}
					calls, finish = got.calls, got.finish
				} else {
					c := chat(t, a, body)
					calls, finish = c.Choices[0].Message.ToolCalls, c.Choices[0].FinishReason
					if len(calls) > 0 && c.Choices[0].Message.Content != nil {
						t.Errorf("content %q with tool calls", *c.Choices[0].Message.Content)
					}
				}
				if len(tt.wantNames) == 0 {
					if len(calls) != 0 || finish != "stop" {
						t.Fatalf("calls %+v finish %q", calls, finish)
					}
					return
				}
				if finish != "tool_calls" || len(calls) != len(tt.wantNames) {
					t.Fatalf("finish %q calls %+v", finish, calls)
				}
				for i, c := range calls {
					if c.Function.Name != tt.wantNames[i] || !json.Valid([]byte(c.Function.Arguments)) || !strings.HasPrefix(c.ID, "call_") {
						t.Errorf("call %d = %+v", i, c)
					}
					// Gemini signs the first call of a parallel set only.
					if has := signatureFromID(c.ID) != ""; has != (i == 0) {
						t.Errorf("call %d id %q: signature present=%v", i, c.ID, has)
					}
				}
				if calls[0].ID == calls[len(calls)-1].ID && len(calls) > 1 {
					t.Error("duplicate call ids")
				}
			})
		}
	}
}

// TestToolRoundTrip sends the calls back with their results, as an OpenAI
// client does: the mock (like Gemini 3) rejects the history unless the
// thought signature of the first call comes back on its functionCall part.
func TestToolRoundTrip(t *testing.T) {
	a, _ := newMock(t, mockgemini.Config{})
	first := chat(t, a, `{"model":"pub","messages":[{"role":"user","content":"weather in Paris?"}],`+weatherTools+`}`)
	calls := first.Choices[0].Message.ToolCalls
	if len(calls) != 2 {
		t.Fatalf("calls %+v", calls)
	}
	history := func(calls []providers.ToolCall, results ...string) string {
		tc, _ := json.Marshal(calls)
		msgs := `[{"role":"user","content":"weather in Paris?"},{"role":"assistant","content":null,"tool_calls":` + string(tc) + `}`
		for i, r := range results {
			msgs += `,{"role":"tool","tool_call_id":"` + calls[i].ID + `","content":` + r + `}`
		}
		return `{"model":"pub","messages":` + msgs + `],` + weatherTools + `}`
	}
	stripped := append([]providers.ToolCall(nil), calls...)
	stripped[0].ID = stripped[0].ID[:strings.Index(stripped[0].ID, sigMarker)]
	corrupted := append([]providers.ToolCall(nil), calls...)
	corrupted[0].ID = corrupted[0].ID[:len(corrupted[0].ID)-6] + "AAAAAA"
	swapped := append([]providers.ToolCall(nil), calls...)
	swapped[0].Function.Name, swapped[1].Function.Name = swapped[1].Function.Name, swapped[0].Function.Name

	tests := []struct {
		name    string
		body    string
		wantErr string // "" = success
	}{
		{"results as text and JSON", history(calls, `"18 degrees and sunny"`, `"{\"tz\":\"CET\",\"time\":\"12:00\"}"`), ""},
		{"result as JSON array", history(calls, `"[1,2,3]"`, `"42"`), ""},
		{"id without its signature gets the skip value", history(stripped, `"x"`, `"y"`), ""},
		{"corrupted signature", history(corrupted, `"x"`, `"y"`), "Corrupted thought signature"},
		{"signature bound to its call", history(swapped, `"x"`, `"y"`), "Corrupted thought signature"},
		{"results must answer every call", history(calls, `"x"`), "number of function response parts"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := a.Chat(context.Background(), chatCall(t, tt.body))
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Chat: %v", err)
				}
				var c completionJSON
				_ = json.Unmarshal(resp.Body, &c)
				if c.Choices[0].FinishReason != "stop" || c.Choices[0].Message.Content == nil || *c.Choices[0].Message.Content == "" {
					t.Fatalf("after the results the mock answers text: %s", resp.Body)
				}
				return
			}
			var pe *providers.Error
			if !errors.As(err, &pe) || pe.Status != 400 || !strings.Contains(pe.Message, tt.wantErr) || pe.Type != "invalid_request_error" {
				t.Fatalf("err = %#v, want 400 %q", err, tt.wantErr)
			}
		})
	}
}

// TestToolHistoryWithoutSignatures: tool calls made by another provider
// (no signature in their ids) get the documented skip value, so Gemini 3
// accepts the history; a first call whose signature was removed from a
// Gemini id is treated the same way.
func TestToolHistoryWithoutSignatures(t *testing.T) {
	a, _ := newMock(t, mockgemini.Config{})
	body := `{"model":"pub","messages":[{"role":"user","content":"weather?"},
	{"role":"assistant","content":"Let me check.","tool_calls":[{"id":"toolu_01A","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}}]},
	{"role":"tool","tool_call_id":"toolu_01A","content":"sunny"}],` + weatherTools + `}`
	c := chat(t, a, body)
	if c.Choices[0].FinishReason != "stop" {
		t.Fatalf("finish %q", c.Choices[0].FinishReason)
	}
	st := stream(t, a, strings.Replace(body, `{"model":"pub",`, `{"model":"pub","stream":true,`, 1))
	if st.err != nil || st.finish != "stop" || st.text == "" {
		t.Fatalf("stream: %+v", st)
	}
}

func TestToolRoundTripStreamed(t *testing.T) {
	a, _ := newMock(t, mockgemini.Config{})
	first := stream(t, a, `{"model":"pub","stream":true,"messages":[{"role":"user","content":"time?"}],`+weatherTools+`,"tool_choice":{"type":"function","function":{"name":"get_time"}}}`)
	if first.err != nil || len(first.calls) != 1 || first.finish != "tool_calls" {
		t.Fatalf("%+v", first)
	}
	tc, _ := json.Marshal(first.calls)
	body := `{"model":"pub","stream":true,"messages":[{"role":"user","content":"time?"},{"role":"assistant","tool_calls":` + string(tc) +
		`},{"role":"tool","tool_call_id":"` + first.calls[0].ID + `","content":"12:00"}],` + weatherTools + `}`
	second := stream(t, a, body)
	if second.err != nil || second.finish != "stop" || second.text == "" || len(second.calls) != 0 {
		t.Fatalf("%+v", second)
	}
}

func TestImages(t *testing.T) {
	a, _ := newMock(t, mockgemini.Config{})
	png := "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
	textOnly := chat(t, a, `{"model":"pub","messages":[{"role":"user","content":[{"type":"text","text":"what is this?"}]}]}`)
	tests := []struct {
		name string
		url  string
	}{
		{"data URL becomes inlineData", "data:image/png;base64," + png},
		{"https URL becomes fileData", "https://example.com/cat.webp?size=large"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := `{"model":"pub","messages":[{"role":"user","content":[{"type":"text","text":"what is this?"},{"type":"image_url","image_url":{"url":"` + tt.url + `","detail":"high"}}]}]}`
			c := chat(t, a, body)
			// The mock counts 258 tokens per image, as Gemini does.
			if d := c.Usage.PromptTokens - textOnly.Usage.PromptTokens; d != 258 {
				t.Fatalf("prompt tokens grew by %d, want 258", d)
			}
		})
	}
	for _, bad := range []string{"ftp://example.com/x.png", "data:image/png,notbase64", "not a url"} {
		t.Run("rejects "+bad, func(t *testing.T) {
			body := `{"model":"pub","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"` + bad + `"}}]}]}`
			_, err := a.Chat(context.Background(), chatCall(t, body))
			var re *providers.RequestError
			if !errors.As(err, &re) || !strings.Contains(re.Param, "image_url.url") {
				t.Fatalf("err = %v, want a RequestError on image_url.url", err)
			}
		})
	}
}
