package messages

import (
	"testing"

	"github.com/xroute/xroute/loadtest"
)

// BenchmarkParseAgent is the Messages ingress's read of an agent-sized
// request: Parse (check), then Translate (pivot and native body), of
// loadtest.AgentMessagesBody.
func BenchmarkParseAgent(b *testing.B) {
	body := loadtest.AgentMessagesBody("claude-sonnet-4-5", 121)
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
