package anthropic

import (
	"encoding/json"
	"errors"
	"strings"

	"github.com/tidwall/gjson"

	"github.com/xroute/xroute/providers"
)

// response is the part of a Messages answer xroute reads.
type response struct {
	Type       string          `json:"type"`
	Model      string          `json:"model"`
	Content    []responseBlock `json:"content"`
	StopReason string          `json:"stop_reason"`
	Usage      *usage          `json:"usage"`
}

type responseBlock struct {
	Type     string          `json:"type"`
	Text     string          `json:"text"`
	Thinking string          `json:"thinking"`
	ID       string          `json:"id"`
	Name     string          `json:"name"`
	Input    json.RawMessage `json:"input"`
}

// usage is Anthropic's usage object. Input tokens come in three parts:
// uncached, written to the prompt cache, and read from it.
type usage struct {
	InputTokens              int `json:"input_tokens"`
	CacheCreationInputTokens int `json:"cache_creation_input_tokens"`
	CacheReadInputTokens     int `json:"cache_read_input_tokens"`
	OutputTokens             int `json:"output_tokens"`
	// CacheCreation1h is cache_creation.ephemeral_1h_input_tokens: the
	// one-hour part of the cache writes, priced higher.
	CacheCreation1h int `json:"-"`
	// WebSearches is server_tool_use.web_search_requests.
	WebSearches int `json:"-"`
}

func (u usage) openAI() providers.Usage {
	prompt := u.InputTokens + u.CacheCreationInputTokens + u.CacheReadInputTokens
	return providers.Usage{
		PromptTokens:       prompt,
		CompletionTokens:   u.OutputTokens,
		TotalTokens:        prompt + u.OutputTokens,
		CachedTokens:       u.CacheReadInputTokens,
		CacheWriteTokens:   u.CacheCreationInputTokens,
		CacheWrite1hTokens: u.CacheCreation1h,
		WebSearches:        u.WebSearches,
	}
}

// finishReason maps stop_reason. A forced JSON-mode tool call is a normal
// stop for the caller, who asked for content, not a tool call.
func finishReason(stop string, jsonTool bool) string {
	switch stop {
	case "max_tokens", "model_context_window_exceeded":
		return "length"
	case "tool_use":
		if jsonTool {
			return "stop"
		}
		return "tool_calls"
	case "refusal":
		return "content_filter"
	}
	return "stop" // end_turn, stop_sequence, pause_turn, unknown
}

var errNotMessage = errors.New("not a Messages API message")

// translateResponse renders a Messages answer as an OpenAI chat.completion.
func translateResponse(body []byte, jsonTool bool, model string, created int64) (*providers.ChatResponse, error) {
	var r response
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, err
	}
	if r.Type != "message" {
		return nil, errNotMessage
	}
	if r.Model != "" {
		model = r.Model
	}
	c := providers.Completion{
		ID:           providers.NewCompletionID(),
		Model:        model,
		Created:      created,
		FinishReason: finishReason(r.StopReason, jsonTool),
	}
	if r.Usage != nil {
		readUsageInto(r.Usage, gjson.GetBytes(body, "usage")) // the 1h cache-write split
		c.Usage = r.Usage.openAI()
	}
	var text strings.Builder
	hasText := false
	for _, b := range r.Content {
		switch b.Type {
		case "text":
			if jsonTool {
				continue // the answer is the tool input
			}
			text.WriteString(b.Text)
			hasText = true
		case "tool_use":
			args := "{}"
			if len(b.Input) > 0 && string(b.Input) != "null" {
				args = compact(b.Input)
			}
			if jsonTool && b.Name == jsonToolName {
				text.WriteString(args)
				hasText = true
				continue
			}
			id := b.ID
			if id == "" {
				id = providers.ToolCallID(len(c.ToolCalls))
			}
			c.ToolCalls = append(c.ToolCalls, providers.ToolCall{ID: id, Type: "function", Function: providers.FunctionCall{Name: b.Name, Arguments: args}})
		case "thinking":
			// Not part of a chat answer; other ingresses show it.
			c.Reasoning += b.Thinking
		default:
			// redacted_thinking, server tool blocks: not part of an
			// OpenAI chat answer.
		}
	}
	if hasText || len(c.ToolCalls) == 0 {
		s := text.String()
		c.Content = &s
	}
	return c.Response()
}
