package gemini

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/xroute/xroute/providers"
	"github.com/xroute/xroute/providers/providertest"
)

var update = flag.Bool("update", false, "rewrite the testdata/*.golden files")

// TestRequestGolden translates testdata/requests/*.json (OpenAI bodies)
// into Gemini bodies and compares them with the .golden files.
func TestRequestGolden(t *testing.T) {
	providertest.Goldens(t, *update, "testdata/requests/*.json", ".json", func(t *testing.T, _ string, in []byte) []byte {
		body, err := translateRequest(in)
		if err != nil {
			t.Fatalf("translate: %v", err)
		}
		return providertest.Indent(t, body)
	})
}

// fixedIDs makes tool call ids deterministic for goldens.
func fixedIDs(n int, sig string) string { return withSignature(fmt.Sprintf("call_%d", n), sig) }

// recordedStream reads a recorded Gemini SSE body through the translator,
// with deterministic ids.
func recordedStream(body io.Reader) providers.Stream {
	tr := newTranslator("gem", body, providers.ChunkBuilder{ID: "chatcmpl-golden", Model: "pub", Created: 1700000000})
	tr.newID = fixedIDs
	return &providers.TranslatedStream{Next: tr.next}
}

// TestStreamGolden translates recorded streams (testdata/streams/*.sse)
// into OpenAI chunks and compares them with the .golden files.
func TestStreamGolden(t *testing.T) {
	providertest.Goldens(t, *update, "testdata/streams/*.sse", ".sse", func(t *testing.T, _ string, in []byte) []byte {
		return providertest.Transcript(t, recordedStream(bytes.NewReader(in)))
	})
}

// TestSignatureRoundTrip: the signature Gemini sent comes back byte for
// byte from the id the caller echoes.
func TestSignatureRoundTrip(t *testing.T) {
	for _, sig := range []string{
		"CiwBjz1rX+nT5a/Qy1pMZQ/vH3b0K0ax2w==", // standard, padded
		"CiwBjz1rX-nT5a_Qy1pMZQ_vH3b0K0ax2w",   // URL alphabet, unpadded
		"EjQKMgEB",
	} {
		id := toolCallID(3, sig)
		if strings.ContainsFunc(id, func(r rune) bool {
			return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-')
		}) {
			t.Fatalf("id %q leaves [A-Za-z0-9_-]", id)
		}
		back := signatureFromID(id)
		want, _ := decodeBase64(sig)
		got, _ := decodeBase64(back)
		if !bytes.Equal(got, want) || strings.ContainsAny(back, "-_") {
			t.Fatalf("%q -> %q -> %q", sig, id, back)
		}
	}
	if toolCallID(0, "!!not base64!!") != "" && signatureFromID(toolCallID(0, "!!not base64!!")) != "" {
		t.Fatal("an undecodable signature must be dropped")
	}
	if signatureFromID("toolu_01ABC") != "" || signatureFromID("call_x_ts_%%%") != "" {
		t.Fatal("foreign or broken ids carry no signature")
	}
}
