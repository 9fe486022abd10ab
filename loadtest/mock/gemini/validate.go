// What the Gemini mock checks of a generateContent request before it
// answers: the shape of the contents and parts, tool declarations, and the
// thought signatures Gemini 3 requires on replayed function calls.

package gemini

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"strconv"
	"strings"

	"github.com/xroute/xroute/loadtest/mock"
)

// Thought signatures the mock issues: "xrmock1" + 8 bytes bound to the
// function name + deterministic filler, 48 bytes (64 base64 characters,
// with '+' and '/' likely, like real signatures).
const sigPrefix = "xrmock1"

func signatureFor(name string) string {
	b := make([]byte, 48)
	copy(b, sigPrefix)
	h := mock.Mix(mock.Seed(name) ^ 0x5167a7e5)
	binary.BigEndian.PutUint64(b[7:], h)
	for i := 15; i < len(b); i += 8 {
		h = mock.Mix(h)
		var x [8]byte
		binary.BigEndian.PutUint64(x[:], h)
		copy(b[i:], x[:])
	}
	return base64.StdEncoding.EncodeToString(b)
}

// Dummy signatures Google documents for function calls Gemini did not
// produce; they skip validation.
func isDummySignature(s string) bool {
	return s == "skip_thought_signature_validator" || s == "context_engineering_is_the_way_to_go"
}

func validSignature(sig, name string) bool {
	if isDummySignature(sig) {
		return true
	}
	want, _ := base64.StdEncoding.DecodeString(signatureFor(name))
	s := strings.TrimRight(sig, "=")
	got, err := base64.RawStdEncoding.DecodeString(s)
	if err != nil {
		got, err = base64.RawURLEncoding.DecodeString(s)
	}
	return err == nil && bytes.Equal(got, want)
}

func isFunctionResponseTurn(c *content) bool {
	if c.Role != "user" && c.Role != "" {
		return false
	}
	for i := range c.Parts {
		if c.Parts[i].FunctionResponse != nil {
			return true
		}
	}
	return false
}

func countCalls(c *content) (calls []string) {
	for i := range c.Parts {
		if fc := c.Parts[i].FunctionCall; fc != nil {
			calls = append(calls, fc.Name)
		}
	}
	return calls
}

// validate checks a request as Gemini does; it returns Gemini's message.
func validate(req *generateRequest) string { return check(req, true) }

// check validates req, with the thought signatures of function calls when
// signatures is set (countTokens does not check them).
func check(req *generateRequest, signatures bool) string {
	if len(req.Contents) == 0 {
		return "* GenerateContentRequest.contents: contents is not specified\n"
	}
	for i := range req.Contents {
		c := &req.Contents[i]
		field := "GenerateContentRequest.contents[" + strconv.Itoa(i) + "]"
		if c.Role != "" && c.Role != "user" && c.Role != "model" {
			return "Please use a valid role: user, model."
		}
		if len(c.Parts) == 0 {
			return "* " + field + ".parts: contents.parts must not be empty.\n"
		}
		for j := range c.Parts {
			if msg := validatePart(&c.Parts[j], field+".parts["+strconv.Itoa(j)+"]"); msg != "" {
				return msg
			}
		}
		if calls := countCalls(c); len(calls) > 0 {
			if c.Role != "model" {
				return "Please ensure that function call turns come from the model role."
			}
			if i == 0 || (req.Contents[i-1].Role != "user" && req.Contents[i-1].Role != "") {
				return "Please ensure that function call turn comes immediately after a user turn or after a function response turn."
			}
		}
		if isFunctionResponseTurn(c) {
			var prev []string
			if i > 0 && req.Contents[i-1].Role == "model" {
				prev = countCalls(&req.Contents[i-1])
			}
			n := 0
			for j := range c.Parts {
				if fr := c.Parts[j].FunctionResponse; fr != nil {
					n++
					found := false
					for _, name := range prev {
						found = found || name == fr.Name
					}
					if !found {
						return "Please ensure that function response turn comes immediately after a function call turn, and that each function response names a function called in it."
					}
					if r := bytes.TrimSpace(fr.Response); len(r) == 0 || r[0] != '{' {
						return "Invalid value at '" + field + ".parts[" + strconv.Itoa(j) + "].function_response.response' (type.googleapis.com/google.protobuf.Struct), expected an object."
					}
				}
			}
			if n != len(prev) {
				return "Please ensure that the number of function response parts is equal to the number of function call parts of the function call turn."
			}
		}
	}
	if signatures {
		if msg := validateSignatures(req.Contents); msg != "" {
			return msg
		}
	}
	for i := range req.Tools {
		for j, d := range req.Tools[i].FunctionDeclarations {
			field := "GenerateContentRequest.tools[" + strconv.Itoa(i) + "].function_declarations[" + strconv.Itoa(j) + "]"
			if d.Name == "" {
				return "* " + field + ".name: [FIELD_INVALID] Invalid function name. Must start with a letter or an underscore. Must be a-z, A-Z, 0-9, or contain underscores, dots, colons and dashes, with a maximum length of 64.\n"
			}
			if len(d.Parameters) > 0 && len(d.ParametersJSONSchema) > 0 {
				return "* " + field + ": parameters and parameters_json_schema are mutually exclusive.\n"
			}
		}
	}
	if tc := req.ToolConfig; tc != nil && tc.FunctionCallingConfig != nil {
		fc := tc.FunctionCallingConfig
		switch fc.Mode {
		case "", "MODE_UNSPECIFIED", "AUTO", "ANY", "NONE", "VALIDATED":
		default:
			return "Invalid value at 'tool_config.function_calling_config.mode' (type.googleapis.com/google.ai.generativelanguage.v1beta.FunctionCallingConfig.Mode), \"" + fc.Mode + "\""
		}
		if len(fc.AllowedFunctionNames) > 0 && fc.Mode != "ANY" && fc.Mode != "VALIDATED" {
			return "* GenerateContentRequest.tool_config.function_calling_config.allowed_function_names: allowed_function_names may only be set when mode is ANY or VALIDATED.\n"
		}
		for _, name := range fc.AllowedFunctionNames {
			if findDecl(req.Tools, name) == nil {
				return "* GenerateContentRequest.tool_config.function_calling_config.allowed_function_names: function " + name + " is not declared.\n"
			}
		}
	}
	if gc := req.GenerationConfig; gc != nil {
		if gc.CandidateCount != nil && *gc.CandidateCount > 1 {
			return "Multiple candidates is not enabled for this model."
		}
		if gc.MaxOutputTokens != nil && *gc.MaxOutputTokens < 0 {
			return "* GenerateContentRequest.generation_config.max_output_tokens: max_output_tokens must be positive.\n"
		}
		if len(gc.ResponseSchema) > 0 && len(gc.ResponseJSONSchema) > 0 {
			return "* GenerateContentRequest.generation_config: response_schema and response_json_schema are mutually exclusive.\n"
		}
		if (len(gc.ResponseSchema) > 0 || len(gc.ResponseJSONSchema) > 0) && gc.ResponseMimeType != "application/json" && gc.ResponseMimeType != "text/x.enum" {
			return "* GenerateContentRequest.generation_config.response_mime_type: response_mime_type must be application/json when a response schema is set.\n"
		}
		switch gc.ResponseMimeType {
		case "", "text/plain", "application/json", "text/x.enum":
		default:
			return "* GenerateContentRequest.generation_config.response_mime_type: allowed mimetypes are `text/plain`, `application/json`, `application/xml`, `application/yaml` and `text/x.enum`.\n"
		}
		if tc := gc.ThinkingConfig; tc != nil {
			if tc.ThinkingBudget != nil && tc.ThinkingLevel != "" {
				return "You cannot use both thinking_level and the legacy thinking_budget parameter in the same request."
			}
			if tc.ThinkingBudget != nil && *tc.ThinkingBudget < -1 {
				return "* GenerateContentRequest.generation_config.thinking_config.thinking_budget: thinking_budget must be -1 (dynamic), 0 (off) or a positive number of tokens.\n"
			}
			if _, ok := thinkingLevels[strings.ToLower(tc.ThinkingLevel)]; tc.ThinkingLevel != "" && !ok {
				return "Invalid value at 'generation_config.thinking_config.thinking_level' (type.googleapis.com/google.ai.generativelanguage.v1beta.ThinkingConfig.ThinkingLevel), \"" + tc.ThinkingLevel + "\""
			}
		}
	}
	return ""
}

func validatePart(p *part, field string) string {
	n := 0
	for _, set := range []bool{p.Text != nil, p.InlineData != nil, p.FileData != nil, p.FunctionCall != nil,
		p.FunctionResponse != nil, len(p.ExecutableCode) > 0, len(p.CodeExecutionResult) > 0} {
		if set {
			n++
		}
	}
	if n != 1 {
		return "* " + field + ".data: required oneof field 'data' must have one initialized field\n"
	}
	switch {
	case p.InlineData != nil:
		if p.InlineData.MimeType == "" {
			return "* " + field + ".inline_data.mime_type: mime_type is required\n"
		}
		if _, err := base64.StdEncoding.DecodeString(p.InlineData.Data); err != nil {
			if _, err := base64.URLEncoding.DecodeString(p.InlineData.Data); err != nil {
				return "Invalid value at '" + field + ".inline_data.data' (TYPE_BYTES), Base64 decoding failed"
			}
		}
	case p.FileData != nil:
		if p.FileData.FileURI == "" {
			return "* " + field + ".file_data.file_uri: file_uri is required\n"
		}
		if p.FileData.MimeType == "" {
			return "* " + field + ".file_data.mime_type: mime_type is required\n"
		}
	case p.FunctionCall != nil:
		if p.FunctionCall.Name == "" {
			return "* " + field + ".function_call.name: name is required\n"
		}
		if a := bytes.TrimSpace(p.FunctionCall.Args); len(a) > 0 && a[0] != '{' && !bytes.Equal(a, []byte("null")) {
			return "Invalid value at '" + field + ".function_call.args' (type.googleapis.com/google.protobuf.Struct), expected an object."
		}
	case p.FunctionResponse != nil:
		if p.FunctionResponse.Name == "" {
			return "* " + field + ".function_response.name: name is required\n"
		}
	}
	return ""
}

// validateSignatures applies Gemini 3's rule: the current turn starts at
// the last user content with a part other than a function response; in it,
// the first functionCall part of every model step must carry its
// signature. Any signature present must be one the mock issued for that
// function (or a documented dummy).
func validateSignatures(contents []content) string {
	start := 0
	for i := len(contents) - 1; i >= 0; i-- {
		c := &contents[i]
		if c.Role == "model" {
			continue
		}
		text := false
		for j := range c.Parts {
			text = text || c.Parts[j].FunctionResponse == nil
		}
		if text {
			start = i + 1
			break
		}
	}
	for i := range contents {
		c := &contents[i]
		if c.Role != "model" {
			continue
		}
		first := true
		for j := range c.Parts {
			p := &c.Parts[j]
			if p.FunctionCall == nil {
				continue
			}
			if p.ThoughtSignature != "" && !validSignature(p.ThoughtSignature, p.FunctionCall.Name) {
				return "Corrupted thought signature."
			}
			if first && i >= start && p.ThoughtSignature == "" {
				return "Function call is missing a thought_signature in functionCall parts. This is required for tools to work correctly, and missing thought_signature may lead to degraded model performance. Additional data, function call `default_api:" +
					p.FunctionCall.Name + "` , position " + strconv.Itoa(j+1) + ". Please refer to https://ai.google.dev/gemini-api/docs/thought-signatures for more details."
			}
			first = false
		}
	}
	return ""
}

func findDecl(tools []tool, name string) *functionDeclaration {
	for i := range tools {
		for j := range tools[i].FunctionDeclarations {
			if tools[i].FunctionDeclarations[j].Name == name {
				return &tools[i].FunctionDeclarations[j]
			}
		}
	}
	return nil
}
