package providers

import (
	"errors"
	"strings"
	"testing"
)

// TestHoleDuplicateFieldsRefused: a key xroute reads, given twice, was
// routed by one copy and sent upstream with the other; Go's decoder also
// took "MAX_TOKENS" (or a Kelvin-sign spelling) for max_tokens, which the
// upstream ignores. CheckFields refuses them, and mistyped values, naming
// the field; what xroute does not read is left alone.
func TestHoleDuplicateFieldsRefused(t *testing.T) {
	const msgs = `"messages":[{"role":"user","content":"hi"}]`
	for _, c := range []struct {
		name, body, param string // param "": accepted
	}{
		{"plain", `{"model":"m",` + msgs + `,"n":2,"temperature":0.5,"stream":true,"stream_options":{"include_usage":true}}`, ""},
		{"nulls", `{"model":"m",` + msgs + `,"n":null,"max_tokens":null,"temperature":null,"stream":null}`, ""},
		{"whitespace", " {\n\t\"model\" : \"m\" ,\r\n " + msgs + " } ", ""},
		{"model twice", `{"model":"free","model":"priced",` + msgs + `}`, "model"},
		{"n twice, far apart", `{"n":1,"model":"m",` + msgs + `,"n":100}`, "n"},
		{"stream in upper case", `{"model":"m",` + msgs + `,"STREAM":true}`, "stream"},
		{"max_tokens with a Kelvin sign", `{"model":"m",` + msgs + `,"max_to` + "\u212a" + `ens":5}`, "max_tokens"},
		{"escaped duplicate", `{"model":"m","mod\u0065l":"x",` + msgs + `}`, "model"},
		{"escaped, once", `{"mod\u0065l":"m",` + msgs + `}`, ""},
		{"nested duplicates are the upstream's", `{"model":"m",` + msgs + `,"metadata":{"a":1,"a":2},"response_format":{"type":"text","type":"json_object"}}`, ""},
		{"unread key twice", `{"model":"m",` + msgs + `,"user":"a","user":"b"}`, ""},
		{"keys inside strings", `{"model":"m","messages":[{"role":"user","content":"\"model\":\"x\", {\"n\":3} ]}"}]}`, ""},
		{"keys inside nested objects", `{"model":"m",` + msgs + `,"tools":[{"type":"function","function":{"name":"model","parameters":{"model":{"type":"string"},"n":{}}}}]}`, ""},
		{"model a number", `{"model":4,` + msgs + `}`, "model"},
		{"n a string", `{"model":"m",` + msgs + `,"n":"three"}`, "n"},
		{"n a float", `{"model":"m",` + msgs + `,"n":2.5}`, "n"},
		{"n zero", `{"model":"m",` + msgs + `,"n":0}`, "n"},
		{"max_tokens negative", `{"model":"m",` + msgs + `,"max_tokens":-1}`, "max_tokens"},
		{"max_tokens huge", `{"model":"m",` + msgs + `,"max_tokens":99999999999999999999}`, "max_tokens"},
		{"best_of an array", `{"model":"m","prompt":"x","best_of":[2]}`, "best_of"},
		{"temperature a string", `{"model":"m",` + msgs + `,"temperature":"hot"}`, "temperature"},
		{"top_p an object", `{"model":"m",` + msgs + `,"top_p":{}}`, "top_p"},
		{"stream a string", `{"model":"m",` + msgs + `,"stream":"yes"}`, "stream"},
		{"stream_options a string", `{"model":"m",` + msgs + `,"stream_options":"x"}`, "stream_options"},
		{"messages an object", `{"model":"m","messages":{}}`, "messages"},
		{"not an object", `[1,2]`, ""},
		{"not JSON", `{"model":`, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := CheckFields([]byte(c.body))
			var re *RequestError
			switch {
			case c.param == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case c.param != "" && (!errors.As(err, &re) || re.Param != c.param || !strings.Contains(re.Message, "'"+c.param+"'")):
				t.Fatalf("got %v, want a RequestError naming %s", err, c.param)
			}
		})
	}
}

var benchBody = []byte(`{"model":"gpt-4o-mini","stream":true,"stream_options":{"include_usage":true},"max_tokens":256,"temperature":0.7,"messages":[{"role":"system","content":"You are a helpful assistant that answers briefly."},{"role":"user","content":"` + strings.Repeat("Tell me about the history of the printing press. ", 20) + `"}]}`)

func BenchmarkCheckFields(b *testing.B) {
	b.ReportAllocs()
	b.SetBytes(int64(len(benchBody)))
	for b.Loop() {
		if err := CheckFields(benchBody); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseChatRequest(b *testing.B) {
	b.ReportAllocs()
	b.SetBytes(int64(len(benchBody)))
	for b.Loop() {
		if _, err := ParseChatRequest(benchBody); err != nil {
			b.Fatal(err)
		}
	}
}
