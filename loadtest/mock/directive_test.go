package mock

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/tidwall/gjson"
)

func TestTokensPerSecDirective(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		text string
		want float64
		bad  bool
	}{
		{"hi #mock:tps=2", 2, false},
		{"hi #mock:tps=0.5;tokens=3", 0.5, false},
		{"hi", 0, false},
		{"hi #mock:tps=0", 0, true},
		{"hi #mock:tps=fast", 0, true},
	} {
		var d Directives
		err := d.Scan(tc.text)
		if (err != nil) != tc.bad || d.TokensPerSec != tc.want {
			t.Errorf("Scan(%q): tps %v, err %v; want %v, bad %v", tc.text, d.TokensPerSec, err, tc.want, tc.bad)
		}
		if got := d.tokensPerSec(100); !tc.bad && got != map[bool]float64{true: tc.want, false: 100}[tc.want > 0] {
			t.Errorf("tokensPerSec(100) with %q = %v", tc.text, got)
		}
	}
	var none *Directives
	if got := none.tokensPerSec(7); got != 7 {
		t.Errorf("nil directives: tokensPerSec = %v, want the configured 7", got)
	}
}

func TestCallDirectives(t *testing.T) {
	t.Parallel()
	var d Directives
	if err := d.Scan("Show me hello.txt. #mock:call=exec_command #mock:arg.cmd=cat%20hello.txt;arg.workdir=/tmp"); err != nil {
		t.Fatal(err)
	}
	names := []string{"write_stdin", "exec_command"}
	i, ok := d.Called(len(names), func(i int) string { return names[i] })
	if !ok || i != 1 {
		t.Fatalf("called %d %v", i, ok)
	}
	c := NewToolCall(1, 0, "exec_command", json.RawMessage(`{"type":"object","properties":{"cmd":{"type":"string"},"yield_time_ms":{"type":"integer"}},"required":["cmd"]}`), "call_", 8)
	d.SetArgs(&c)
	var args map[string]any
	if err := json.Unmarshal([]byte(c.Args), &args); err != nil || args["cmd"] != "cat hello.txt" || args["workdir"] != "/tmp" {
		t.Fatalf("args %s: %v", c.Args, err)
	}
	joined := ""
	prev := 0
	for _, f := range c.Frags {
		joined += c.Args[prev:f]
		prev = f
	}
	if joined != c.Args {
		t.Fatalf("fragments %v do not cover %q", c.Frags, c.Args)
	}
	for _, bad := range []string{"#mock:call=", "#mock:arg.=x", "#mock:arg.k=%zz"} {
		var d Directives
		if err := d.Scan(bad); err == nil {
			t.Fatalf("%q accepted", bad)
		}
	}
	if _, ok := (&Directives{Call: "nope"}).Called(len(names), func(i int) string { return names[i] }); ok {
		t.Fatal("a tool the request does not offer was picked")
	}
}

// TestUsageDirective: usage= shapes the usage of chat (non-streamed and
// streamed, include_usage asked) and Responses answers; the answer itself
// is unchanged.
func TestUsageDirective(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(New(Config{}))
	defer srv.Close()
	post := func(path, body string) string {
		t.Helper()
		resp, err := http.Post(srv.URL+path, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %d %s", path, resp.StatusCode, b)
		}
		return string(b)
	}
	chat := func(mode string, stream bool) string {
		return post("/v1/chat/completions", `{"model":"gpt-4o-mini","stream":`+strconv.FormatBool(stream)+`,"stream_options":`+map[bool]string{true: `{"include_usage":true}`, false: "null"}[stream]+`,"messages":[{"role":"user","content":"hi #mock:usage=`+mode+`"}]}`)
	}
	for _, c := range []struct {
		mode string
		want func(usage gjson.Result) bool
	}{
		{"omit", func(u gjson.Result) bool { return !u.Exists() || u.Type == gjson.Null }},
		{"negative", func(u gjson.Result) bool { return u.Get("prompt_tokens").Int() == negativeTokens }},
		{"huge", func(u gjson.Result) bool { return u.Get("prompt_tokens").Int() == hugeTokens }},
		{"text", func(u gjson.Result) bool { return u.Get("prompt_tokens").Type == gjson.String }},
	} {
		t.Run(c.mode, func(t *testing.T) {
			b := chat(c.mode, false)
			if gjson.Get(b, "choices.0.message.content").Str == "" || !c.want(gjson.Get(b, "usage")) {
				t.Fatalf("chat: %s", b)
			}
			s := chat(c.mode, true)
			var usage gjson.Result
			for _, line := range strings.Split(s, "\n") {
				if data, ok := strings.CutPrefix(line, "data: "); ok && data != "[DONE]" {
					if u := gjson.Get(data, "usage"); u.IsObject() {
						usage = u
					}
				}
			}
			if !strings.Contains(s, `"content":"`) || !strings.HasSuffix(strings.TrimSpace(s), "[DONE]") || !c.want(usage) {
				t.Fatalf("chat stream: %s", s)
			}
			r := post("/v1/responses", `{"model":"gpt-4o-mini","input":"hi #mock:usage=`+c.mode+`"}`)
			u := gjson.Get(r, "usage")
			if c.mode != "omit" {
				u = gjson.Parse(strings.NewReplacer("input_tokens", "prompt_tokens").Replace(u.Raw))
			}
			if gjson.Get(r, "output.0.content.0.text").Str == "" || !c.want(u) {
				t.Fatalf("responses: %s", r)
			}
		})
	}
	var d Directives
	if err := d.Scan("#mock:usage=zero"); err == nil {
		t.Fatal("an unknown usage mode was accepted")
	}
}
