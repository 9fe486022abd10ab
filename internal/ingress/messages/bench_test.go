package messages

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
)

// agentBody is a coding agent's Messages request of about 330 KB (as
// BenchmarkAgentRequest in internal/httpapi sends it).
func agentBody(turns int) []byte {
	var sb strings.Builder
	fmt.Fprintf(&sb, `{"model":"claude-sonnet-4-5","max_tokens":16,"stream":true,"system":[{"type":"text","text":%s}],"messages":[`,
		strconv.Quote(strings.Repeat("You are a coding agent. Read files before you edit them; run the tests after. ", 400)))
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

// BenchmarkParseAgent is the Messages ingress's read of an agent-sized
// request: Parse (check), then Translate (pivot and native body).
func BenchmarkParseAgent(b *testing.B) {
	body := agentBody(121)
	b.SetBytes(int64(len(body)))
	for _, step := range []string{"parse", "parse+translate"} {
		b.Run(step, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				r, err := Parse(body)
				if err != nil {
					b.Fatal(err)
				}
				if step == "parse" {
					continue
				}
				if _, err := r.Translate(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
