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
// (internal/httpapi, internal/ingress/messages) send it.
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
