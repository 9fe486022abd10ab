package messages

import "testing"

// emitTextDelta writes what emit writes for the same event.
func TestEmitTextDeltaMatchesEmit(t *testing.T) {
	for _, text := range []string{"Hello", "", "a \"quoted\" <b>&</b>\n\u2028 é"} {
		fast := &Builder{stream: true}
		slow := &Builder{stream: true}
		fast.emitTextDelta(3, text)
		slow.emit("content_block_delta", map[string]any{"index": 3, "delta": map[string]any{"type": "text_delta", "text": text}})
		if string(fast.buf) != string(slow.buf) {
			t.Fatalf("text %q:\nfast %s\nslow %s", text, fast.buf, slow.buf)
		}
	}
}
