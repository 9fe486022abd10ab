package ingress_test

import (
	"testing"

	"github.com/xroute/xroute/internal/ingress/messages"
	"github.com/xroute/xroute/internal/ingress/responses"
	"github.com/xroute/xroute/loadtest"
)

// BenchmarkParseAgent is an ingress's read of one coding agent's turn of
// about 330 KB: Parse (check), then Translate (pivot and native body), of
// loadtest.AgentMessagesBody (Claude Code) and AgentResponsesBody (Codex).
func BenchmarkParseAgent(b *testing.B) {
	for _, in := range []struct {
		name      string
		body      []byte
		parse     func([]byte) (any, error)
		translate func(any) error
	}{
		{"messages", loadtest.AgentMessagesBody("claude-sonnet-4-5", 121),
			func(body []byte) (any, error) { return messages.Parse(body) },
			func(r any) error { _, err := r.(*messages.Request).Translate(); return err }},
		{"responses", loadtest.AgentResponsesBody("gpt-5-codex", 121),
			func(body []byte) (any, error) { return responses.Parse(body) },
			func(r any) error { _, err := r.(*responses.Request).Translate(nil); return err }},
	} {
		for _, step := range []string{"parse", "parse+translate"} {
			b.Run(in.name+"/"+step, func(b *testing.B) {
				b.SetBytes(int64(len(in.body)))
				b.ReportAllocs()
				for b.Loop() {
					r, err := in.parse(in.body)
					if err != nil {
						b.Fatal(err)
					}
					if step == "parse" {
						continue
					}
					if err := in.translate(r); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
