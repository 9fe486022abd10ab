package bedrock

import "encoding/json"

// The Converse wire types (bedrock-runtime API 2023-09-30, restJson1).
// Member names follow the service model (aws-sdk-go-v2
// service/bedrockruntime/schemas); only what the adapter sends or reads is
// declared.

type converseRequest struct {
	Messages        []message        `json:"messages"`
	System          []systemBlock    `json:"system,omitempty"`
	InferenceConfig *inferenceConfig `json:"inferenceConfig,omitempty"`
	ToolConfig      *toolConfig      `json:"toolConfig,omitempty"`
	OutputConfig    *outputConfig    `json:"outputConfig,omitempty"`
}

type message struct {
	Role    string         `json:"role"` // user, assistant
	Content []contentBlock `json:"content"`
}

// systemBlock is a union: text, or a cache point.
type systemBlock struct {
	Text       string      `json:"text,omitempty"`
	CachePoint *cachePoint `json:"cachePoint,omitempty"`
}

// cachePoint marks the end of a prefix Bedrock caches (prompt caching).
type cachePoint struct {
	Type string `json:"type"` // default
}

// contentBlock is a union: exactly one member is set.
type contentBlock struct {
	Text       *string     `json:"text,omitempty"`
	Image      *imageBlock `json:"image,omitempty"`
	ToolUse    *toolUse    `json:"toolUse,omitempty"`
	ToolResult *toolResult `json:"toolResult,omitempty"`
	CachePoint *cachePoint `json:"cachePoint,omitempty"`
}

type imageBlock struct {
	Format string      `json:"format"` // png, jpeg, gif, webp
	Source imageSource `json:"source"`
}

// imageSource.Bytes is a blob: base64 in JSON.
type imageSource struct {
	Bytes string `json:"bytes"`
}

type toolUse struct {
	ToolUseID string          `json:"toolUseId"`
	Name      string          `json:"name"`
	Input     json.RawMessage `json:"input"`
}

type toolResult struct {
	ToolUseID string              `json:"toolUseId"`
	Content   []toolResultContent `json:"content"`
	Status    string              `json:"status,omitempty"` // success, error
}

type toolResultContent struct {
	JSON json.RawMessage `json:"json,omitempty"`
	Text *string         `json:"text,omitempty"`
}

type inferenceConfig struct {
	MaxTokens     *int     `json:"maxTokens,omitempty"`
	Temperature   *float64 `json:"temperature,omitempty"`
	TopP          *float64 `json:"topP,omitempty"`
	StopSequences []string `json:"stopSequences,omitempty"`
}

type toolConfig struct {
	Tools      []tool      `json:"tools"`
	ToolChoice *toolChoice `json:"toolChoice,omitempty"`
}

// tool is a union: a tool, or a cache point after the tools.
type tool struct {
	ToolSpec   *toolSpec   `json:"toolSpec,omitempty"`
	CachePoint *cachePoint `json:"cachePoint,omitempty"`
}

type toolSpec struct {
	Name        string      `json:"name"`
	Description string      `json:"description,omitempty"`
	InputSchema inputSchema `json:"inputSchema"`
	Strict      *bool       `json:"strict,omitempty"`
}

type inputSchema struct {
	JSON json.RawMessage `json:"json"`
}

// toolChoice is a union: auto, any or tool.
type toolChoice struct {
	Auto *struct{}           `json:"auto,omitempty"`
	Any  *struct{}           `json:"any,omitempty"`
	Tool *specificToolChoice `json:"tool,omitempty"`
}

type specificToolChoice struct {
	Name string `json:"name"`
}

// outputConfig carries structured outputs (outputConfig.textFormat).
type outputConfig struct {
	TextFormat *outputFormat `json:"textFormat,omitempty"`
}

type outputFormat struct {
	Type      string          `json:"type"` // json_schema
	Structure outputStructure `json:"structure"`
}

type outputStructure struct {
	JSONSchema jsonSchemaDefinition `json:"jsonSchema"`
}

// jsonSchemaDefinition.Schema is the schema as a JSON string.
type jsonSchemaDefinition struct {
	Schema      string `json:"schema"`
	Name        string `json:"name,omitempty"`
	Description string `json:"description,omitempty"`
}

// converseResponse is the answer of POST /model/{modelId}/converse.
type converseResponse struct {
	Output struct {
		Message *responseMessage `json:"message"`
	} `json:"output"`
	StopReason string      `json:"stopReason"`
	Usage      *tokenUsage `json:"usage"`
}

type responseMessage struct {
	Role    string                 `json:"role"`
	Content []responseContentBlock `json:"content"`
}

// responseContentBlock reads the blocks a model answers with; other members
// (reasoningContent, citationsContent, ...) are ignored.
type responseContentBlock struct {
	Text    *string  `json:"text"`
	ToolUse *toolUse `json:"toolUse"`
}

type tokenUsage struct {
	InputTokens           int `json:"inputTokens"`
	OutputTokens          int `json:"outputTokens"`
	TotalTokens           int `json:"totalTokens"`
	CacheReadInputTokens  int `json:"cacheReadInputTokens"`
	CacheWriteInputTokens int `json:"cacheWriteInputTokens"`
}

// streamEvent is the JSON payload of any ConverseStream event or exception;
// which fields are set depends on the :event-type / :exception-type header.
type streamEvent struct {
	ContentBlockIndex int `json:"contentBlockIndex"`
	Start             *struct {
		ToolUse *struct {
			ToolUseID string `json:"toolUseId"`
			Name      string `json:"name"`
		} `json:"toolUse"`
	} `json:"start"`
	Delta *struct {
		Text    *string `json:"text"`
		ToolUse *struct {
			Input string `json:"input"`
		} `json:"toolUse"`
	} `json:"delta"`
	StopReason string      `json:"stopReason"`
	Usage      *tokenUsage `json:"usage"`
	// Exceptions.
	Message            string `json:"message"`
	OriginalStatusCode int    `json:"originalStatusCode"`
}
