package responses

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/xroute/xroute/providers"
)

// FuzzParse feeds arbitrary bodies through everything a create request
// goes through before routing: it must never panic, every refusal must be
// a *providers.RequestError (a 400 for the caller), and an accepted
// request must give a pivot that is JSON and that the chat decoder reads.
func FuzzParse(f *testing.F) {
	seeds, _ := filepath.Glob(filepath.Join("testdata", "req_*.json"))
	for _, s := range seeds {
		b, err := os.ReadFile(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, s := range []string{`{"model":"m","input":"x"}`, `{"model":"m","input":[]}`, `{"model":"m","input":[{"role":"user","content":[{"type":"input_image"}]}]}`,
		`{"model":"m","input":[{"type":"function_call_output","call_id":"c","output":[{"type":"input_image","image_url":"u"}]}]}`,
		`{"model":"m","input":"x","tools":[{"type":"namespace","name":"n","tools":[{"type":"custom","name":"c"}]}],"tool_choice":{"type":"custom","name":"c","namespace":"n"}}`,
		`{"model":"m","input":"x","tool_choice":{"type":"allowed_tools","mode":"required","tools":[]}}`, `{"model":1}`, `[]`, `null`} {
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
		tr, err := r.Translate(r.Items) // the input replayed as its own history too
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
		if _, err := providers.ParseChatRequest(tr.PivotBody); err != nil {
			t.Fatalf("the pivot is not a chat request: %v\n%s", err, tr.PivotBody)
		}
		if _, err := providers.DecodeOpenAIRequest(tr.PivotBody); err != nil {
			t.Fatalf("adapters cannot decode the pivot: %v\n%s", err, tr.PivotBody)
		}
		b := NewBuilder(r, tr.Tools, "resp_f", r.Model, 1, true)
		b.Start()
		for name := range tr.Tools {
			b.Feed(providers.Event{Kind: providers.EventToolStart, ID: "c", Name: name}, nil)
			b.Feed(providers.Event{Kind: providers.EventToolArgs, Text: "{"}, nil)
		}
		if _, obj := b.Finish(providers.Usage{}); !json.Valid(obj) {
			t.Fatalf("invalid response object %s", obj)
		}
	})
}
