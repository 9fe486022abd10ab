package loadtest

import (
	"fmt"
	"strconv"
	"strings"
)

// AgentMessagesBody is a coding agent's Messages request as Claude Code
// sends them, about 330 KB at 121 turns: a long system prompt, 40 tool
// schemas and turns earlier requests sent too, streamed, max_tokens 16.
// Each request of a session resends all of it with one turn more; the
// turns alternate user and assistant from a user turn, so an odd count
// ends on the user's. The Go benchmarks of the agent-sized path
// (internal/httpapi, internal/ingress) send it.
func AgentMessagesBody(model string, turns int) []byte {
	var sb strings.Builder
	fmt.Fprintf(&sb, `{"model":%q,"max_tokens":16,"stream":true,"system":[{"type":"text","text":%s}],"messages":[`,
		model, strconv.Quote(strings.Repeat("You are a coding agent. Read files before you edit them; run the tests after. ", 400)))
	for i := range turns {
		if i > 0 {
			sb.WriteString(",")
		}
		role := [2]string{"user", "assistant"}[i%2]
		fmt.Fprintf(&sb, `{"role":%q,"content":[{"type":"text","text":%q}]}`, role,
			fmt.Sprintf("turn %d: ", i)+strings.Repeat("func handler(w http.ResponseWriter, r *http.Request) { if err := r.ParseForm(); err != nil { return } }\n", 25))
	}
	sb.WriteString(`],"tools":[`)
	for i := range 40 {
		if i > 0 {
			sb.WriteString(",")
		}
		fmt.Fprintf(&sb, `{"name":"tool_%d","description":%q,"input_schema":{"type":"object","properties":{"path":{"type":"string"}},"required":["path"]}}`,
			i, strings.Repeat("Reads or writes a file in the workspace. ", 20))
	}
	sb.WriteString(`]}`)
	return []byte(sb.String())
}

// AgentResponsesBody is the same session as the Codex CLI sends it to the
// Responses API, about the same size at the same turn count: instructions,
// 40 function tools, and input items that alternate a user message with an
// assistant's function call, its output (the file the tool read) and the
// assistant's message; store false, streamed, max_output_tokens 16.
func AgentResponsesBody(model string, turns int) []byte {
	var sb strings.Builder
	fmt.Fprintf(&sb, `{"model":%q,"max_output_tokens":16,"stream":true,"store":false,"instructions":%s,"input":[`,
		model, strconv.Quote(strings.Repeat("You are a coding agent. Read files before you edit them; run the tests after. ", 400)))
	code := strings.Repeat("func handler(w http.ResponseWriter, r *http.Request) { if err := r.ParseForm(); err != nil { return } }\n", 25)
	for i := range turns {
		if i > 0 {
			sb.WriteString(",")
		}
		if i%2 == 0 {
			fmt.Fprintf(&sb, `{"type":"message","role":"user","content":[{"type":"input_text","text":%q}]}`, fmt.Sprintf("turn %d: ", i)+code)
			continue
		}
		fmt.Fprintf(&sb, `{"type":"function_call","call_id":"call_%d","name":"tool_%d","arguments":%q},`, i, i%40, `{"path":"internal/handler.go"}`)
		fmt.Fprintf(&sb, `{"type":"function_call_output","call_id":"call_%d","output":%q},`, i, code[:len(code)/2])
		fmt.Fprintf(&sb, `{"type":"message","role":"assistant","content":[{"type":"output_text","text":%q}]}`, fmt.Sprintf("turn %d: ", i)+code[len(code)/2:])
	}
	sb.WriteString(`],"tools":[`)
	for i := range 40 {
		if i > 0 {
			sb.WriteString(",")
		}
		fmt.Fprintf(&sb, `{"type":"function","name":"tool_%d","description":%q,"parameters":{"type":"object","properties":{"path":{"type":"string"}},"required":["path"]}}`,
			i, strings.Repeat("Reads or writes a file in the workspace. ", 20))
	}
	sb.WriteString(`]}`)
	return []byte(sb.String())
}
