package anthropic

import (
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/xroute/xroute/loadtest/mock"
	"github.com/xroute/xroute/providers/sse"
)

// event is one decoded stream event.
type event struct {
	name string
	data map[string]any
}

func readEvents(t *testing.T, r io.Reader) ([]event, error) {
	t.Helper()
	var out []event
	sr := sse.NewReader(r)
	for {
		ev, err := sr.Next()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		var d map[string]any
		if err := json.Unmarshal(ev.Data, &d); err != nil {
			t.Fatalf("event %s: %v: %s", ev.Name, err, ev.Data)
		}
		if d["type"] != ev.Name {
			t.Fatalf("event name %q, data type %v", ev.Name, d["type"])
		}
		out = append(out, event{ev.Name, d})
	}
}

func names(evs []event) string {
	var n []string
	for _, e := range evs {
		n = append(n, e.name)
	}
	return strings.Join(n, " ")
}

func TestStreamOrder(t *testing.T) {
	t.Parallel()
	_, base := start(t, Config{Config: mock.Config{ChunkTokens: 8, CompletionTokens: 16}})
	resp := post(t, base, `{"model":"m","max_tokens":100,"stream":true,"messages":[{"role":"user","content":"hello there"}]}`, nil)
	if ct := resp.Header.Get("content-type"); !strings.HasPrefix(ct, "text/event-stream") {
		t.Fatalf("content-type %s", ct)
	}
	evs, err := readEvents(t, resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	want := "message_start content_block_start ping content_block_delta content_block_delta content_block_stop message_delta message_stop"
	if got := names(evs); got != want {
		t.Fatalf("events\n%s\nwant\n%s", got, want)
	}
	var text string
	for _, e := range evs[3:5] {
		text += e.data["delta"].(map[string]any)["text"].(string)
	}
	var m msgBody
	readJSON(t, post(t, base, hello, nil), &m)
	if text != m.Content[0].Text {
		t.Fatalf("streamed %q, plain %q", text, m.Content[0].Text)
	}
	md := evs[6].data
	if md["delta"].(map[string]any)["stop_reason"] != "end_turn" || md["usage"].(map[string]any)["output_tokens"] != float64(16) {
		t.Fatalf("message_delta %v", md)
	}

	// Tools: an empty first fragment, then the arguments.
	resp = post(t, base, `{"model":"m","max_tokens":100,"stream":true,`+weatherTools+`,"messages":[{"role":"user","content":"weather?"}]}`, nil)
	evs, err = readEvents(t, resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var args [3]string
	for i, e := range evs {
		switch e.name {
		case "content_block_start":
			if i > 1 && evs[i-1].name != "content_block_stop" {
				t.Fatalf("block started before the previous one stopped: %s", names(evs))
			}
		case "content_block_delta":
			d := e.data["delta"].(map[string]any)
			idx := int(e.data["index"].(float64))
			if d["type"] == "input_json_delta" {
				if args[idx] == "" && evs[i-1].name == "content_block_start" && d["partial_json"] != "" {
					t.Fatal("the first input_json_delta should be empty")
				}
				args[idx] += d["partial_json"].(string)
			}
		}
	}
	for i := 1; i < 3; i++ {
		if !json.Valid([]byte(args[i])) {
			t.Fatalf("arguments of block %d: %q", i, args[i])
		}
	}
}

// TestStreamThinking checks the wire of a thinking + text stream as the
// reference's streaming docs show it.
func TestStreamThinking(t *testing.T) {
	t.Parallel()
	_, base := start(t, Config{Config: mock.Config{ChunkTokens: 32, CompletionTokens: 6}})
	resp := post(t, base, `{"model":"m","max_tokens":2000,"stream":true,"thinking":{"type":"enabled","budget_tokens":1024},"messages":[{"role":"user","content":"hello there"}]}`, nil)
	evs, err := readEvents(t, resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range evs {
		n := e.name
		if d, ok := e.data["delta"].(map[string]any); ok && e.name == "content_block_delta" {
			n += ":" + d["type"].(string)
		}
		got = append(got, n)
	}
	want := "message_start content_block_start ping content_block_delta:thinking_delta content_block_delta:thinking_delta content_block_delta:signature_delta content_block_stop " +
		"content_block_start content_block_delta:text_delta content_block_stop message_delta message_stop"
	if strings.Join(got, " ") != want {
		t.Fatalf("events\n%s\nwant\n%s", strings.Join(got, " "), want)
	}
	start := evs[1].data["content_block"].(map[string]any)
	if start["type"] != "thinking" || start["thinking"] != "" || start["signature"] != "" || len(start) != 3 {
		t.Fatalf("thinking block start %v", start)
	}
	var thinking string
	for _, e := range evs[3:5] {
		thinking += e.data["delta"].(map[string]any)["thinking"].(string)
	}
	sig := evs[5].data["delta"].(map[string]any)["signature"].(string)
	if len(strings.Fields(thinking)) != 64 || !validSignature(sig, thinking) {
		t.Fatalf("thinking %q signature %q", thinking, sig)
	}
	u := evs[10].data["usage"].(map[string]any)
	if u["output_tokens"] != float64(64+6) || u["output_tokens_details"].(map[string]any)["thinking_tokens"] != float64(64) || u["input_tokens"] != float64(8) || u["cache_creation"] != nil {
		t.Fatalf("message_delta usage %v", u)
	}
	if mu := evs[0].data["message"].(map[string]any)["usage"].(map[string]any); mu["output_tokens"] != float64(1) || mu["cache_creation"] == nil {
		t.Fatalf("message_start usage %v", mu)
	}
}
