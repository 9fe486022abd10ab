package anthropic

import (
	"strconv"
	"strings"
	"testing"
	"time"
)

// cacheCounts is the cache side of a Messages answer's usage.
type cacheCounts struct{ input, write, read int }

func cacheCall(t *testing.T, base, key, body string) cacheCounts {
	t.Helper()
	resp := post(t, base, body, map[string]string{"x-api-key": key})
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	var m struct {
		Usage struct {
			Input int `json:"input_tokens"`
			Write int `json:"cache_creation_input_tokens"`
			Read  int `json:"cache_read_input_tokens"`
		} `json:"usage"`
	}
	readJSON(t, resp, &m)
	return cacheCounts{m.Usage.Input, m.Usage.Write, m.Usage.Read}
}

// cachedBody is a Messages request of model whose system prompt (words
// words, then a breakpoint) is the cached prefix, and a user message.
func cachedBody(model string, words int, user string) string {
	sys := strings.TrimSpace(strings.Repeat("stable ", words))
	return `{"model":"` + model + `","max_tokens":8,"system":[{"type":"text","text":"` + sys +
		`","cache_control":{"type":"ephemeral"}}],"messages":[{"role":"user","content":"` + user + `"}]}`
}

// TestPromptCacheScopes: the cache is per provider key and per model, and
// a prefix below the model's minimum cacheable length is never cached.
// Token counts: framing 3 + system 3 + words; the user turn 3 + its 2 words.
func TestPromptCacheScopes(t *testing.T) {
	t.Parallel()
	clk := &clock{t: time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)}
	_, base := start(t, Config{Now: clk.Now})
	const words = 1100
	prefix := 3 + 3 + words
	type step struct {
		name, key, model string
		words            int
		advance          time.Duration
		want             cacheCounts
	}
	for _, st := range []step{
		{"first call writes", "sk-ant-a", "claude-sonnet-5-5", words, 0, cacheCounts{input: 5, write: prefix}},
		{"second call reads", "sk-ant-a", "claude-sonnet-5-5", words, time.Minute, cacheCounts{input: 5, read: prefix}},
		{"another key does not share it", "sk-ant-b", "claude-sonnet-5-5", words, 0, cacheCounts{input: 5, write: prefix}},
		{"another model does not share it", "sk-ant-a", "claude-opus-5-5", words, 0, cacheCounts{input: 5, write: prefix}},
		{"below Haiku 4.5's 4096-token minimum: no cache", "sk-ant-a", "claude-haiku-4-5", words, 0, cacheCounts{input: prefix + 5}},
		{"and still none the second time", "sk-ant-a", "claude-haiku-4-5", words, 0, cacheCounts{input: prefix + 5}},
		{"above it: written", "sk-ant-a", "claude-haiku-4-5", 4100, 0, cacheCounts{input: 5, write: 3 + 3 + 4100}},
		{"below Sonnet's 1024: no cache", "sk-ant-a", "claude-sonnet-5-5", 1000, 0, cacheCounts{input: 3 + 3 + 1000 + 5}},
		{"the first key's entry expires 5 minutes after its last read", "sk-ant-a", "claude-sonnet-5-5", words, 5*time.Minute + time.Second, cacheCounts{input: 5, write: prefix}},
	} {
		clk.Advance(st.advance)
		if got := cacheCall(t, base, st.key, cachedBody(st.model, st.words, "hi there")); got != st.want {
			t.Fatalf("%s: %+v, want %+v", st.name, got, st.want)
		}
	}
}

// TestPromptCacheLookback: a breakpoint moved to the newest turn finds the
// previous turn's entry within 20 blocks, not beyond.
func TestPromptCacheLookback(t *testing.T) {
	t.Parallel()
	_, base := start(t, Config{})
	sys := strings.TrimSpace(strings.Repeat("stable ", 1100))
	// a conversation of n user/assistant turns, the breakpoint on the last
	// user block; each message is one block.
	body := func(n int) string {
		var msgs []string
		for i := range n {
			msgs = append(msgs, `{"role":"user","content":[{"type":"text","text":"question `+strconv.Itoa(i)+`"`+
				map[bool]string{true: `,"cache_control":{"type":"ephemeral"}`}[i == n-1]+`}]}`)
			if i < n-1 {
				msgs = append(msgs, `{"role":"assistant","content":"answer `+strconv.Itoa(i)+`"}`)
			}
		}
		return `{"model":"claude-sonnet-5-5","max_tokens":8,"system":"` + sys + `","messages":[` + strings.Join(msgs, ",") + `]}`
	}
	first := cacheCall(t, base, "sk-ant-a", body(1))
	if first.read != 0 || first.write == 0 {
		t.Fatalf("turn 1: %+v", first)
	}
	// Turn 2 adds two messages (a block each; role markers are no blocks):
	// the old breakpoint is 2 blocks back, within reach.
	if got := cacheCall(t, base, "sk-ant-a", body(2)); got.read != first.write || got.input != 0 {
		t.Fatalf("turn 2: %+v after %+v", got, first)
	}
	// 12 turns later the turn-2 entry is 24 blocks back, beyond the 20 of
	// the lookback: a miss that rewrites the whole prefix.
	got := cacheCall(t, base, "sk-ant-a", body(14))
	if got.read != 0 || got.write == 0 {
		t.Fatalf("turn 14: %+v", got)
	}
	// Six turns on, turn 14's entry is 12 blocks back: read.
	if got20 := cacheCall(t, base, "sk-ant-a", body(20)); got20.read != got.write {
		t.Fatalf("turn 20: %+v after turn 14 %+v", got20, got)
	}
}
