// The Responses API mock's request side: the input items, tools, tool
// choice, text format and reasoning options it accepts, each checked the
// way OpenAI checks them (the param named in the 400).

package mock

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
)

// parseRespInput decodes input: a string (one user message) or an array of
// items. It may be absent when the request uses a stored prompt.
func parseRespInput(raw json.RawMessage, hasPrompt bool) ([]respItem, *reqError) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || raw[0] == 'n' {
		if hasPrompt {
			return nil, nil
		}
		return nil, badRequest("Missing required parameter: 'input'.", "input", "missing_required_parameter")
	}
	switch raw[0] {
	case '"':
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, badRequest("Invalid type for 'input'.", "input", "invalid_type")
		}
		return []respItem{{Type: "message", Role: "user", Content: looseText{text: s}}}, nil
	case '[':
	default:
		return nil, badRequest("Invalid type for 'input': expected one of a string or array of input items, but got "+jsonKind(raw)+" instead.", "input", "invalid_type")
	}
	var items []respItem
	if err := json.Unmarshal(raw, &items); err != nil {
		return nil, badRequest("Invalid type for 'input': expected an array of input items.", "input", "invalid_type")
	}
	if len(items) == 0 {
		return nil, badRequest("Invalid 'input': empty array. Expected an array with minimum length 1, but got an empty array instead.", "input", "empty_array")
	}
	for i := range items {
		it := &items[i]
		at := "input[" + strconv.Itoa(i) + "]"
		missing := func(field string) *reqError {
			return badRequest("Missing required parameter: '"+at+"."+field+"'.", at+"."+field, "missing_required_parameter")
		}
		invalid := func(field string) *reqError {
			return badRequest("Invalid type for '"+at+"."+field+"'.", at+"."+field, "invalid_type")
		}
		switch it.Type {
		case "", "message":
			switch it.Role {
			case "user", "system", "developer", "assistant":
			case "":
				return nil, missing("role")
			default:
				return nil, badRequest("Invalid value: '"+it.Role+"'. Supported values are: 'assistant', 'system', 'developer', and 'user'.", at+".role", "invalid_value")
			}
			if it.Content.bad {
				return nil, invalid("content")
			}
		case "function_call":
			switch {
			case it.CallID == "":
				return nil, missing("call_id")
			case it.Name == "":
				return nil, missing("name")
			case it.Arguments.bad:
				return nil, invalid("arguments")
			}
		case "function_call_output":
			if it.CallID == "" {
				return nil, missing("call_id")
			}
			if it.Output.bad {
				return nil, invalid("output")
			}
		}
	}
	return items, nil
}

func parseRespTools(raw json.RawMessage) ([]respTool, *reqError) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || raw[0] == 'n' {
		return nil, nil
	}
	var tools []respTool
	if raw[0] != '[' || json.Unmarshal(raw, &tools) != nil {
		return nil, badRequest("Invalid type for 'tools': expected an array of tools.", "tools", "invalid_type")
	}
	for i := range tools {
		at := "tools[" + strconv.Itoa(i) + "]"
		switch {
		case tools[i].Type == "":
			return nil, badRequest("Missing required parameter: '"+at+".type'.", at+".type", "missing_required_parameter")
		case tools[i].Type == "function" && tools[i].Name == "":
			// Also what a chat-style {"type":"function","function":{...}} gets.
			return nil, badRequest("Missing required parameter: '"+at+".name'.", at+".name", "missing_required_parameter")
		}
	}
	return tools, nil
}

// respToolChoice returns the function tools the answer may call (in order)
// and tool_choice as echoed: none for "none" or a hosted tool, the named
// one for {"type":"function","name"}, the listed ones for allowed_tools,
// else every function tool.
func respToolChoice(raw json.RawMessage, tools []respTool) ([]*respTool, []byte, *reqError) {
	var fns []*respTool
	for i := range tools {
		if tools[i].Type == "function" {
			fns = append(fns, &tools[i])
		}
	}
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || raw[0] == 'n' {
		return fns, []byte(`"auto"`), nil
	}
	echo := compactJSON(raw, `"auto"`)
	invalid := badRequest("Invalid value for 'tool_choice'.", "tool_choice", "invalid_value")
	if raw[0] == '"' {
		var c string
		if json.Unmarshal(raw, &c) != nil {
			return nil, nil, invalid
		}
		switch c {
		case "none":
			return nil, echo, nil
		case "auto", "required":
			return fns, echo, nil
		}
		return nil, nil, badRequest("Invalid value: '"+c+"'. Supported values are: 'none', 'auto', and 'required'.", "tool_choice", "invalid_value")
	}
	var c struct {
		Type  string `json:"type"`
		Name  string `json:"name"`
		Mode  string `json:"mode"`
		Tools []struct {
			Type string `json:"type"`
			Name string `json:"name"`
		} `json:"tools"`
	}
	if raw[0] != '{' || json.Unmarshal(raw, &c) != nil {
		return nil, nil, invalid
	}
	find := func(name string) *respTool {
		for _, t := range fns {
			if t.Name == name {
				return t
			}
		}
		return nil
	}
	switch c.Type {
	case "function":
		if c.Name == "" {
			return nil, nil, badRequest("Missing required parameter: 'tool_choice.name'.", "tool_choice.name", "missing_required_parameter")
		}
		t := find(c.Name)
		if t == nil {
			return nil, nil, badRequest("Invalid value for 'tool_choice': tool '"+c.Name+"' not found in 'tools'.", "tool_choice", "invalid_value")
		}
		return []*respTool{t}, echo, nil
	case "allowed_tools":
		if c.Mode != "auto" && c.Mode != "required" {
			return nil, nil, badRequest("Invalid value: '"+c.Mode+"'. Supported values are: 'auto' and 'required'.", "tool_choice.mode", "invalid_value")
		}
		var allowed []*respTool
		for _, a := range c.Tools {
			if t := find(a.Name); a.Type == "function" && t != nil {
				allowed = append(allowed, t)
			}
		}
		return allowed, echo, nil
	case "":
		return nil, nil, badRequest("Missing required parameter: 'tool_choice.type'.", "tool_choice.type", "missing_required_parameter")
	}
	return nil, echo, nil // a hosted or custom tool: the mock runs none
}

// respFormat validates text.format and returns the JSON mode and the format
// as echoed.
func respFormat(req *responsesRequest, items []respItem) (jsonFormat, []byte, *reqError) {
	if req.Text == nil {
		return jsonFormat{}, []byte(`{"type":"text"}`), nil
	}
	raw := bytes.TrimSpace(req.Text.Format)
	if len(raw) == 0 || raw[0] == 'n' {
		return jsonFormat{}, []byte(`{"type":"text"}`), nil
	}
	var f struct {
		Type   string          `json:"type"`
		Name   *string         `json:"name"`
		Schema json.RawMessage `json:"schema"`
	}
	if raw[0] != '{' || json.Unmarshal(raw, &f) != nil {
		return jsonFormat{}, nil, badRequest("Invalid type for 'text.format': expected an object.", "text.format", "invalid_type")
	}
	echo := compactJSON(raw, `{"type":"text"}`)
	switch f.Type {
	case "text":
		return jsonFormat{}, echo, nil
	case "json_object":
		ok := req.Instructions != nil && containsJSONWord(*req.Instructions)
		for i := range items {
			ok = ok || containsJSONWord(items[i].Content.text)
		}
		if !ok {
			return jsonFormat{}, nil, badRequest("Response input messages must contain the word 'json' in some form to use 'text.format' of type 'json_object'.", "input", "")
		}
		return jsonFormat{kind: f.Type}, echo, nil
	case "json_schema":
		if f.Name == nil || *f.Name == "" {
			return jsonFormat{}, nil, badRequest("Missing required parameter: 'text.format.name'.", "text.format.name", "missing_required_parameter")
		}
		if s := bytes.TrimSpace(f.Schema); len(s) == 0 || s[0] != '{' {
			return jsonFormat{}, nil, badRequest("Missing required parameter: 'text.format.schema'.", "text.format.schema", "missing_required_parameter")
		}
		return jsonFormat{kind: f.Type, schema: f.Schema}, echo, nil
	case "":
		return jsonFormat{}, nil, badRequest("Missing required parameter: 'text.format.type'.", "text.format.type", "missing_required_parameter")
	}
	return jsonFormat{}, nil, badRequest("Invalid value: '"+f.Type+"'. Supported values are: 'text', 'json_object', and 'json_schema'.", "text.format.type", "invalid_value")
}

// respReasoning validates reasoning: effort ("" when unset) and summary (""
// when off; generate_summary is its deprecated spelling).
func respReasoning(req *responsesRequest) (effort, summary string, e *reqError) {
	rs := req.Reasoning
	if rs == nil {
		return "", "", nil
	}
	if rs.Effort != nil {
		effort = *rs.Effort
		switch effort {
		case "none", "minimal", "low", "medium", "high", "xhigh", "max":
		default:
			return "", "", badRequest("Invalid value: '"+effort+"'. Supported values are: 'none', 'minimal', 'low', 'medium', 'high', 'xhigh', and 'max'.", "reasoning.effort", "invalid_value")
		}
	}
	for _, v := range []*string{rs.Summary, rs.GenerateSummary} {
		if v == nil {
			continue
		}
		switch *v {
		case "auto", "concise", "detailed":
			summary = *v
		default:
			return "", "", badRequest("Invalid value: '"+*v+"'. Supported values are: 'auto', 'concise', and 'detailed'.", "reasoning.summary", "invalid_value")
		}
	}
	return effort, summary, nil
}

// isReasoningModel reports whether model reasons without being asked.
func isReasoningModel(model string) bool {
	for _, p := range []string{"o1", "o3", "o4", "gpt-5"} {
		if strings.HasPrefix(model, p) {
			return true
		}
	}
	return false
}

// effortTokens is the number of reasoning tokens of an effort ("" is the
// default, medium).
func effortTokens(effort string) int {
	switch effort {
	case "minimal":
		return 4
	case "low":
		return 8
	case "high":
		return 32
	case "xhigh":
		return 64
	case "max":
		return 128
	}
	return 16
}

func checkRange(param string, v *float64, hi float64) *reqError {
	switch {
	case v == nil:
		return nil
	case *v < 0:
		return badRequest("Invalid '"+param+"': decimal below minimum value. Expected a value >= 0, but got "+strconv.FormatFloat(*v, 'f', -1, 64)+" instead.", param, "decimal_below_min_value")
	case *v > hi:
		return badRequest("Invalid '"+param+"': decimal above maximum value. Expected a value <= "+strconv.FormatFloat(hi, 'f', -1, 64)+", but got "+strconv.FormatFloat(*v, 'f', -1, 64)+" instead.", param, "decimal_above_max_value")
	}
	return nil
}

// jsonKind names the JSON type of raw for error messages.
func jsonKind(raw []byte) string {
	switch raw[0] {
	case '"':
		return "a string"
	case '{':
		return "an object"
	case '[':
		return "an array"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	}
	return "a number"
}

// compactJSON returns raw without insignificant whitespace (an SSE data
// line must not span lines), or def when raw is empty, null or invalid.
func compactJSON(raw json.RawMessage, def string) []byte {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return []byte(def)
	}
	var buf bytes.Buffer
	if json.Compact(&buf, raw) != nil {
		return []byte(def)
	}
	return buf.Bytes()
}
