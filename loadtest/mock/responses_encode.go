// The Responses API mock's answer side: the response object, its output
// items and usage, written as bytes for both the plain answer and the
// stream's events (responses_stream.go).

package mock

import (
	"encoding/base64"
	"strconv"
	"time"
)

// encryptedContent is an opaque, deterministic stand-in for the encrypted
// reasoning of an answer (base64, shaped like a Fernet token).
func encryptedContent(seed uint64) string {
	var raw [72]byte
	raw[0] = 0x80
	for i := 1; i < len(raw); i += 8 {
		x := mix(seed + uint64(i))
		for j := 0; j < 8 && i+j < len(raw); j++ {
			raw[i+j] = byte(x >> (8 * j))
		}
	}
	return base64.URLEncoding.EncodeToString(raw[:])
}

// echo records the request fields the response object repeats.
func (p *respPlan) echo(req *responsesRequest, toolChoice, format []byte, effort, summary string) {
	str := func(v *string) []byte {
		if v == nil {
			return []byte("null")
		}
		return appendString(nil, *v)
	}
	p.instructions = str(req.Instructions)
	p.maxOutput = []byte("null")
	if req.MaxOutputTokens != nil {
		p.maxOutput = appendInt(nil, int64(*req.MaxOutputTokens))
	}
	p.toolChoice = toolChoice
	p.tools = compactJSON(req.Tools, "[]")
	p.textFormat = format
	p.verbosity = []byte(`"medium"`)
	if req.Text != nil && req.Text.Verbosity != nil {
		p.verbosity = appendString(nil, *req.Text.Verbosity)
	}
	switch {
	case effort != "":
		p.effort = appendString(nil, effort)
	case isReasoningModel(req.modelName()):
		p.effort = []byte(`"medium"`)
	default:
		p.effort = []byte("null")
	}
	p.summaryMode = []byte("null")
	if summary != "" {
		p.summaryMode = appendString(nil, summary)
	}
	p.metadata = compactJSON(req.Metadata, "{}")
	p.user = str(req.User)
	p.promptCacheKey = str(req.PromptCacheKey)
	p.truncation = []byte(`"disabled"`)
	if req.Truncation != nil {
		p.truncation = appendString(nil, *req.Truncation)
	}
	num := func(v *float64) []byte {
		if v == nil {
			return []byte("1")
		}
		return strconv.AppendFloat(nil, *v, 'f', -1, 64)
	}
	p.temperature, p.topP = num(req.Temperature), num(req.TopP)
}

func (req *responsesRequest) modelName() string {
	if req.Model == nil {
		return ""
	}
	return *req.Model
}

// finalStatus is the status of the finished response.
func (p *respPlan) finalStatus() string {
	if p.incomplete {
		return "incomplete"
	}
	return "completed"
}

// appendResponse appends the response object with status: in_progress
// (no output, no usage), completed or incomplete (full output and usage),
// or failed (no output, a server_error).
func (p *respPlan) appendResponse(b []byte, status string, output bool) []byte {
	b = append(b, `{"id":`...)
	b = appendString(b, p.id)
	b = append(b, `,"object":"response","access_programs":{"cyber":"standard"},"created_at":`...)
	b = appendInt(b, p.created)
	b = append(b, `,"status":`...)
	b = appendString(b, status)
	b = append(b, `,"background":`...)
	b = strconv.AppendBool(b, p.background)
	b = append(b, `,"completed_at":`...)
	if status == "completed" {
		b = appendInt(b, time.Now().Unix())
	} else {
		b = append(b, "null"...)
	}
	b = append(b, `,"error":`...)
	if status == "failed" {
		b = append(b, `{"code":"server_error","message":`...)
		b = appendString(b, msgResponsesFailed)
		b = append(b, '}')
	} else {
		b = append(b, "null"...)
	}
	b = append(b, `,"incomplete_details":`...)
	if status == "incomplete" {
		b = append(b, `{"reason":"max_output_tokens"}`...)
	} else {
		b = append(b, "null"...)
	}
	b = append(b, `,"instructions":`...)
	b = append(b, p.instructions...)
	b = append(b, `,"max_output_tokens":`...)
	b = append(b, p.maxOutput...)
	b = append(b, `,"max_tool_calls":null,"model":`...)
	b = appendString(b, p.model)
	b = append(b, `,"output":[`...)
	if output {
		b = p.appendOutput(b)
	}
	b = append(b, `],"parallel_tool_calls":`...)
	b = strconv.AppendBool(b, p.parallel)
	b = append(b, `,"previous_response_id":null,"prompt_cache_key":`...)
	b = append(b, p.promptCacheKey...)
	b = append(b, `,"reasoning":{"effort":`...)
	b = append(b, p.effort...)
	b = append(b, `,"summary":`...)
	b = append(b, p.summaryMode...)
	b = append(b, `},"safety_identifier":null,"service_tier":"default","store":`...)
	b = strconv.AppendBool(b, p.store)
	b = append(b, `,"temperature":`...)
	b = append(b, p.temperature...)
	b = append(b, `,"text":{"format":`...)
	b = append(b, p.textFormat...)
	b = append(b, `,"verbosity":`...)
	b = append(b, p.verbosity...)
	b = append(b, `},"tool_choice":`...)
	b = append(b, p.toolChoice...)
	b = append(b, `,"tools":`...)
	b = append(b, p.tools...)
	b = append(b, `,"top_logprobs":0,"top_p":`...)
	b = append(b, p.topP...)
	b = append(b, `,"truncation":`...)
	b = append(b, p.truncation...)
	b = append(b, `,"usage":`...)
	if status == "completed" || status == "incomplete" {
		b = p.appendUsage(b)
	} else {
		b = append(b, "null"...)
	}
	b = append(b, `,"user":`...)
	b = append(b, p.user...)
	b = append(b, `,"metadata":`...)
	b = append(b, p.metadata...)
	return append(b, '}')
}

func (p *respPlan) appendUsage(b []byte) []byte {
	out, in := p.tokens(), int64(p.prompt)
	switch p.usage {
	case "omit":
		return append(b, "null"...)
	case "text":
		return append(b, `{"input_tokens":"lots","output_tokens":"many","total_tokens":"all"}`...)
	case "negative":
		in = negativeTokens
	case "huge":
		in = hugeTokens
	}
	b = append(b, `{"input_tokens":`...)
	b = appendInt(b, in)
	b = append(b, `,"input_tokens_details":{"cached_tokens":`...)
	b = appendInt(b, int64(p.cached))
	b = append(b, `,"cache_write_tokens":0},"output_tokens":`...)
	b = appendInt(b, int64(out))
	b = append(b, `,"output_tokens_details":{"reasoning_tokens":`...)
	b = appendInt(b, int64(p.rsTokens))
	b = append(b, `},"total_tokens":`...)
	b = appendInt(b, in+int64(out))
	return append(b, '}')
}

// appendOutput appends the finished output items, comma-separated.
func (p *respPlan) appendOutput(b []byte) []byte {
	n := 0
	if p.reasoning {
		b = p.appendReasoningItem(b, true)
		n++
	}
	for i := range p.calls {
		if n > 0 {
			b = append(b, ',')
		}
		b = p.appendCallItem(b, i, true)
		n++
	}
	if p.msgID != "" {
		if n > 0 {
			b = append(b, ',')
		}
		b = p.appendMessageItem(b, true)
	}
	return b
}

// appendReasoningItem appends the reasoning item, as added (no summary) or
// done.
func (p *respPlan) appendReasoningItem(b []byte, done bool) []byte {
	b = append(b, `{"id":`...)
	b = appendString(b, p.rsID)
	b = append(b, `,"type":"reasoning","summary":[`...)
	if done && p.summaryOn {
		b = append(b, `{"type":"summary_text","text":`...)
		b = p.summary.appendText(b)
		b = append(b, '}')
	}
	b = append(b, ']')
	if done && p.encrypted != "" {
		b = append(b, `,"encrypted_content":`...)
		b = appendString(b, p.encrypted)
	}
	return append(b, '}')
}

// appendCallItem appends function call i, as added (no arguments) or done.
func (p *respPlan) appendCallItem(b []byte, i int, done bool) []byte {
	c := &p.calls[i]
	b = append(b, `{"id":`...)
	b = appendString(b, p.callIDs[i])
	b = append(b, `,"type":"function_call","status":`...)
	if done {
		b = append(b, `"completed","arguments":`...)
		b = appendString(b, c.Args)
	} else {
		b = append(b, `"in_progress","arguments":""`...)
	}
	b = append(b, `,"call_id":`...)
	b = appendString(b, c.ID)
	b = append(b, `,"name":`...)
	b = appendString(b, c.Name)
	return append(b, '}')
}

// appendMessageItem appends the message, as added (no content) or done.
func (p *respPlan) appendMessageItem(b []byte, done bool) []byte {
	b = append(b, `{"id":`...)
	b = appendString(b, p.msgID)
	b = append(b, `,"type":"message","status":`...)
	switch {
	case !done:
		b = append(b, `"in_progress","content":[]`...)
	default:
		if p.incomplete {
			b = append(b, `"incomplete","content":[`...)
		} else {
			b = append(b, `"completed","content":[`...)
		}
		b = p.appendTextPart(b, true)
		b = append(b, ']')
	}
	return append(b, `,"role":"assistant"}`...)
}

// appendTextPart appends the output_text part, empty or with the full text.
func (p *respPlan) appendTextPart(b []byte, full bool) []byte {
	b = append(b, `{"type":"output_text","annotations":[],"logprobs":[],"text":`...)
	if full {
		b = p.text.appendText(b)
	} else {
		b = append(b, `""`...)
	}
	return append(b, '}')
}
