// What the Bedrock mock checks of a Converse request before it answers,
// with the ValidationException messages Bedrock sends.

package bedrock

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
)

// validation is a 400 ValidationException.
type validation string

func validationf(format string, args ...any) *validation {
	v := validation(fmt.Sprintf(format, args...))
	return &v
}

// validate checks req as the service does where a gateway can go wrong.
func validate(req *converseRequest) *validation {
	for i, sb := range req.System {
		if sb.Text != nil && strings.TrimSpace(*sb.Text) == "" {
			return validationf("The text field in the SystemContentBlock object at system.%d is blank. Add text to the text field, and try again.", i)
		}
	}
	if len(req.Messages) == 0 || req.Messages[0].Role != "user" {
		return validationf("A conversation must start with a user message. Try again with a conversation that starts with a user message.")
	}
	var pendingUses map[string]bool // tool uses of the previous assistant turn
	usesTools := false
	for i := range req.Messages {
		m := &req.Messages[i]
		if m.Role != "user" && m.Role != "assistant" {
			return validationf("1 validation error detected: Value '%s' at 'messages.%d.member.role' failed to satisfy constraint: Member must satisfy enum value set: [user, assistant]", m.Role, i+1)
		}
		if i > 0 && req.Messages[i-1].Role == m.Role {
			return validationf("A conversation must alternate between user and assistant roles. Make sure the conversation alternates between user and assistant roles and try again.")
		}
		if len(m.Content) == 0 {
			return validationf("The content field in the Message object at messages.%d is empty. Add a ContentBlock object to the content field and try again.", i)
		}
		uses := map[string]bool{}
		for j := range m.Content {
			b := &m.Content[j]
			at := fmt.Sprintf("messages.%d.content.%d", i, j)
			if b.members() != 1 {
				return validationf("Malformed input request: the ContentBlock at %s must set exactly one member, please reformat your input and try again.", at)
			}
			switch {
			case b.Text != nil:
				if strings.TrimSpace(*b.Text) == "" {
					return validationf("The text field in the ContentBlock object at %s is blank. Add text to the text field, and try again.", at)
				}
			case b.Image != nil:
				if v := validateImage(b.Image, at); v != nil {
					return v
				}
			case b.ToolUse != nil:
				usesTools = true
				t := b.ToolUse
				if m.Role != "assistant" {
					return validationf("A toolUse block at %s must be in an assistant message.", at)
				}
				if !toolUseIDRE.MatchString(t.ToolUseID) || !toolNameRE.MatchString(t.Name) {
					return validationf("The toolUse block at %s needs a valid toolUseId and name.", at)
				}
				if in := bytes.TrimSpace(t.Input); len(in) == 0 || in[0] != '{' {
					return validationf("The input of the toolUse block at %s must be a JSON object.", at)
				}
				uses[t.ToolUseID] = true
			case b.ToolResult != nil:
				usesTools = true
				t := b.ToolResult
				if m.Role != "user" {
					return validationf("A toolResult block at %s must be in a user message.", at)
				}
				if !pendingUses[t.ToolUseID] {
					return validationf("The toolResult block at %s references toolUseId %q, which is not a toolUse of the previous assistant message.", at, t.ToolUseID)
				}
				delete(pendingUses, t.ToolUseID)
				if len(t.Content) == 0 {
					return validationf("The content field of the toolResult block at %s is empty.", at)
				}
				for k, c := range t.Content {
					n := 0
					for _, set := range []bool{c.JSON != nil, c.Text != nil, c.Image != nil, c.Document != nil, c.Video != nil, c.SearchResult != nil} {
						if set {
							n++
						}
					}
					if n != 1 {
						return validationf("Malformed input request: %s.toolResult.content.%d must set exactly one member.", at, k)
					}
				}
				if t.Status != "" && t.Status != "success" && t.Status != "error" {
					return validationf("Invalid toolResult status %q at %s.", t.Status, at)
				}
			}
		}
		if m.Role == "assistant" {
			pendingUses = uses
		}
	}
	if ic := req.InferenceConfig; ic != nil {
		if ic.MaxTokens != nil && *ic.MaxTokens < 1 {
			return validationf("1 validation error detected: Value '%d' at 'inferenceConfig.maxTokens' failed to satisfy constraint: Member must have value greater than or equal to 1", *ic.MaxTokens)
		}
		if ic.TopP != nil && (*ic.TopP < 0 || *ic.TopP > 1) {
			return validationf("1 validation error detected: Value at 'inferenceConfig.topP' failed to satisfy constraint: Member must have value between 0 and 1")
		}
		if ic.Temperature != nil && *ic.Temperature < 0 {
			return validationf("1 validation error detected: Value at 'inferenceConfig.temperature' failed to satisfy constraint: Member must have value greater than or equal to 0")
		}
		for _, s := range ic.StopSequences {
			if s == "" {
				return validationf("1 validation error detected: Value at 'inferenceConfig.stopSequences' failed to satisfy constraint: Member must have length greater than or equal to 1")
			}
		}
	}
	if tc := req.ToolConfig; tc != nil {
		if len(tc.Tools) == 0 {
			return validationf("The tools field of toolConfig must hold at least one tool.")
		}
		names := map[string]bool{}
		for i, t := range tc.Tools {
			if t.ToolSpec == nil {
				continue
			}
			if !toolNameRE.MatchString(t.ToolSpec.Name) {
				return validationf("1 validation error detected: Value at 'toolConfig.tools.%d.member.toolSpec.name' failed to satisfy constraint: Member must satisfy regular expression pattern: [a-zA-Z0-9_-]+", i+1)
			}
			if names[t.ToolSpec.Name] {
				return validationf("The toolConfig field contains duplicate tool name %q.", t.ToolSpec.Name)
			}
			names[t.ToolSpec.Name] = true
			if s := bytes.TrimSpace(t.ToolSpec.InputSchema.JSON); len(s) == 0 || s[0] != '{' || !json.Valid(s) {
				return validationf("The inputSchema.json of tool %q must be a JSON schema object.", t.ToolSpec.Name)
			}
		}
		if ch := tc.ToolChoice; ch != nil {
			n := 0
			for _, set := range []bool{ch.Auto != nil, ch.Any != nil, ch.Tool != nil} {
				if set {
					n++
				}
			}
			if n != 1 {
				return validationf("Malformed input request: toolChoice must set exactly one of auto, any and tool.")
			}
			if ch.Tool != nil && !names[ch.Tool.Name] {
				return validationf("The tool %q named in toolChoice is not in toolConfig.tools.", ch.Tool.Name)
			}
		}
	} else if usesTools {
		return validationf("The toolConfig field must be defined when using toolUse and toolResult content blocks.")
	}
	if oc := req.OutputConfig; oc != nil && oc.TextFormat != nil {
		tf := oc.TextFormat
		if tf.Type != "json_schema" {
			return validationf("1 validation error detected: Value '%s' at 'outputConfig.textFormat.type' failed to satisfy constraint: Member must satisfy enum value set: [json_schema]", tf.Type)
		}
		js := tf.Structure.JSONSchema
		if js == nil {
			return validationf("outputConfig.textFormat.structure must set jsonSchema.")
		}
		if s := strings.TrimSpace(js.Schema); s == "" || s[0] != '{' || !json.Valid([]byte(s)) {
			return validationf("outputConfig.textFormat.structure.jsonSchema.schema must be a JSON schema object, as a string.")
		}
	}
	return nil
}

func validateImage(img *imageBlock, at string) *validation {
	switch img.Format {
	case "png", "jpeg", "gif", "webp":
	default:
		return validationf("1 validation error detected: Value '%s' at '%s.image.format' failed to satisfy constraint: Member must satisfy enum value set: [png, jpeg, gif, webp]", img.Format, at)
	}
	switch {
	case img.Source.Bytes != nil:
		raw, err := base64.StdEncoding.DecodeString(*img.Source.Bytes)
		if err != nil || len(raw) == 0 {
			return validationf("The image bytes at %s are not valid base64.", at)
		}
	case img.Source.S3Location != nil:
	default:
		return validationf("The image source at %s must set bytes or s3Location.", at)
	}
	return nil
}
