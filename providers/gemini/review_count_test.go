package gemini

// Regression tests from review: each shows a defect that is fixed now.

import (
	"testing"

	"github.com/tidwall/gjson"
)

// Claude Code's tool schemas come from zod-to-json-schema and start with
// "$schema": "http://json-schema.org/draft-07/schema#" (Read's does in
// testdata/req_claude_code.json). The adapter passes input schemas to
// parametersJsonSchema untouched; "$schema" is not in the keyword subset
// Gemini's JSON-Schema path documents, and peer gateways strip it before
// Gemini (GoModel#340, GetStream Vision-Agents#513, hermes-agent) after
// live 400s. countTokens reuses the same translation, so it fails too (and
// silently falls back to an estimate).
func TestReviewToolSchemaDialectMarkerIsStripped(t *testing.T) {
	body := `{"model":"gemini-2.5-flash","messages":[{"role":"user","content":"read /a"}],
		"tools":[{"type":"function","function":{"name":"Read","parameters":{
			"$schema":"http://json-schema.org/draft-07/schema#","type":"object",
			"properties":{"file_path":{"type":"string"}},"required":["file_path"],"additionalProperties":false}}}]}`
	out, err := translateRequest([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	decl := gjson.GetBytes(out, "tools.0.functionDeclarations.0.parametersJsonSchema")
	if !decl.Exists() {
		t.Fatalf("no parametersJsonSchema: %s", out)
	}
	if decl.Get(`\$schema`).Exists() {
		t.Fatalf("$schema reaches Gemini: %s", decl.Raw)
	}
}

// Reasoning effort became a thinkingConfig in 65e0bb6, but
// generationConfig.empty() does not look at ThinkingConfig: a request whose
// only generation setting is its reasoning effort (a Responses request with
// reasoning.effort and no max_output_tokens, a chat request with
// reasoning_effort alone) loses the whole generationConfig, thinking
// included.
func TestReviewReasoningEffortAloneReachesGemini(t *testing.T) {
	body := `{"model":"gemini-2.5-flash","reasoning_effort":"high","messages":[{"role":"user","content":"think"}]}`
	out, err := translateRequest([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	if !gjson.GetBytes(out, "generationConfig.thinkingConfig").Exists() {
		t.Fatalf("reasoning_effort dropped: %s", out)
	}
}
