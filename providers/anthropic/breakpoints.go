package anthropic

import (
	"bytes"
	"strconv"

	"github.com/tidwall/gjson"
	"github.com/tidwall/sjson"

	"github.com/xroute/xroute/providers/catalog"
)

// Prompt caching on Anthropic happens only up to the breakpoints a request
// marks (cache_control). A caller that marks none — every OpenAI-format
// caller, and Messages callers that did not — pays full input price for
// the same long prefix every turn. xroute marks, within Anthropic's limit
// of four: the end of the tools, the end of the system prompt, the last
// stable turn (the one before the newest user turn) and the stable turn
// of the previous request (two turns earlier), whose prefix the previous
// request wrote — so each turn reads what the last one cached. A mark is
// added only where the prefix up to it reaches the model's minimum
// cacheable length; a request that marks any breakpoint of its own is sent
// as it is. Marks change no meaning: a string system prompt or turn becomes
// the same text as one text block.

// MinCacheTokens implements providers.BreakpointCacher: every model on the
// Messages API caches, from 1024 tokens (2048 for Haiku) unless the catalog
// says otherwise.
func (a *Adapter) MinCacheTokens(model string) int {
	return max(catalog.DefaultMinCacheTokens(model), 1024)
}

// maxBreakpoints is Anthropic's limit of cache_control marks per request.
const maxBreakpoints = 4

// ephemeral is the mark: the default 5-minute cache.
var ephemeral = []byte(`{"type":"ephemeral"}`)

// AddBreakpoints returns a Messages body with cache_control marks added
// (see above) where the prefix is at least minTokens long, or body itself
// when it marks some already, minTokens is 0 or no prefix is long enough.
// body is not modified. Token counts are estimated at 4 bytes of JSON per
// token, which errs long on JSON: a mark on a prefix the provider finds
// too short is ignored by it, never refused.
func AddBreakpoints(body []byte, minTokens int) []byte {
	if minTokens <= 0 || bytes.Contains(body, []byte(`"cache_control"`)) {
		return body
	}
	type mark struct {
		path string
		// text is set for a string value: it becomes one text block.
		text *gjson.Result
	}
	var marks []mark
	size := 0
	long := func(raw string) bool {
		size += len(raw)
		return size/4 >= minTokens
	}
	if tools := gjson.GetBytes(body, "tools"); tools.IsArray() {
		arr := tools.Array()
		if len(arr) > 0 && long(tools.Raw) {
			marks = append(marks, mark{path: "tools." + strconv.Itoa(len(arr)-1)})
		}
	}
	if sys := gjson.GetBytes(body, "system"); sys.Exists() && long(sys.Raw) {
		if p, text, ok := lastMarkable("system", sys); ok {
			marks = append(marks, mark{path: p, text: text})
		}
	}
	msgs := gjson.GetBytes(body, "messages").Array()
	n := len(msgs)
	// The last stable turn precedes the newest user turn; the previous
	// request's was two turns earlier (turns alternate).
	var stable []int
	if n >= 2 && msgs[n-1].Get("role").Str == "user" {
		if n >= 4 && msgs[n-3].Get("role").Str == "user" {
			stable = append(stable, n-4)
		}
		stable = append(stable, n-2)
	}
	// Keep the later turns when the limit is short: they cover more.
	for len(marks)+len(stable) > maxBreakpoints && len(stable) > 0 {
		stable = stable[1:]
	}
	for len(marks)+len(stable) > maxBreakpoints {
		marks = marks[1:]
	}
	next := 0
	for _, i := range stable {
		for ; next <= i; next++ {
			size += len(msgs[next].Raw)
		}
		if size/4 < minTokens {
			continue
		}
		at := "messages." + strconv.Itoa(i) + ".content"
		if p, text, ok := lastMarkable(at, msgs[i].Get("content")); ok {
			marks = append(marks, mark{path: p, text: text})
		}
	}
	if len(marks) == 0 {
		return body
	}
	out := body
	for _, m := range marks {
		var err error
		if m.text != nil {
			block := []byte(`{"type":"text","text":` + m.text.Raw + `,"cache_control":` + string(ephemeral) + `}`)
			out, err = sjson.SetRawBytes(out, m.path, append(append([]byte{'['}, block...), ']'))
		} else {
			out, err = sjson.SetRawBytes(out, m.path+".cache_control", ephemeral)
		}
		if err != nil {
			return body // never send a half-marked body
		}
	}
	return out
}

// lastMarkable is where a content value (system or a turn's content: a
// string or blocks) can take a mark: the path of its last block that can,
// or the value itself when it is a non-empty string (text set: it becomes
// a block). Thinking blocks and empty text cannot carry cache_control.
func lastMarkable(at string, v gjson.Result) (string, *gjson.Result, bool) {
	if v.Type == gjson.String {
		if v.Str == "" {
			return "", nil, false
		}
		return at, &v, true
	}
	if !v.IsArray() {
		return "", nil, false
	}
	arr := v.Array()
	for i := len(arr) - 1; i >= 0; i-- {
		b := arr[i]
		switch b.Get("type").Str {
		case "thinking", "redacted_thinking":
			continue
		case "text":
			if b.Get("text").Str == "" {
				continue
			}
		case "":
			continue
		}
		return at + "." + strconv.Itoa(i), nil, true
	}
	return "", nil, false
}
