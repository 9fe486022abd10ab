package anthropic

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"strconv"
	"strings"

	"github.com/xroute/xroute/loadtest/mock"
)

const (
	minThinkingBudget     = 1024
	maxThinkingTokens     = 64 // the longest thinking block the mock writes
	interleavedTokens     = 8  // a thinking block between two tool_use blocks
	interleavedThinkingV1 = "interleaved-thinking-2025-05-14"
)

// thinkingPlan is how a request thinks: not at all (tokens 0), or a first
// block of tokens, interleaved before each later tool_use, its text shown
// or omitted.
type thinkingPlan struct {
	manual      bool // type "enabled" (manual extended thinking)
	tokens      int  // the first block
	interleaved bool
	omitted     bool // display "omitted"
}

// effortTokens is the length of adaptive thinking by effort.
var effortTokens = map[string]int{"low": 8, "medium": 24, "high": 48, "xhigh": 56, "max": 64}

// resolveThinking validates thinking and output_config.effort; maxTokens is
// nil for count_tokens (no max_tokens check).
func resolveThinking(req *request, maxTokens *int, betas string) (thinkingPlan, *apiError) {
	var tp thinkingPlan
	effort := ""
	if oc := req.OutputConfig; oc != nil {
		effort = oc.Effort
		if _, ok := effortTokens[effort]; effort != "" && !ok {
			return tp, invalid("output_config.effort: Input should be 'low', 'medium', 'high', 'xhigh' or 'max'")
		}
	}
	tc := req.Thinking
	if tc == nil {
		return tp, nil
	}
	switch tc.Display {
	case "", "summarized", "omitted":
		tp.omitted = tc.Display == "omitted"
	case "updates": // the thinking-display-updates beta: the mock writes no progress notes
		tp.omitted = true
	default:
		return tp, invalid("thinking." + tc.Type + ".display: Input should be 'summarized', 'omitted' or 'updates'")
	}
	beta := strings.Contains(betas, interleavedThinkingV1)
	switch tc.Type {
	case "disabled":
		return thinkingPlan{}, nil
	case "enabled":
		if tc.BudgetTokens == nil {
			return tp, invalid("thinking.enabled.budget_tokens: Field required")
		}
		b := *tc.BudgetTokens
		if b < minThinkingBudget {
			return tp, invalid("thinking.enabled.budget_tokens: Input should be greater than or equal to " + strconv.Itoa(minThinkingBudget))
		}
		// With interleaved thinking the budget spans the whole assistant
		// turn and may exceed max_tokens.
		if maxTokens != nil && b >= *maxTokens && !beta {
			return tp, invalid("`max_tokens` must be greater than `thinking.budget_tokens`. Please consult our documentation at https://docs.claude.com/en/docs/build-with-claude/extended-thinking#max-tokens-and-context-window-size")
		}
		if tch := req.ToolChoice; tch != nil && (tch.Type == "any" || tch.Type == "tool") {
			return tp, invalid("Thinking may not be enabled when tool_choice forces tool use.")
		}
		tp.manual, tp.tokens, tp.interleaved = true, min(b, maxThinkingTokens), beta
	case "adaptive", "between_tools":
		if effort == "" {
			effort = "high"
		}
		tp.tokens, tp.interleaved = effortTokens[effort], true
	default:
		return tp, invalid("thinking.type: Input tag '" + tc.Type + "' found using 'type' does not match any of the expected tags: 'enabled', 'disabled', 'adaptive', 'between_tools'")
	}
	return tp, nil
}

// thinkingText is the n tokens of a thinking block of the answer with seed;
// part tells the blocks of one answer apart.
func thinkingText(seed uint64, part, n int) []string {
	return mock.Answer(mock.Mix(seed^0x7468696e6b696e67^uint64(part)<<32), n, true)
}

// Signatures the mock issues: base64 of 96 bytes, "xrmock-think1", the
// hash of the thinking text, a check word over both, then filler.
const (
	sigMagic = "xrmock-think1"
	sigLen   = 96
)

func thinkingSignature(text string) string {
	b := make([]byte, sigLen)
	copy(b, sigMagic)
	n := len(sigMagic)
	binary.BigEndian.PutUint64(b[n:], mock.Seed(text))
	binary.BigEndian.PutUint64(b[n+8:], sigCheck(b[:n+8]))
	x := sigCheck(b[:n+16])
	for i := n + 16; i < sigLen; i += 8 {
		x = mock.Mix(x)
		var w [8]byte
		binary.BigEndian.PutUint64(w[:], x)
		copy(b[i:], w[:])
	}
	return base64.StdEncoding.EncodeToString(b)
}

func sigCheck(b []byte) uint64 { return mock.Mix(mock.Seed(string(b)) ^ 0x5349474e) }

// validSignature reports whether sig is one the mock issued for a thinking
// block whose text is text ("" when its display was omitted).
func validSignature(sig, text string) bool {
	b, err := base64.StdEncoding.DecodeString(sig)
	n := len(sigMagic)
	if err != nil || len(b) != sigLen || !bytes.HasPrefix(b, []byte(sigMagic)) {
		return false
	}
	if binary.BigEndian.Uint64(b[n+8:]) != sigCheck(b[:n+8]) {
		return false
	}
	return text == "" || binary.BigEndian.Uint64(b[n:]) == mock.Seed(text)
}
