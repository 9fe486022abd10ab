package providertest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"testing"

	"github.com/xroute/xroute/providers"
)

// maxChunks bounds Transcript: a translator that never ends is a failure,
// not a hung test.
const maxChunks = 10000

// Transcript drains st and renders it for a golden file, one line a
// chunk, then one line for how the stream ended:
//
//	CHUNK <data>
//	USAGE <usage> <data>          (the include_usage chunk)
//	END: EOF
//	END: {"status":…,"type":…,"code":…,"message":…,"mid_stream":…}
//
// Every chunk must be JSON and every error a *providers.Error: anything
// else fails the test, so a golden file cannot freeze a broken stream.
func Transcript(t testing.TB, st providers.Stream) []byte {
	t.Helper()
	var out bytes.Buffer
	for range maxChunks {
		c, err := st.Recv()
		if errors.Is(err, io.EOF) {
			out.WriteString("END: EOF\n")
			return out.Bytes()
		}
		if err != nil {
			var pe *providers.Error
			if !errors.As(err, &pe) {
				t.Fatalf("stream error is not a *providers.Error: %T %v", err, err)
			}
			out.WriteString("END: ")
			out.Write(renderError(pe))
			out.WriteByte('\n')
			return out.Bytes()
		}
		if !json.Valid(c.Data) {
			t.Fatalf("chunk is not JSON: %q", c.Data)
		}
		if c.UsageOnly {
			fmt.Fprintf(&out, "USAGE %+v ", *c.Usage)
		} else {
			out.WriteString("CHUNK ")
		}
		out.Write(c.Data)
		out.WriteByte('\n')
	}
	t.Fatalf("stream did not end after %d chunks", maxChunks)
	return nil
}

// renderError is the golden form of a stream's error: the fields callers
// see, and the transport cause when there is one.
func renderError(pe *providers.Error) []byte {
	cause := ""
	if pe.Err != nil {
		cause = pe.Err.Error()
	}
	b, _ := json.Marshal(struct {
		Status    int    `json:"status"`
		Type      string `json:"type"`
		Code      string `json:"code"`
		Message   string `json:"message"`
		MidStream bool   `json:"mid_stream"`
		Cause     string `json:"cause,omitempty"`
	}{pe.Status, pe.Type, pe.Code, pe.Message, pe.MidStream, cause})
	return b
}

// Collect drains st and returns its chunks and the error it ended with
// (nil for a clean io.EOF); for tests that assert on a live stream rather
// than a golden file. It closes st.
func Collect(t testing.TB, st providers.Stream) ([]providers.Chunk, error) {
	t.Helper()
	defer st.Close()
	var chunks []providers.Chunk
	for range maxChunks {
		c, err := st.Recv()
		if errors.Is(err, io.EOF) {
			return chunks, nil
		}
		if err != nil {
			return chunks, err
		}
		c.Data = bytes.Clone(c.Data)
		chunks = append(chunks, c)
	}
	t.Fatalf("stream did not end after %d chunks", maxChunks)
	return nil, nil
}
