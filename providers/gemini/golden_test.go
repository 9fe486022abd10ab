package gemini

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	xgolden "github.com/xroute/xroute/internal/golden"
	"github.com/xroute/xroute/providers"
)

var update = flag.Bool("update", false, "rewrite the testdata/*.golden files")

// checkGolden compares got with the golden file at path (or rewrites it).
func checkGolden(t *testing.T, path string, got []byte) {
	t.Helper()
	xgolden.CheckFile(t, *update, path, got)
}

// TestRequestGolden translates testdata/requests/*.json (OpenAI bodies)
// into Gemini bodies and compares them with the .golden files.
func TestRequestGolden(t *testing.T) {
	files, err := filepath.Glob("testdata/requests/*.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no request fixtures: %v", err)
	}
	for _, f := range files {
		t.Run(strings.TrimSuffix(filepath.Base(f), ".json"), func(t *testing.T) {
			in, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			body, err := translateRequest(in)
			if err != nil {
				t.Fatalf("translate: %v", err)
			}
			var out bytes.Buffer
			if err := json.Indent(&out, body, "", "  "); err != nil {
				t.Fatal(err)
			}
			out.WriteByte('\n')
			checkGolden(t, strings.TrimSuffix(f, ".json")+".golden", out.Bytes())
		})
	}
}

// fixedIDs makes tool call ids deterministic for goldens.
func fixedIDs(n int, sig string) string { return withSignature(fmt.Sprintf("call_%d", n), sig) }

// runStream feeds a recorded Gemini SSE body through the translator and
// renders every chunk (one JSON per line) and how the stream ended.
func runStream(body io.Reader) ([]byte, error) {
	tr := newTranslator("gem", body, providers.ChunkBuilder{ID: "chatcmpl-golden", Model: "pub", Created: 1700000000})
	tr.newID = fixedIDs
	st := &providers.TranslatedStream{Next: tr.next}
	var out bytes.Buffer
	for i := 0; i < 10000; i++ {
		c, err := st.Recv()
		if errors.Is(err, io.EOF) {
			out.WriteString("EOF\n")
			return out.Bytes(), nil
		}
		if err != nil {
			var pe *providers.Error
			if !errors.As(err, &pe) || !pe.MidStream {
				return out.Bytes(), fmt.Errorf("stream error is not a mid-stream *providers.Error: %#v", err)
			}
			fmt.Fprintf(&out, "ERROR status=%d type=%q code=%q message=%q\n", pe.Status, pe.Type, pe.Code, pe.Message)
			return out.Bytes(), nil
		}
		if !json.Valid(c.Data) {
			return out.Bytes(), fmt.Errorf("chunk is not JSON: %q", c.Data)
		}
		out.Write(c.Data)
		if c.UsageOnly {
			fmt.Fprintf(&out, " usage=%+v", *c.Usage)
		}
		out.WriteByte('\n')
	}
	return out.Bytes(), errors.New("stream did not end")
}

// TestStreamGolden translates recorded streams (testdata/streams/*.sse)
// into OpenAI chunks and compares them with the .golden files.
func TestStreamGolden(t *testing.T) {
	files, err := filepath.Glob("testdata/streams/*.sse")
	if err != nil || len(files) == 0 {
		t.Fatalf("no stream fixtures: %v", err)
	}
	for _, f := range files {
		t.Run(strings.TrimSuffix(filepath.Base(f), ".sse"), func(t *testing.T) {
			in, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			got, err := runStream(bytes.NewReader(in))
			if err != nil {
				t.Fatal(err)
			}
			checkGolden(t, strings.TrimSuffix(f, ".sse")+".golden", got)
		})
	}
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
