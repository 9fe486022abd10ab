package providers

import "net/http"

// Media types of upstream requests and answers.
const (
	ContentJSON = "application/json"
	EventStream = "text/event-stream"
)

// Accept is the Accept header of a request that streams or not.
func Accept(stream bool) string {
	if stream {
		return EventStream
	}
	return ContentJSON
}

// Headers are what an adapter puts on every upstream request. Every
// adapter writes them in the same order, so that the operator's extra
// headers (config headers:) can add to a request but never replace what
// the wire format or the credential needs.
type Headers struct {
	// Extra are the operator's headers, written first.
	Extra map[string]string
	// Own writes the adapter's own headers last: its credential and what
	// its wire format requires (anthropic-version). Nil writes none.
	Own func(h http.Header)
}

// Set writes the headers on h: Extra, User-Agent, Content-Type and Accept
// (each only when not ""; a GET has no Content-Type, a Bedrock request no
// Accept), then Own.
func (hs Headers) Set(h http.Header, contentType, accept string) {
	for k, v := range hs.Extra {
		h.Set(k, v)
	}
	h.Set("User-Agent", "xroute")
	if contentType != "" {
		h.Set("Content-Type", contentType)
	}
	if accept != "" {
		h.Set("Accept", accept)
	}
	if hs.Own != nil {
		hs.Own(h)
	}
}
