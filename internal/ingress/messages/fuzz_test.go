package messages

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/xroute/xroute/providers"
)

// FuzzParse feeds arbitrary bodies through what a Messages request goes
// through before routing: no panic, every refusal a *RequestError, and an
// accepted request gives a pivot the adapters decode and a native body
// that is JSON.
func FuzzParse(f *testing.F) {
	seeds, _ := filepath.Glob(filepath.Join("testdata", "req_*.json"))
	for _, s := range seeds {
		b, err := os.ReadFile(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, s := range []string{`{"model":"m","max_tokens":1,"messages":[{"role":"user","content":"x"}]}`,
		`{"model":"m","max_tokens":1,"messages":[{"role":"system","content":[{"type":"text","text":"s"}]},{"role":"user","content":[{"type":"tool_result","tool_use_id":"a","content":[{"type":"image","source":{"type":"file","file_id":"f"}}]}]}]}`,
		`{"model":"m","max_tokens":5000,"thinking":{"type":"enabled","budget_tokens":1024},"messages":[{"role":"assistant","content":[{"type":"thinking","thinking":"t","signature":"xroute-translated"},{"type":"tool_use","id":"i","name":"n","input":null}]}]}`,
		`{"model":1}`, `[]`, `null`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		r, err := Parse(body)
		if err != nil {
			var re *providers.RequestError
			if !errors.As(err, &re) || re.Message == "" {
				t.Fatalf("refusal is not a request error: %v", err)
			}
			return
		}
		tr, err := r.Translate()
		if err != nil {
			var re *providers.RequestError
			if !errors.As(err, &re) || re.Message == "" {
				t.Fatalf("translation refusal is not a request error: %v", err)
			}
			return
		}
		if !json.Valid(tr.PivotBody) || !json.Valid(tr.Native) {
			t.Fatalf("invalid JSON out: %s / %s", tr.PivotBody, tr.Native)
		}
		if _, err := providers.DecodeOpenAIRequest(tr.PivotBody); err != nil {
			t.Fatalf("adapters cannot decode the pivot: %v\n%s", err, tr.PivotBody)
		}
		b := NewBuilder(r, "msg_f", r.Model, 1, true)
		b.Start()
		b.Feed(providers.Event{Kind: providers.EventReasoning, Text: "t"}, nil)
		b.Feed(providers.Event{Kind: providers.EventToolStart, ID: "c", Name: "n"}, nil)
		b.Feed(providers.Event{Kind: providers.EventToolArgs, Text: "{"}, nil)
		if _, obj := b.Finish(providers.Usage{}); !json.Valid(obj) {
			t.Fatalf("invalid message %s", obj)
		}
	})
}
