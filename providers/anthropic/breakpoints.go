package anthropic

import (
	"bytes"
	"slices"
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
	marks := findMarks(body, minTokens)
	if len(marks) == 0 {
		return body
	}
	if out, ok := spliceMarks(body, marks); ok {
		return out
	}
	return setMarks(body, marks)
}

// findMarks is where AddBreakpoints marks body (see above), none when the
// body marks some already.
func findMarks(body []byte, minTokens int) []mark {
	if minTokens <= 0 || bytes.Contains(body, []byte(`"cache_control"`)) {
		return nil
	}
	var marks []mark
	size := 0
	long := func(raw string) bool {
		size += len(raw)
		return size/4 >= minTokens
	}
	// One pass over the top-level keys (an agent's body is hundreds of
	// kilobytes; a lookup per key would scan it once per key).
	var tools, sys, messages gjson.Result
	gjson.ParseBytes(body).ForEach(func(k, v gjson.Result) bool {
		var r *gjson.Result
		switch k.Str {
		case "tools":
			r = &tools
		case "system":
			r = &sys
		case "messages":
			r = &messages
		}
		if r != nil && !r.Exists() { // the first of a repeated key, as gjson.Get
			*r = v
		}
		return true
	})
	if tools.IsArray() {
		arr := tools.Array()
		if len(arr) > 0 && long(tools.Raw) {
			marks = append(marks, mark{path: "tools." + strconv.Itoa(len(arr)-1), val: arr[len(arr)-1]})
		}
	}
	if sys.Exists() && long(sys.Raw) {
		if m, ok := lastMarkable("system", sys); ok {
			marks = append(marks, m)
		}
	}
	msgs := messages.Array()
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
		if m, ok := lastMarkable(at, msgs[i].Get("content")); ok {
			marks = append(marks, m)
		}
	}
	return marks
}

// mark is where a cache_control mark goes: the block object val at path,
// or (text) the string val that becomes one text block.
type mark struct {
	path string
	val  gjson.Result
	text bool
}

// spliceMarks writes the marks into one copy of body, at the offsets gjson
// found them (four sjson edits each copied and re-scanned the whole body:
// ~4 ms of a 330 KB agent turn). It reports false where an offset does not
// hold what was read there (never expected: setMarks then does it).
func spliceMarks(body []byte, marks []mark) ([]byte, bool) {
	sorted := slices.Clone(marks)
	slices.SortFunc(sorted, func(a, b mark) int { return a.val.Index - b.val.Index })
	pos := 0
	for _, m := range sorted {
		i, raw := m.val.Index, m.val.Raw
		if i < pos || i+len(raw) > len(body) || string(body[i:i+len(raw)]) != raw || (!m.text && (len(raw) < 2 || raw[len(raw)-1] != '}')) {
			return nil, false
		}
		pos = i + len(raw)
	}
	out := make([]byte, 0, len(body)+len(marks)*(len(ephemeral)+48))
	pos = 0
	for _, m := range sorted {
		i, raw := m.val.Index, m.val.Raw
		if m.text {
			out = append(out, body[pos:i]...)
			out = append(out, `[{"type":"text","text":`...)
			out = append(out, raw...)
			out = append(out, `,"cache_control":`...)
			out = append(out, ephemeral...)
			out = append(out, "}]"...)
			pos = i + len(raw)
			continue
		}
		end := i + len(raw) - 1 // the object's closing brace
		out = append(out, body[pos:end]...)
		if len(bytes.TrimSpace([]byte(raw[1:len(raw)-1]))) > 0 {
			out = append(out, ',')
		}
		out = append(out, `"cache_control":`...)
		out = append(out, ephemeral...)
		pos = end
	}
	return append(out, body[pos:]...), true
}

// setMarks writes the marks with sjson, one edit each.
func setMarks(body []byte, marks []mark) []byte {
	out := body
	for _, m := range marks {
		var err error
		if m.text {
			block := []byte(`{"type":"text","text":` + m.val.Raw + `,"cache_control":` + string(ephemeral) + `}`)
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
// string or blocks) can take a mark: its last block that can, or the
// value itself when it is a non-empty string (it becomes a block).
// Thinking blocks and empty text cannot carry cache_control.
func lastMarkable(at string, v gjson.Result) (mark, bool) {
	if v.Type == gjson.String {
		if v.Str == "" {
			return mark{}, false
		}
		return mark{path: at, val: v, text: true}, true
	}
	if !v.IsArray() {
		return mark{}, false
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
		return mark{path: at + "." + strconv.Itoa(i), val: b}, true
	}
	return mark{}, false
}
