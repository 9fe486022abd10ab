package httpapi

import (
	"bytes"
	"encoding/json"

	"github.com/tidwall/gjson"
	"github.com/xroute/xroute/internal/jsontext"
)

// The model an answer names is the public model the caller asked for, on
// every ingress, from every provider, streamed or not: it is the name the
// caller can send again, and the one its usage is listed under. The
// deployment's own id is in the x-xroute-model header and the usage
// record. Answers the ingresses build (translated answers, cache hits,
// embeddings) are built with that name; answers relayed as an upstream or
// an adapter wrote them (chat completions, native Responses and Messages,
// native legacy completions) are rewritten here, in one place, and never
// by an adapter.

// modelKey is the key whose presence marks an answer (or an event) that
// may name a model.
var modelKey = []byte(`"model"`)

var colon = []byte(":")

// modelPaths are where the formats name the model: at the top of a chat
// completion, a chunk, a legacy completion, a Responses object and a
// Messages message; in a Messages stream's message_start; in a Responses
// stream's response.* events.
var modelPaths = [...]string{"model", "message.model", "response.model"}

// quoteModel is a public model name as a JSON string.
func quoteModel(model string) []byte {
	q, _ := json.Marshal(model) // a string always marshals
	return q
}

// withModel returns data with the model it names replaced by quoted (a
// JSON string, see quoteModel): data itself when it names none or names
// quoted already, else the rewritten answer appended to dst[:0].
func withModel(dst, data, quoted []byte) []byte {
	i := jsontext.IndexQuoted(data, modelKey)
	if i < 0 {
		return data
	}
	// Every chunk of a stream goes through here, and most already name
	// the public model (the deployment's id is the public name): when the
	// only "model" in data is a key whose value is quoted, nothing would
	// change, wherever it sits, so a byte search answers without parsing
	// the chunk. (IndexQuoted: the key is found by its rare first letter,
	// not by its quote.)
	after := data[i+len(modelKey):]
	if v, ok := bytes.CutPrefix(bytes.TrimLeft(after, " \t\r\n"), colon); ok && bytes.HasPrefix(bytes.TrimLeft(v, " \t\r\n"), quoted) && jsontext.IndexQuoted(after, modelKey) < 0 {
		return data
	}
	for _, p := range modelPaths {
		v := gjson.GetBytes(data, p)
		if !v.Exists() {
			continue
		}
		if v.Type != gjson.String || v.Index <= 0 || v.Raw == string(quoted) {
			return data
		}
		dst = append(dst[:0], data[:v.Index]...)
		dst = append(dst, quoted...)
		return append(dst, data[v.Index+len(v.Raw):]...)
	}
	return data
}
