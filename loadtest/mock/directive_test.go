package mock

import (
	"encoding/json"
	"testing"
)

func TestCallDirectives(t *testing.T) {
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
