package responses

import "testing"

// emitTextDelta writes what emitItem writes for the same event.
func TestEmitTextDeltaMatchesEmitItem(t *testing.T) {
	for _, text := range []string{"Hello", "", "a \"quoted\" <b>&</b>\n\u2028 é"} {
		fast := &Builder{stream: true, seq: 7}
		slow := &Builder{stream: true, seq: 7}
		it := &outItem{id: "msg_0123", index: 2}
		fast.emitTextDelta(it, text)
		slow.emitItem("response.output_text.delta", it, map[string]any{"content_index": 0, "delta": text, "logprobs": []any{}})
		if string(fast.buf) != string(slow.buf) || fast.seq != slow.seq {
			t.Fatalf("text %q:\nfast %s\nslow %s", text, fast.buf, slow.buf)
		}
	}
}
