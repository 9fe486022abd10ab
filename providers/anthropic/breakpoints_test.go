package anthropic

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/tidwall/gjson"

	"github.com/xroute/xroute/loadtest"
)

// marked lists the gjson paths of a body's cache_control marks.
func marked(body []byte) []string {
	var out []string
	var walk func(path string, v gjson.Result)
	walk = func(path string, v gjson.Result) {
		switch {
		case v.IsObject():
			v.ForEach(func(k, e gjson.Result) bool {
				p := k.Str
				if path != "" {
					p = path + "." + k.Str
				}
				if k.Str == "cache_control" {
					out = append(out, path)
					return true
				}
				walk(p, e)
				return true
			})
		case v.IsArray():
			for i, e := range v.Array() {
				walk(path+"."+itoa(i), e)
			}
		}
	}
	walk("", gjson.ParseBytes(body))
	return out
}

func itoa(i int) string { b, _ := json.Marshal(i); return string(b) }

// long is a text of about n tokens (4 bytes each).
func long(n int) string { return strings.Repeat("abcd", n) }

func TestAddBreakpoints(t *testing.T) {
	tools := `[{"name":"a","input_schema":{"type":"object"}},{"name":"b","description":"` + long(1100) + `","input_schema":{"type":"object"}}]`
	short := `[{"name":"a","input_schema":{"type":"object"}},{"name":"b","description":"` + long(600) + `","input_schema":{"type":"object"}}]`
	conv := `[{"role":"user","content":"first"},{"role":"assistant","content":[{"type":"thinking","thinking":"t","signature":"s"},{"type":"text","text":"ok"}]},` +
		`{"role":"user","content":[{"type":"tool_result","tool_use_id":"x","content":"r"}]},{"role":"assistant","content":"done"},{"role":"user","content":"next"}]`
	for _, tc := range []struct {
		name string
		body string
		min  int
		want []string
	}{
		{"tools, system, both stable turns", `{"model":"m","tools":` + tools + `,"system":"` + long(600) + `","messages":` + conv + `}`, 1024,
			[]string{"tools.1", "system.0", "messages.1.content.1", "messages.3.content.0"}},
		{"a prefix below the minimum gets none", `{"model":"m","system":"short","messages":` + conv + `}`, 1024, nil},
		{"the tools alone are too short, the system reaches it", `{"model":"m","tools":` + short + `,"system":[{"type":"text","text":"` + long(500) + `"},{"type":"text","text":""}],"messages":[{"role":"user","content":"q"}]}`, 1024,
			[]string{"system.0"}},
		{"a caller's own mark: untouched", `{"model":"m","system":[{"type":"text","text":"` + long(2000) + `","cache_control":{"type":"ephemeral"}}],"messages":[{"role":"user","content":"q"}]}`, 1024,
			[]string{"system.0"}},
		{"off", `{"model":"m","system":"` + long(4000) + `","messages":[{"role":"user","content":"q"}]}`, 0, nil},
		{"one turn only: system", `{"model":"m","system":"` + long(4000) + `","messages":[{"role":"user","content":"q"}]}`, 2048, []string{"system.0"}},
		{"an assistant turn of thinking only is skipped", `{"model":"m","system":"` + long(1100) + `","messages":[{"role":"user","content":"q"},{"role":"assistant","content":[{"type":"redacted_thinking","data":"x"}]},{"role":"user","content":"r"}]}`, 1024,
			[]string{"system.0"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := []byte(tc.body)
			orig := bytes.Clone(in)
			out := AddBreakpoints(in, tc.min)
			if !bytes.Equal(in, orig) {
				t.Fatal("the input body was modified")
			}
			if !json.Valid(out) {
				t.Fatalf("invalid JSON: %s", out)
			}
			if got := marked(out); !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("marks %v, want %v", got, tc.want)
			}
			if tc.want == nil || strings.Contains(tc.body, "cache_control") {
				if !bytes.Equal(out, in) {
					t.Fatalf("body changed though no mark was due:\n%s", out)
				}
			}
		})
	}
}

// TestAddBreakpointsKeepsTheMeaning: removing the marks (and unwrapping
// what became one text block) gives the request back, field for field.
func TestAddBreakpointsKeepsTheMeaning(t *testing.T) {
	body := `{"model":"m","max_tokens":10,"unknown_field":{"kept":[1,2]},"system":"` + long(1200) + `","messages":[{"role":"user","content":"hi"},{"role":"assistant","content":"hello"},{"role":"user","content":"more"}]}`
	out := AddBreakpoints([]byte(body), 1024)
	if len(marked(out)) != 2 {
		t.Fatalf("marks %v", marked(out))
	}
	var a, b map[string]any
	json.Unmarshal([]byte(body), &a)
	json.Unmarshal(out, &b)
	unwrap := func(v any) any {
		blocks, ok := v.([]any)
		if !ok || len(blocks) != 1 {
			return v
		}
		blk := blocks[0].(map[string]any)
		if _, ok := blk["cache_control"]; !ok || blk["type"] != "text" {
			return v
		}
		return blk["text"]
	}
	b["system"] = unwrap(b["system"])
	for _, m := range b["messages"].([]any) {
		mm := m.(map[string]any)
		mm["content"] = unwrap(mm["content"])
	}
	if !reflect.DeepEqual(a, b) {
		t.Fatalf("meaning changed:\n%s\n%s", body, out)
	}
	// Only cache_control was added: the bytes outside the marked values
	// are the caller's.
	if !bytes.HasPrefix(out, []byte(`{"model":"m","max_tokens":10,"unknown_field":{"kept":[1,2]},"system":`)) {
		t.Fatalf("bytes rewritten: %.80s", out)
	}
}

func TestAddBreakpointsAllocs(t *testing.T) {
	marked := []byte(`{"model":"m","system":[{"type":"text","text":"x","cache_control":{"type":"ephemeral"}}],"messages":[]}`)
	if n := testing.AllocsPerRun(100, func() { AddBreakpoints(marked, 1024) }); n != 0 {
		t.Fatalf("a body with its own marks costs %v allocations, want 0", n)
	}
}

// The marks are written in one copy of the body (spliceMarks); sjson, one
// edit each (setMarks), is the reference: the same bytes on compact JSON,
// the same JSON value where the caller's body has spaces.
func TestSpliceMarksMatchesSjson(t *testing.T) {
	tools := `[{"name":"a","input_schema":{"type":"object"}},{"name":"b","description":"` + long(1100) + `","input_schema":{"type":"object"}}]`
	conv := `[{"role":"user","content":"first \"quoted\" \u00e9"},{"role":"assistant","content":[{"type":"thinking","thinking":"t","signature":"s"},{"type":"text","text":"ok"}]},` +
		`{"role":"user","content":[{"type":"tool_result","tool_use_id":"x","content":"r"}]},{"role":"assistant","content":"done"},{"role":"user","content":"next"}]`
	spaced := "{ \"model\" : \"m\" ,\n \"system\" : [ {\"type\":\"text\", \"text\":\"" + long(1200) + "\" } ] ,\n \"messages\" : [ {\"role\":\"user\",\"content\":\"a\"} , { \"role\" : \"assistant\" , \"content\" : [ { \"type\" : \"text\" , \"text\" : \"b\" } ] } , {\"role\":\"user\",\"content\":\"c\"} ] }"
	for _, tc := range []struct {
		name, body string
		compact    bool
	}{
		{"tools, system string, turns", `{"model":"m","tools":` + tools + `,"system":"` + long(600) + `","messages":` + conv + `}`, true},
		{"system blocks", `{"model":"m","system":[{"type":"text","text":"` + long(1200) + `"}],"messages":` + conv + `}`, true},
		{"messages before system", `{"messages":` + conv + `,"system":"` + long(1200) + `","model":"m"}`, true},
		{"an empty tool last", `{"model":"m","tools":[{"name":"a","description":"` + long(1100) + `"},{}],"messages":` + conv + `}`, true},
		{"spaces", spaced, false},
		{"agent session", string(loadtest.AgentMessagesBody("m", 121)), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			marks := findMarks([]byte(tc.body), 1024)
			if len(marks) == 0 {
				t.Fatalf("no marks for %.200s", tc.body)
			}
			out, ok := spliceMarks([]byte(tc.body), marks)
			if !ok {
				t.Fatal("spliceMarks declined the offsets gjson found")
			}
			if got := AddBreakpoints([]byte(tc.body), 1024); !bytes.Equal(got, out) {
				t.Fatalf("AddBreakpoints does not write the spliced body:\n%.300s\n%.300s", got, out)
			}
			ref := setMarks([]byte(tc.body), marks)
			if tc.compact {
				if !bytes.Equal(out, ref) {
					t.Fatalf("spliced and sjson bodies differ:\n%.300s\n%.300s", out, ref)
				}
				return
			}
			var a, b any
			if err := json.Unmarshal(out, &a); err != nil {
				t.Fatalf("spliced body is not JSON: %v\n%s", err, out)
			}
			json.Unmarshal(ref, &b)
			if !reflect.DeepEqual(a, b) {
				t.Fatalf("spliced and sjson bodies differ:\n%s\n%s", out, ref)
			}
		})
	}
}

// BenchmarkAddBreakpointsAgent marks an agent's 330 KB turn: the spliced
// copy against sjson's edit per mark.
func BenchmarkAddBreakpointsAgent(b *testing.B) {
	body := loadtest.AgentMessagesBody("claude-sonnet-4-5", 121)
	b.SetBytes(int64(len(body)))
	for _, w := range []struct {
		name  string
		write func([]byte, []mark) []byte
	}{
		{"splice", func(body []byte, m []mark) []byte { out, _ := spliceMarks(body, m); return out }},
		{"sjson", setMarks},
	} {
		b.Run(w.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				w.write(body, findMarks(body, 1024))
			}
		})
	}
}
