package responses

import (
	"encoding/json"
	"testing"

	"github.com/xroute/xroute/internal/testutil"
)

// FuzzDecodeMatchesStd: the input items and their content parts decode
// with segmentio/encoding/json as with encoding/json (see the providers
// package's fuzz of the same name): the same values, an error where it
// has one.
func FuzzDecodeMatchesStd(f *testing.F) {
	for _, s := range []string{
		`[{"type":"message","role":"user","content":[{"type":"input_text","text":"a\nb \u00e9 \ud83d\ude00"}]}]`,
		`{"type":"function_call","call_id":"c","name":"f","arguments":"{\"a\":1}"}`,
		`{"type":"function_call_output","call_id":"c","output":"file\ncontents \"q\""}`,
		`{"type":"reasoning","id":"rs_1","summary":[],"encrypted_content":"gAAA"}`,
		`[{"type":"input_text","text":5}]`,
		`[{"type":"input_image","image_url":"https://x","detail":"low"},{"type":"output_text","text":null}]`,
		`{"type":"message","role":"assistant","content":"\ud800 lone"}`,
		"[{\"type\":\"input_text\",\"text\":\"\xff\"}]",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		testutil.SameDecode[Item](t, body, true)
		testutil.SameDecode[[]Part](t, body, true)
		testutil.SameDecode[[]json.RawMessage](t, body, true)
	})
}
