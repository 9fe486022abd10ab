package gemini

import (
	"encoding/base64"
	"strings"

	"github.com/xroute/xroute/providers"
)

// Thought signatures across the OpenAI round trip.
//
// Gemini attaches an opaque thoughtSignature (bytes, base64 in JSON) to the
// functionCall parts it returns, and Gemini 3 rejects with a 400 a request
// whose current turn replays a function call without its signature. OpenAI's
// format has no field for it and xroute keeps no conversation state (any
// replica may serve the next turn), so the signature travels inside the tool
// call id, which every client echoes back verbatim in the assistant message
// and in the tool message's tool_call_id:
//
//	call_<12 random [0-9a-z]><n>              a call without a signature
//	call_<12 random [0-9a-z]><n>_ts_<sig>     sig = the signature's bytes in
//	                                          unpadded base64url
//
// Base64url keeps the id within [A-Za-z0-9_-] (what other providers accept
// as ids, should the conversation move to one). On the way back the
// signature is decoded from the id and sent as standard base64 on the same
// functionCall part. In parallel calls only the first part carries one, as
// Gemini returns them. A tool call without any signature in its assistant
// message (history made by another provider) gets skipSignature on its first
// call, the value Google documents for injected function calls.
const sigMarker = "_ts_"

// skipSignature is the documented dummy thoughtSignature that turns off the
// signature check for function calls Gemini did not produce.
const skipSignature = "skip_thought_signature_validator"

// toolCallID returns the OpenAI id of function call n, carrying sig.
func toolCallID(n int, sig string) string { return withSignature(providers.ToolCallID(n), sig) }

// withSignature appends sig to the call id id.
func withSignature(id, sig string) string {
	if sig == "" {
		return id
	}
	raw, ok := decodeBase64(sig)
	if !ok || len(raw) == 0 {
		return id // not bytes in any base64 form: nothing we could restore
	}
	return id + sigMarker + base64.RawURLEncoding.EncodeToString(raw)
}

// signatureFromID restores the signature an id carries, as standard
// base64; "" when it carries none.
func signatureFromID(id string) string {
	i := strings.Index(id, sigMarker)
	if i < 0 {
		return ""
	}
	raw, err := base64.RawURLEncoding.DecodeString(id[i+len(sigMarker):])
	if err != nil || len(raw) == 0 {
		return ""
	}
	return base64.StdEncoding.EncodeToString(raw)
}

// decodeBase64 accepts the standard and URL alphabets, padded or not (a
// proto bytes field in JSON may use either).
func decodeBase64(s string) ([]byte, bool) {
	s = strings.TrimRight(s, "=")
	if strings.ContainsAny(s, "-_") {
		b, err := base64.RawURLEncoding.DecodeString(s)
		return b, err == nil
	}
	b, err := base64.RawStdEncoding.DecodeString(s)
	return b, err == nil
}
