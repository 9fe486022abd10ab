package bedrock

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestAddCachePoints(t *testing.T) {
	text := func(s string) []contentBlock { return []contentBlock{{Text: &s}} }
	long := strings.Repeat("abcd", 1100)
	for _, tc := range []struct {
		name string
		min  int
		req  converseRequest
		want int // cache points in the encoded request
	}{
		{"system and both stable turns", 1024, converseRequest{
			System:   []systemBlock{{Text: long}},
			Messages: []message{{Role: "user", Content: text("a")}, {Role: "assistant", Content: text("b")}, {Role: "user", Content: text("c")}, {Role: "assistant", Content: text("d")}, {Role: "user", Content: text("e")}},
		}, 3},
		{"tools too", 1024, converseRequest{
			ToolConfig: &toolConfig{Tools: []tool{{ToolSpec: &toolSpec{Name: "f", Description: long}}}},
			System:     []systemBlock{{Text: "short"}},
			Messages:   []message{{Role: "user", Content: text("a")}},
		}, 2},
		{"too short", 1024, converseRequest{System: []systemBlock{{Text: "short"}}, Messages: []message{{Role: "user", Content: text("a")}}}, 0},
		{"off", 0, converseRequest{System: []systemBlock{{Text: long}}, Messages: []message{{Role: "user", Content: text("a")}}}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addCachePoints(&tc.req, tc.min)
			b, err := json.Marshal(&tc.req)
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.Count(string(b), `{"cachePoint":{"type":"default"}}`); got != tc.want {
				t.Fatalf("%d cache points, want %d: %.300s", got, tc.want, b)
			}
		})
	}
}
