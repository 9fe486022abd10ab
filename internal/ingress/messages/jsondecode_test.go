package messages

import (
	"testing"

	"github.com/xroute/xroute/internal/testutil"
)

// FuzzDecodeMatchesStd: the Messages request and its content blocks decode
// with segmentio/encoding/json as with encoding/json (see the providers
// package's fuzz of the same name): the same values, an error where it
// has one.
func FuzzDecodeMatchesStd(f *testing.F) {
	for _, s := range []string{
		`{"model":"m","max_tokens":5,"messages":[{"role":"user","content":"hi"}],"system":"s"}`,
		`{"model":"m","max_tokens":5,"messages":[{"role":"user","content":[{"type":"text","text":"a","cache_control":{"type":"ephemeral"}},{"type":"image","source":{"type":"base64","media_type":"image/png","data":"AA=="}}]}]}`,
		`{"model":"m","max_tokens":5,"messages":[{"role":"assistant","content":[{"type":"tool_use","id":"t","name":"f","input":{"a":[1,2]}}]},{"role":"user","content":[{"type":"tool_result","tool_use_id":"t","content":[{"type":"text","text":"r"}],"is_error":true}]}]}`,
		`{"model":"m","max_tokens":"5"}`,
		`{"model":"m","thinking":{"type":"enabled","budget_tokens":2048},"tools":[{"name":"x","input_schema":{}}],"tool_choice":{"type":"tool","name":"x"}}`,
		`{"model":"m","temperature":1e400}`,
		`[{"type":"text","text":"x"}]`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		testutil.SameDecode[Request](t, body, true)
		testutil.SameDecode[[]Block](t, body, true)
	})
}
